/**
 * The Redis store's URLs, parsed into what the client needs, with messages
 * that never echo a password.
 *
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]                       one server
 *   rediss://...                                                    the same over TLS
 *   redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
 *   redis+cluster://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]
 *   rediss+sentinel://, rediss+cluster://                           the same over TLS
 *
 * Why these spellings: `redis://` and `rediss://` are the IANA-registered
 * schemes every client reads. Sentinel and Cluster have no registered
 * scheme; `redis+sentinel://` is the spelling other clients already use for
 * Sentinel (redis-py's and lettuce's `redis-sentinel://` differ only in the
 * separator), and a comma-separated host list is how they all name several
 * seed nodes. Sentinel's path names the master set first, then the database.
 *
 * - The default port is 6379 (26379 for Sentinel nodes).
 * - USER and PASSWORD are percent-decoded. The password goes to the data
 *   nodes (with Sentinel: the master and replicas, not the Sentinels, which
 *   are asked without one). Userinfo ends at the last `@`, so a password may
 *   hold `@`, `/` or `:` even unencoded.
 * - DB is 0 to 999999 (default 0); Redis Cluster has database 0 only.
 * - Query strings and fragments are refused: there are no options to set
 *   there, and a typo must not pass silently.
 */
import { isIP } from '../ip.js';
import { PadlockError } from '../errors.js';

/** One `host:port` of a Redis server or Sentinel. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

interface Credentials {
  /** ACL user name; absent for the default user. */
  username?: string;
  /** Never logged or shown. */
  password?: string;
}

/** What a store URL points at. */
export type RedisTarget = Credentials & { tls: boolean; location: string } & (
  | { kind: 'single'; node: RedisNodeAddress; db: number }
  | { kind: 'sentinel'; sentinels: RedisNodeAddress[]; masterName: string; db: number }
  | { kind: 'cluster'; nodes: RedisNodeAddress[] }
);

const SCHEMES: Record<string, { kind: RedisTarget['kind']; tls: boolean }> = {
  'redis': { kind: 'single', tls: false },
  'rediss': { kind: 'single', tls: true },
  'redis+sentinel': { kind: 'sentinel', tls: false },
  'rediss+sentinel': { kind: 'sentinel', tls: true },
  'redis+cluster': { kind: 'cluster', tls: false },
  'rediss+cluster': { kind: 'cluster', tls: true },
};

const SCHEME_PREFIX = /^([a-z][a-z0-9+.-]*):\/\//i;
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/;
const MASTER_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const DB = /^\d{1,6}$/;
const MAX_URL_LENGTH = 4096;

/** True when `value` names a Redis store (any scheme above, any case), as opposed to a folder path. */
export function isRedisUrl(value: string): boolean {
  const scheme = SCHEME_PREFIX.exec(value)?.[1]?.toLowerCase();
  return scheme !== undefined && scheme in SCHEMES;
}

/** True when `value` starts with some `scheme://`, Redis or not (a folder path never does). */
export function hasUrlScheme(value: string): boolean {
  return SCHEME_PREFIX.test(value);
}

/** The supported schemes, for messages. */
export const REDIS_SCHEMES = Object.keys(SCHEMES).map((s) => `${s}://`);

/**
 * `input` as safe to show: the userinfo (everything before the last `@`)
 * replaced by `…`, cut to 200 characters.
 */
export function shownStoreUrl(input: string): string {
  const m = SCHEME_PREFIX.exec(input);
  const at = input.lastIndexOf('@');
  const safe = m && at > m[0].length - 1 ? `${m[0]}…@${input.slice(at + 1)}` : !m && at >= 0 ? `…@${input.slice(at + 1)}` : input;
  return safe.length > 200 ? `${safe.slice(0, 199)}…` : safe;
}

/**
 * Parses a store URL (see the file header). Rejects with CONFIG_INVALID
 * saying what is wrong and what the form is; the message shows the URL
 * without its userinfo and never the password.
 */
export function parseRedisUrl(input: string): RedisTarget {
  const fail = (problem: string): PadlockError<'CONFIG_INVALID'> =>
    new PadlockError('CONFIG_INVALID', `store URL ${JSON.stringify(shownStoreUrl(input))}: ${problem}`, { details: { store: shownStoreUrl(input) } });

  if (input.length > MAX_URL_LENGTH) throw fail(`longer than ${MAX_URL_LENGTH} characters`);
  const m = SCHEME_PREFIX.exec(input);
  const scheme = m?.[1]?.toLowerCase();
  const spec = scheme === undefined ? undefined : SCHEMES[scheme];
  if (!m || !spec) throw fail(`not a Redis URL: use ${REDIS_SCHEMES.join(', ')}`);
  if (/\s/.test(input)) throw fail('contains white space');

  let rest = input.slice(m[0].length);
  let credentials: Credentials = {};
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    credentials = parseUserinfo(rest.slice(0, at), fail);
    rest = rest.slice(at + 1);
  }
  if (/[?#]/.test(rest)) throw fail('query strings and fragments are not supported (there are no URL options)');

  const slash = rest.indexOf('/');
  const hostList = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash + 1) : '';
  const defaultPort = spec.kind === 'sentinel' ? 26379 : 6379;
  const hosts = hostList.split(',').map((h) => parseHostPort(h, defaultPort, fail));
  const hostText = hosts.map(showHost).join(',');
  const base = { ...credentials, tls: spec.tls };

  if (spec.kind === 'single') {
    if (hosts.length !== 1) throw fail(`${scheme}:// takes one host; for several, use ${spec.tls ? 'rediss' : 'redis'}+sentinel:// or ${spec.tls ? 'rediss' : 'redis'}+cluster://`);
    const db = parseDb(path, fail);
    return { ...base, kind: 'single', node: hosts[0]!, db, location: `${scheme}://${hostText}/${db}` };
  }
  if (spec.kind === 'sentinel') {
    const [masterName = '', dbText = '', ...extra] = path.split('/');
    if (!masterName) throw fail(`name the master set after the hosts: ${scheme}://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`);
    if (!MASTER_NAME.test(masterName)) throw fail(`master name ${JSON.stringify(masterName.slice(0, 60))} may only hold letters, digits, ".", "_" and "-" (at most 128)`);
    if (extra.length) throw fail(`too many path segments: the form is ${scheme}://HOST:PORT[,HOST:PORT...]/MASTER[/DB]`);
    const db = parseDb(dbText, fail);
    return { ...base, kind: 'sentinel', sentinels: hosts, masterName, db, location: `${scheme}://${hostText}/${masterName}/${db}` };
  }
  if (path !== '' && path !== '0') throw fail('Redis Cluster has database 0 only: leave the path out');
  return { ...base, kind: 'cluster', nodes: hosts, location: `${scheme}://${hostText}` };
}

function parseUserinfo(userinfo: string, fail: (problem: string) => PadlockError): Credentials {
  const colon = userinfo.indexOf(':');
  if (colon < 0) {
    throw fail('the part before "@" has no ":"; write the password as redis://:PASSWORD@HOST (or redis://USER:PASSWORD@HOST for an ACL user)');
  }
  const decode = (text: string, what: string): string => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw fail(`the ${what} is not correctly percent-encoded (write "%" as %25)`);
    }
  };
  const username = decode(userinfo.slice(0, colon), 'user name');
  const password = decode(userinfo.slice(colon + 1), 'password');
  if (!password) throw fail('the password after ":" is empty; leave out "@" and what precedes it for a Redis without a password');
  return { ...(username ? { username } : {}), password };
}

function parseHostPort(text: string, defaultPort: number, fail: (problem: string) => PadlockError): RedisNodeAddress {
  if (text === '') throw fail('a host is missing (the form is HOST[:PORT], several separated by ",")');
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
    if (isIP(host) !== 6) throw fail(`[${host}] is not an IPv6 address`);
  } else {
    const parts = text.split(':');
    if (parts.length > 2) throw fail(`${JSON.stringify(text.slice(0, 80))} is not HOST[:PORT] (write an IPv6 address in brackets: [::1]:6379)`);
    host = parts[0]!;
    portText = parts[1];
    if (!HOST_NAME.test(host) || host.length > 253) throw fail(`${JSON.stringify(host.slice(0, 80))} is not a host name or IP address`);
  }
  if (portText === undefined) return { host, port: defaultPort };
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) throw fail(`port ${JSON.stringify(portText.slice(0, 20))} of ${host} is not a port (1-65535)`);
  return { host, port };
}

function parseDb(text: string, fail: (problem: string) => PadlockError): number {
  if (text === '') return 0;
  if (!DB.test(text)) throw fail(`database ${JSON.stringify(text.slice(0, 40))} is not a number (0, 1, ...)`);
  return Number(text);
}

function showHost(node: RedisNodeAddress): string {
  return `${isIP(node.host) === 6 ? `[${node.host}]` : node.host}:${node.port}`;
}
