/**
 * Who may use the admin listener. Pure functions plus the config fragment.
 *
 * The rule: a loopback bind needs no token (only local processes can reach
 * it); any other bind refuses to start without a bearer token. With a token,
 * every endpoint except /healthz wants `Authorization: Bearer TOKEN` (or
 * HTTP Basic with the token as the password, so a browser can open the
 * dashboard through its own login prompt).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from '../ip.js';
import { z } from 'zod';
import { PadlockError, errorMessage } from '../errors.js';

/** Shortest token accepted: 16 characters (e.g. `openssl rand -hex 16` gives 32). */
export const MIN_TOKEN_LENGTH = 16;

/**
 * The admin keys of `padlock run`'s config, to merge into runConfigSchema.
 * Flags `--admin-token`/`--admin-token-file`, env `PADLOCK_ADMIN_TOKEN`/
 * `PADLOCK_ADMIN_TOKEN_FILE`. Prefer the file or the env var: a flag is
 * visible to every local user in the process list.
 */
export const adminConfigSchema = z.object({
  adminToken: z.string().min(MIN_TOKEN_LENGTH, `adminToken must be at least ${MIN_TOKEN_LENGTH} characters (try: openssl rand -hex 16)`).optional()
    .describe('Bearer token for the admin API; required when adminListen is not a loopback address (prefer adminTokenFile or the env var)'),
  adminTokenFile: z.string().min(1).optional().describe('File holding the admin API bearer token (first line)'),
});

export type AdminConfig = z.infer<typeof adminConfigSchema>;

/**
 * True when `host` (an adminListen/--bind host part, without brackets) can
 * only be reached from this machine: 127.0.0.0/8, ::1, ::ffff:127.x, and the
 * name `localhost`. Wildcards (0.0.0.0, ::), other names and other
 * addresses are not.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const family = isIP(h);
  if (family === 4) return h.split('.')[0] === '127';
  if (family === 6) {
    const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    if (mapped) return mapped[1]!.split('.')[0] === '127';
    return !h.includes('.') && expandV6(h) === '0000:0000:0000:0000:0000:0000:0000:0001';
  }
  return false;
}

function expandV6(h: string): string {
  const [head, tail] = h.split('::') as [string, string | undefined];
  const a = head ? head.split(':') : [];
  const b = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array(8 - a.length - b.length).fill('0');
  return [...a, ...fill, ...b].map((x) => x.padStart(4, '0')).join(':');
}

/**
 * Why this admin setup must not start, or undefined when it may: a
 * non-loopback bind without a token. For config validation, which reports
 * every problem at once.
 */
export function adminAccessProblem(listenHost: string, token: string | undefined): string | undefined {
  if (token || isLoopbackHost(listenHost)) return undefined;
  return `adminListen ${listenHost} is not a loopback address: set adminToken (PADLOCK_ADMIN_TOKEN or adminTokenFile) so the admin API is not open to the network, or listen on 127.0.0.1`;
}

/**
 * The token from the config: `adminToken`, or the first line of
 * `adminTokenFile`. Both set, an unreadable file, or a short token reject
 * with CONFIG_INVALID naming the key (never the token).
 */
export async function loadAdminToken(config: AdminConfig): Promise<string | undefined> {
  if (config.adminToken && config.adminTokenFile) throw new PadlockError('CONFIG_INVALID', 'set adminToken or adminTokenFile, not both');
  if (config.adminToken) return config.adminToken;
  if (!config.adminTokenFile) return undefined;
  let text: string;
  try {
    text = await readFile(config.adminTokenFile, 'utf8');
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `adminTokenFile ${config.adminTokenFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, { cause: err });
  }
  const token = (text.split(/\r?\n/)[0] ?? '').trim();
  if (token.length < MIN_TOKEN_LENGTH) throw new PadlockError('CONFIG_INVALID', `adminTokenFile ${config.adminTokenFile}: the token must be at least ${MIN_TOKEN_LENGTH} characters`);
  return token;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Whether an Authorization header carries `token`, as `Bearer TOKEN` or as
 * HTTP Basic with TOKEN as the password (any user name). Compares SHA-256
 * digests with timingSafeEqual, so neither the content nor the length of the
 * token leaks through timing.
 */
export function authorizationMatches(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  let presented = m[2]!;
  if (m[1]!.toLowerCase() === 'basic') {
    const decoded = Buffer.from(presented, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    presented = decoded.slice(colon + 1);
  }
  return timingSafeEqual(digest(presented), digest(token));
}

/**
 * Whether a Host header names this machine (a loopback address or
 * `localhost`), so a loopback listener without a token cannot be read by a
 * web page through DNS rebinding.
 */
export function isLoopbackHostHeader(value: string | undefined): boolean {
  if (!value) return false;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d{1,5})?$/.exec(value.trim());
  return m ? isLoopbackHost(m[1]!) : false;
}
