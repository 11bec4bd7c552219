/**
 * ARI (RFC 9773) at the edge: reads a certificate's stored renewal window,
 * and asks CAs for fresh ones when a poll is due, apart from planning.
 *
 * - `storedAriDecision` is the decision from what the store already holds
 *   (no network), so the daemon's planning pass and `padlock renew` never wait
 *   on a CA to decide.
 * - `AriPoller.pollDue` fetches the due polls with a concurrency limit and an
 *   overall deadline, so one slow CA cannot stall the others; what it learns
 *   is written to the lineage state, and the caller decides again.
 * - `AriSources` keeps one anonymous client per CA for these reads.
 *
 * A CA without `renewalInfo` in its directory gets no poll: the lifetime
 * rule in policy.ts applies.
 */
import { generatePrivateKey } from '../tls/keys.js';
import { AcmeClient } from '../acme/client.js';
import { certId, fetchRenewalInfo, renewalInfoUrl, type RenewalInfoSource } from '../acme/ari.js';
import {
  ariDecision, applyRenewalInfo, applyAriError, pastWindowForFreshCertificate, ARI_RENEWAL_MIN_INTERVAL_MS,
  type AriState, type AriDecision,
} from './ari-policy.js';
import type { CertStore, LineageState } from '../store/store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { AcmeProblemError, PadlockError, caRetryAfter, errorMessage } from '../errors.js';
import { Governor } from './governor.js';

type Json = Record<string, unknown>;
const iso = (d: Date | undefined) => (d ? d.toISOString() : undefined);
const date = (v: unknown) => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v) : undefined);
const window = (raw: unknown) => {
  const w = raw as Json | undefined;
  return w && date(w['start']) && date(w['end']) ? { start: date(w['start'])!, end: date(w['end'])! } : undefined;
};

/** How many renewal-information requests run at once in one poll pass. */
export const ARI_POLL_CONCURRENCY = 4;
/** A poll pass stops starting requests after this long; the rest wait for the next pass. */
export const ARI_POLL_DEADLINE_MS = 60_000;

/** AriState as stored (ISO strings), tied to the CertID it describes. */
export function ariToJson(state: AriState, id: string): Json {
  return JSON.parse(JSON.stringify({
    certId: id,
    window: state.window ? { start: iso(state.window.start), end: iso(state.window.end) } : undefined,
    firstWindow: state.firstWindow ? { start: iso(state.firstWindow.start), end: iso(state.firstWindow.end) } : undefined,
    chosen: iso(state.chosen),
    explanationURL: state.explanationURL,
    lastFetchAt: iso(state.lastFetchAt),
    nextPollAt: iso(state.nextPollAt),
    lastError: state.lastError ? { ...state.lastError, at: iso(state.lastError.at) } : undefined,
    consecutiveErrors: state.consecutiveErrors,
  })) as Json;
}

/** The stored state for the certificate with this CertID; a state for an older certificate does not count. */
export function ariFromJson(raw: unknown, id: string): AriState | undefined {
  if (!raw || typeof raw !== 'object' || (raw as Json)['certId'] !== id) return undefined;
  const r = raw as Json;
  const e = r['lastError'] as Json | undefined;
  const out: AriState = {};
  const w = window(r['window']);
  if (w) out.window = w;
  const first = window(r['firstWindow']);
  if (first) out.firstWindow = first;
  if (date(r['chosen'])) out.chosen = date(r['chosen'])!;
  if (typeof r['explanationURL'] === 'string') out.explanationURL = r['explanationURL'];
  if (date(r['lastFetchAt'])) out.lastFetchAt = date(r['lastFetchAt'])!;
  if (date(r['nextPollAt'])) out.nextPollAt = date(r['nextPollAt'])!;
  if (e && date(e['at'])) out.lastError = { at: date(e['at'])!, message: String(e['message'] ?? ''), ...(typeof e['code'] === 'string' ? { code: e['code'] } : {}) };
  if (typeof r['consecutiveErrors'] === 'number') out.consecutiveErrors = r['consecutiveErrors'];
  return out;
}

/** When padlock last renewed this lineage because of ARI (lineage state `ariRenewedAt`), for the loop guard. */
export function lastAriRenewal(state: LineageState | null | undefined): Date | undefined {
  return date(state?.['ariRenewedAt']);
}

/** The certificate facts ARI decisions need. */
export interface AriCertificate {
  certPem: string;
  notBefore: Date;
  notAfter: Date;
  /**
   * Its CertID when the caller already knows it (the daemon keeps one per
   * certificate it holds; computing it parses the certificate, about 1.5 ms);
   * null when it has none. Absent: computed from `certPem` when needed.
   */
  certId?: string | null;
}

/** The CertID of `cert`: the one it carries, else computed; null when it has none (no AKI, or unparseable). */
export function certIdOf(cert: Pick<AriCertificate, 'certPem' | 'certId'>): string | null {
  if (cert.certId !== undefined) return cert.certId;
  try {
    return certId(cert.certPem);
  } catch {
    return null;
  }
}

/**
 * The ARI decision from the stored state alone (no network). Undefined when
 * the certificate has no CertID (no AKI: it renews by its lifetime), and,
 * with `known`, when nothing was ever stored for this certificate (a CA
 * without ARI, or not asked yet). The decision's `pollAt` says when a poll
 * is due.
 *
 * With `known` and no ARI record in `state`, the certificate is not even
 * parsed: the CertID (about 1.5 ms of ASN.1 per certificate) would only be
 * compared with a record that is not there, and the daemon asks this for
 * every stored certificate on every planning pass.
 */
export function storedAriDecision(state: LineageState | null, cert: AriCertificate, now: Date, options: { known?: boolean } = {}): AriDecision | undefined {
  if (options.known && !state?.['ari']) return undefined;
  const id = certIdOf(cert);
  if (id === null) return undefined;
  const ari = ariFromJson(state?.['ari'], id);
  if (!ari && options.known) return undefined;
  return ariDecision(ari, cert, now, lastAriRenewal(state));
}

/** A client for unauthenticated reads (directory, renewalInfo); it never signs anything, so its key is throwaway. */
export async function anonymousClient(server: string, options: { serverCa?: string; timeoutMs?: number; logger?: Logger; onResponse?: (ms: number, status: number) => void } = {}): Promise<AcmeClient> {
  return AcmeClient.create({ directoryUrl: server, accountKey: await generatePrivateKey({ keyType: 'ecdsa' }), ...options });
}

/**
 * One anonymous client per CA for renewal-information reads. `get` resolves
 * undefined for a CA that offers no ARI, for local issuers (`padlock:`), and
 * for a CA whose directory could not be read in the last `retryMs` (5
 * minutes), so an outage costs one request per pass, not one per
 * certificate; the read that failed rejects with its typed error (a 503's
 * `Retry-After` included), so the caller can keep the CA's wait. A CA's
 * answer (ARI or not) is kept for `ttlMs` (1 hour), so a CA that starts
 * offering ARI is noticed without a restart.
 */
export class AriSources {
  private readonly entries = new Map<string, { client?: Promise<AcmeClient>; checkedAt?: number; ari?: boolean; failedUntil?: number }>();
  constructor(private readonly opts: {
    timeoutMs?: number;
    logger?: Logger;
    onResponse?: (ms: number, status: number) => void;
    retryMs?: number;
    ttlMs?: number;
  } = {}) {}

  async get(server: string, serverCa?: string): Promise<RenewalInfoSource | undefined> {
    if (server.startsWith('padlock:')) return undefined;
    const key = `${server}\0${serverCa ?? ''}`;
    let entry = this.entries.get(key);
    if (!entry) this.entries.set(key, (entry = {}));
    const now = Date.now();
    if (entry.failedUntil && entry.failedUntil > now) return undefined;
    if (entry.checkedAt !== undefined && now - entry.checkedAt > (this.opts.ttlMs ?? 3_600_000)) {
      void entry.client?.then((c) => c.close(), () => undefined);
      delete entry.client;
      delete entry.checkedAt;
    }
    try {
      entry.client ??= anonymousClient(server, {
        ...(serverCa ? { serverCa } : {}),
        ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
        ...(this.opts.logger ? { logger: this.opts.logger } : {}),
        ...(this.opts.onResponse ? { onResponse: this.opts.onResponse } : {}),
      });
      const client = await entry.client;
      const directory = await client.directory();
      entry.checkedAt ??= now;
      delete entry.failedUntil;
      return renewalInfoUrl(directory) ? client : undefined;
    } catch (err) {
      entry.failedUntil = now + (this.opts.retryMs ?? 5 * 60_000);
      void entry.client?.then((c) => c.close(), () => undefined);
      delete entry.client;
      throw err;
    }
  }

  close(): void {
    for (const e of this.entries.values()) void e.client?.then((c) => c.close(), () => undefined);
    this.entries.clear();
  }
}

/** One certificate whose renewal information may need a poll. */
export interface AriPollItem extends AriCertificate {
  name: string;
  /** Its issuer's id (the CA directory URL), for a CA-wide wait the CA asks for while being polled. */
  issuerId: string;
  /** When padlock stored it (for the "fresh certificate, window already past" warning). */
  obtainedAt?: Date;
  /** The lineage state as last read (saves a read; null when none). */
  state: LineageState | null;
  /** The issuer's renewal-information source (undefined: no ARI). */
  source: () => Promise<RenewalInfoSource | undefined>;
}

export interface AriPollerOptions {
  store: CertStore;
  clock: Clock;
  logger: Logger;
  /** Requests at once (default {@link ARI_POLL_CONCURRENCY}). */
  concurrency?: number;
  /** A pass starts no request after this long (default {@link ARI_POLL_DEADLINE_MS}). */
  deadlineMs?: number;
  random?: () => number;
}

/** Fetches due renewal information with bounded concurrency and time; see the module comment. */
export class AriPoller {
  constructor(private readonly opts: AriPollerOptions) {}

  /**
   * Polls every item whose stored decision says a poll is due now. Resolves
   * at the deadline at the latest, with the names whose ARI state was
   * written (`polled`) and those left for the next pass (`skipped`). Requests
   * still running at the deadline finish in the background and write their
   * result; `signal` stops starting new ones.
   */
  async pollDue(items: readonly AriPollItem[], signal?: AbortSignal): Promise<{ polled: string[]; skipped: string[]; unsupported: string[] }> {
    const now = this.opts.clock.now();
    const due = items.filter((item) => {
      const d = storedAriDecision(item.state, item, now);
      return d?.pollAt !== undefined && d.pollAt.getTime() <= now.getTime();
    });
    const polled: string[] = [];
    const unsupported: string[] = [];
    const queue = [...due];
    const deadline = Date.now() + (this.opts.deadlineMs ?? ARI_POLL_DEADLINE_MS);
    const worker = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        if (signal?.aborted || Date.now() >= deadline) {
          queue.unshift(item);
          return;
        }
        const r = await this.pollOne(item).catch((err: unknown) => {
          this.opts.logger.warn('could not record renewal information', { name: item.name, error: errorMessage(err) });
          return 'failed' as const;
        });
        if (r === 'polled') polled.push(item.name);
        else if (r === 'unsupported') unsupported.push(item.name);
      }
    };
    const workers = Array.from({ length: Math.max(1, Math.min(this.opts.concurrency ?? ARI_POLL_CONCURRENCY, due.length)) }, worker);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
    });
    await Promise.race([Promise.all(workers), timeout]);
    clearTimeout(timer);
    const done = new Set([...polled, ...unsupported]);
    return { polled: [...polled], skipped: due.map((i) => i.name).filter((n) => !done.has(n)), unsupported: [...unsupported] };
  }

  /** One poll: fetch, apply, store. `unsupported` when the issuer offers no ARI (now) or the certificate has no CertID. */
  private async pollOne(item: AriPollItem): Promise<'polled' | 'unsupported'> {
    const id = certIdOf(item);
    if (id === null) return 'unsupported';
    const { store, clock, logger } = this.opts;
    let ari = ariFromJson(item.state?.['ari'], id);
    const now = () => clock.now();
    try {
      const source = await item.source();
      if (!source) return 'unsupported';
      const info = await fetchRenewalInfo(source, item.certPem, clock, id);
      ari = applyRenewalInfo(ari, info, now(), this.opts.random ?? Math.random);
      logger.info('renewal information from the CA', {
        name: item.name,
        windowStart: iso(info.window.start),
        windowEnd: iso(info.window.end),
        renewAt: iso(ari.chosen),
        ...(info.explanationURL ? { explanationURL: info.explanationURL } : {}),
      });
      if (pastWindowForFreshCertificate(ari, item.obtainedAt, now())) {
        logger.warn("the CA's renewal window (ARI) for this certificate, obtained moments ago, is already past; padlock renews a lineage because of ARI at most once an hour unless the CA moves the window", {
          name: item.name,
          obtainedAt: iso(item.obtainedAt),
          windowEnd: iso(info.window.end),
          guardMinutes: ARI_RENEWAL_MIN_INTERVAL_MS / 60_000,
        });
      }
    } catch (err) {
      const e = err instanceof PadlockError ? err : undefined;
      const retryAfter = (err instanceof AcmeProblemError ? err.retryAfter : caRetryAfter(err)) ?? date(e?.details['retryAfter']);
      // A CA that answers "unavailable, come back at T" asked every client to wait: keep it for all its certificates.
      if (e?.code === 'ACME_CA_UNAVAILABLE' && retryAfter) {
        await new Governor(store, item.issuerId, clock).setHold({ until: retryAfter, reason: `${typeof e.details['status'] === 'number' ? `HTTP ${e.details['status']}` : 'unavailable'}: ${e.message}` })
          .catch((holdErr: unknown) => logger.warn('could not keep the CA\'s request to wait', { error: errorMessage(holdErr) }));
      }
      ari = applyAriError(ari, { message: errorMessage(err), ...(e ? { code: e.code, retryable: e.retryable } : {}), ...(retryAfter ? { retryAfter } : {}) }, now());
      logger.warn('could not read renewal information; keeping the last window or the lifetime rule', { name: item.name, error: errorMessage(err) });
    }
    const next = ari;
    await store.updateState(item.name, (state) => ({ ...state, ari: ariToJson(next, id) }));
    return 'polled';
  }
}
