/**
 * `Retry-After` (RFC 9110 section 10.2.3), as a CA sends it: seconds or an
 * HTTP date. Pure.
 *
 * A CA's value is hostile input like any other: it may be huge, negative,
 * unparsable, or a date years away. Unchecked, a huge value made an Invalid
 * Date whose `toISOString()` threw a RangeError (losing the typed ACME
 * problem), and a far date froze renewals until after expiry. So every value
 * is bounded here, once, by the kind of answer that carried it:
 *
 * | answer | longest wait padlock honours | why |
 * |---|---|---|
 * | 503 / a directory that answers 429 | 24 hours | an outage; a day is already far longer than any real one, and a certificate renewed a third before expiry has weeks |
 * | 429 `rateLimited` | 7 days | Let's Encrypt's longest window (duplicate certificates) is 7 days |
 * | anything else (polling an order) | 24 hours | |
 *
 * A negative value or a date in the past means "now". Unparsable means "not
 * said" (the caller's own backoff applies).
 */

const HOUR_MS = 3_600_000;

/** The longest `Retry-After` padlock honours, by the kind of answer that carried it. */
export const RETRY_AFTER_MAX_MS = Object.freeze({
  unavailable: 24 * HOUR_MS,
  rateLimited: 7 * 24 * HOUR_MS,
  other: 24 * HOUR_MS,
});

export type RetryAfterKind = keyof typeof RETRY_AFTER_MAX_MS;

/** A parsed, bounded `Retry-After`. */
export interface RetryAfter {
  at: Date;
  /** Set when the CA asked for longer than padlock honours: what it asked, as sent. */
  clamped?: { asked: string; maxMs: number };
}

/**
 * Reads a `Retry-After` value relative to `now`, bounded by `kind` (see the
 * table above). Undefined when absent or unparsable. Never throws, never
 * returns an invalid Date.
 */
export function readRetryAfter(value: string | undefined, now: Date, kind: RetryAfterKind = 'other'): RetryAfter | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  const t = now.getTime();
  let wait: number;
  if (/^-?\d+$/.test(v)) {
    // Digits only: seconds. Number() of a 400-digit string is Infinity, which the clamp handles.
    wait = Number(v) * 1000;
  } else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    wait = at - t;
  }
  const max = RETRY_AFTER_MAX_MS[kind];
  if (!(wait > 0)) return { at: new Date(t) };
  if (wait > max) return { at: new Date(t + max), clamped: { asked: v.length > 64 ? `${v.slice(0, 61)}...` : v, maxMs: max } };
  return { at: new Date(t + wait) };
}

/** The bounded time only (see readRetryAfter). */
export function parseRetryAfter(value: string | undefined, now: Date, kind: RetryAfterKind = 'other'): Date | undefined {
  return readRetryAfter(value, now, kind)?.at;
}

/** How a clamp reads in a message: ` (the CA asked for 99999999 s; padlock waits at most 24 h)`. */
export function clampNote(r: RetryAfter | undefined): string {
  if (!r?.clamped) return '';
  const hours = r.clamped.maxMs / HOUR_MS;
  const asked = /^\d+$/.test(r.clamped.asked) ? `${r.clamped.asked} s` : `"${r.clamped.asked}"`;
  return ` (the CA asked for ${asked}; padlock waits at most ${hours >= 48 ? `${hours / 24} days` : `${hours} h`})`;
}
