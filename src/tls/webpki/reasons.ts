/**
 * Every WebPKI check padlock makes, by its stable reason code: the top-level
 * error code it raises, the clause it enforces, and what it means.
 *
 * Reason codes are part of padlock's interface (`details.reasonCode`, and
 * `reasonCode` in `--json`); they never change meaning once released. The
 * top-level codes are the `CERT_*` / `CHAIN_*` codes callers and
 * notifications already match on.
 */
import type { ErrorCode } from '../../errors.js';

/** The verification error codes verifyCertificate throws. */
export type VerifyErrorCode = Extract<ErrorCode, `CERT_${string}` | `CHAIN_${string}`>;

export interface ReasonInfo {
  code: VerifyErrorCode;
  /** The RFC 5280, Baseline Requirements (BR) or other clause the check enforces. */
  clause: string;
  /** One sentence: what is wrong. */
  summary: string;
}

export const REASONS = {
  // input
  'pem-no-certificate': { code: 'CERT_UNPARSEABLE', clause: 'RFC 7468 section 5', summary: 'the input holds no PEM CERTIFICATE block' },
  'der-malformed': { code: 'CERT_UNPARSEABLE', clause: 'RFC 5280 section 4.1, X.690 DER', summary: 'the certificate is not a DER-encoded X.509 certificate' },
  'key-malformed': { code: 'CERT_UNPARSEABLE', clause: 'RFC 5280 section 4.1.2.7', summary: 'the certificate\'s public key cannot be read' },
  'private-key-unreadable': { code: 'CERT_UNPARSEABLE', clause: 'RFC 5958', summary: 'the private key cannot be read' },
  'private-key-mismatch': { code: 'CERT_KEY_MISMATCH', clause: 'padlock', summary: 'the private key does not belong to the leaf' },
  'pool-too-large': { code: 'CHAIN_INVALID', clause: 'padlock limit', summary: 'the chain pool holds more certificates than padlock examines' },
  'extension-malformed': { code: 'CERT_UNPARSEABLE', clause: 'RFC 5280 section 4.2', summary: 'an extension does not decode as its RFC 5280 syntax' },
  'extension-duplicate': { code: 'CERT_UNPARSEABLE', clause: 'RFC 5280 section 4.2', summary: 'an extension appears more than once' },
  'extension-unknown-critical': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 4.2', summary: 'a critical extension padlock does not process' },
  // signatures and keys
  'signature-algorithm-mismatch': { code: 'CHAIN_BAD_SIGNATURE', clause: 'RFC 5280 section 4.1.1.2', summary: 'the signature algorithm inside and outside the signed part differ' },
  'signature-algorithm-not-allowed': { code: 'CHAIN_INVALID', clause: 'BR 7.1.3.2', summary: 'a signature algorithm the WebPKI does not allow (MD5, SHA-1, other encodings)' },
  'signature-invalid': { code: 'CHAIN_BAD_SIGNATURE', clause: 'RFC 5280 section 6.1.3 (a)(1)', summary: 'a signature does not verify with the issuer\'s key' },
  'key-rsa-too-small': { code: 'CHAIN_INVALID', clause: 'BR 6.1.5', summary: 'an RSA key smaller than 2048 bits' },
  'key-rsa-too-large': { code: 'CHAIN_INVALID', clause: 'padlock limit (as Chromium)', summary: 'an RSA key larger than 8192 bits' },
  'key-curve-not-allowed': { code: 'CHAIN_INVALID', clause: 'BR 6.1.5, 7.1.3.1.2', summary: 'an ECDSA key on a curve other than P-256, P-384, P-521' },
  'key-type-not-allowed': { code: 'CHAIN_INVALID', clause: 'BR 7.1.3.1', summary: 'a public key type other than RSA, ECDSA, Ed25519' },
  // validity
  expired: { code: 'CERT_EXPIRED', clause: 'RFC 5280 section 4.1.2.5', summary: 'the time is after notAfter' },
  'not-yet-valid': { code: 'CERT_NOT_YET_VALID', clause: 'RFC 5280 section 4.1.2.5', summary: 'the time is before notBefore' },
  // names
  'san-missing': { code: 'CERT_NAME_MISMATCH', clause: 'BR 7.1.2.7.12; RFC 9525 section 2 (no CN-ID fallback)', summary: 'the leaf has no subjectAltName' },
  'san-dns-invalid': { code: 'CERT_NAME_MISMATCH', clause: 'BR 7.1.2.7.12, RFC 5280 section 4.2.1.6', summary: 'a dNSName in subjectAltName is not a valid host name or wildcard' },
  'name-not-covered': { code: 'CERT_NAME_MISMATCH', clause: 'RFC 9525 section 6.3', summary: 'a requested name is not among the leaf\'s subjectAltNames' },
  // name constraints
  'name-constraints-violated': { code: 'CHAIN_INVALID_CA', clause: 'RFC 5280 sections 4.2.1.10, 6.1.3 (b)(c)', summary: 'a name lies outside what a CA above it may certify' },
  'name-constraints-malformed': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 4.2.1.10', summary: 'a CA\'s nameConstraints is malformed' },
  'name-constraints-unsupported': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 6.1', summary: 'a CA\'s nameConstraints uses a name form padlock cannot compare' },
  'name-constraints-in-leaf': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 4.2.1.10', summary: 'an end-entity certificate carries nameConstraints' },
  // CA and usage
  'ca-basic-constraints-missing': { code: 'CHAIN_INVALID_CA', clause: 'RFC 5280 section 6.1.4 (k)', summary: 'an issuing certificate has no basicConstraints' },
  'ca-not-ca': { code: 'CHAIN_INVALID_CA', clause: 'RFC 5280 section 4.2.1.9', summary: 'an issuing certificate is not CA:TRUE' },
  'ca-basic-constraints-not-critical': { code: 'CHAIN_INVALID_CA', clause: 'RFC 5280 section 4.2.1.9, BR 7.1.2.10.4', summary: 'an intermediate\'s basicConstraints is not critical' },
  'ca-key-usage-no-cert-sign': { code: 'CHAIN_INVALID_CA', clause: 'RFC 5280 sections 4.2.1.3, 6.1.4 (n)', summary: 'an issuing certificate\'s keyUsage lacks keyCertSign' },
  'path-length-exceeded': { code: 'CHAIN_PATH_LENGTH', clause: 'RFC 5280 sections 4.2.1.9, 6.1.4 (l)(m)', summary: 'more intermediates below a CA than its pathLenConstraint allows' },
  'ca-eku-no-server-auth': { code: 'CHAIN_INVALID_PURPOSE', clause: 'BR 7.1.2.10.6; Chromium and Mozilla EKU nesting', summary: 'a CA\'s extendedKeyUsage excludes serverAuth' },
  'leaf-eku-no-server-auth': { code: 'CHAIN_INVALID_PURPOSE', clause: 'RFC 5280 section 4.2.1.12, BR 7.1.2.7.10', summary: 'the leaf\'s extendedKeyUsage excludes serverAuth' },
  'leaf-is-ca': { code: 'CHAIN_INVALID_PURPOSE', clause: 'BR 7.1.2.7.8', summary: 'the leaf is CA:TRUE' },
  'leaf-key-usage-cert-sign': { code: 'CHAIN_INVALID_PURPOSE', clause: 'BR 7.1.2.7.11', summary: 'the leaf\'s keyUsage has keyCertSign' },
  'leaf-key-usage-no-digital-signature': { code: 'CHAIN_INVALID_PURPOSE', clause: 'BR 7.1.2.7.11; RFC 8446 section 4.4.2.2', summary: 'the leaf\'s keyUsage lacks digitalSignature' },
  // key identifiers
  'aki-missing': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 4.2.1.1, BR 7.1.2.11.1', summary: 'a certificate lacks authorityKeyIdentifier.keyIdentifier' },
  'ski-missing': { code: 'CHAIN_INVALID', clause: 'RFC 5280 section 4.2.1.2, BR 7.1.2.11.4', summary: 'a CA certificate lacks subjectKeyIdentifier' },
  'aki-ski-mismatch': { code: 'CHAIN_MISSING_INTERMEDIATE', clause: 'RFC 5280 section 4.2.1.1', summary: 'the certificate named as issuer has another key identifier' },
  // path building
  'issuer-not-found': { code: 'CHAIN_MISSING_INTERMEDIATE', clause: 'RFC 5280 section 6.1', summary: 'the leaf\'s issuer is neither supplied nor trusted' },
  'untrusted-issuer': { code: 'CHAIN_UNTRUSTED', clause: 'RFC 5280 section 6.1', summary: 'the chain ends at a certificate whose issuer is not a trust anchor' },
  'untrusted-root': { code: 'CHAIN_UNTRUSTED', clause: 'RFC 5280 section 6.1', summary: 'the chain ends at a self-signed certificate that is not a trust anchor' },
  'path-too-long': { code: 'CHAIN_PATH_LENGTH', clause: 'padlock limit (as rustls-webpki)', summary: 'more intermediates than padlock follows' },
  'path-budget-exhausted': { code: 'CHAIN_INVALID', clause: 'padlock limit (as rustls-webpki)', summary: 'path building gave up after its budget of signature checks or steps' },
} as const satisfies Record<string, ReasonInfo>;

/** A stable WebPKI reason code. */
export type ReasonCode = keyof typeof REASONS;

/** Every reason code, for documentation and tests. */
export const REASON_CODES = Object.keys(REASONS) as ReasonCode[];
