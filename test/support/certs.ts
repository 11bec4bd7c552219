/**
 * Test PKI built with the openssl CLI in a temporary directory.
 *
 * `openssl ca` is used for every certificate (roots too, with `-selfsign`)
 * because it is the one OpenSSL 3.0 command that takes exact validity dates
 * (`-startdate`/`-enddate`); `openssl x509 -req` only has `-days`. That makes
 * expired and not-yet-valid certificates possible without faking the clock.
 * Keys come from node:crypto (ECDSA P-256 by default, fast).
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DAY = 86_400_000;

export interface TestCert {
  /** The subject CN. */
  cn: string;
  /** PEM of the certificate. */
  cert: string;
  /** PEM (PKCS#8) of its private key. */
  key: string;
  certFile: string;
  keyFile: string;
}

export interface CertSpec {
  cn: string;
  /** Who signs it; omit for a self-signed root. */
  issuer?: TestCert;
  /** `ca`: CA:TRUE, keyCertSign; `leaf`: CA:FALSE, serverAuth; `ca-false`: a would-be intermediate marked CA:FALSE (keyCertSign kept). */
  kind: 'ca' | 'leaf' | 'ca-false';
  /** basicConstraints pathlen for a CA. */
  pathLen?: number;
  /** DNS names and IP literals for the subjectAltName. */
  names?: string[];
  /** extendedKeyUsage; leaf default `serverAuth`, CA default none. */
  eku?: string[];
  notBefore: Date;
  notAfter: Date;
  keyType?: 'ec' | 'rsa';
  /** Reuse this private key (PEM) instead of making one. */
  key?: string;
}

function run(args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new Error('the openssl program is missing: install the Debian package openssl (apt-get install openssl)'));
      }
      reject(new Error(`openssl ${args.join(' ')} failed: ${stderr || err.message}`));
    });
  });
}

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate/-enddate` takes. */
function opensslTime(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** A new private key as PKCS#8 PEM. */
export function newKey(type: 'ec' | 'rsa' = 'ec'): string {
  const { privateKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** A copy of `pem` with one bit of its signature flipped: still parseable, never verifiable. */
export function withBadSignature(pem: string): string {
  const der = Buffer.from(new X509Certificate(pem).raw);
  // The last byte belongs to the signature value (for ECDSA, the low byte of s).
  der[der.length - 1] = der[der.length - 1]! ^ 0x01;
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** A scratch directory of certificates. Call `cleanup()` in `after()`. */
export class TestPki {
  private counter = 0;
  private constructor(readonly dir: string) {}

  static async create(): Promise<TestPki> {
    return new TestPki(await mkdtemp(join(tmpdir(), 'padlock-test-pki-')));
  }

  /** Writes `text` to a file in the PKI directory and returns its path. */
  async file(name: string, text: string): Promise<string> {
    const path = join(this.dir, name);
    await writeFile(path, text, { mode: 0o600 });
    return path;
  }

  /** Issues one certificate per `spec` with `openssl ca`. */
  async issue(spec: CertSpec): Promise<TestCert> {
    const slug = `${++this.counter}-${spec.cn.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 40)}`;
    const work = join(this.dir, slug);
    await mkdir(work, { mode: 0o700 });
    const key = spec.key ?? newKey(spec.keyType ?? 'ec');
    const keyFile = join(work, 'key.pem');
    await writeFile(keyFile, key, { mode: 0o600 });
    await writeFile(join(work, 'index.txt'), '');
    await writeFile(join(work, 'serial'), `10${randomBytes(15).toString('hex')}\n`);
    await writeFile(join(work, 'ca.cnf'), caConfig(spec));
    await run(['req', '-new', '-key', keyFile, '-subj', `/CN=${spec.cn}`, '-out', 'req.csr'], work);
    const signer = spec.issuer ? ['-cert', spec.issuer.certFile, '-keyfile', spec.issuer.keyFile] : ['-selfsign', '-keyfile', keyFile];
    await run(
      ['ca', '-batch', '-notext', '-config', 'ca.cnf', ...signer, '-in', 'req.csr', '-out', 'cert.pem',
        '-startdate', opensslTime(spec.notBefore), '-enddate', opensslTime(spec.notAfter), '-extensions', 'ext'],
      work,
    );
    const cert = await readFile(join(work, 'cert.pem'), 'utf8');
    return { cn: spec.cn, cert, key, certFile: join(work, 'cert.pem'), keyFile };
  }

  async cleanup(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

function caConfig(spec: CertSpec): string {
  const ext: string[] = [];
  if (spec.kind === 'ca') {
    ext.push(`basicConstraints = critical,CA:TRUE${spec.pathLen !== undefined ? `,pathlen:${spec.pathLen}` : ''}`);
    ext.push('keyUsage = critical,keyCertSign,cRLSign,digitalSignature');
  } else if (spec.kind === 'ca-false') {
    ext.push('basicConstraints = critical,CA:FALSE');
    ext.push('keyUsage = critical,keyCertSign,cRLSign,digitalSignature');
  } else {
    ext.push('basicConstraints = critical,CA:FALSE');
    ext.push(`keyUsage = critical,digitalSignature${spec.keyType === 'rsa' ? ',keyEncipherment' : ''}`);
  }
  const eku = spec.eku ?? (spec.kind === 'leaf' ? ['serverAuth'] : []);
  if (eku.length) ext.push(`extendedKeyUsage = ${eku.join(',')}`);
  if (spec.names?.length) ext.push(`subjectAltName = ${spec.names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',')}`);
  ext.push('subjectKeyIdentifier = hash');
  if (spec.issuer) ext.push('authorityKeyIdentifier = keyid:always');
  return [
    '[ ca ]',
    'default_ca = CA_default',
    '[ CA_default ]',
    'database = ./index.txt',
    'new_certs_dir = .',
    'serial = ./serial',
    'default_md = sha256',
    'policy = policy_any',
    'unique_subject = no',
    'copy_extensions = none',
    'email_in_dn = no',
    '[ policy_any ]',
    'commonName = supplied',
    '[ ext ]',
    ...ext,
    '',
  ].join('\n');
}
