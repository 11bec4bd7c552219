/**
 * When a certificate is due for renewal. Pure: every input is a value.
 *
 * When the CA offers no renewal window (ARI, RFC 9773: see ari-policy.ts),
 * padlock renews when a third of the lifetime remains, or half for certificates shorter than 10
 * days, always derived from the certificate's own dates, never a fixed
 * number of days. That keeps working as lifetimes shrink (90, 64, 45, 6 days).
 */

import { AcmeProblemError, PadlockError, caRetryAfter, errorMessage, findCause, isRateLimited } from '../errors.js';

const DAY_MS = 86_400_000;

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** Why a certificate is (not) due. The `ari-*` reasons come from the CA's renewal window (RFC 9773). */
export type RenewalReason = 'not-due' | 'lifetime-share' | 'expired' | 'forced' | 'revoked' | 'ari-window' | 'ari-past-window';

export interface RenewalDecision {
  due: boolean;
  reason: RenewalReason;
  /** When the certificate becomes (or became) due. */
  dueAt: Date;
  /** What set `dueAt`: the lifetime rule, or the CA's renewal window (ARI). */
  basis: 'lifetime-share' | 'ari-window' | 'ari-past-window';
}

/** The moment a certificate with this validity becomes due. */
export function renewalTime(v: Validity): Date {
  const lifetime = v.notAfter.getTime() - v.notBefore.getTime();
  const share = lifetime < 10 * DAY_MS ? 1 / 2 : 1 / 3;
  return new Date(v.notAfter.getTime() - lifetime * share);
}

/**
 * Decides whether to renew now. `forced` is certbot's --force-renewal.
 *
 * `obtainedAt` (when padlock stored the certificate, by padlock's clock)
 * guards against a renewal loop: a certificate obtained less than a third of
 * its lifetime ago is not renewed again by date, even if its dates say it is
 * due. That happens when this clock and the CA's disagree, or a CA backdates;
 * without the guard every fresh certificate would be due at once.
 */
export function decideRenewal(v: Validity, now: Date, options: { forced?: boolean; revoked?: boolean; obtainedAt?: Date } = {}): RenewalDecision {
  let dueAt = renewalTime(v);
  const basis = 'lifetime-share' as const;
  if (options.forced) return { due: true, reason: 'forced', dueAt, basis };
  if (options.revoked) return { due: true, reason: 'revoked', dueAt, basis };
  if (now.getTime() >= v.notAfter.getTime()) return { due: true, reason: 'expired', dueAt, basis };
  if (options.obtainedAt) {
    const earliest = options.obtainedAt.getTime() + (v.notAfter.getTime() - v.notBefore.getTime()) / 3;
    if (earliest > dueAt.getTime()) dueAt = new Date(earliest);
  }
  if (now.getTime() >= dueAt.getTime()) return { due: true, reason: 'lifetime-share', dueAt, basis };
  return { due: false, reason: 'not-due', dueAt, basis };
}

/** Persisted record of failed attempts for one lineage (kept in the store's state). */
export interface FailureRecord {
  failures: number;
  lastError?: { code: string; message: string; acmeType?: string };
  lastAttemptAt?: string;
  /** When this run of failures began (ISO), for the alert window. */
  firstFailureAt?: string;
  /** No new attempt before this time (ISO). */
  nextAttemptAt?: string;
  /** True when the last failure was a rate limit (the CA's `rateLimited`, or padlock's own governor). */
  rateLimited?: boolean;
  /**
   * True when `nextAttemptAt` is a wait the CA itself asked for (its
   * `Retry-After` on a 429 or 503) or the governor imposed: `--force-renewal`
   * does not skip it, only `--ignore-rate-limit` does.
   */
  caWait?: boolean;
}

/**
 * Backoff after the n-th consecutive failure: 1 min, 10 min, 100 min, then
 * daily (Let's Encrypt's integration guidance), with up to 10 % jitter.
 * A CA `Retry-After` later than that wins.
 */
export function nextAttemptAfterFailure(failures: number, now: Date, options: { retryAfter?: Date; random?: () => number } = {}): Date {
  const steps = [60_000, 600_000, 6_000_000];
  const base = steps[Math.min(failures, steps.length + 1) - 1] ?? DAY_MS;
  const jitter = 1 + 0.1 * (options.random ?? Math.random)();
  const backoff = new Date(now.getTime() + base * jitter);
  if (options.retryAfter && options.retryAfter.getTime() > backoff.getTime()) return options.retryAfter;
  return backoff;
}

/**
 * Whether a failure record blocks an attempt now, and until when. A forced
 * renewal (`--force-renewal`) skips padlock's own backoff, but still waits
 * out a wait the CA asked for or a rate limit; only `ignoreRateLimit`
 * (`--ignore-rate-limit`) skips those too.
 */
export function blockedUntil(record: FailureRecord | undefined, now: Date, options: { forced?: boolean; ignoreRateLimit?: boolean } = {}): Date | undefined {
  if (!record?.nextAttemptAt) return undefined;
  const until = new Date(record.nextAttemptAt);
  if (Number.isNaN(until.getTime()) || until.getTime() <= now.getTime()) return undefined;
  if (options.ignoreRateLimit) return undefined;
  if (options.forced && !record.rateLimited && !record.caWait) return undefined;
  return until;
}

/** The failure record after one more failed attempt (pure). See recordFailure in engine.ts for which errors count. */
export function nextFailureRecord(prev: FailureRecord | undefined, err: unknown, now: Date, random: () => number = Math.random): FailureRecord {
  const problem = findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError);
  const failures = (prev?.failures ?? 0) + 1;
  // The CA's Retry-After (bounded in acme/retry-after.ts), or the governor's own "allowed after".
  const ownHold = err instanceof PadlockError && typeof err.details['retryAfter'] === 'string' ? new Date(err.details['retryAfter']) : undefined;
  const retryAfter = caRetryAfter(err) ?? (ownHold && !Number.isNaN(ownHold.getTime()) ? ownHold : undefined);
  const rateLimited = isRateLimited(err) || (err instanceof PadlockError && err.code === 'ACME_RATE_LIMITED');
  return {
    failures,
    lastError: {
      code: err instanceof PadlockError ? err.code : 'UNEXPECTED',
      message: errorMessage(err),
      ...(problem ? { acmeType: problem.acmeType } : {}),
    },
    lastAttemptAt: now.toISOString(),
    firstFailureAt: prev?.firstFailureAt ?? now.toISOString(),
    nextAttemptAt: nextAttemptAfterFailure(failures, now, { ...(retryAfter ? { retryAfter } : {}), random }).toISOString(),
    rateLimited,
    ...(retryAfter ? { caWait: true } : {}),
  };
}

/** What an ARI check (acme/ari.ts) concluded, as far as the decision needs it. */
export interface AriVerdict {
  due: boolean;
  at: Date;
  reason: string;
}

/**
 * The one rule for "which decides": the CA's renewal window (RFC 9773) when
 * it gave one, else the lifetime rule. A revocation or a forced renewal
 * always wins; so does expiry, which decideRenewal already reports.
 */
export function decideWithAri(v: Validity, now: Date, ari: AriVerdict | undefined, options: { forced?: boolean; revoked?: boolean; obtainedAt?: Date } = {}): RenewalDecision {
  const base = decideRenewal(v, now, options);
  if (!ari || options.forced || options.revoked || base.reason === 'expired') return base;
  if (ari.reason !== 'ari-window' && ari.reason !== 'ari-past-window') return base;
  return { due: ari.due, reason: ari.due ? ari.reason : 'not-due', dueAt: ari.at, basis: ari.reason };
}

