/**
 * When padlock tells people about a certificate. Pure: every input is a
 * value, time included, so tables can test each rule.
 *
 * Three decisions live here:
 * - the **alert window** for failures ({@link shouldAlertFailure}): stay quiet
 *   while retries are likely to fix things on their own;
 * - the **expiry thresholds** ({@link expiryThresholds}, {@link dueExpiryThreshold});
 * - **deduplication** ({@link nextNotification}): at most one message per
 *   certificate per state change, a daily reminder while a failure lasts, and
 *   `recovered` only after a problem was actually reported.
 *
 * Producers may emit events freely (every failure, every check that finds a
 * threshold crossed, every success): {@link nextNotification} drops the
 * repeats.
 */
import { renewalTime, type FailureRecord, type Validity } from '../certificates/policy.js';
import { AcmeProblemError, findCause, isRateLimited, shortProblemType, type PadlockError } from '../errors.js';
import type { FailureFacts, NotifyEvent, NotifyEventKind } from './events.js';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Failures in a row after which a failure is alerted even if it is younger than a day. */
export const ALERT_AFTER_FAILURES = 3;
/** Age of a run of failures after which it is alerted even with fewer attempts. */
export const ALERT_AFTER_MS = 24 * HOUR_MS;
/** A failure still going on is reported again this long after the last message. */
export const REMINDER_INTERVAL_MS = 24 * HOUR_MS;

/** A failure record as certificates/ keeps it, plus when the run of failures began (ISO), when known. */
export type AlertFailureRecord = FailureRecord & { firstFailureAt?: string };

/**
 * The default alert window: alert when the certificate is in its renewal
 * window (or there is none yet, or it expired) AND the failure has lasted
 * {@link ALERT_AFTER_FAILURES} attempts or {@link ALERT_AFTER_MS}, whichever
 * comes first. A certificate that is not due yet (say, a forced renewal that
 * failed) never alerts: it keeps serving and is retried.
 *
 * When `firstFailureAt` is missing, a record with a single failure started at
 * its `lastAttemptAt`; with more failures only the count decides.
 */
export function shouldAlertFailure(record: AlertFailureRecord, cert: Validity | undefined, now: Date): boolean {
  if (record.failures <= 0) return false;
  if (cert && now.getTime() < renewalTime(cert).getTime()) return false;
  if (record.failures >= ALERT_AFTER_FAILURES) return true;
  const first = record.firstFailureAt ?? (record.failures === 1 ? record.lastAttemptAt : undefined);
  if (first === undefined) return false;
  const since = Date.parse(first);
  return Number.isFinite(since) && now.getTime() - since >= ALERT_AFTER_MS;
}

/** The expiry thresholds, in days, for long-lived certificates. */
export const BASE_EXPIRY_THRESHOLDS_DAYS: readonly number[] = [14, 7, 3, 1];
/** Lifetimes from this long on use the base thresholds unchanged (4 × 14 days). */
export const FULL_THRESHOLDS_LIFETIME_MS = 56 * DAY_MS;

/**
 * The expiry thresholds for a certificate with this lifetime, in days,
 * largest first.
 *
 * Rule: 14, 7, 3 and 1 days for certificates living 56 days or more (so
 * 90- and 64-day certificates get exactly those). Shorter certificates get
 * the same four scaled by `lifetime / 56 days`, i.e. 1/4, 1/8, 3/56 and 1/56
 * of the lifetime: a 45-day certificate gets 11.25, 5.6, 2.4 and 0.8 days; a
 * 6-day certificate 36 h, 18 h, 7.7 h and 2.6 h. The first threshold is never
 * earlier than three quarters into the lifetime, after the renewal point
 * (two thirds, or half below 10 days), so renewal has time to retry before
 * anyone is alerted. Values are rounded to the millisecond; duplicates and
 * values not above zero (absurdly short lifetimes) are dropped, so the
 * result is distinct, descending and below the lifetime.
 */
export function expiryThresholds(lifetimeMs: number): number[] {
  if (!(lifetimeMs > 0)) return [];
  const scale = Math.min(1, lifetimeMs / FULL_THRESHOLDS_LIFETIME_MS);
  const out: number[] = [];
  for (const days of BASE_EXPIRY_THRESHOLDS_DAYS) {
    const ms = Math.round(days * DAY_MS * scale);
    if (ms > 0 && ms < lifetimeMs && !out.some((d) => Math.round(d * DAY_MS) === ms)) out.push(ms / DAY_MS);
  }
  return out;
}

/**
 * The threshold (days) to announce now, or undefined. When several were
 * crossed at once (padlock was down), only the tightest is announced; when it,
 * or a tighter one, is in `alreadySent`, nothing is.
 */
export function dueExpiryThreshold(notAfter: Date, lifetimeMs: number, now: Date, alreadySent: readonly number[]): number | undefined {
  const remaining = notAfter.getTime() - now.getTime();
  const crossed = expiryThresholds(lifetimeMs).filter((d) => remaining <= d * DAY_MS);
  if (crossed.length === 0) return undefined;
  const tightest = Math.min(...crossed);
  if (alreadySent.some((d) => sameDays(d, tightest) || d < tightest)) return undefined;
  return tightest;
}

function sameDays(a: number, b: number): boolean {
  return Math.round(a * DAY_MS) === Math.round(b * DAY_MS);
}

/**
 * What the notifier remembers per lineage (persisted under the lineage state
 * key `notify`). Dates are ISO strings so the record is plain JSON.
 */
export interface NotifyState {
  /** The failure-type message last sent (`renewal_failed`, `rate_limited`, `chain_invalid:CODE`) and when. */
  open?: { key: string; kind: NotifyEventKind; firstSentAt: string; lastSentAt: string; reminders: number };
  /** Expiry thresholds already announced for the certificate expiring at `notAfter`. */
  expiry?: { notAfter: string; sentDays: number[] };
  /** When the first problem message of this episode went out; `recovered` is sent only when set. */
  problemSince?: string;
}

export type NotificationDecision =
  | { send: true; reminder: boolean; reason: 'new-state' | 'reminder' | 'test' | 'recovered'; state: NotifyState }
  | { send: false; reason: 'duplicate' | 'threshold-already-sent' | 'no-alert-sent'; state: NotifyState };

/**
 * Whether to send `event` given what was sent before, and the state to keep
 * once it was sent (or, for a skip, the state to keep anyway). Rules:
 * - `test` is always sent and changes nothing.
 * - A failure kind (`renewal_failed`, `rate_limited`, `chain_invalid` per
 *   verify code) is sent when it differs from the open one; the same one
 *   again is dropped until {@link REMINDER_INTERVAL_MS} after the last
 *   message, then sent as a reminder.
 * - `expiring` is sent once per threshold per certificate (`notAfter`).
 * - `recovered` is sent only when a problem message went out in this
 *   episode; either way it closes the episode (the state is cleared).
 */
export function nextNotification(state: NotifyState, event: NotifyEvent, now: Date): NotificationDecision {
  const iso = now.toISOString();
  switch (event.kind) {
    case 'test':
      return { send: true, reminder: false, reason: 'test', state };
    case 'store_reachable':
    case 'recovered':
      return state.problemSince
        ? { send: true, reminder: false, reason: 'recovered', state: {} }
        : { send: false, reason: 'no-alert-sent', state: {} };
    case 'expiring': {
      const notAfter = event.notAfter.toISOString();
      const sent = state.expiry?.notAfter === notAfter ? state.expiry.sentDays : [];
      if (sent.some((d) => sameDays(d, event.thresholdDays) || d < event.thresholdDays)) {
        return { send: false, reason: 'threshold-already-sent', state };
      }
      return {
        send: true,
        reminder: false,
        reason: 'new-state',
        state: { ...state, expiry: { notAfter, sentDays: [...sent, event.thresholdDays] }, problemSince: state.problemSince ?? iso },
      };
    }
    case 'renewal_failed':
    case 'rate_limited':
    case 'store_unreachable':
    case 'chain_invalid': {
      const key = event.kind === 'chain_invalid' ? `chain_invalid:${event.verifyCode}` : event.kind;
      const open = state.open;
      if (open && open.key === key) {
        if (now.getTime() - Date.parse(open.lastSentAt) < REMINDER_INTERVAL_MS) return { send: false, reason: 'duplicate', state };
        return { send: true, reminder: true, reason: 'reminder', state: { ...state, open: { ...open, lastSentAt: iso, reminders: open.reminders + 1 } } };
      }
      return {
        send: true,
        reminder: false,
        reason: 'new-state',
        state: { ...state, open: { key, kind: event.kind, firstSentAt: iso, lastSentAt: iso, reminders: 0 }, problemSince: state.problemSince ?? iso },
      };
    }
  }
}

/** Reads the `notify` key of a lineage state, tolerating junk (a bad record is treated as empty). */
export function notifyStateOf(lineageState: Record<string, unknown> | null | undefined): NotifyState {
  const raw = lineageState?.['notify'];
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const s = raw as NotifyState;
  const out: NotifyState = {};
  if (s.open && typeof s.open.key === 'string' && typeof s.open.lastSentAt === 'string') out.open = { ...s.open, reminders: typeof s.open.reminders === 'number' ? s.open.reminders : 0, firstSentAt: typeof s.open.firstSentAt === 'string' ? s.open.firstSentAt : s.open.lastSentAt };
  if (s.expiry && typeof s.expiry.notAfter === 'string' && Array.isArray(s.expiry.sentDays)) {
    out.expiry = { notAfter: s.expiry.notAfter, sentDays: s.expiry.sentDays.filter((d) => typeof d === 'number') };
  }
  if (typeof s.problemSince === 'string') out.problemSince = s.problemSince;
  return out;
}

/** The verification codes that make a failure a chain problem rather than a CA one. */
const VERIFY_CODES = /^(CHAIN_|CERT_(EXPIRED|NOT_YET_VALID|NAME_MISMATCH|KEY_MISMATCH|UNPARSEABLE))/;

/**
 * Turns a failed attempt (the manager's `cert_failed`, plus the failure record
 * it just stored) into the event to notify, or undefined while the failure is
 * outside its alert window. Rate limits and chain failures are reported at
 * once; other failures follow {@link shouldAlertFailure}.
 */
export function failureEvent(input: {
  name: string;
  names: string[];
  email?: string;
  error: PadlockError;
  record: AlertFailureRecord;
  cert?: Validity;
  now: Date;
}): NotifyEvent | undefined {
  const { name, names, error, record, cert, now } = input;
  const base = { name, names, ...(input.email ? { email: input.email } : {}) };
  const notAfter = cert ? { notAfter: cert.notAfter } : {};
  const next = record.nextAttemptAt ? new Date(record.nextAttemptAt) : undefined;
  const facts = failureFacts(error);
  // The CA's rateLimited, or padlock's own governor holding back an order the CA would refuse.
  if (isRateLimited(error) || error.code === 'ACME_RATE_LIMITED') {
    const problem = findCause(error, (e): e is AcmeProblemError => e instanceof AcmeProblemError);
    const retryAfter = problem?.retryAfter ?? next;
    return { kind: 'rate_limited', ...base, detail: facts.detail, ...(retryAfter ? { retryAfter } : {}), ...notAfter };
  }
  if (VERIFY_CODES.test(error.code)) {
    return { kind: 'chain_invalid', ...base, verifyCode: error.code, reason: error.message, ...notAfter };
  }
  if (!shouldAlertFailure(record, cert, now)) return undefined;
  const first = record.firstFailureAt ?? (record.failures === 1 ? record.lastAttemptAt : undefined);
  return {
    kind: 'renewal_failed',
    ...base,
    ...facts,
    attempts: record.failures,
    ...(first ? { firstFailureAt: new Date(first) } : {}),
    ...(next ? { nextAttemptAt: next } : {}),
    ...notAfter,
  };
}

/** The code, ACME type and the CA's own words of an error (the problem `detail` when the CA sent one). */
export function failureFacts(error: PadlockError): FailureFacts {
  const problem = findCause(error, (e): e is AcmeProblemError => e instanceof AcmeProblemError);
  const detailFromDetails = (error.details['problem'] as { type?: string; detail?: string } | undefined);
  const type = problem?.problem.type ?? detailFromDetails?.type;
  const detail = problem?.problem.detail ?? detailFromDetails?.detail ?? error.message;
  return { errorCode: error.code, ...(type ? { acmeType: shortProblemType(type) } : {}), detail };
}
