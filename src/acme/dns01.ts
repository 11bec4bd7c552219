/**
 * DNS-01 (RFC 8555 section 8.4) as a challenge solver: the TXT record
 * `_acme-challenge.NAME` holds base64url(SHA-256(key authorization)).
 *
 * For each challenge it follows CNAMEs from `_acme-challenge.NAME` (so a
 * delegated name, such as acme-dns's, is written where the CA will look),
 * finds the zone, **records what it is about to create in the store**, asks
 * the provider to add it, and waits until every authoritative server of the
 * zone answers it. `cleanup()` removes exactly that value and forgets it.
 *
 * Crash safety: a record written by a process that died before its cleanup
 * is found in the store by the next `prepare()` of a solver for the same
 * provider, and removed. A record belongs to a process (host, pid and a
 * random id per process); it is a leftover when that process is gone (same
 * host, pid dead or reused) or when its deadline passed (another host).
 */
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Challenge, ChallengeSolver } from './solver.js';
import type { CertStore } from '../store/store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { DnsProvider, TxtRecord } from '../dns/providers/provider.js';
import { asProviderError } from '../dns/providers/provider.js';
import type { DnsLookup } from '../dns/lookup.js';
import { waitForPropagation, DEFAULT_PROPAGATION_INTERVAL_MS, DEFAULT_PROPAGATION_TIMEOUT_MS } from '../dns/propagation.js';
import type { DnsServer } from '../dns/transport.js';

/** The store state (no lineage) that lists every TXT record padlock has presented and not yet removed. */
export const DNS_RECORDS_STATE = 'padlock-dns01';
/** A presented record older than this (past its propagation timeout) from another host is a leftover. */
const VALIDATION_ALLOWANCE_MS = 5 * 60_000;
/** Records kept in the ledger at most; beyond, the oldest are dropped (and logged): a ledger must not grow without bound. */
export const MAX_LEDGER_RECORDS = 1000;

/** Who presented a record: the host, the pid, and a random id per process (pids are reused). */
export interface RecordOwner {
  host: string;
  pid: number;
  instance: string;
}

/** This process, as an owner of presented records. */
export const THIS_PROCESS: Readonly<RecordOwner> = Object.freeze({ host: hostname(), pid: process.pid, instance: randomUUID() });

export interface LedgerRecord extends TxtRecord {
  provider: string;
  host: string;
  pid: number;
  instance: string;
  createdAt: string;
  /** After this, any process may remove it. */
  expiresAt: string;
}

/** base64url(SHA-256(keyAuthorization)), RFC 8555 section 8.4. */
export function dns01Value(keyAuthorization: string): string {
  return createHash('sha256').update(keyAuthorization).digest('base64url');
}

/**
 * Whether a ledger record is a leftover that `owner` may clean: not its own,
 * and its process is gone (same host: pid not alive, or the pid is ours
 * now, as PID 1 in a restarted container) or its deadline passed. Pure but
 * for `alive`.
 */
export function isLeftover(r: LedgerRecord, owner: Readonly<RecordOwner>, now: Date, alive: (pid: number) => boolean): boolean {
  if (r.instance === owner.instance) return false;
  if (Date.parse(r.expiresAt) <= now.getTime()) return true;
  return r.host === owner.host && (r.pid === owner.pid || !alive(r.pid));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface Dns01SolverOptions {
  /** Builds the provider (reads its credentials) on first prepare(), and again after the provider refused a record (see prepare). */
  provider: () => Promise<DnsProvider>;
  lookup: DnsLookup;
  store: CertStore;
  clock: Clock;
  logger?: Logger;
  propagationTimeoutMs?: number;
  propagationIntervalMs?: number;
  /** Tests only: called at named points (`dns-presented`), to kill the process there. */
  faults?: (point: string) => void;
  owner?: Readonly<RecordOwner>;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export class Dns01Solver implements ChallengeSolver {
  readonly type = 'dns-01' as const;
  private provider: DnsProvider | undefined;
  private preparing: Promise<void> | undefined;
  private readonly presented = new Map<string, TxtRecord>();
  private readonly log: Logger;
  private readonly owner: Readonly<RecordOwner>;

  constructor(private readonly opts: Dns01SolverOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'dns-01' });
    this.owner = opts.owner ?? THIS_PROCESS;
  }

  describe(): string {
    return `DNS TXT records through ${this.provider?.describe() ?? 'the DNS provider'}`;
  }

  /**
   * Builds the provider, checks its credentials, and removes this provider's
   * leftovers from earlier processes. Once, unless the provider definitely
   * refused a record since (a bad TSIG key, a revoked token): then the next
   * order builds it again, reading the credentials anew, so a fixed
   * credentials file takes effect at the next attempt of a running daemon
   * rather than at its restart. Until the new one is built, the old provider
   * still removes what it presented.
   */
  prepare(): Promise<void> {
    this.preparing ??= (async () => {
      const provider = await this.opts.provider();
      await provider.prepare();
      // The one replaced (if any) is not closed: an order in flight may still be using it.
      this.provider = provider;
      await this.cleanLeftovers(provider);
    })().catch((err: unknown) => {
      this.preparing = undefined;
      throw err;
    });
    return this.preparing;
  }

  async present(challenge: Challenge): Promise<void> {
    await this.prepare();
    const provider = this.provider!;
    const value = dns01Value(challenge.keyAuthorization);
    const name = `_acme-challenge.${challenge.identifier.replace(/^\*\./, '')}`;
    const { name: fqdn, chain } = await this.opts.lookup.followCnames(name);
    if (chain.length) this.log.info('following CNAME delegation', { name, to: fqdn });
    const zone = provider.zoneFor ? await provider.zoneFor(fqdn).catch((err: unknown) => {
      const error = asProviderError(err, provider.describe(), undefined, `finding the zone of ${fqdn}`);
      if (!error.retryable) this.preparing = undefined; // as for a refused record, below
      throw error;
    }) : await this.opts.lookup.findZone(fqdn);
    const record: TxtRecord = { fqdn, zone, value };
    const now = this.opts.clock.now();
    const ttl = (this.opts.propagationTimeoutMs ?? DEFAULT_PROPAGATION_TIMEOUT_MS) + VALIDATION_ALLOWANCE_MS;
    // Written down before it exists, so a crash right after the provider's write still leaves a trace to clean.
    const entry: LedgerRecord = { ...record, provider: provider.key, ...this.owner, createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + ttl).toISOString() };
    await this.ledger((list) => [...list, entry]);
    this.presented.set(challenge.token, record);
    try {
      await provider.present(record).catch(async (err: unknown) => {
        const error = asProviderError(err, provider.describe(), zone, `adding the TXT record ${fqdn}`);
        // A definite refusal (a bad key, a refused update) created nothing: forget it rather than retry its cleanup forever.
        if (!error.retryable) {
          // The credentials may be fixed before the next attempt: read them again then.
          this.preparing = undefined;
          this.presented.delete(challenge.token);
          await this.ledger((list) => list.filter((r) => !(r.instance === this.owner.instance && r.fqdn === fqdn && r.value === value)));
        }
        throw error;
      });
      this.opts.faults?.('dns-presented');
      const servers: ReadonlyArray<DnsServer & { name?: string }> = await this.opts.lookup.nameservers(zone);
      const r = await waitForPropagation({
        fqdn, zone, value, servers, provider: provider.describe(), clock: this.opts.clock,
        txtAt: (server, n) => this.opts.lookup.txtAt(server, n),
        timeoutMs: this.opts.propagationTimeoutMs ?? DEFAULT_PROPAGATION_TIMEOUT_MS,
        intervalMs: this.opts.propagationIntervalMs ?? DEFAULT_PROPAGATION_INTERVAL_MS,
        ...(this.opts.sleep ? { sleep: this.opts.sleep } : {}),
      });
      this.log.info('TXT record visible on every authoritative server', { fqdn, zone, servers: servers.length, ms: r.ms });
    } catch (err) {
      // The order never calls cleanup() for a challenge that failed to present: remove it here.
      await this.cleanup(challenge).catch(() => undefined);
      throw err;
    }
  }

  async cleanup(challenge: Challenge): Promise<void> {
    const record = this.presented.get(challenge.token);
    if (!record || !this.provider) return;
    const provider = this.provider;
    try {
      await provider.cleanup(record);
    } catch (err) {
      // Kept in the ledger: the next start tries again.
      this.log.warn('could not remove a challenge TXT record; padlock will try again at its next start', { fqdn: record.fqdn, zone: record.zone, error: errorMessage(err) });
      this.presented.delete(challenge.token);
      return;
    }
    this.presented.delete(challenge.token);
    await this.ledger((list) => list.filter((r) => !(r.instance === this.owner.instance && r.fqdn === record.fqdn && r.value === record.value)));
  }

  async close(): Promise<void> {
    await this.preparing?.catch(() => undefined);
    await this.provider?.close?.();
  }

  hint(acmeType: string, name: string): string {
    const where = this.provider?.describe() ?? 'the DNS provider';
    const bare = name.replace(/^\*\./, '');
    switch (acmeType) {
      case 'dns':
      case 'unauthorized':
      case 'incorrectResponse':
        return `The CA did not find the expected TXT record at _acme-challenge.${bare} (written through ${where}): check that the CA's resolvers reach the same authoritative servers padlock checked (no split-horizon DNS), and that a CNAME on _acme-challenge.${bare}, if any, points where ${where} writes.`;
      case 'caa':
        return `A CAA record on ${bare} or a parent forbids this CA; add the CA's domain to it.`;
      case 'rateLimited':
        return 'The CA is rate limiting; wait until the time it names before retrying.';
      default:
        return `Check the TXT record at _acme-challenge.${bare} (written through ${where}).`;
    }
  }

  /** Removes this provider's leftovers: records from processes that are gone, or past their deadline. */
  private async cleanLeftovers(provider: DnsProvider): Promise<void> {
    const now = this.opts.clock.now();
    const all = await this.readLedger();
    const stale = all.filter((r) => r.provider === provider.key && isLeftover(r, this.owner, now, pidAlive));
    for (const r of stale) {
      try {
        await provider.cleanup({ fqdn: r.fqdn, zone: r.zone, value: r.value });
        this.log.info('removed a challenge TXT record left by an earlier padlock process', { fqdn: r.fqdn, zone: r.zone, createdAt: r.createdAt });
      } catch (err) {
        this.log.warn('could not remove a leftover challenge TXT record; will try again next time', { fqdn: r.fqdn, zone: r.zone, error: errorMessage(err) });
        continue;
      }
      await this.ledger((list) => list.filter((x) => !(x.instance === r.instance && x.fqdn === r.fqdn && x.value === r.value)));
    }
  }

  private async readLedger(): Promise<LedgerRecord[]> {
    const state = await this.opts.store.readState(DNS_RECORDS_STATE);
    return Array.isArray(state?.['records']) ? (state['records'] as LedgerRecord[]) : [];
  }

  private async ledger(change: (list: LedgerRecord[]) => LedgerRecord[]): Promise<void> {
    await this.opts.store.updateState(DNS_RECORDS_STATE, (state) => {
      const list = Array.isArray(state?.['records']) ? (state['records'] as LedgerRecord[]) : [];
      const next = change(list);
      return { ...state, records: next.length > MAX_LEDGER_RECORDS ? next.slice(-MAX_LEDGER_RECORDS) : next };
    });
  }
}
