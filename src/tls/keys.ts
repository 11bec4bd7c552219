/**
 * Private keys and CSRs for certificates, with node:crypto (OpenSSL) for keys
 * and acme-client's CSR builder (WebCrypto via @peculiar/x509, not node-forge).
 */
import { isIP } from '../ip.js';
import { createHash, createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb } from 'node:crypto';
import { promisify } from 'node:util';
import { PadlockError } from '../errors.js';

const generateKeyPair = promisify(generateKeyPairCb);

export interface KeySpec {
  keyType: 'ecdsa' | 'rsa';
  /** ECDSA curve: P-256 (default) or P-384. */
  ellipticCurve?: string;
  /** RSA modulus bits: 2048 (default), 3072 or 4096. */
  rsaKeySize?: number;
}

export const SUPPORTED_CURVES = ['P-256', 'P-384'] as const;
export const SUPPORTED_RSA_SIZES = [2048, 3072, 4096] as const;

/** Generates a new private key as PKCS#8 PEM. */
export async function generatePrivateKey(spec: KeySpec): Promise<string> {
  if (spec.keyType === 'rsa') {
    const bits = spec.rsaKeySize ?? 2048;
    const { privateKey } = await generateKeyPair('rsa', {
      modulusLength: bits,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    return privateKey;
  }
  const { privateKey } = await generateKeyPair('ec', {
    namedCurve: spec.ellipticCurve ?? 'P-256',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

/** Describes a PEM private key as a KeySpec, e.g. to check `--reuse-key` against `--key-type`. */
export function describePrivateKey(pem: string): KeySpec {
  const key = createPrivateKey(pem);
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') return { keyType: 'rsa', rsaKeySize: d.modulusLength ?? 0 };
  if (key.asymmetricKeyType === 'ec') {
    const curve = d.namedCurve === 'prime256v1' ? 'P-256' : d.namedCurve === 'secp384r1' ? 'P-384' : String(d.namedCurve);
    return { keyType: 'ecdsa', ellipticCurve: curve };
  }
  throw new PadlockError('CONFIG_INVALID', `unsupported private key type ${key.asymmetricKeyType}`);
}

/** A DER CSR (PEM) for `names`, the first being the common name (RFC 8555 section 7.4). */
export async function createCsr(names: string[], keyPem: string): Promise<string> {
  // Loaded on first use: reading and serving certificates never needs the ACME client.
  const { default: acme } = await import('acme-client');
  // The common name is the first DNS name; an IP-only certificate has none (CAs take IPs from the SAN only).
  const commonName = names.find((n) => isIP(n) === 0);
  const [, csr] = await acme.crypto.createCsr({ ...(commonName ? { commonName } : {}), altNames: names }, keyPem);
  return csr.toString();
}

/** Re-encodes a PEM private key (PKCS#1, PKCS#8 or SEC1) as PKCS#8 PEM, the form padlock stores; throws when it is not a key. */
export function toPkcs8Pem(pem: string): string {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/**
 * The JWK thumbprint (RFC 7638) of a private key's public half, base64url:
 * what an ACME key authorization ends with (RFC 8555 section 8.1). EC and
 * RSA keys; the members are the required ones, in lexicographic order.
 */
export function jwkThumbprint(keyPem: string): string {
  // createPublicKey takes a private key's PEM too, and derives its public half.
  const jwk = createPublicKey(keyPem).export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk['kty'] === 'EC' ? { crv: jwk['crv'], kty: 'EC', x: jwk['x'], y: jwk['y'] }
    : jwk['kty'] === 'RSA' ? { e: jwk['e'], kty: 'RSA', n: jwk['n'] }
      : { crv: jwk['crv'], kty: jwk['kty'], x: jwk['x'] };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
