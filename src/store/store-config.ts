/**
 * The store's settings: a zod fragment to merge into the run config schema
 * (`runConfigSchema.extend(storeConfigSchema.shape)`), and the rules between
 * its keys. Flag = kebab-case key, env var = `PADLOCK_` + SNAKE_CASE key
 * (`--store`, `PADLOCK_STORE`). The store key itself comes only from a file
 * or `PADLOCK_STORE_KEY`, never from a flag (flags show up in `ps`).
 *
 * `store` is a plain string here on purpose: the run config shows a rejected
 * value in its message, and a Redis URL holds a password. Its form is
 * checked by `storeConfigProblems`, whose messages never show one.
 */
import { z } from 'zod';
import { errorMessage } from '../errors.js';
import { REDIS_SCHEMES, hasUrlScheme, isRedisUrl, parseRedisUrl, shownStoreUrl } from './redis-url.js';
import { DEFAULT_STORE_PREFIX, effectivePrefix } from './redis-prefix.js';
import { STORE_KEY_ENV } from './store-key.js';

export const storeConfigSchema = z.object({
  store: z.string({ error: 'store must be a folder path or a Redis URL' }).default('')
    .describe('Where certificates, accounts and state live: empty for the folder --config-dir, or a Redis URL that several padlock hosts share (redis://:PASSWORD@HOST:6379/0, rediss://..., redis+sentinel://HOST:26379/MASTER, redis+cluster://HOST:6379,HOST:6379)'),
  storePrefix: z.string({ error: 'storePrefix must be a string such as "padlock:"' }).default(DEFAULT_STORE_PREFIX)
    .describe('Prefix of every Redis key, so several fleets can share one Redis (on Redis Cluster it becomes a hash tag: {padlock}:)'),
  storeCa: z.string().min(1, 'storeCa must not be empty').optional()
    .describe("PEM file of the CA that signs the Redis server's TLS certificate (rediss://), when it is not a public one"),
  storeKeyFile: z.string().min(1, 'storeKeyFile must not be empty').optional()
    .describe(`File (mode 0600) holding the key that encrypts private keys in Redis: 32 bytes as base64 or hex, made with "openssl rand -base64 32" (or set $${STORE_KEY_ENV})`),
});

export type StoreConfig = z.infer<typeof storeConfigSchema>;

/** True when the configured store is Redis (not the folder). */
export function isRedisStore(config: Pick<StoreConfig, 'store'>): boolean {
  return isRedisUrl(config.store);
}

/**
 * Rules across keys and the form of `store`, which the schema alone does
 * not check; one message per problem, naming the flag, never a password.
 * `env` is read for `PADLOCK_STORE_KEY` only.
 */
export function storeConfigProblems(config: StoreConfig, env: NodeJS.ProcessEnv = {}): string[] {
  const problems: string[] = [];
  const hasEnvKey = (env[STORE_KEY_ENV] ?? '') !== '';
  if (!isRedisUrl(config.store)) {
    if (hasUrlScheme(config.store)) {
      problems.push(`--store ${JSON.stringify(shownStoreUrl(config.store))} is neither a folder path nor a Redis URL (${REDIS_SCHEMES.join(', ')})`);
    }
    if (config.storeCa) problems.push('--store-ca is set but --store is not a Redis URL; it only applies to rediss://');
    if (config.storeKeyFile) problems.push('--store-key-file is set but --store is not a Redis URL; the folder store keeps private keys in files only root can read');
    return problems;
  }
  let tls = false;
  try {
    const target = parseRedisUrl(config.store);
    tls = target.tls;
    effectivePrefix(config.storePrefix, target.kind === 'cluster');
  } catch (err) {
    problems.push(`--store: ${errorMessage(err)}`);
  }
  if (!config.storeKeyFile && !hasEnvKey) {
    problems.push(`a Redis store needs a store key: padlock does not write private keys to Redis in clear; set --store-key-file or ${STORE_KEY_ENV} (make one with: openssl rand -base64 32)`);
  }
  if (config.storeKeyFile && hasEnvKey) problems.push(`both --store-key-file and ${STORE_KEY_ENV} are set; set only one`);
  if (config.storeCa && !tls && problems.length === 0) problems.push('--store-ca is set but the Redis store does not use TLS: use rediss://');
  return problems;
}
