/**
 * The propagation check: before the CA is told to validate, every
 * authoritative server of the zone must answer the new TXT value. A CA asks
 * any one of them, and a secondary that has not caught up yet would fail the
 * validation (and count against the CA's failed-validation limit).
 */
import { PadlockError, errorMessage } from '../errors.js';
import type { Clock } from '../clock.js';
import { abortableDelay } from '../store/abortable-delay.js';
import { describeServer, type DnsServer } from './transport.js';
import { rcodeName } from './wire.js';

/** Defaults: how long to wait for every server, and how often to ask each one that has not caught up. */
export const DEFAULT_PROPAGATION_TIMEOUT_MS = 120_000;
export const DEFAULT_PROPAGATION_INTERVAL_MS = 2_000;

export interface PropagationCheck {
  /** Where the record lives (after CNAMEs) and its zone, for messages. */
  fqdn: string;
  zone: string;
  value: string;
  /** The zone's authoritative servers. */
  servers: ReadonlyArray<DnsServer & { name?: string }>;
  /** Asks one server for the TXT values at fqdn. */
  txtAt: (server: DnsServer, fqdn: string) => Promise<{ rcode: number; values: string[] }>;
  /** Who wrote the record, for messages (`rfc2136 at 127.0.0.1:53`). */
  provider: string;
  timeoutMs?: number;
  intervalMs?: number;
  clock: Clock;
  /** Waits between rounds; injected so tests need no real sleeps. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/**
 * Resolves once every server answers `value` at `fqdn` (among any other
 * values: an apex and its wildcard share one name). Rejects with
 * DNS_PROPAGATION_TIMEOUT naming the servers that never did, and what they
 * answered last, after `timeoutMs`.
 */
export async function waitForPropagation(check: PropagationCheck): Promise<{ rounds: number; ms: number }> {
  const timeoutMs = check.timeoutMs ?? DEFAULT_PROPAGATION_TIMEOUT_MS;
  const intervalMs = check.intervalMs ?? DEFAULT_PROPAGATION_INTERVAL_MS;
  const sleep = check.sleep ?? abortableDelay;
  const start = check.clock.now().getTime();
  const pending = new Map(check.servers.map((s) => [describeServer(s), s]));
  const lastSeen = new Map<string, string>();
  let rounds = 0;
  for (;;) {
    rounds += 1;
    await Promise.all([...pending].map(async ([key, server]) => {
      try {
        const r = await check.txtAt(server, check.fqdn);
        if (r.values.includes(check.value)) pending.delete(key);
        else lastSeen.set(key, r.rcode !== 0 ? rcodeName(r.rcode) : r.values.length ? `${r.values.length} other TXT value(s)` : 'no TXT record');
      } catch (err) {
        if (check.signal?.aborted) throw err;
        lastSeen.set(key, errorMessage(err));
      }
    }));
    const elapsed = check.clock.now().getTime() - start;
    if (pending.size === 0) return { rounds, ms: elapsed };
    if (elapsed + intervalMs > timeoutMs) {
      const missing = [...pending].map(([key, s]) => `${s.name ? `${s.name} (${key})` : key}: ${lastSeen.get(key) ?? 'not asked'}`);
      throw new PadlockError('DNS_PROPAGATION_TIMEOUT',
        `the TXT record ${check.fqdn} (zone ${check.zone}, written by ${check.provider}) did not reach every authoritative server within ${Math.round(timeoutMs / 1000)} s; still missing on ${missing.join('; ')}. Check that these servers get the zone's updates (zone transfers, NOTIFY), or raise --dns-propagation-timeout`,
        { retryable: true, details: { fqdn: check.fqdn, zone: check.zone, provider: check.provider, missing: [...pending.keys()] } });
    }
    await sleep(intervalMs, check.signal);
  }
}
