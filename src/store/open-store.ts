/**
 * The one place that turns a store spec (`--store`: a folder path or a Redis
 * URL) into a CertStore.
 */
import { readFile } from 'node:fs/promises';
import { PadlockError, errorMessage } from '../errors.js';
import type { Clock } from '../clock.js';
import { openFsStore } from './fs-store.js';
import { REDIS_SCHEMES, hasUrlScheme, isRedisUrl, parseRedisUrl, shownStoreUrl } from './redis-url.js';
import { DEFAULT_STORE_PREFIX, effectivePrefix } from './redis-prefix.js';
import type { RedisStore } from './redis-store.js';
import { STORE_KEY_BYTES, STORE_KEY_ENV, loadStoreKey } from './store-key.js';
import type { StoreConfig } from './store-config.js';
import type { CertStore } from './store.js';

export interface StoreSpec {
  /** A folder path (the filesystem store) or a Redis URL (see redis-url.ts). */
  url: string;
  /** Redis key prefix (default `padlock:`; on Cluster made into a hash tag, see `effectivePrefix`). Ignored for a folder. */
  prefix?: string | undefined;
  /** PEM file of the CA(s) that sign the Redis server's TLS certificate (`--store-ca`); default: Node's trusted roots. */
  caFile?: string | undefined;
  /** The 32-byte store key (`loadStoreKey` in store-key.ts). Required for Redis; ignored for a folder. */
  key?: Buffer | undefined;
  clock?: Clock | undefined;
  /** Redis lock TTL (default 60 s); the fs store's `lockStaleMs` for a folder. */
  lockTtlMs?: number | undefined;
  /** Redis: how long a command may take, connection wait included (default 5 s). */
  commandTimeoutMs?: number | undefined;
  /** Redis: how often health is probed while nothing else runs (default 5 s). */
  probeIntervalMs?: number | undefined;
}

/**
 * Opens the store `spec.url` names: a Redis store for a `redis://`,
 * `rediss://`, `redis+sentinel://`, `redis+cluster://` (or `rediss+...`)
 * URL, the filesystem store for anything without a `scheme://`. Rejects
 * with CONFIG_INVALID for another scheme, a bad URL or prefix, a Redis
 * store without a key, or an unreadable `caFile`; with CONFIG_DIR_UNUSABLE
 * for a folder that cannot be written (see openFsStore).
 *
 * A Redis store opens even while Redis is unreachable (after waiting up to
 * `commandTimeoutMs` for it): it then reports itself unreachable in
 * `health()`, and its calls reject with STORE_IO until Redis answers.
 */
export async function openStore(spec: StoreSpec): Promise<CertStore> {
  if (isRedisUrl(spec.url)) return openRedisStore(spec);
  if (hasUrlScheme(spec.url)) {
    throw new PadlockError('CONFIG_INVALID', `store ${JSON.stringify(shownStoreUrl(spec.url))} is neither a folder path nor a Redis URL (${REDIS_SCHEMES.join(', ')})`);
  }
  return openFsStore(spec.url, { clock: spec.clock, lockStaleMs: spec.lockTtlMs });
}

/**
 * Opens the store a run config names: `store`, or the folder `configDir`
 * when it is empty; for Redis with the key from `storeKeyFile` or
 * `PADLOCK_STORE_KEY` in `env` (see loadStoreKey). Rejects as openStore and
 * loadStoreKey do.
 */
export async function openConfiguredStore(
  config: StoreConfig & { configDir: string },
  env: NodeJS.ProcessEnv,
  extra: Pick<StoreSpec, 'clock' | 'lockTtlMs' | 'commandTimeoutMs' | 'probeIntervalMs'> = {},
): Promise<CertStore> {
  const url = config.store || config.configDir;
  const key = isRedisUrl(url) ? await loadStoreKey({ file: config.storeKeyFile, env }) : undefined;
  return openStore({ ...extra, url, prefix: config.storePrefix, caFile: config.storeCa, key });
}

/** openStore for a Redis URL (see openStore). */
export async function openRedisStore(spec: StoreSpec): Promise<RedisStore> {
  const target = parseRedisUrl(spec.url);
  if (!spec.key) {
    throw new PadlockError('CONFIG_INVALID', `padlock does not write private keys to Redis in clear: set --store-key-file or ${STORE_KEY_ENV} (store ${target.location})`);
  }
  if (spec.key.length !== STORE_KEY_BYTES) throw new PadlockError('CONFIG_INVALID', `the store key must be ${STORE_KEY_BYTES} bytes`);
  const prefix = effectivePrefix(spec.prefix ?? DEFAULT_STORE_PREFIX, target.kind === 'cluster');
  let ca: string | undefined;
  if (spec.caFile) {
    if (!target.tls) throw new PadlockError('CONFIG_INVALID', `--store-ca is set but the store ${target.location} does not use TLS: use rediss://`);
    try {
      ca = await readFile(spec.caFile, 'utf8');
    } catch (err) {
      throw new PadlockError('CONFIG_INVALID', `--store-ca ${spec.caFile} cannot be read: ${errorMessage(err)}`, { cause: err });
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new PadlockError('CONFIG_INVALID', `--store-ca ${spec.caFile} holds no PEM certificate`);
  }
  // Loaded here, not at the top: a folder store never pays for the Redis client (about 500 modules).
  const [{ RedisConnection }, { RedisStore }] = await Promise.all([import('./redis-connection.js'), import('./redis-store.js')]);
  const connection = new RedisConnection({ target, ca, commandTimeoutMs: spec.commandTimeoutMs, probeIntervalMs: spec.probeIntervalMs, clock: spec.clock });
  await connection.start();
  return new RedisStore({ connection, key: spec.key, prefix, clock: spec.clock, lockTtlMs: spec.lockTtlMs });
}
