/**
 * padlock's own local CA, for names no public CA will ever certify
 * (`localhost`, `*.localhost`, `*.internal`, `*.home.arpa`...), as Caddy does.
 *
 * The root (ECDSA P-256, 10 years) is created on first use and kept in the
 * store as the lineage `padlock-local-ca` (key 0600, like every key), so it
 * survives restarts and works with any store backend. Leaves are short-lived
 * (7 days) and renewed by the normal policy; they are signed by the root
 * directly. `padlock trust` prints the root for installing it.
 *
 * Certificates are built with @peculiar/x509 (WebCrypto, ECDSA-capable);
 * node:crypto can parse but not create certificates.
 */
import { webcrypto, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CertStore, CertBundle, LineageMeta } from '../store/store.js';
import type { Clock } from '../clock.js';
import { PadlockError } from '../errors.js';

x509.cryptoProvider.set(webcrypto as never);

type Key = webcrypto.CryptoKey;

export const LOCAL_ROOT_LINEAGE = 'padlock-local-ca';
/** `LineageMeta.server` of the root lineage. */
export const LOCAL_ROOT_SERVER = 'padlock:local-root';
/** `LineageMeta.server` of leaves the local CA issued. */
export const LOCAL_ISSUER = 'padlock:local';

const DAY = 86_400_000;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface LocalRoot {
  certPem: string;
  keyPem: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

async function importSigningKey(keyPem: string): Promise<Key> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<Key>;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

/** Returns the local root, creating and storing it on first use (under the store lock). */
export async function ensureLocalRoot(store: CertStore, clock: Clock): Promise<LocalRoot> {
  const existing = await store.readLineage(LOCAL_ROOT_LINEAGE);
  if (existing) return { certPem: existing.bundle.cert, keyPem: existing.bundle.privkey };
  const unlock = await store.lock(LOCAL_ROOT_LINEAGE, { waitMs: 30_000 });
  try {
    const again = await store.readLineage(LOCAL_ROOT_LINEAGE);
    if (again) return { certPem: again.bundle.cert, keyPem: again.bundle.privkey };
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = clock.now();
    const name = `CN=padlock local CA ${randomBytes(3).toString('hex')}, O=padlock local development`;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name,
      notBefore: new Date(now.getTime() - 3600_000),
      notAfter: new Date(now.getTime() + 3650 * DAY),
      signingAlgorithm: ALG,
      keys: keys as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
      ],
    });
    const certPem = cert.toString('pem') + '\n';
    const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const meta: LineageMeta = {
      name: LOCAL_ROOT_LINEAGE,
      domains: [],
      server: LOCAL_ROOT_SERVER,
      keyType: 'ecdsa',
      ellipticCurve: 'P-256',
      challenge: { type: 'standalone', port: 0 },
      updatedAt: now.toISOString(),
    };
    await store.putVersion(LOCAL_ROOT_LINEAGE, { cert: certPem, chain: '', fullchain: certPem, privkey: keyPem }, meta);
    return { certPem, keyPem };
  } finally {
    await unlock();
  }
}

/**
 * Issues a leaf for `names` with `keyPem` (the leaf's own key), signed by
 * the root. Valid from an hour ago (clock skew) for `validityDays`.
 */
export async function issueLocalCertificate(root: LocalRoot, names: string[], keyPem: string, clock: Clock, validityDays = 7): Promise<CertBundle> {
  if (names.length === 0) throw new PadlockError('NAME_INVALID', 'the local CA needs at least one name');
  const rootCert = new x509.X509Certificate(root.certPem);
  const signingKey = await importSigningKey(root.keyPem);
  const leafKey = createPrivateKey(keyPem);
  if (leafKey.asymmetricKeyType !== 'ec' || leafKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new PadlockError('CONFIG_INVALID', 'local certificates use ECDSA P-256 keys');
  }
  const spki = createPublicKey(leafKey).export({ type: 'spki', format: 'der' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, ALG, true, ['verify']) as Key;
  const now = clock.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0]}`,
    issuer: rootCert.subject,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + validityDays * DAY),
    signingAlgorithm: ALG,
    publicKey: publicKey as never,
    signingKey: signingKey as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
      await x509.SubjectKeyIdentifierExtension.create(publicKey as never),
      await x509.AuthorityKeyIdentifierExtension.create(rootCert),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  return { cert: certPem, chain: '', fullchain: certPem, privkey: keyPem };
}
