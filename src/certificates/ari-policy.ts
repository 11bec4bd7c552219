/**
 * When to renew and when to ask again, from what a CA's renewal information
 * (ARI, RFC 9773) said. Pure over values: the wire format is acme/ari.ts, the
 * polling and the store are certificates/ari-poller.ts.
 *
 * padlock keeps an `AriState` per certificate in the store, updates it with
 * `applyRenewalInfo` / `applyAriError`, and asks `ariDecision` what to do.
 *
 * Choices made where the RFC leaves room (each is a named constant below):
 * - `Retry-After` is clamped to [1 minute, 12 hours] (section 4.3.2 asks for
 *   "reasonable limits" and gives 1 minute and 1 day as examples; 12 hours
 *   keeps a CA's change of mind from going unseen for a whole day);
 * - a missing or unparseable `Retry-After` is a long-term error in section
 *   4.3.3, so the next poll is in 6 hours, the RFC's own default;
 * - a window that is already open or already over when padlock first sees it
 *   (or sees it change) means "renew now": that is how a CA announces a mass
 *   revocation, and waiting for a random point in it only shortens the time
 *   left to react;
 * - but a window that is already over for a certificate padlock has just
 *   obtained is a CA bug, not an emergency: renewing again would loop. The
 *   ARI loop guard (`ariRenewalHold`) allows one ARI renewal of a lineage per
 *   hour unless the CA's window moved since padlock first saw it.
 */
import { renewalTime } from './policy.js';
import type { RenewalInfo, RenewalWindow } from '../acme/ari.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/** Shortest poll interval padlock accepts from a CA's `Retry-After` (RFC 9773 section 4.3.2). */
export const ARI_MIN_POLL_MS = MINUTE_MS;
/** Longest poll interval padlock accepts from a CA's `Retry-After` (RFC 9773 section 4.3.2). */
export const ARI_MAX_POLL_MS = 12 * HOUR_MS;
/** Poll interval when the CA sent no usable `Retry-After`, and after a long-term error (RFC 9773 section 4.3.3). */
export const ARI_DEFAULT_POLL_MS = 6 * HOUR_MS;
/** Backoff for the first temporary errors in a row (timeouts, 5xx); after these, a temporary error counts as long-term. */
const ARI_TEMPORARY_BACKOFF_MS = [MINUTE_MS, 10 * MINUTE_MS, 100 * MINUTE_MS];

/** A window and the renewal time padlock picked inside it; persisted so a restart does not re-roll the dice. */
export interface ChosenTime {
  window: RenewalWindow;
  chosen: Date;
}

/**
 * What padlock remembers about one certificate's ARI, persisted in the store.
 * Every field is optional: an empty state means "never asked".
 */
export interface AriState {
  window?: RenewalWindow;
  /**
   * The first window padlock saw for this certificate. The ARI loop guard
   * compares the current window with it: a window that moved since is the CA
   * changing its mind (a revocation event), not the same answer again.
   */
  firstWindow?: RenewalWindow;
  /** The renewal time picked inside `window`. */
  chosen?: Date;
  explanationURL?: string;
  /** Last successful fetch. */
  lastFetchAt?: Date;
  /** Do not poll before this time. */
  nextPollAt?: Date;
  /** The last failed fetch, cleared by the next success. */
  lastError?: { at: Date; message: string; code?: string };
  /** Failed fetches in a row. */
  consecutiveErrors?: number;
}

/** Facts about the certificate that `ariDecision` needs. */
export interface AriCertFacts {
  notBefore: Date;
  notAfter: Date;
  /** True once a newer certificate for the same names is issued and deployed. */
  replaced?: boolean;
}

export type AriReason =
  /** The picked time inside the CA's window (due once it has passed). */
  | 'ari-window'
  /** The CA's window is over: renew now (mass revocation, or padlock is late). */
  | 'ari-past-window'
  /** No ARI window known (CA without ARI, or not fetched yet): a third of the lifetime left, half under 10 days. */
  | 'lifetime-share'
  | 'expired'
  /** A newer certificate replaced this one: nothing to renew, nothing to poll. */
  | 'replaced';

export interface AriDecision {
  /** Renew now. */
  due: boolean;
  /** When the certificate became or becomes due. */
  at: Date;
  /**
   * When to fetch RenewalInfo next; absent when it must not be fetched
   * (expired or replaced certificate, RFC 9773 section 4.3) or when the next
   * poll would fall after expiry. When `pollAt <= now`, fetch first, apply the
   * result, and decide again.
   */
  pollAt?: Date;
  reason: AriReason;
  /** The CA's explanation of the window, for logs and notifications. */
  explanationURL?: string;
  /**
   * Set when the CA's window says "renew now" but the ARI loop guard holds
   * it (see `ariDecision`): `at` is then when the guard lets go.
   */
  loopGuard?: { lastAriRenewalAt: Date };
}

/**
 * At most one renewal of a lineage because of ARI in this long, unless the
 * CA's window moved (see `ariDecision`). A CA whose window for a certificate
 * padlock has just obtained is already past would otherwise get a new order
 * every poll: seen with a misbehaving CA as 4 certificates in 1.2 s.
 */
export const ARI_RENEWAL_MIN_INTERVAL_MS = HOUR_MS;

// --- polling schedule (RFC 9773 section 4.3) ---

/**
 * When to poll next after a successful fetch: the CA's `Retry-After`, kept
 * between 1 minute and 12 hours from `now` (section 4.3.2); 6 hours when the
 * CA sent none (section 4.3.3 treats that as a long-term error).
 */
export function clampRetryAfter(retryAfter: Date | undefined, now: Date): Date {
  const t = now.getTime();
  if (!retryAfter || Number.isNaN(retryAfter.getTime())) return new Date(t + ARI_DEFAULT_POLL_MS);
  const wait = Math.min(ARI_MAX_POLL_MS, Math.max(ARI_MIN_POLL_MS, retryAfter.getTime() - t));
  return new Date(t + wait);
}

// --- picking the renewal time (RFC 9773 section 4.2, the recommended algorithm) ---

/** A uniform random time in [start, end). `random` returns values in [0, 1), like Math.random. */
export function pickRenewalTime(window: RenewalWindow, random: () => number): Date {
  const span = window.end.getTime() - window.start.getTime();
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return new Date(window.start.getTime() + Math.floor(r * Math.max(span, 0)));
}

function sameWindow(a: RenewalWindow, b: RenewalWindow): boolean {
  return a.start.getTime() === b.start.getTime() && a.end.getTime() === b.end.getTime();
}

/**
 * Keeps the persisted choice while the CA's window is unchanged, so a
 * restart or a cron run never re-rolls it; picks again when the window
 * changed. A new window that has already started (or already ended) gives
 * `chosen = now`: renew now.
 */
export function choosePersistedTime(prev: ChosenTime | undefined, window: RenewalWindow, now: Date, random: () => number): ChosenTime {
  if (prev && sameWindow(prev.window, window)) return prev;
  const chosen = window.start.getTime() <= now.getTime() ? new Date(now.getTime()) : pickRenewalTime(window, random);
  return { window: { start: new Date(window.start.getTime()), end: new Date(window.end.getTime()) }, chosen };
}

/**
 * The state after a successful fetch: the window and its persisted pick (see
 * `choosePersistedTime`), the explanation, the next poll (`clampRetryAfter`),
 * and the error streak cleared.
 */
export function applyRenewalInfo(prev: AriState | undefined, info: RenewalInfo, now: Date, random: () => number): AriState {
  const prevChoice = prev?.window && prev.chosen ? { window: prev.window, chosen: prev.chosen } : undefined;
  const { window, chosen } = choosePersistedTime(prevChoice, info.window, now, random);
  return {
    window,
    firstWindow: prev?.firstWindow ?? prev?.window ?? window,
    chosen,
    ...(info.explanationURL ? { explanationURL: info.explanationURL } : {}),
    lastFetchAt: new Date(now.getTime()),
    nextPollAt: clampRetryAfter(info.retryAfter, now),
    consecutiveErrors: 0,
  };
}

/**
 * The state after a failed fetch (RFC 9773 section 4.3.3). The known window
 * and pick are kept. A temporary error (`retryable`: timeout, 5xx) is retried
 * after 1, 10 and 100 minutes; after that, and for any long-term error
 * (invalid object, 4xx, refused connection), the next poll is in 6 hours.
 */
export function applyAriError(prev: AriState | undefined, error: { message: string; code?: string; retryable?: boolean; retryAfter?: Date }, now: Date): AriState {
  const errors = (prev?.consecutiveErrors ?? 0) + 1;
  const wait = (error.retryable ? ARI_TEMPORARY_BACKOFF_MS[errors - 1] : undefined) ?? ARI_DEFAULT_POLL_MS;
  // A CA that said when to come back (429/503 with Retry-After) is not asked earlier; the clamp still applies.
  const own = now.getTime() + wait;
  const asked = error.retryAfter ? clampRetryAfter(error.retryAfter, now).getTime() : 0;
  return {
    ...prev,
    lastError: { at: new Date(now.getTime()), message: error.message, ...(error.code ? { code: error.code } : {}) },
    consecutiveErrors: errors,
    nextPollAt: new Date(Math.max(own, asked)),
  };
}

/**
 * Whether to renew now and when to poll ARI next, from the stored state
 * alone. Order of the checks: a replaced certificate is never renewed or
 * polled; an expired one is due and never polled (RFC 9773 section 4.3); a
 * known window decides through its persisted pick (`ari-past-window` once the
 * window is over); without a window, the lifetime rule of
 * certificates/policy.ts decides. A certificate that was never fetched (no
 * success, no error) gets `pollAt = now`: section 4.3 asks for a fetch right
 * after issuance. Only poll when the directory has `renewalInfo` (see
 * `renewalInfoUrl`); for a CA without ARI, ignore `pollAt`.
 *
 * The ARI loop guard: when the window says "renew now" but padlock already
 * renewed this lineage because of ARI less than
 * {@link ARI_RENEWAL_MIN_INTERVAL_MS} ago (`lastAriRenewalAt`, kept in the
 * lineage state), and the window has not moved since padlock first saw it
 * for this certificate, the decision is "not due until the guard lets go"
 * (`loopGuard` set). Expiry still wins.
 */
export function ariDecision(state: AriState | undefined, cert: AriCertFacts, now: Date, lastAriRenewalAt?: Date): AriDecision {
  const decision = rawAriDecision(state, cert, now);
  if (!decision.due || (decision.reason !== 'ari-window' && decision.reason !== 'ari-past-window') || !lastAriRenewalAt) return decision;
  const until = lastAriRenewalAt.getTime() + ARI_RENEWAL_MIN_INTERVAL_MS;
  if (until <= now.getTime()) return decision;
  const moved = state?.firstWindow && state.window && !sameWindow(state.firstWindow, state.window);
  if (moved) return decision;
  return { ...decision, due: false, at: new Date(Math.min(until, cert.notAfter.getTime())), loopGuard: { lastAriRenewalAt } };
}

/**
 * True when a fresh certificate's window is already over: the CA says "renew
 * now" about a certificate padlock obtained less than
 * {@link ARI_RENEWAL_MIN_INTERVAL_MS} ago. Worth a warning: either the CA is
 * wrong, or it revoked what it just issued.
 */
export function pastWindowForFreshCertificate(state: AriState | undefined, obtainedAt: Date | undefined, now: Date): boolean {
  if (!state?.window || !obtainedAt) return false;
  return state.window.end.getTime() <= now.getTime() && now.getTime() - obtainedAt.getTime() < ARI_RENEWAL_MIN_INTERVAL_MS;
}

function rawAriDecision(state: AriState | undefined, cert: AriCertFacts, now: Date): AriDecision {
  const t = now.getTime();
  const explanation = state?.explanationURL ? { explanationURL: state.explanationURL } : {};
  if (cert.replaced) return { due: false, at: new Date(cert.notAfter.getTime()), reason: 'replaced' };
  if (t >= cert.notAfter.getTime()) return { due: true, at: new Date(cert.notAfter.getTime()), reason: 'expired' };

  const neverAsked = !state?.lastFetchAt && !state?.lastError;
  const nextPoll = neverAsked ? now : (state?.nextPollAt ?? now);
  const pollAt = nextPoll.getTime() < cert.notAfter.getTime() ? { pollAt: new Date(nextPoll.getTime()) } : {};

  if (state?.window && state.chosen) {
    if (t >= state.window.end.getTime()) {
      const at = Math.min(state.chosen.getTime(), state.window.end.getTime());
      return { due: true, at: new Date(at), ...pollAt, reason: 'ari-past-window', ...explanation };
    }
    return { due: t >= state.chosen.getTime(), at: new Date(state.chosen.getTime()), ...pollAt, reason: 'ari-window', ...explanation };
  }
  const at = renewalTime(cert);
  return { due: t >= at.getTime(), at, ...pollAt, reason: 'lifetime-share' };
}

