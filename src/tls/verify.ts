/**
 * Certificate chain verification.
 *
 * Why the `openssl verify` program and not something in-process:
 * - A path builder written by hand on `X509Certificate` got extendedKeyUsage on
 *   intermediates and pathLenConstraint wrong; OpenSSL's verifier gets them
 *   right and is what the TLS stacks serving these certificates use.
 * - Node's TLS API (the other way to reach OpenSSL's verifier) cannot set the
 *   verification time, and reports only the *last* verify error, which masks
 *   the first one (an expired leaf hidden behind an untrusted root, say).
 * - `openssl verify` takes `-attime`, prints every error with its depth, and
 *   with `-no-CApath -no-CAstore -CAfile` trusts exactly our anchors.
 *
 * Cheap checks that need no chain (parsing, key match, names) run in Node
 * first, so their messages are precise. Everything else is OpenSSL's verdict,
 * mapped from its `X509_V_ERR_*` numbers to padlock error codes.
 *
 * The error numbers are OpenSSL 3's: 3.0 renumbered some (X509_V_ERR_INVALID_CA
 * moved from 24 to 79, and 24 became X509_V_ERR_NO_ISSUER_PUBLIC_KEY).
 *
 * `-x509_strict` is deliberately not passed: it rejects certificates real CAs
 * still issue and that every TLS client accepts.
 */
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { PadlockError, type ErrorCode } from '../errors.js';
import { certificateName, describeCertificate, isIssuedBy, splitPem, type CertSummary } from './inspect.js';
import type { TrustAnchors } from './roots.js';

export interface VerifyInput {
  /** PEM, leaf first; any further certificates join the intermediate pool. */
  cert: string;
  /** An unordered pool of intermediates (PEM, may be empty); extra unrelated certificates are harmless. */
  chain?: string;
  /** The private key (PEM); when given it must match the leaf. */
  key?: string;
  /** Host names (or IP literals) the leaf must cover, wildcards per RFC 6125 section 6.4.3. */
  names?: string[];
  roots: TrustAnchors;
  /** Verify as of this time; defaults to `clock.now()`. */
  at?: Date;
  clock?: Clock;
  /** The openssl program to run; defaults to `openssl` on PATH. */
  openssl?: string;
}

export interface VerifyResult {
  leaf: CertSummary;
  /** Leaf first, trust anchor last, as OpenSSL built it. */
  path: CertSummary[];
}

/** The verification error codes {@link verifyCertificate} throws. */
export type VerifyErrorCode = Extract<ErrorCode, `CERT_${string}` | `CHAIN_${string}`>;

const OPENSSL_TIMEOUT_MS = 10_000;

/**
 * Verifies a certificate as a TLS server certificate against `roots` at one
 * instant. Resolves with the leaf and the path built when valid; otherwise
 * throws a `PadlockError` with a {@link VerifyErrorCode} and a one-line message
 * naming the certificate at fault. When OpenSSL finds several problems, the
 * first it reports decides the code; all of them are in `details.opensslErrors`.
 *
 * Safe to call concurrently: each call works in its own temporary directory,
 * removed before it settles. The anchors file is written once per
 * `TrustAnchors` object per process.
 */
export async function verifyCertificate(input: VerifyInput): Promise<VerifyResult> {
  const at = input.at ?? (input.clock ?? systemClock).now();
  const blocks = splitPem(input.cert);
  if (blocks.length === 0) throw new PadlockError('CERT_UNPARSEABLE', 'the certificate input holds no PEM CERTIFICATE block');
  const certs = blocks.map((b, i) => parseOne(b, i === 0 ? 'the leaf certificate' : `certificate ${i + 1} of the certificate input`));
  const leaf = certs[0]!;
  const leafName = certificateName(leaf);
  const poolBlocks = [...blocks.slice(1), ...splitPem(input.chain ?? '')];
  const pool = poolBlocks.map((b, i) => parseOne(b, `certificate ${i + 1} of the chain pool`));

  if (input.key !== undefined) checkKey(leaf, leafName, input.key);
  if (input.names && input.names.length > 0) checkNames(leaf, leafName, input.names);

  const rootsFile = await anchorsFile(input.roots);
  const dir = await mkdtemp(join(tmpdir(), 'padlock-verify-'));
  try {
    const leafFile = join(dir, 'leaf.pem');
    await writeFile(leafFile, blocks[0]!, { mode: 0o600 });
    const args = ['verify', '-purpose', 'sslserver', '-CAfile', rootsFile, '-no-CApath', '-no-CAstore'];
    if (poolBlocks.length > 0) {
      const poolFile = join(dir, 'pool.pem');
      await writeFile(poolFile, poolBlocks.join(''), { mode: 0o600 });
      args.push('-untrusted', poolFile);
    }
    args.push('-attime', String(Math.floor(at.getTime() / 1000)), '-show_chain', leafFile);
    const run = await runOpenssl(input.openssl ?? 'openssl', args);
    const ctx: Context = { leaf, leafName, pool, roots: input.roots, at };
    if (run.ok) {
      return { leaf: describeCertificate(leaf), path: buildPath(run.stdout, ctx).map((c) => describeCertificate(c)) };
    }
    throw failure(run, ctx);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A short human explanation for a verification error code, for help texts and
 * JSON consumers that only kept the code.
 */
export function verifyErrorReason(code: VerifyErrorCode): string {
  return REASONS[code];
}

const REASONS: Record<VerifyErrorCode, string> = {
  CERT_UNPARSEABLE: 'the certificate could not be parsed',
  CERT_EXPIRED: 'a certificate in the chain has expired',
  CERT_NOT_YET_VALID: 'a certificate in the chain is not valid yet',
  CERT_NAME_MISMATCH: 'the certificate does not cover the requested name',
  CERT_KEY_MISMATCH: 'the private key does not belong to the certificate',
  CHAIN_UNTRUSTED: 'the chain ends in a root that is not trusted',
  CHAIN_MISSING_INTERMEDIATE: 'an intermediate certificate is missing',
  CHAIN_BAD_SIGNATURE: 'a signature in the chain does not verify',
  CHAIN_INVALID_PURPOSE: 'a certificate in the chain does not allow TLS server authentication',
  CHAIN_INVALID_CA: 'a certificate acting as a CA is not allowed to',
  CHAIN_PATH_LENGTH: 'the chain is longer than a CA certificate allows',
  CHAIN_INVALID: 'the chain is invalid',
};

interface Context {
  leaf: X509Certificate;
  leafName: string;
  pool: X509Certificate[];
  roots: TrustAnchors;
  at: Date;
}

function parseOne(pem: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new PadlockError('CERT_UNPARSEABLE', `${what} is not a readable X.509 certificate (${(err as Error).message})`, { cause: err });
  }
}

function checkKey(leaf: X509Certificate, leafName: string, keyPem: string): void {
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new PadlockError('CERT_UNPARSEABLE', `the private key for ${leafName} could not be read (${(err as Error).message})`, { cause: err });
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(key);
  } catch {
    matches = false; // a key of another type cannot match
  }
  if (!matches) {
    throw new PadlockError('CERT_KEY_MISMATCH', `the private key does not match the certificate for ${leafName} (it belongs to another certificate)`);
  }
}

function checkNames(leaf: X509Certificate, leafName: string, names: string[]): void {
  const missing: string[] = [];
  for (const raw of names) {
    const name = raw.trim().toLowerCase().replace(/\.$/, '');
    const ip = name.replace(/^\[(.*)\]$/, '$1');
    const covered = isIP(ip)
      ? leaf.checkIP(ip) !== undefined
      : leaf.checkHost(name, {
          // RFC 6125 section 6.4.3: a wildcard is the whole left-most label and
          // matches exactly one label; the CN counts only without DNS SANs.
          subject: 'default',
          wildcards: true,
          partialWildcards: false,
          multiLabelWildcards: false,
          singleLabelSubdomains: false,
        }) !== undefined;
    if (!covered) missing.push(raw);
  }
  if (missing.length > 0) {
    const has = describeCertificate(leaf).names;
    throw new PadlockError(
      'CERT_NAME_MISMATCH',
      `certificate for ${leafName} does not cover ${missing.join(', ')} (it covers ${has.length ? has.join(', ') : 'no DNS names'})`,
      { details: { missingNames: missing, names: has } },
    );
  }
}

// ---------------------------------------------------------------------------
// Anchors file cache. A process-wide cache is the one piece of shared state
// here; it is keyed weakly by the (immutable) TrustAnchors object, so a new
// set of anchors gets a new file and nothing leaks across sets.

const anchorFiles = new WeakMap<TrustAnchors, Promise<string>>();
let anchorDir: string | undefined;

function anchorsFile(roots: TrustAnchors): Promise<string> {
  let file = anchorFiles.get(roots);
  if (file === undefined) {
    file = (async () => {
      if (anchorDir === undefined) {
        anchorDir = mkdtempSync(join(tmpdir(), 'padlock-anchors-'));
        const dir = anchorDir;
        process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      }
      const path = join(anchorDir, `anchors-${anchorCounter++}.pem`);
      // An empty CAfile makes openssl fail to load it; a file of zero anchors
      // must instead mean "trust nothing".
      writeFileSync(path, roots.pem.length > 0 ? roots.pem : '\n', { mode: 0o600 });
      return path;
    })();
    anchorFiles.set(roots, file);
  }
  return file;
}
let anchorCounter = 0;

const parsedAnchors = new WeakMap<TrustAnchors, X509Certificate[]>();

function anchorCerts(roots: TrustAnchors): X509Certificate[] {
  let certs = parsedAnchors.get(roots);
  if (certs === undefined) {
    certs = [];
    for (const pem of splitPem(roots.pem)) {
      try {
        certs.push(new X509Certificate(pem));
      } catch {
        // an anchor Node cannot parse cannot be named either; skip it
      }
    }
    parsedAnchors.set(roots, certs);
  }
  return certs;
}

// ---------------------------------------------------------------------------
// Running openssl.

interface OpensslRun {
  ok: boolean;
  stdout: string;
  stderr: string;
  exitCode: number | string | null;
}

function runOpenssl(program: string, args: string[]): Promise<OpensslRun> {
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      { timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (err === null) return resolve({ ok: true, stdout, stderr, exitCode: 0 });
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
        if (e.code === 'ENOENT') {
          return reject(
            new PadlockError('CHAIN_INVALID', `cannot verify chains: the openssl program (${program}) was not found; install the Debian package openssl`, {
              cause: err,
            }),
          );
        }
        if (e.killed) {
          return reject(new PadlockError('CHAIN_INVALID', `openssl verify did not finish within ${OPENSSL_TIMEOUT_MS / 1000} s`, { cause: err, retryable: true }));
        }
        resolve({ ok: false, stdout, stderr, exitCode: e.code ?? null });
      },
    );
  });
}

// ---------------------------------------------------------------------------
// Reading openssl's output.

/** `C = US, O = Org, CN = name` (openssl's default) → `C=US\nO=Org\nCN=name` (Node's). */
function opensslNameToNode(line: string): string {
  return line
    .trim()
    .split(/, (?=[A-Za-z][A-Za-z0-9.]* = )/)
    .map((part) => part.replace(/^([A-Za-z][A-Za-z0-9.]*) = /, '$1='))
    .join('\n');
}

function cnOf(nodeName: string): string {
  const cn = nodeName.split('\n').find((p) => p.startsWith('CN='));
  return cn ? cn.slice(3) : nodeName.replace(/\n/g, ', ');
}

/** Certificates whose subject matches an openssl-printed subject line. */
function candidatesFor(subjectLine: string, depth: number, ctx: Context): X509Certificate[] {
  if (depth === 0) return [ctx.leaf];
  const wanted = opensslNameToNode(subjectLine);
  const all = [...ctx.pool, ...anchorCerts(ctx.roots)];
  const exact = all.filter((c) => c.subject === wanted);
  if (exact.length > 0) return exact;
  const cn = cnOf(wanted);
  return all.filter((c) => cnOf(c.subject) === cn);
}

/** The path from `-show_chain` (`depth=N: SUBJECT[ (untrusted)]`), leaf first. */
function buildPath(stdout: string, ctx: Context): X509Certificate[] {
  const path: X509Certificate[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^depth=(\d+): (.*?)( \(untrusted\))?$/.exec(line.trim());
    if (!m) continue;
    const depth = Number(m[1]);
    const found = candidatesFor(m[2]!, depth, ctx);
    const child = path[path.length - 1];
    const pick = (child ? found.find((c) => isIssuedBy(child, c)) : undefined) ?? found[0];
    if (pick === undefined) break; // cannot name it; keep the part of the path we know
    path.push(pick);
  }
  return path.length > 0 ? path : [ctx.leaf];
}

interface OpensslError {
  number: number;
  depth: number;
  text: string;
  subject: string;
}

function parseErrors(stderr: string): OpensslError[] {
  const lines = stderr.split('\n');
  const errors: OpensslError[] = [];
  lines.forEach((line, i) => {
    const m = /^(?:\[CRL path\] )?error (\d+) at (\d+) depth lookup: ?(.*)$/.exec(line.trim());
    if (!m) return;
    const prev = i > 0 ? lines[i - 1]!.trim() : '';
    errors.push({ number: Number(m[1]), depth: Number(m[2]), text: m[3]!, subject: /^error /.test(prev) ? '' : prev });
  });
  return errors;
}

const ISO_SECONDS = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'OCSPSigning',
  '2.5.29.37.0': 'anyExtendedKeyUsage',
};

function ekuOf(cert: X509Certificate | undefined): string | undefined {
  const usages = (cert as { keyUsage?: string[] } | undefined)?.keyUsage;
  return usages && usages.length ? usages.map((u) => EKU_NAMES[u] ?? u).join(', ') : undefined;
}

function selfIssued(cert: X509Certificate | undefined): boolean {
  return cert !== undefined && cert.subject === cert.issuer && isIssuedBy(cert, cert);
}

function failure(run: OpensslRun, ctx: Context): PadlockError {
  const errors = parseErrors(run.stderr);
  const first = errors[0];
  const opensslErrors = errors.map(({ number, depth, text, subject }) => ({ number, depth, text, subject }));
  if (first === undefined) {
    const why = run.stderr.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? `exit status ${String(run.exitCode)}`;
    return new PadlockError('CHAIN_INVALID', `openssl could not verify the certificate for ${ctx.leafName}: ${why}`, {
      details: { opensslStderr: run.stderr.slice(0, 2000) },
    });
  }
  const found = candidatesFor(first.subject, first.depth, ctx);
  const prefer = (test: (c: X509Certificate) => boolean): X509Certificate | undefined => found.find(test) ?? found[0];
  const at = ctx.at.getTime();
  const name = first.depth === 0 ? ctx.leafName : first.subject ? cnOf(opensslNameToNode(first.subject)) : found[0] ? certificateName(found[0]) : 'unknown';
  const who = first.depth === 0 ? `certificate for ${ctx.leafName}` : `CA certificate "${name}" in the chain for ${ctx.leafName}`;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more problem${errors.length > 2 ? 's' : ''})` : '';
  const make = (code: VerifyErrorCode, message: string): PadlockError =>
    new PadlockError(code, message + more, { details: { certificate: name, depth: first.depth, opensslErrors } });

  switch (first.number) {
    case 10: {
      const cert = prefer((c) => describeCertificate(c).notAfter.getTime() < at);
      return make('CERT_EXPIRED', `${who} expired on ${cert ? ISO_SECONDS(describeCertificate(cert).notAfter) : 'an earlier date'}`);
    }
    case 9: {
      const cert = prefer((c) => describeCertificate(c).notBefore.getTime() > at);
      return make('CERT_NOT_YET_VALID', `${who} is not valid before ${cert ? ISO_SECONDS(describeCertificate(cert).notBefore) : 'a later date'}`);
    }
    case 2: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    case 20: // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    case 21: {
      // X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
      const cert = found[0];
      const issuer = cert ? cnOf(cert.issuer) : 'its issuer';
      if (selfIssued(cert)) {
        return make('CHAIN_UNTRUSTED', `${who} is a self-signed root that is not trusted`);
      }
      if (first.depth === 0) {
        // The leaf's own issuer is nowhere: the server or file left out its intermediate.
        return make(
          'CHAIN_MISSING_INTERMEDIATE',
          `certificate for ${ctx.leafName} was issued by "${issuer}", which is neither in the supplied chain nor a trusted root; supply that intermediate (--chain), or trust it if it is a root`,
        );
      }
      // An intermediate was found but not its issuer. Servers rightly leave the
      // root out, so this is nearly always a root we do not trust (a second
      // missing intermediate is the rare case; the message covers both).
      return make(
        'CHAIN_UNTRUSTED',
        `certificate for ${ctx.leafName} chains up to "${name}", issued by "${issuer}", which is not a trusted root (nor in the supplied chain)`,
      );
    }
    case 18: // X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
      return make('CHAIN_UNTRUSTED', `certificate for ${ctx.leafName} is self-signed and not a trusted root`);
    case 19: // X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
      return make('CHAIN_UNTRUSTED', `certificate for ${ctx.leafName} chains to root "${name}", which is not trusted`);
    case 27: // X509_V_ERR_CERT_UNTRUSTED
    case 28: // X509_V_ERR_CERT_REJECTED
      return make('CHAIN_UNTRUSTED', `${who} is not trusted for TLS server authentication (${first.text})`);
    case 4: // X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE
    case 6: // X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY
    case 24: // X509_V_ERR_NO_ISSUER_PUBLIC_KEY (OpenSSL 3.0 numbering)
    case 76: // X509_V_ERR_UNSUPPORTED_SIGNATURE_ALGORITHM
    case 77: // X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH
    case 7: {
      // X509_V_ERR_CERT_SIGNATURE_FAILURE
      const cert = found[0];
      return make('CHAIN_BAD_SIGNATURE', `the signature on the ${who} does not verify with the key of its issuer "${cert ? cnOf(cert.issuer) : 'unknown'}"`);
    }
    case 79: // X509_V_ERR_INVALID_CA (it was 24 before OpenSSL 3.0)
    case 80: // X509_V_ERR_PATHLEN_INVALID_FOR_NON_CA
    case 82: // X509_V_ERR_KU_KEY_CERT_SIGN_INVALID_FOR_NON_CA
      return make('CHAIN_INVALID_CA', `${who} is not allowed to issue certificates (basicConstraints is not CA:TRUE)`);
    case 32: // X509_V_ERR_KEYUSAGE_NO_CERTSIGN
      return make('CHAIN_INVALID_CA', `${who} is not allowed to issue certificates (keyUsage lacks keyCertSign)`);
    case 25: // X509_V_ERR_PATH_LENGTH_EXCEEDED
    case 22: // X509_V_ERR_CERT_CHAIN_TOO_LONG
      return make('CHAIN_PATH_LENGTH', `${who} has a path length limit (pathLenConstraint) that the chain below it exceeds`);
    case 26: {
      // X509_V_ERR_INVALID_PURPOSE
      const eku = ekuOf(found[0]);
      return make(
        'CHAIN_INVALID_PURPOSE',
        `${who} does not allow TLS server authentication${eku ? ` (extendedKeyUsage: ${eku})` : ` (${first.text})`}`,
      );
    }
    default:
      return make('CHAIN_INVALID', `${who}: ${first.text} (OpenSSL error ${first.number})`);
  }
}
