/**
 * The governor: padlock's own ledger of what it asked a CA, so it never
 * plans an order that would break the CA's rate limits, and the waits a CA
 * asked for across all its certificates. The backoff after one lineage's
 * failures lives in policy.ts; this is the other half.
 *
 * Limits: Let's Encrypt's published ones, applied to Let's Encrypt's
 * directories only (production and staging), because they are Let's
 * Encrypt's. Applied to a private CA that issues short certificates, its
 * "5 duplicates a week" stopped renewal after the fifth certificate and let
 * the sixth expire. Any other CA's limits are learnt only from its own
 * `429 rateLimited` answers and their `Retry-After` (the lineage's failure
 * record honours them):
 * - 300 new orders per account per 3 hours;
 * - 5 failed validations per name per hour;
 * - 5 certificates for the exact same set of names per 7 days.
 * ARI-suggested renewals are exempt from the new-order and duplicate limits,
 * as Let's Encrypt exempts them.
 *
 * CA holds: when a CA answers 503 (or its directory 429) with a
 * `Retry-After`, that wait applies to every certificate from that CA, so it
 * is kept here per CA, and nothing asks that CA again before it ends
 * (`--ignore-rate-limit` aside).
 *
 * Everything is persisted per CA directory URL in the store (state of the
 * pseudo-lineage `padlock-governor`), updated with `updateState`, so the
 * daemon, `padlock renew` from cron and `padlock issue` all count together,
 * and a restart or a config change never resets it.
 */
import type { CertStore, LineageState } from '../store/store.js';
import type { Clock } from '../clock.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../acme/directories.js';

export const GOVERNOR_STATE = 'padlock-governor';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface Limit {
  /** How many in the window. An attempt is allowed while fewer than `max` are recorded. */
  max: number;
  windowMs: number;
}

export const LETS_ENCRYPT_LIMITS = {
  newOrders: { max: 300, windowMs: 3 * HOUR },
  failedValidations: { max: 5, windowMs: HOUR },
  duplicateCertificates: { max: 5, windowMs: 7 * DAY },
} as const satisfies Record<string, Limit>;

export type Limits = { [K in keyof typeof LETS_ENCRYPT_LIMITS]: Limit };

/** The limits padlock applies to its own orders at this CA: Let's Encrypt's for its directories, none for any other CA. */
export function limitsFor(server: string): Limits | undefined {
  const url = server.replace(/\/+$/, '');
  return url === LETSENCRYPT_PRODUCTION || url === LETSENCRYPT_STAGING ? LETS_ENCRYPT_LIMITS : undefined;
}

/** Timestamps (ms) of past events, per CA. */
export interface Ledger {
  orders: number[];
  /** By name. */
  failedValidations: Record<string, number[]>;
  /** By the sorted, comma-joined name set. */
  issued: Record<string, number[]>;
}

export const emptyLedger = (): Ledger => ({ orders: [], failedValidations: {}, issued: {} });

export const nameSetKey = (names: readonly string[]) => [...names].sort().join(',');

/** Why an order must wait, and until when. */
export interface Hold {
  until: Date;
  limit: keyof Limits;
  message: string;
}

/** When `count` events fall below `limit.max` again: the time the oldest counted one leaves the window. */
function freeAt(times: readonly number[], limit: Limit, now: number): number | undefined {
  const recent = times.filter((t) => t > now - limit.windowMs).sort((a, b) => a - b);
  if (recent.length < limit.max) return undefined;
  return recent[recent.length - limit.max]! + limit.windowMs;
}

/**
 * Whether an order for `names` may be placed now. Returns the hold with the
 * latest end when several limits apply, or undefined when it is allowed. An
 * ARI-suggested renewal (`ariRenewal`) is exempt from the new-order and
 * duplicate-certificate limits.
 */
export function checkOrder(ledger: Ledger, names: readonly string[], now: Date, limits: Limits = LETS_ENCRYPT_LIMITS, options: { ariRenewal?: boolean } = {}): Hold | undefined {
  const t = now.getTime();
  const holds: Hold[] = [];
  const orders = options.ariRenewal ? undefined : freeAt(ledger.orders, limits.newOrders, t);
  if (orders) holds.push({ until: new Date(orders), limit: 'newOrders', message: `${limits.newOrders.max} new orders in ${limits.newOrders.windowMs / HOUR} hours already` });
  for (const name of names) {
    const failed = freeAt(ledger.failedValidations[name] ?? [], limits.failedValidations, t);
    if (failed) holds.push({ until: new Date(failed), limit: 'failedValidations', message: `${limits.failedValidations.max} failed validations of ${name} in the last hour` });
  }
  const dup = options.ariRenewal ? undefined : freeAt(ledger.issued[nameSetKey(names)] ?? [], limits.duplicateCertificates, t);
  if (dup) holds.push({ until: new Date(dup), limit: 'duplicateCertificates', message: `${limits.duplicateCertificates.max} certificates for exactly ${names.join(', ')} in the last ${limits.duplicateCertificates.windowMs / DAY} days` });
  return holds.sort((a, b) => b.until.getTime() - a.until.getTime())[0];
}

/** Drops what no limit can count any more, so the ledger stays small. */
export function prune(ledger: Ledger, now: Date, limits: Limits = LETS_ENCRYPT_LIMITS): Ledger {
  const t = now.getTime();
  const keep = (times: number[], limit: Limit) => times.filter((x) => x > t - limit.windowMs);
  const byKey = (rec: Record<string, number[]>, limit: Limit) =>
    Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, keep(v, limit)] as const).filter(([, v]) => v.length > 0));
  return {
    orders: keep(ledger.orders, limits.newOrders),
    failedValidations: byKey(ledger.failedValidations, limits.failedValidations),
    issued: byKey(ledger.issued, limits.duplicateCertificates),
  };
}

/** An event to count. `ariRenewal` marks an ARI-suggested renewal: its order and certificate count toward no limit. */
export type LedgerEvent = { kind: 'order'; ariRenewal?: boolean } | { kind: 'failed-validation'; name: string } | { kind: 'issued'; names: readonly string[]; ariRenewal?: boolean };

/** Adds one event. Pure. */
export function record(ledger: Ledger, event: LedgerEvent, now: Date): Ledger {
  const t = now.getTime();
  const next = prune(ledger, now);
  if ((event.kind === 'order' || event.kind === 'issued') && event.ariRenewal) return next;
  switch (event.kind) {
    case 'order':
      return { ...next, orders: [...next.orders, t] };
    case 'failed-validation':
      return { ...next, failedValidations: { ...next.failedValidations, [event.name]: [...(next.failedValidations[event.name] ?? []), t] } };
    case 'issued': {
      const key = nameSetKey(event.names);
      return { ...next, issued: { ...next.issued, [key]: [...(next.issued[key] ?? []), t] } };
    }
  }
}

/** A wait a CA asked for, for all its certificates (a 503 or a directory 429 with `Retry-After`). */
export interface CaHold {
  until: Date;
  /** What the CA answered, for messages: `HTTP 503 on newOrder`. */
  reason: string;
}

interface GovernorState {
  ledgers?: Record<string, Ledger>;
  holds?: Record<string, { until: string; reason: string }>;
}

/** The ledger and holds for one CA, kept in the store. See the module comment. */
export class Governor {
  readonly limits: Limits | undefined;
  private readonly server: string;
  constructor(private readonly store: CertStore, server: string, private readonly clock: Clock) {
    // One ledger and one hold per CA, however its URL was spelt (`--server https://ca/dir/` is the same CA).
    this.server = server.replace(/\/+$/, '');
    this.limits = limitsFor(server);
  }

  private async state(): Promise<GovernorState> {
    return ((await this.store.readState(GOVERNOR_STATE)) ?? {}) as GovernorState;
  }

  async ledger(): Promise<Ledger> {
    return (await this.state()).ledgers?.[this.server] ?? emptyLedger();
  }

  /** The hold an order for `names` must respect now, or undefined. Never one for a CA without known limits. */
  async check(names: readonly string[], options: { ariRenewal?: boolean } = {}): Promise<Hold | undefined> {
    if (!this.limits) return undefined;
    return checkOrder(await this.ledger(), names, this.clock.now(), this.limits, options);
  }

  /** Records an event (a serialised read-modify-write across processes). Nothing for a CA without known limits. */
  async record(event: LedgerEvent): Promise<void> {
    if (!this.limits) return;
    const now = this.clock.now();
    await this.update((s) => ({ ...s, ledgers: { ...s.ledgers, [this.server]: record(s.ledgers?.[this.server] ?? emptyLedger(), event, now) } }));
  }

  /** The CA's current hold, or undefined when there is none (or it has passed). */
  async hold(): Promise<CaHold | undefined> {
    const h = (await this.state()).holds?.[this.server];
    if (!h) return undefined;
    const until = new Date(h.until);
    return until.getTime() > this.clock.now().getTime() ? { until, reason: h.reason } : undefined;
  }

  /** Keeps a CA-wide wait; a later one wins, an earlier one does not shorten it. Expired holds of any CA are dropped. */
  async setHold(hold: CaHold): Promise<void> {
    const now = this.clock.now().getTime();
    await this.update((s) => {
      const holds: NonNullable<GovernorState['holds']> = {};
      for (const [k, v] of Object.entries(s.holds ?? {})) if (Date.parse(v.until) > now) holds[k] = v;
      const prev = holds[this.server];
      if (!prev || Date.parse(prev.until) < hold.until.getTime()) holds[this.server] = { until: hold.until.toISOString(), reason: hold.reason };
      return { ...s, holds };
    });
  }

  private async update(change: (s: GovernorState) => GovernorState): Promise<void> {
    await this.store.updateState(GOVERNOR_STATE, (raw) => change((raw ?? {}) as GovernorState) as LineageState);
  }
}
