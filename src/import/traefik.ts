/**
 * Reading Traefik's acme.json for `padlock import traefik`: its certificate
 * resolvers (v2/v3: `{ RESOLVER: { Account, Certificates } }`; v1:
 * `{ Account, Certificates }`), their certificates as import candidates, and
 * the ACME account (its RSA key and account URL).
 *
 * acme.json holds no challenge settings, so they come from the flags
 * (`--http-01-port`, `--webroot -w`), and the CA from `--server`, else from
 * the account's URL (Let's Encrypt production or staging).
 */
import { createPrivateKey } from 'node:crypto';
import { PadlockError, errorMessage } from '../errors.js';
import { toPkcs8Pem } from '../tls/keys.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../acme/directories.js';
import { lineageNameFor, type ImportCandidate } from './candidate.js';

/** The ACME account a resolver holds, as far as it could be read. */
export interface TraefikAccount {
  email?: string;
  /** The account URL (`Registration.uri`). */
  uri?: string;
  /** PKCS#8 PEM of the account key. */
  keyPem?: string;
  /** Why the key could not be read, if it could not. */
  keyProblem?: string;
}

/** One certificate resolver of acme.json, with its certificates in file order. */
export interface TraefikResolver {
  name: string;
  account?: TraefikAccount;
  certificates: Array<{ main: string; sans: string[]; certificate: string; key: string; store?: string; index: number }>;
}

/** Reads a field whatever its capitalisation (Traefik v1 used `Domain`/`Main`, v2 `domain`/`main`). */
function field(obj: unknown, name: string): unknown {
  if (obj === null || typeof obj !== 'object') return undefined;
  const rec = obj as Record<string, unknown>;
  if (name in rec) return rec[name];
  const lower = name.toLowerCase();
  const key = Object.keys(rec).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : rec[key];
}

/**
 * Parses an acme.json document into its resolvers. Throws CONFIG_INVALID
 * when it is not JSON or not in a Traefik shape.
 */
export function parseTraefikAcmeJson(text: string, file = 'acme.json'): TraefikResolver[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `${file} is not JSON (${errorMessage(err)}); pass Traefik's acme.json`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new PadlockError('CONFIG_INVALID', `${file} does not hold a JSON object; pass Traefik's acme.json`);
  const isResolver = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && (field(v, 'Certificates') !== undefined || field(v, 'Account') !== undefined);
  const entries: Array<[string, unknown]> = isResolver(doc) ? [['default', doc]] : Object.entries(doc as Record<string, unknown>).filter(([, v]) => isResolver(v));
  if (entries.length === 0) throw new PadlockError('CONFIG_INVALID', `${file} has no certificate resolver (no object with Account or Certificates); is it Traefik's acme.json?`);
  return entries.map(([name, value]) => {
    const certs = field(value, 'Certificates');
    const list = Array.isArray(certs) ? certs : [];
    const account = readTraefikAccount(field(value, 'Account'));
    return {
      name,
      ...(account ? { account } : {}),
      certificates: list.map((c, index) => {
        const domain = field(c, 'domain');
        const sans = field(domain, 'sans');
        const store = field(c, 'Store');
        return {
          main: String(field(domain, 'main') ?? ''),
          sans: Array.isArray(sans) ? sans.map(String) : [],
          certificate: String(field(c, 'certificate') ?? ''),
          key: String(field(c, 'key') ?? ''),
          ...(typeof store === 'string' ? { store } : {}),
          index,
        };
      }),
    };
  });
}

function readTraefikAccount(raw: unknown): TraefikAccount | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const email = field(raw, 'Email');
  const uri = field(field(raw, 'Registration'), 'uri');
  const key = field(raw, 'PrivateKey');
  const out: TraefikAccount = {
    ...(typeof email === 'string' && email ? { email } : {}),
    ...(typeof uri === 'string' && uri ? { uri } : {}),
  };
  if (typeof key === 'string' && key) {
    try {
      out.keyPem = accountKeyToPem(key);
    } catch (err) {
      out.keyProblem = errorMessage(err);
    }
  }
  return out;
}

/** Traefik keeps the account key as base64 DER (PKCS#1 RSA from x509.MarshalPKCS1PrivateKey); also accepts PKCS#8, SEC1 and PEM. */
export function accountKeyToPem(base64: string): string {
  const der = Buffer.from(base64, 'base64');
  const text = der.toString('utf8');
  if (text.includes('-----BEGIN')) return toPkcs8Pem(text);
  for (const type of ['pkcs1', 'pkcs8', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: der, format: 'der', type }).export({ type: 'pkcs8', format: 'pem' }) as string;
    } catch {
      /* try the next encoding */
    }
  }
  throw new Error('the account PrivateKey is not a DER private key (PKCS#1, PKCS#8 or SEC1)');
}

/** The directory URL an account URL belongs to, for Let's Encrypt's two CAs. */
export function serverForAccountUrl(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    const host = new URL(uri).host;
    if (host === 'acme-v02.api.letsencrypt.org') return LETSENCRYPT_PRODUCTION;
    if (host === 'acme-staging-v02.api.letsencrypt.org') return LETSENCRYPT_STAGING;
  } catch {
    /* not a URL */
  }
  return undefined;
}

function decodeBase64Pem(value: string, what: string): string {
  const text = Buffer.from(value, 'base64').toString('utf8');
  if (!text.includes('-----BEGIN')) throw new Error(`${what} is not base64-encoded PEM`);
  return text;
}

/** One candidate per certificate of the resolvers; a certificate that cannot be decoded is a candidate with a problem. */
export function traefikCandidates(resolvers: TraefikResolver[], file: string): ImportCandidate[] {
  const out: ImportCandidate[] = [];
  for (const r of resolvers) {
    for (const c of r.certificates) {
      const label = c.main || `certificate #${c.index + 1}`;
      const source = `${file} resolver ${r.name}: ${label}`;
      const domains = [c.main, ...c.sans].filter(Boolean).map((d) => d.trim().toLowerCase().replace(/\.$/, ''));
      const base = { source, name: lineageNameFor(c.main || `unnamed-${c.index + 1}`), domains: [...new Set(domains)], meta: {}, warnings: [] as string[] };
      try {
        if (!c.main) throw new Error('it has no domain.main');
        out.push({ ...base, fullchainPem: decodeBase64Pem(c.certificate, 'its certificate'), keyPem: decodeBase64Pem(c.key, 'its key') });
      } catch (err) {
        out.push({ ...base, fullchainPem: '', keyPem: '', problem: { code: 'CERT_UNPARSEABLE', message: errorMessage(err) } });
      }
    }
  }
  return out;
}
