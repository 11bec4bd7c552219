/**
 * The Redis store's key prefix rules, apart from the store itself so that
 * config checks and the CLI can use them without loading the Redis client.
 */
import { PadlockError } from '../errors.js';

/** Default key prefix; on Cluster it becomes `{padlock}:` (see `effectivePrefix`). */
export const DEFAULT_STORE_PREFIX = 'padlock:';
const PREFIX = /^[\x21-\x7e]{1,64}$/;

/**
 * Checks a key prefix and, on Redis Cluster, puts it in a hash tag so every
 * key of the store shares one slot: `padlock:` becomes `{padlock}:`, `x`
 * becomes `{x}`; a prefix that already holds a hash tag (`{fleet-a}:`) is
 * kept. Throws CONFIG_INVALID for a prefix of white space, control
 * characters, or more than 64 characters.
 */
export function effectivePrefix(prefix: string, cluster: boolean): string {
  if (!PREFIX.test(prefix)) {
    throw new PadlockError('CONFIG_INVALID', `store prefix ${JSON.stringify(prefix.slice(0, 80))} must be 1 to 64 printable characters without spaces, such as "padlock:"`);
  }
  if (!cluster || hasHashTag(prefix)) return prefix;
  return prefix.endsWith(':') ? `{${prefix.slice(0, -1)}}:` : `{${prefix}}`;
}

/** Redis Cluster's rule: the part between the first `{` and the next `}` is the hash tag, if not empty. */
function hasHashTag(key: string): boolean {
  const open = key.indexOf('{');
  if (open < 0) return false;
  const close = key.indexOf('}', open + 1);
  return close > open + 1;
}

