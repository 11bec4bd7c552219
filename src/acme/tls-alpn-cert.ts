/**
 * The TLS-ALPN-01 challenge certificate (RFC 8737 section 3) and the SNI
 * name a CA sends for an identifier.
 *
 * The certificate is self-signed, for exactly one identifier (a dNSName, or
 * an iPAddress for RFC 8738), and carries the critical `id-pe-acmeIdentifier`
 * extension whose value is an OCTET STRING holding SHA-256(key authorization).
 * Each one gets its own ECDSA P-256 key, made for it and never stored.
 *
 * Built with @peculiar/x509 over node:crypto's WebCrypto (node:crypto parses
 * certificates but cannot create them), passed explicitly rather than
 * through the library's global provider.
 */
import { createHash, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from '../ip.js';
import { x509Lib } from '../tls/x509-lib.js';
import { PadlockError } from '../errors.js';

/** The ALPN protocol a CA offers for TLS-ALPN-01 (RFC 8737 section 6.2). */
export const ACME_TLS_ALPN = 'acme-tls/1';
/** id-pe-acmeIdentifier (RFC 8737 section 6.1). */
export const ID_PE_ACME_IDENTIFIER = '1.3.6.1.5.5.7.1.31';

/** A challenge certificate and its key, PEM. */
export interface ChallengeCertificate {
  certPem: string;
  keyPem: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
// Lowercase LDH labels (with `_`), as CAs send them; anything else is refused before it reaches a certificate.
const DNS_NAME = /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * The server name a CA puts in SNI when it validates `identifier`: the DNS
 * name itself, or for an IP address its reverse-mapping name (RFC 8738
 * section 6: `4.3.2.1.in-addr.arpa`, or the nibbles under `ip6.arpa`).
 * Lowercase, no trailing dot.
 * @throws PadlockError ACME_PROBLEM for an identifier that is neither (the CA's answer is hostile input).
 */
export function acmeTlsServerName(identifier: string): string {
  const id = identifier.toLowerCase().replace(/\.$/, '');
  const family = isIP(id);
  if (family === 4) return `${id.split('.').reverse().join('.')}.in-addr.arpa`;
  if (family === 6) return `${[...expandIpv6(id)].reverse().join('.')}.ip6.arpa`;
  if (!DNS_NAME.test(id)) throw new PadlockError('ACME_PROBLEM', `the CA sent an identifier padlock cannot answer TLS-ALPN-01 for: ${JSON.stringify(identifier.slice(0, 80))}`);
  return id;
}

/** The 32 hex nibbles of an IPv6 address, in order. */
function expandIpv6(ip: string): string {
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

/** The extension's value: DER OCTET STRING (tag 4, length 32) of SHA-256(keyAuthorization). */
export function acmeIdentifierValue(keyAuthorization: string): Buffer {
  const digest = createHash('sha256').update(keyAuthorization, 'utf8').digest();
  return Buffer.concat([Buffer.from([0x04, digest.length]), digest]);
}

/**
 * A fresh self-signed challenge certificate for `identifier` that proves
 * `keyAuthorization` (RFC 8737 section 3). Valid from an hour before `now`
 * (clock skew at the CA) for 7 days; it is thrown away after validation.
 * @throws PadlockError ACME_PROBLEM for an identifier that is neither a DNS name nor an IP address.
 */
export async function createChallengeCertificate(identifier: string, keyAuthorization: string, now: Date = new Date()): Promise<ChallengeCertificate> {
  const id = identifier.toLowerCase().replace(/\.$/, '');
  acmeTlsServerName(id);
  // Loaded here, not with the module: `padlock issue` over HTTP-01 never needs it (about 150 modules).
  const x509 = await x509Lib();
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    // The identifier lives in the SAN only: no CA reads the subject, and a DN needs no escaping this way.
    name: 'CN=ACME TLS-ALPN-01 challenge',
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + 7 * 86_400_000),
    keys: keys as never,
    signingAlgorithm: ALG,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: isIP(id) ? 'ip' : 'dns', value: id }]),
      new x509.Extension(ID_PE_ACME_IDENTIFIER, true, acmeIdentifierValue(keyAuthorization)),
    ],
  }, webcrypto as never);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem: cert.toString('pem') + '\n', keyPem: pem('PRIVATE KEY', pkcs8) };
}

function pem(label: string, der: Buffer): string {
  return `-----BEGIN ${label}-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}
