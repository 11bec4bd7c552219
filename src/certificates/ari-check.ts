/**
 * ARI (RFC 9773) at the edge: asks the CA for a certificate's renewal window
 * when a poll is due, keeps what it learnt in the lineage state (`ari`), and
 * returns the decision from acme/ari.ts. Used by `padlock renew` and the
 * daemon alike. A CA without `renewalInfo` gets undefined: the lifetime rule
 * in policy.ts applies.
 */
import { generatePrivateKey } from '../tls/keys.js';
import { AcmeClient } from '../acme/client.js';
import {
  certId, ariDecision, applyRenewalInfo, applyAriError, fetchRenewalInfo, renewalInfoUrl,
  type AriState, type AriDecision, type RenewalInfoSource,
} from '../acme/ari.js';
import type { CertStore } from '../store/store.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { AcmeProblemError, PadlockError, errorMessage } from '../errors.js';

type Json = Record<string, unknown>;
const iso = (d: Date | undefined) => (d ? d.toISOString() : undefined);
const date = (v: unknown) => (typeof v === 'string' ? new Date(v) : undefined);

/** AriState as stored (ISO strings), tied to the CertID it describes. */
export function ariToJson(state: AriState, id: string): Json {
  return JSON.parse(JSON.stringify({
    certId: id,
    window: state.window ? { start: iso(state.window.start), end: iso(state.window.end) } : undefined,
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
  const w = r['window'] as Json | undefined;
  const e = r['lastError'] as Json | undefined;
  const out: AriState = {};
  if (w && date(w['start']) && date(w['end'])) out.window = { start: date(w['start'])!, end: date(w['end'])! };
  if (date(r['chosen'])) out.chosen = date(r['chosen'])!;
  if (typeof r['explanationURL'] === 'string') out.explanationURL = r['explanationURL'];
  if (date(r['lastFetchAt'])) out.lastFetchAt = date(r['lastFetchAt'])!;
  if (date(r['nextPollAt'])) out.nextPollAt = date(r['nextPollAt'])!;
  if (e && date(e['at'])) out.lastError = { at: date(e['at'])!, message: String(e['message'] ?? ''), ...(typeof e['code'] === 'string' ? { code: e['code'] } : {}) };
  if (typeof r['consecutiveErrors'] === 'number') out.consecutiveErrors = r['consecutiveErrors'];
  return out;
}

/** A client for unauthenticated reads (directory, renewalInfo); it never signs anything, so its key is throwaway. */
export async function anonymousClient(server: string, options: { serverCa?: string; timeoutMs?: number; logger?: Logger; onResponse?: (ms: number, status: number) => void } = {}): Promise<AcmeClient> {
  return new AcmeClient({ directoryUrl: server, accountKey: await generatePrivateKey({ keyType: 'ecdsa' }), ...options });
}

/**
 * One anonymous client per CA for renewal-information reads. A CA whose
 * directory cannot be read is skipped for `retryMs` (5 minutes), so an
 * outage costs one request per pass, not one per certificate. Local
 * (`padlock:`) issuers have none.
 */
export class AriSources {
  private readonly entries = new Map<string, { client?: Promise<AcmeClient>; failedUntil?: number }>();
  constructor(private readonly opts: {
    serverCaFor: (server: string) => Promise<string | undefined> | string | undefined;
    timeoutMs?: number;
    logger?: Logger;
    onResponse?: (ms: number, status: number) => void;
    retryMs?: number;
  }) {}

  async get(server: string): Promise<AcmeClient | undefined> {
    if (server.startsWith('padlock:')) return undefined;
    let entry = this.entries.get(server);
    if (!entry) this.entries.set(server, (entry = {}));
    if (entry.failedUntil && entry.failedUntil > Date.now()) return undefined;
    try {
      entry.client ??= (async () => {
        const serverCa = await this.opts.serverCaFor(server);
        return anonymousClient(server, {
          ...(serverCa ? { serverCa } : {}),
          ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
          ...(this.opts.logger ? { logger: this.opts.logger } : {}),
          ...(this.opts.onResponse ? { onResponse: this.opts.onResponse } : {}),
        });
      })();
      const client = await entry.client;
      await client.directory();
      delete entry.failedUntil;
      return client;
    } catch {
      entry.failedUntil = Date.now() + (this.opts.retryMs ?? 5 * 60_000);
      return undefined;
    }
  }

  close(): void {
    for (const e of this.entries.values()) void e.client?.then((c) => c.close(), () => undefined);
    this.entries.clear();
  }
}

export interface AriCheckInput {
  source: RenewalInfoSource;
  store: CertStore;
  name: string;
  certPem: string;
  notBefore: Date;
  notAfter: Date;
  clock: Clock;
  logger: Logger;
  random?: () => number;
  /** The lineage state if the caller has it already (saves a read). */
  state?: Record<string, unknown> | null;
}

/**
 * The ARI decision for a lineage's current certificate, polling the CA only
 * when the stored state says a poll is due. Undefined when the CA offers no
 * ARI, the certificate has no CertID (no AKI), or the CA cannot be reached
 * for its directory (the caller then uses the lifetime rule).
 */
export async function checkAri(input: AriCheckInput): Promise<(AriDecision & { polled: boolean }) | undefined> {
  const { source, store, name, certPem, clock, logger } = input;
  let directory: Record<string, unknown>;
  try {
    directory = await source.directory();
  } catch (err) {
    logger.debug('no directory for ARI; using the lifetime rule', { name, error: errorMessage(err) });
    return undefined;
  }
  if (!renewalInfoUrl(directory)) return undefined;
  let id: string;
  try {
    id = certId(certPem);
  } catch {
    return undefined;
  }
  const now = clock.now();
  const facts = { notBefore: input.notBefore, notAfter: input.notAfter };
  const known = input.state !== undefined ? input.state : await store.readState(name);
  let ari = ariFromJson(known?.['ari'], id);
  let decision = ariDecision(ari, facts, now);
  if (!(decision.pollAt && decision.pollAt.getTime() <= now.getTime())) return { ...decision, polled: false };
  try {
    const info = await fetchRenewalInfo(source, certPem, clock);
    ari = applyRenewalInfo(ari, info, now, input.random ?? Math.random);
    logger.info('renewal information from the CA', {
      name,
      windowStart: iso(info.window.start),
      windowEnd: iso(info.window.end),
      renewAt: iso(ari.chosen),
      ...(info.explanationURL ? { explanationURL: info.explanationURL } : {}),
    });
  } catch (err) {
    const e = err instanceof PadlockError ? err : undefined;
    const retryAfter = err instanceof AcmeProblemError ? err.retryAfter : typeof e?.details['retryAfter'] === 'string' ? new Date(e.details['retryAfter']) : undefined;
    ari = applyAriError(ari, { message: errorMessage(err), ...(e ? { code: e.code, retryable: e.retryable } : {}), ...(retryAfter ? { retryAfter } : {}) }, now);
    logger.warn('could not read renewal information; keeping the last window or the lifetime rule', { name, error: errorMessage(err) });
  }
  const polled = ari;
  await store.updateState(name, (state) => ({ ...state, ari: ariToJson(polled, id) }));
  decision = ariDecision(ari, facts, now);
  return { ...decision, polled: true };
}
