/**
 * The governor: padlock's own ledger of what it asked a CA, so it never
 * plans an order that would break the CA's rate limits. The backoff after
 * failures lives in policy.ts; this is the other half.
 *
 * Limits (Let's Encrypt's published ones; a CA that is stricter still
 * answers rateLimited, which the failure record then honours):
 * - 300 new orders per account per 3 hours;
 * - 5 failed validations per name per hour;
 * - 5 certificates for the exact same set of names per 7 days.
 *
 * The ledger is persisted per CA directory URL in the store (state of the
 * pseudo-lineage `padlock-governor`), updated under its lock, so the daemon,
 * `padlock renew` from cron and `padlock issue` all count together, and a
 * restart or a config change never resets it.
 */
import type { CertStore } from '../store/store.js';
import type { Clock } from '../clock.js';

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
 * latest end when several limits apply, or undefined when it is allowed.
 */
export function checkOrder(ledger: Ledger, names: readonly string[], now: Date, limits: Limits = LETS_ENCRYPT_LIMITS): Hold | undefined {
  const t = now.getTime();
  const holds: Hold[] = [];
  const orders = freeAt(ledger.orders, limits.newOrders, t);
  if (orders) holds.push({ until: new Date(orders), limit: 'newOrders', message: `${limits.newOrders.max} new orders in ${limits.newOrders.windowMs / HOUR} hours already` });
  for (const name of names) {
    const failed = freeAt(ledger.failedValidations[name] ?? [], limits.failedValidations, t);
    if (failed) holds.push({ until: new Date(failed), limit: 'failedValidations', message: `${limits.failedValidations.max} failed validations of ${name} in the last hour` });
  }
  const dup = freeAt(ledger.issued[nameSetKey(names)] ?? [], limits.duplicateCertificates, t);
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

export type LedgerEvent = { kind: 'order' } | { kind: 'failed-validation'; name: string } | { kind: 'issued'; names: readonly string[] };

/** Adds one event. Pure. */
export function record(ledger: Ledger, event: LedgerEvent, now: Date): Ledger {
  const t = now.getTime();
  const next = prune(ledger, now);
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

/** The ledger for one CA, kept in the store. */
export class Governor {
  constructor(private readonly store: CertStore, private readonly server: string, private readonly clock: Clock) {}

  async ledger(): Promise<Ledger> {
    const state = await this.store.readState(GOVERNOR_STATE);
    const all = (state?.['ledgers'] ?? {}) as Record<string, Ledger>;
    return all[this.server] ?? emptyLedger();
  }

  async check(names: readonly string[]): Promise<Hold | undefined> {
    return checkOrder(await this.ledger(), names, this.clock.now());
  }

  /** Records an event under the governor's lock (read-modify-write across processes). */
  async record(event: LedgerEvent): Promise<void> {
    const unlock = await this.store.lock(GOVERNOR_STATE, { waitMs: 10_000 });
    try {
      const state = (await this.store.readState(GOVERNOR_STATE)) ?? {};
      const all = { ...((state['ledgers'] ?? {}) as Record<string, Ledger>) };
      all[this.server] = record(all[this.server] ?? emptyLedger(), event, this.clock.now());
      await this.store.writeState(GOVERNOR_STATE, { ...state, ledgers: all });
    } finally {
      await unlock();
    }
  }
}
