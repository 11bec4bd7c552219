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
 * Whoever runs `padlock trust` must not be trusting a root that could sign
 * `bank.com`: the root carries a critical NameConstraints extension (RFC 5280
 * section 4.2.1.10) that permits only `localhost` and the local suffixes, so
 * even a stolen root key signs nothing a browser would accept for a public
 * name. Roots made before this (no constraints) are replaced on first use.
 *
 * Certificates are built with @peculiar/x509 (WebCrypto, ECDSA-capable);
 * node:crypto can parse but not create certificates. @peculiar/x509 has no
 * NameConstraints class, so that extension's value is built from
 * @peculiar/asn1-x509's ASN.1 types (the ones @peculiar/x509 itself uses).
 */
import { webcrypto, createPrivateKey, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { x509Lib } from './x509-lib.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints, id_ce_nameConstraints } from '@peculiar/asn1-x509';
import type { CertStore, CertBundle, Lineage, LineageMeta } from '../store/store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { PadlockError } from '../errors.js';
import { normaliseLocalSuffix } from '../config/names.js';
import { isIssuedBy } from './inspect.js';
import { parseCertificate } from './webpki/certificate.js';

type Key = webcrypto.CryptoKey;

export const LOCAL_ROOT_LINEAGE = 'padlock-local-ca';
/** `LineageMeta.server` of the root lineage. */
export const LOCAL_ROOT_SERVER = 'padlock:local-root';
/** `LineageMeta.server` of leaves the local CA issued. */
export const LOCAL_ISSUER = 'padlock:local';

const DAY = 86_400_000;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** `localSuffixes`' default; the local CA's callers pass the configured list. */
export const DEFAULT_LOCAL_SUFFIXES: readonly string[] = ['localhost', 'internal', 'home.arpa'];

export interface LocalRoot {
  certPem: string;
  keyPem: string;
}

/** What {@link ensureLocalRoot} found or made. */
export interface EnsuredLocalRoot extends LocalRoot {
  /** The DNS subtrees the root may sign (each name and every name under it). */
  permittedNames: string[];
  /** True when this call replaced a root that lacked constraints or suffixes: `padlock trust` must be run again. */
  replaced: boolean;
  /** On replacement, the warning given to the logger (why, and what the user must do), for a CLI to print. */
  notice?: string;
}

export interface EnsureLocalRootOptions {
  /** Told (warn) when the root is replaced, with what to do about it. */
  logger?: Logger;
}

// A DNS name as a constraint: letters, digits, `-` and `_`, dot-separated.
const CONSTRAINT_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/**
 * The DNS subtrees a root for these suffixes must permit: `localhost` first,
 * then each suffix normalised (lowercase, no leading `*.`/`.`, no trailing
 * dot), without duplicates or empties. An empty constraint would permit every
 * name, so empties are dropped, never kept.
 * @throws PadlockError CONFIG_INVALID for a suffix that is not a DNS name.
 */
export function localRootNames(suffixes: readonly string[]): string[] {
  const out = ['localhost'];
  for (const raw of suffixes) {
    const name = normaliseLocalSuffix(raw);
    if (name === '' || out.includes(name)) continue;
    if (!CONSTRAINT_NAME.test(name) || name.length > 253) {
      throw new PadlockError('CONFIG_INVALID', `local suffix "${raw}" is not a DNS name (use letters, digits, "-" and dots; punycode for other scripts)`);
    }
    out.push(name);
  }
  return out;
}

/**
 * The DNS subtrees the root's NameConstraints permit, lowercase; null when
 * the root has no NameConstraints or permits no DNS subtree (it can then
 * sign any name).
 */
export function rootPermittedNames(rootPem: string): string[] | null {
  const ext = parseCertificate(new X509Certificate(rootPem).raw).extensions.get(id_ce_nameConstraints);
  if (!ext) return null;
  const constraints = AsnConvert.parse(ext.value, NameConstraints);
  // A plain array: AsnArray's map would give back another AsnArray.
  const names = Array.from(constraints.permittedSubtrees ?? [])
    .map((t) => t.base.dNSName)
    .filter((n): n is string => n !== undefined)
    .map((n) => n.toLowerCase().replace(/^\.+/, ''));
  return names.length > 0 ? names : null;
}

/** Whether `name` (a `*.` wildcard counts as its parent) is a permitted subtree or under one (RFC 5280 dNSName matching). */
function withinNames(name: string, permitted: readonly string[]): boolean {
  const bare = name.toLowerCase().replace(/^\*\./, '');
  return permitted.some((p) => p === '' || bare === p || bare.endsWith('.' + p));
}

/**
 * Whether `root` signed `leafPem`: issuer name and key identifiers match
 * and the signature verifies with the root's key. A leaf from a replaced
 * root is not issued by the new one and must be reissued. False for
 * unreadable PEMs. A caller checking many leaves passes the root parsed once.
 */
export function issuedByRoot(leafPem: string, root: string | X509Certificate): boolean {
  try {
    return isIssuedBy(new X509Certificate(leafPem), typeof root === 'string' ? new X509Certificate(root) : root);
  } catch {
    return false;
  }
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

/**
 * Returns the local root, creating and storing it on first use (under the
 * store lock, so concurrent callers get one root). A stored root that has
 * no name constraints, or does not permit every name in
 * `localRootNames(suffixes)`, is replaced by a new constrained root (new key,
 * new version of the lineage) permitting the old root's names plus the
 * wanted ones, so callers with different suffix lists converge instead of
 * replacing each other's roots. A root that covers the suffixes is kept.
 * On replacement the result says `replaced` and `logger` gets a warning.
 */
export async function ensureLocalRoot(
  store: CertStore,
  clock: Clock,
  suffixes: readonly string[] = DEFAULT_LOCAL_SUFFIXES,
  options: EnsureLocalRootOptions = {},
): Promise<EnsuredLocalRoot> {
  const wanted = localRootNames(suffixes);
  const keep = (lineage: Lineage | null): EnsuredLocalRoot | null => {
    const permitted = lineage ? rootPermittedNames(lineage.bundle.cert) : null;
    if (!lineage || !permitted || !wanted.every((n) => withinNames(n, permitted))) return null;
    return { certPem: lineage.bundle.cert, keyPem: lineage.bundle.privkey, permittedNames: permitted, replaced: false };
  };
  const fast = keep(await store.readLineage(LOCAL_ROOT_LINEAGE));
  if (fast) return fast;
  const unlock = await store.lock(LOCAL_ROOT_LINEAGE, { waitMs: 30_000 });
  try {
    const again = await store.readLineage(LOCAL_ROOT_LINEAGE);
    const kept = keep(again);
    if (kept) return kept;
    const before = again ? rootPermittedNames(again.bundle.cert) : null;
    const permittedNames = [...new Set([...(before ?? []), ...wanted])];
    const made = await createRoot(clock, permittedNames);
    const meta: LineageMeta = {
      name: LOCAL_ROOT_LINEAGE,
      domains: [],
      server: LOCAL_ROOT_SERVER,
      keyType: 'ecdsa',
      ellipticCurve: 'P-256',
      challenge: { type: 'standalone', port: 0 },
      updatedAt: clock.now().toISOString(),
    };
    await store.putVersion(LOCAL_ROOT_LINEAGE, { cert: made.certPem, chain: '', fullchain: made.certPem, privkey: made.keyPem }, meta);
    if (!again) return { ...made, permittedNames, replaced: false };
    const old = new X509Certificate(again.bundle.cert);
    const why = before ? `did not cover ${wanted.filter((n) => !withinNames(n, before)).join(', ')}` : 'had no name constraints, so it could sign any name';
    const notice =
      `replaced the local CA root: the old one ${why}. The new root can sign only ${describeNames(permittedNames)}. ` +
      'Run `padlock trust` again and install the new root, and remove the old one from your trust stores; local certificates are reissued from the new root';
    options.logger?.warn(notice, {
      oldRoot: old.subject.replace(/\n/g, ', '),
      oldFingerprint256: old.fingerprint256,
      newRoot: new X509Certificate(made.certPem).subject.replace(/\n/g, ', '),
    });
    return { ...made, permittedNames, replaced: true, notice };
  } finally {
    await unlock();
  }
}

/** `localhost, internal and names under them; no IP addresses`, for messages. */
export function describeNames(permitted: readonly string[]): string {
  return `${permitted.join(', ')} and names under them; no IP addresses`;
}

async function createRoot(clock: Clock, permittedNames: readonly string[]): Promise<LocalRoot> {
  const x509 = await x509Lib();
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = clock.now();
  const name = `CN=padlock local CA ${randomBytes(3).toString('hex')}, O=padlock local development`;
  const constraints = new NameConstraints({
    permittedSubtrees: new GeneralSubtrees(permittedNames.map((dNSName) => new GeneralSubtree({ base: new GeneralName({ dNSName }) }))),
    // The local CA issues DNS names only. Permitting only dNSName subtrees
    // leaves IP addresses unconstrained (RFC 5280 constrains only the name
    // forms listed), so every IPv4 and IPv6 address is excluded outright.
    excludedSubtrees: new GeneralSubtrees(['0.0.0.0/0', '::/0'].map((iPAddress) => new GeneralSubtree({ base: new GeneralName({ iPAddress }) }))),
  });
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
      // Critical (RFC 5280 section 4.2.1.10 requires it): a verifier that cannot enforce it must reject the root.
      new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(constraints)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem, keyPem };
}

/**
 * Issues a leaf for `names` with `keyPem` (the leaf's own key), signed by
 * the root. Valid from an hour ago (clock skew) for `validityDays`.
 */
export async function issueLocalCertificate(root: LocalRoot, names: string[], keyPem: string, clock: Clock, validityDays = 7): Promise<CertBundle> {
  if (names.length === 0) throw new PadlockError('NAME_INVALID', 'the local CA needs at least one name');
  // Fail here with the fix, not later in chain verification with a name-constraints error.
  const permitted = rootPermittedNames(root.certPem);
  const outside = permitted ? names.filter((n) => !withinNames(n, permitted)) : [];
  if (permitted && outside.length > 0) {
    throw new PadlockError(
      'NAME_INVALID',
      `the local CA root can sign only ${describeNames(permitted)}, not ${outside.join(', ')}; add the suffix to localSuffixes (padlock then makes a new root, and you run padlock trust again)`,
    );
  }
  const x509 = await x509Lib();
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
