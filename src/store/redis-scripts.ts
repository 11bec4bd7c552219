/**
 * The Redis store's data model: its keys and the Lua scripts that change
 * more than one of them atomically.
 *
 * Keys, under the prefix P (default `padlock:`):
 *
 *   P lineages         hash   NAME -> current version number. The one map
 *                             `currentVersions()` and `listLineages()` read.
 *   P lineage:NAME     hash   `last` -> the last version number handed out;
 *                             `vN` -> version N as JSON { cert, chain,
 *                             fullchain, privkey (sealed), meta }.
 *   P meta:NAME        string LineageMeta JSON (the current metadata).
 *   P state:NAME       hash   `rev` -> revision (bumped by every write),
 *                             `body` -> LineageState JSON.
 *   P account:SHA256   string AccountRecord JSON, keyPem sealed; SHA256 is
 *                             the hex SHA-256 of the directory URL.
 *   P lock:NAME        string { token, pid, hostname, since } JSON, with a
 *                             TTL (PX), renewed by its holder's heartbeat.
 *   P changes          pub/sub channel: NAME after each putVersion and
 *                             deleteLineage (published inside the script).
 *
 * Every script names all the keys it touches in KEYS. On Redis Cluster
 * they must also share one hash slot, so the prefix there carries a hash
 * tag (`{padlock}:`): every padlock key of one fleet lives in one slot, on
 * one master (Cluster then gives failover, not sharding; padlock's data is
 * small).
 */
import { createHash } from 'node:crypto';
import { luaScript } from './redis-connection.js';

/** The key of each item under one prefix. Names are already validated lineage names (no `:`). */
export class RedisKeys {
  constructor(readonly prefix: string) {}
  get lineages(): string {
    return `${this.prefix}lineages`;
  }
  get channel(): string {
    return `${this.prefix}changes`;
  }
  /** A set of the names that have a state (lineages and padlock's own, such as the governor's). */
  get states(): string {
    return `${this.prefix}states`;
  }
  /** A set of the directory URLs that have an account. */
  get accounts(): string {
    return `${this.prefix}accounts`;
  }
  lineage(name: string): string {
    return `${this.prefix}lineage:${name}`;
  }
  meta(name: string): string {
    return `${this.prefix}meta:${name}`;
  }
  state(name: string): string {
    return `${this.prefix}state:${name}`;
  }
  lock(name: string): string {
    return `${this.prefix}lock:${name}`;
  }
  account(directoryUrl: string): string {
    return `${this.prefix}account:${accountId(directoryUrl)}`;
  }
}

/** The hex SHA-256 of a directory URL: its account's key name and its label for encryption. */
export function accountId(directoryUrl: string): string {
  return createHash('sha256').update(directoryUrl).digest('hex');
}

/** True when `token` is the token in the lock value `held`. Shared by the scripts that compare tokens. */
const HOLDS = `
local function holds(held, token)
  if not held then return false end
  local ok, holder = pcall(cjson.decode, held)
  return ok and type(holder) == 'table' and holder.token == token
end
`;

/**
 * KEYS: lineages, lineage:NAME, meta:NAME, lock:NAME.
 * ARGV: NAME, the version to write (last + 1 as the caller read it), the
 * version JSON, the meta JSON, the fence ('' for an unfenced write), the channel.
 * Replies {'ok', N}; {'lost'} when the fence is not the lock's token (nothing
 * written); {'moved', last} when another writer took that version number
 * first (nothing written: the caller seals for the next number and retries).
 */
export const PUT_VERSION = luaScript(`${HOLDS}
if ARGV[5] ~= '' and not holds(redis.call('GET', KEYS[4]), ARGV[5]) then return {'lost'} end
local last = tonumber(redis.call('HGET', KEYS[2], 'last') or '0') or 0
if last + 1 ~= tonumber(ARGV[2]) then return {'moved', tostring(last)} end
redis.call('HSET', KEYS[2], 'last', ARGV[2], 'v' .. ARGV[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[6], ARGV[1])
return {'ok', ARGV[2]}
`);

/**
 * KEYS: lineages, lineage:NAME, meta:NAME. ARGV: NAME.
 * Replies nil when NAME has no current version, else {N, version JSON or
 * nil, meta JSON or nil}: one round trip, one consistent snapshot.
 */
export const READ_LINEAGE = luaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
return {v, redis.call('HGET', KEYS[2], 'v' .. v), redis.call('GET', KEYS[3])}
`);

/**
 * KEYS: lineages, lineage:NAME, meta:NAME. ARGV: NAME.
 * readServing's one round trip: replies nil when NAME has no current
 * version; {N, 'p', fullchain, sealed privkey, meta JSON} when the version
 * record decodes and the meta exists; otherwise {N, 'r', version JSON or
 * nil, nil, meta JSON or nil}, the raw pieces, for the caller to report the
 * damage (or use the record's own meta) exactly as readLineage does. The
 * certificate and chain never leave Redis.
 */
export const READ_SERVING = luaScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local record = redis.call('HGET', KEYS[2], 'v' .. v)
local meta = redis.call('GET', KEYS[3])
if record and meta then
  local ok, r = pcall(cjson.decode, record)
  if ok and type(r) == 'table' and type(r.fullchain) == 'string' and type(r.privkey) == 'string' then
    return {v, 'p', r.fullchain, r.privkey, meta}
  end
end
return {v, 'r', record, false, meta}
`);

/**
 * KEYS: lineages, lineage:NAME, meta:NAME, state:NAME. ARGV: NAME, the channel.
 * Removes all four; publishes NAME when it had a current version. Replies 1
 * when it had one, else 0.
 */
export const DELETE_LINEAGE = luaScript(`
local existed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if KEYS[5] then redis.call('SREM', KEYS[5], ARGV[1]) end
if existed == 1 then redis.call('PUBLISH', ARGV[2], ARGV[1]) end
return existed
`);

/**
 * KEYS: state:NAME, the states set. ARGV: the revision the caller read ('' to write
 * unconditionally), the state JSON, the name. Replies the new revision, or nil when
 * the state changed since the caller read it (nothing written).
 */
export const WRITE_STATE = luaScript(`
if ARGV[1] ~= '' and (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'body', ARGV[2])
if KEYS[2] then redis.call('SADD', KEYS[2], ARGV[3]) end
return redis.call('HINCRBY', KEYS[1], 'rev', 1)
`);

/**
 * KEYS: lock:NAME. ARGV: the holder JSON, the TTL in ms.
 * Replies {1} when taken, else {0, the holder JSON, its remaining TTL in ms}.
 * A lock key without a TTL (set by hand) gets one here, so it cannot block
 * the name forever.
 */
export const TAKE_LOCK = luaScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {0, redis.call('GET', KEYS[1]), ttl}
`);

/** KEYS: lock:NAME. ARGV: token, TTL in ms. Extends the TTL if the token still holds it: replies 1, else 0. */
export const RENEW_LOCK = luaScript(`${HOLDS}
if holds(redis.call('GET', KEYS[1]), ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
`);

/** KEYS: lock:NAME. ARGV: token. Deletes the lock if the token still holds it: replies 1, else 0 (someone else's now). */
export const RELEASE_LOCK = luaScript(`${HOLDS}
if holds(redis.call('GET', KEYS[1]), ARGV[1]) then redis.call('DEL', KEYS[1]) return 1 end
return 0
`);
