/**
 * When a certificate is due for renewal. Pure: every input is a value.
 *
 * Without ARI (RFC 9773, coming with the renewal issue), padlock renews when a
 * third of the lifetime remains, or half for certificates shorter than 10
 * days, always derived from the certificate's own dates, never a fixed
 * number of days. That keeps working as lifetimes shrink (90, 64, 45, 6 days).
 */

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
  if (options.forced) return { due: true, reason: 'forced', dueAt };
  if (options.revoked) return { due: true, reason: 'revoked', dueAt };
  if (now.getTime() >= v.notAfter.getTime()) return { due: true, reason: 'expired', dueAt };
  if (options.obtainedAt) {
    const earliest = options.obtainedAt.getTime() + (v.notAfter.getTime() - v.notBefore.getTime()) / 3;
    if (earliest > dueAt.getTime()) dueAt = new Date(earliest);
  }
  if (now.getTime() >= dueAt.getTime()) return { due: true, reason: 'lifetime-share', dueAt };
  return { due: false, reason: 'not-due', dueAt };
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
  /** True when the wait comes from the CA's rate limit / Retry-After. */
  rateLimited?: boolean;
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

/** Whether a failure record blocks an attempt now. A forced renewal still waits out a CA rate limit unless overridden. */
export function blockedUntil(record: FailureRecord | undefined, now: Date, options: { forced?: boolean; ignoreRateLimit?: boolean } = {}): Date | undefined {
  if (!record?.nextAttemptAt) return undefined;
  const until = new Date(record.nextAttemptAt);
  if (until.getTime() <= now.getTime()) return undefined;
  if (options.forced && (!record.rateLimited || options.ignoreRateLimit)) return undefined;
  return until;
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
  return { due: ari.due, reason: ari.due ? ari.reason : 'not-due', dueAt: ari.at };
}

