/**
 * DNS provider credentials: a file (mode 0600 or stricter, checked when
 * padlock starts) or environment variables, never a flag that `ps` would
 * show. The file holds `key = value` lines (`#` comments), and certbot's
 * plugin files work as they are: a `dns_PROVIDER_` prefix on a key is
 * dropped, so `dns_cloudflare_api_token` reads as `api_token`.
 */
import { readFile, stat } from 'node:fs/promises';
import { PadlockError, errorMessage } from '../errors.js';
import type { DnsProviderKind } from './providers/provider.js';

/** Credentials files larger than this are refused (real ones are a few lines). */
export const MAX_CREDENTIALS_BYTES = 64 * 1024;

export type Credentials = Readonly<Record<string, string>>;

/** Parses `key = value` (or `key: value`) lines; pure. Keys are lowercased, `-` becomes `_`, and a `dns_KIND_` prefix goes. */
export function parseCredentials(text: string, kind: DnsProviderKind, where: string): Credentials {
  const out: Record<string, string> = {};
  const prefix = `dns_${kind.replace(/-/g, '')}_`;
  const prefix2 = `dns_${kind.replace(/-/g, '_')}_`;
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';') || /^\[.*\]$/.test(t)) return;
    const m = /^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$/.exec(t);
    if (!m) throw new PadlockError('CONFIG_INVALID', `${where} line ${i + 1}: expected "key = value"`);
    let key = m[1]!.toLowerCase().replace(/-/g, '_');
    if (key.startsWith(prefix)) key = key.slice(prefix.length);
    else if (key.startsWith(prefix2)) key = key.slice(prefix2.length);
    let value = m[2]!.trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    out[key] = value;
  });
  return out;
}

/**
 * Reads a credentials file: refused (CONFIG_INVALID) when group or others
 * may read it, since it holds a secret, and when it is not a regular file.
 */
export async function readCredentialsFile(path: string, kind: DnsProviderKind): Promise<Credentials> {
  const where = `--dns-credentials ${path}`;
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new PadlockError('CONFIG_INVALID', `${where}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new PadlockError('CONFIG_INVALID', `${where}: its mode is ${(st.mode & 0o777).toString(8).padStart(4, '0')}, but it holds a secret; run chmod 600 ${path}`);
    }
    if (st.size > MAX_CREDENTIALS_BYTES) throw new PadlockError('CONFIG_INVALID', `${where}: larger than ${MAX_CREDENTIALS_BYTES} bytes, so not a credentials file`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof PadlockError) throw err;
    throw new PadlockError('CONFIG_INVALID', `${where}: cannot read it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, { cause: err });
  }
  return parseCredentials(text, kind, where);
}

/**
 * The environment variables each provider reads when no credentials file
 * is given (lego's names where lego has them), mapped to credential keys.
 */
export const CREDENTIAL_ENV: Record<DnsProviderKind, Record<string, string>> = {
  rfc2136: { RFC2136_NAMESERVER: 'server', RFC2136_TSIG_KEY: 'name', RFC2136_TSIG_SECRET: 'secret', RFC2136_TSIG_ALGORITHM: 'algorithm' },
  cloudflare: { CLOUDFLARE_DNS_API_TOKEN: 'api_token', CF_DNS_API_TOKEN: 'api_token', CLOUDFLARE_API_URL: 'api_url' },
  // The AWS SDK reads its own standard chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, instance roles...); these only add to it.
  route53: { AWS_HOSTED_ZONE_ID: 'hosted_zone_id', AWS_REGION: 'region' },
  'acme-dns': { ACME_DNS_API_BASE: 'api_url', ACME_DNS_USERNAME: 'username', ACME_DNS_PASSWORD: 'password', ACME_DNS_SUBDOMAIN: 'subdomain', ACME_DNS_FULLDOMAIN: 'fulldomain' },
  exec: {},
};

/** Credentials from the environment for `kind` (only the variables in CREDENTIAL_ENV). */
export function credentialsFromEnv(kind: DnsProviderKind, env: NodeJS.ProcessEnv): Credentials {
  const out: Record<string, string> = {};
  for (const [name, key] of Object.entries(CREDENTIAL_ENV[kind])) {
    const v = env[name];
    if (v !== undefined && v !== '' && out[key] === undefined) out[key] = v;
  }
  return out;
}

/** A required credential, or CONFIG_INVALID saying where it could have come from. */
export function need(creds: Credentials, key: string, kind: DnsProviderKind): string {
  const v = creds[key];
  if (v !== undefined && v !== '') return v;
  const env = Object.entries(CREDENTIAL_ENV[kind]).filter(([, k]) => k === key).map(([n]) => n);
  throw new PadlockError('CONFIG_INVALID', `the ${kind} DNS provider needs "${key}" in its credentials file${env.length ? ` or ${env.join(' / ')} in the environment` : ''}`);
}
