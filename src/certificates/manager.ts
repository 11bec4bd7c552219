/**
 * The daemon's certificate manager: keeps a certificate for every HTTPS site
 * in the desired state, and hands the serving layer a fresh snapshot after
 * each change.
 *
 * It re-plans (state/reconcile.ts) whenever the sites change, a job ends, a
 * renewal falls due or a backoff ends, and on a node-cron tick (`renewCron`,
 * every 10 minutes by default), which also re-reads state other processes
 * (`padlock revoke`, `padlock renew`) may have changed.
 * It runs at most `concurrency` orders at once and one job per name; the
 * store lock also keeps other processes off the same name. Every ACME
 * certificate goes through obtainLineage (verify before store); local-CA
 * certificates are verified against the local root the same way.
 */
import { EventEmitter } from 'node:events';
import { schedule, type ScheduledTask } from 'node-cron';
import { obtainLineage, failureOf, recordFailure, verifyAndStore } from './obtain.js';
import type { FailureRecord } from './policy.js';
import { planCertificates, type Action, type Plan, type StoredCertificate } from '../state/reconcile.js';
import type { SiteSpec } from '../state/desired-state.js';
import type { CertStore, LineageMeta } from '../store/store.js';
import { TokenMapResponder, type TokenMap, type ChallengeResponder } from '../acme/http01.js';
import { AriSources, checkAri } from './ari-check.js';
import type { AccountOptions } from '../acme/account.js';
import { describeCertificate } from '../tls/inspect.js';
import type { TrustAnchors } from '../tls/roots.js';
import { generatePrivateKey } from '../tls/keys.js';
import { ensureLocalRoot, issueLocalCertificate, LOCAL_ISSUER, LOCAL_ROOT_SERVER } from '../tls/local-ca.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { PadlockError, errorMessage } from '../errors.js';

/** What the TLS layer serves: name -> PEMs, with a version so changed certificates get new contexts. */
export type CertificateSnapshot = ReadonlyMap<string, { certPem: string; keyPem: string; version: string }>;

export interface ManagerOptions {
  store: CertStore;
  clock: Clock;
  logger: Logger;
  roots: TrustAnchors;
  tokens: TokenMap;
  /** The ACME directory URL for public names. */
  server: string;
  account: Pick<AccountOptions, 'email' | 'agreeTos' | 'externalAccountBinding' | 'serverCa' | 'timeoutMs'>;
  /** The port the daemon answers HTTP-01 on, recorded in lineage metadata. */
  httpPort: number;
  concurrency: number;
  /** node-cron expression for the periodic full check (re-reads state changed by other processes). */
  renewCron: string;
  onSnapshot: (snapshot: CertificateSnapshot) => void;
  /** Metrics hook for every request to the CA. */
  onAcmeResponse?: (ms: number, status: number) => void;
  /** How HTTP-01 is answered; default: the daemon's own :80 through `tokens`. Companion mode uses nginx's webroot. */
  responder?: ChallengeResponder;
  /** The challenge settings recorded with each lineage (default: standalone on `httpPort`). */
  challenge?: LineageMeta['challenge'];
}

/** One name's certificate status, for the status API. */
export interface CertificateStatus {
  name: string;
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  /** The last failure was a rate limit (the CA's, or padlock's own governor). */
  rateLimited?: boolean;
  state: 'valid' | 'obtaining' | 'renewing' | 'waiting' | 'missing' | 'retired';
  renewAt?: string;
  lastError?: { code: string; message: string; acmeType?: string };
  nextAttemptAt?: string;
}

interface Cached {
  version: number;
  /** The directory URL of the CA that issued it (asked for ARI). */
  server: string;
  certPem: string;
  keyPem: string;
  info: NonNullable<StoredCertificate['cert']>;
}

/** A served certificate as seen by a full check (for expiry alerts). */
export interface CheckedCertificate {
  name: string;
  notBefore: Date;
  notAfter: Date;
  /** The site's contact email (padlock.email / LETSENCRYPT_EMAIL), if any. */
  email?: string;
}

export interface ManagerEvents {
  cert_obtained: [{ name: string; issuer: string; notAfter: Date; renewal: boolean; previousFailures: number }];
  cert_failed: [{ name: string; error: PadlockError }];
  /** After each full check (start, cron tick, checkNow): every certificate of a wanted HTTPS site. */
  checked: [CheckedCertificate[]];
}

export class CertificateManager extends EventEmitter<ManagerEvents> {
  private sites: SiteSpec[] = [];
  private readonly cache = new Map<string, Cached>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly queue: Array<Extract<Action, { kind: 'obtain' | 'renew' }>> = [];
  private timer: NodeJS.Timeout | undefined;
  private tick: ScheduledTask | undefined;
  private lastPlan: Plan = { actions: [] };
  private failures = new Map<string, FailureRecord>();
  private readonly states = new Map<string, Record<string, unknown> | null>();
  /**
   * Names not to try again before a time, whatever the stored state says: after a busy lock or an error
   * that could not be recorded (disk full), so a failing job can never spin.
   */
  private readonly holds = new Map<string, number>();
  private fullRefresh = true;
  private readonly ari: AriSources;
  /** Cancels orders in flight when the daemon stops. */
  private readonly abort = new AbortController();
  /**
   * Nothing is planned before start(): the daemon calls it once :80 listens (in every worker), so an
   * HTTP-01 challenge is never offered to the CA before padlock can answer it.
   */
  private stopped = true;
  private planning: Promise<void> | undefined;
  private replanRequested = false;
  private readonly responder: ChallengeResponder;
  private readonly log: Logger;

  constructor(private readonly opts: ManagerOptions) {
    super();
    this.log = opts.logger.child({ component: 'certificates' });
    this.ari = new AriSources({
      serverCaFor: () => opts.account.serverCa,
      logger: this.log,
      ...(opts.onAcmeResponse ? { onResponse: opts.onAcmeResponse } : {}),
    });
    this.responder = opts.responder ?? new TokenMapResponder(opts.tokens, `padlock's HTTP server on port ${opts.httpPort}`);
  }

  /** Loads every stored certificate (before the HTTPS port opens) and publishes the first snapshot. */
  async load(): Promise<void> {
    for (const name of await this.opts.store.listLineages()) {
      // One unreadable lineage must not stop the others from serving.
      await this.refresh(name).catch((err: unknown) => this.log.error('cannot read this certificate; skipping it', { name, error: errorMessage(err) }));
    }
    this.publish();
  }

  /** Replaces the wanted sites whole and re-plans. */
  setSites(sites: SiteSpec[]): void {
    this.sites = sites;
    this.publish();
    this.replan();
  }

  start(): void {
    this.stopped = false;
    this.tick = schedule(this.opts.renewCron, () => {
      this.fullRefresh = true;
      this.replan();
    }, { name: 'padlock-renewal-check', noOverlap: true, unref: true });
    this.replan();
  }

  /** Stops planning and cancels orders in flight (not counted as failures); waits up to `waitMs` for them to end. */
  async stop(waitMs = 10_000): Promise<void> {
    this.stopped = true;
    this.abort.abort(new Error('padlock is stopping'));
    await this.tick?.destroy();
    this.ari.close();
    this.tick = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  /** Per-name status for the admin API, sorted by name. */
  status(): CertificateStatus[] {
    const out: CertificateStatus[] = [];
    for (const a of this.lastPlan.actions) {
      const c = this.cache.get(a.name);
      const base: CertificateStatus = {
        name: a.name,
        state: 'valid',
        ...(c ? { issuer: c.info.issuer, notBefore: c.info.notBefore.toISOString(), notAfter: c.info.notAfter.toISOString() } : {}),
        ...(this.failures.get(a.name)?.rateLimited ? { rateLimited: true } : {}),
        ...(this.failures.get(a.name)?.lastError ? { lastError: this.failures.get(a.name)!.lastError! } : {}),
        ...(this.failures.get(a.name)?.nextAttemptAt ? { nextAttemptAt: this.failures.get(a.name)!.nextAttemptAt! } : {}),
      };
      const busy = this.running.has(a.name);
      switch (a.kind) {
        case 'keep': out.push({ ...base, state: busy ? 'renewing' : 'valid', renewAt: a.dueAt.toISOString() }); break;
        case 'obtain': out.push({ ...base, state: busy ? 'obtaining' : 'missing' }); break;
        case 'renew': out.push({ ...base, state: 'renewing' }); break;
        case 'wait': out.push({ ...base, state: c && c.info.notAfter > this.opts.clock.now() ? 'valid' : 'waiting', nextAttemptAt: a.until.toISOString() }); break;
        case 'retire': out.push({ ...base, state: 'retired' }); break;
      }
    }
    return out;
  }

  /**
   * Re-reads every state and plans now, as the cron tick does; resolves when
   * the planning pass is done (jobs it started may still be running; see `idle`).
   */
  async checkNow(): Promise<void> {
    this.fullRefresh = true;
    this.replan();
    while (this.planning) await this.planning;
  }

  /** Resolves when no job is running or queued. */
  async idle(): Promise<void> {
    while (this.running.size || this.queue.length || this.planning) {
      await Promise.allSettled([...this.running.values(), this.planning]);
      await new Promise((r) => setImmediate(r));
    }
  }

  /** How many orders are in flight now (for tests and metrics). */
  get inFlight(): number {
    return this.running.size;
  }

  /** Plans again soon; coalesces bursts into one planning pass. */
  private replan(): void {
    if (this.stopped) return;
    if (this.planning) {
      this.replanRequested = true;
      return;
    }
    this.planning = this.plan()
      .catch((err: unknown) => this.log.error('planning failed', { error: errorMessage(err) }))
      .finally(() => {
        this.planning = undefined;
        if (this.replanRequested) {
          this.replanRequested = false;
          this.replan();
        }
      });
  }

  private async plan(): Promise<void> {
    const stored: StoredCertificate[] = [];
    const names = new Set([...this.cache.keys(), ...this.sites.filter((s) => s.https).map((s) => s.host)]);
    const full = this.fullRefresh;
    this.fullRefresh = false;
    for (const name of names) {
      // States change only through jobs here (re-read after each) or from outside (the periodic pass re-reads all).
      if (full || !this.states.has(name)) {
        this.states.set(name, await this.opts.store.readState(name).catch((err: unknown) => {
          this.log.error('cannot read this certificate\'s state; planning without it', { name, error: errorMessage(err) });
          return null;
        }));
      }
      const state = this.states.get(name) ?? null;
      const failure = failureOf(state);
      const cached = this.cache.get(name);
      let cert = cached?.info;
      // RFC 9773: the CA's window replaces the lifetime rule when it offers ARI.
      const source = cached && cert?.issuer === 'acme' ? await this.ari.get(cached.server) : undefined;
      if (cached && cert && source) {
        const ari = await checkAri({ source, store: this.opts.store, name, certPem: cached.certPem, notBefore: cert.notBefore, notAfter: cert.notAfter, clock: this.opts.clock, logger: this.log, state });
        if (ari?.polled) this.states.delete(name);
        if (ari) cert = { ...cert, ari: { due: ari.due, at: ari.at, reason: ari.reason, ...(ari.pollAt ? { pollAt: ari.pollAt } : {}) } };
      }
      stored.push({
        name,
        ...(cert ? { cert } : {}),
        ...(failure ? { failure } : {}),
        ...(state?.['revokedAt'] ? { revoked: true } : {}),
      });
    }
    const now = this.opts.clock.now();
    const plan = planCertificates(this.sites, stored, now);
    if (full) {
      const checked: CheckedCertificate[] = [];
      for (const site of this.sites) {
        const c = site.https ? this.cache.get(site.host) : undefined;
        if (c) checked.push({ name: site.host, notBefore: c.info.notBefore, notAfter: c.info.notAfter, ...(site.email ? { email: site.email } : {}) });
      }
      this.emit('checked', checked);
    }
    this.failures = new Map(stored.filter((s) => s.failure).map((s) => [s.name, s.failure!]));
    this.lastPlan = plan;
    const due = new Set(plan.actions.filter((a) => a.kind === 'obtain' || a.kind === 'renew').map((a) => a.name));
    for (let i = this.queue.length - 1; i >= 0; i--) if (!due.has(this.queue[i]!.name)) this.queue.splice(i, 1);
    let heldUntil: number | undefined;
    for (const a of plan.actions) {
      if ((a.kind === 'obtain' || a.kind === 'renew') && !this.running.has(a.name) && !this.queue.some((q) => q.name === a.name)) {
        const hold = this.holds.get(a.name);
        if (hold !== undefined && hold > now.getTime()) {
          heldUntil = Math.min(heldUntil ?? Infinity, hold);
          continue;
        }
        this.holds.delete(a.name);
        this.queue.push(a);
      }
    }
    this.pump();
    // Besides the cron tick, wake exactly when the next renewal falls due or a backoff ends.
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const wakeAt = Math.min(plan.nextCheck?.getTime() ?? Infinity, heldUntil ?? Infinity);
    if (wakeAt !== Infinity) {
      const wait = Math.max(250, Math.min(wakeAt - now.getTime(), 2 ** 31 - 1));
      this.timer = setTimeout(() => this.replan(), wait);
      this.timer.unref();
    }
  }

  private pump(): void {
    while (!this.stopped && this.running.size < this.opts.concurrency && this.queue.length) {
      const action = this.queue.shift()!;
      const job = this.runJob(action).finally(() => {
        this.running.delete(action.name);
        this.states.delete(action.name);
        this.pump();
        this.replan();
      });
      this.running.set(action.name, job);
    }
  }

  private async runJob(action: Extract<Action, { kind: 'obtain' | 'renew' }>): Promise<void> {
    const { name } = action;
    const log = this.log.child({ name });
    log.info(action.kind === 'renew' ? 'renewing certificate' : 'obtaining certificate', { reason: action.reason, issuer: action.issuer });
    try {
      const notAfter = action.issuer === 'local' ? await this.obtainLocal(action) : await this.obtainAcme(action);
      await this.refresh(name);
      this.publish();
      log.info('certificate ready', { notAfter: notAfter.toISOString() });
      this.emit('cert_obtained', { name, issuer: action.issuer, notAfter, renewal: action.kind === 'renew', previousFailures: this.failures.get(name)?.failures ?? 0 });
    } catch (err) {
      if (this.abort.signal.aborted) {
        log.info('order cancelled because padlock is stopping; it will be tried again after the restart');
        return;
      }
      const error = err instanceof PadlockError ? err : new PadlockError('ACME_PROBLEM', errorMessage(err), { cause: err });
      if (error.code === 'STORE_LOCKED') {
        this.holds.set(name, this.opts.clock.now().getTime() + 30_000);
        log.info('another padlock is working on this certificate; will look again in 30 s');
        return;
      }
      // The stored failure record (if it could be written) sets the real backoff; this is the floor.
      this.holds.set(name, this.opts.clock.now().getTime() + 30_000);
      log.warn('certificate failed; the current one (if any) keeps serving', { code: error.code, error: error.message });
      this.emit('cert_failed', { name, error });
    }
  }

  private async obtainAcme(action: Extract<Action, { kind: 'obtain' | 'renew' }>): Promise<Date> {
    const meta: Omit<LineageMeta, 'updatedAt'> = {
      name: action.name,
      domains: action.domains,
      server: this.opts.server,
      keyType: 'ecdsa',
      ellipticCurve: 'P-256',
      challenge: this.opts.challenge ?? { type: 'standalone', port: this.opts.httpPort },
      ...(action.email ?? this.opts.account.email ? { email: (action.email ?? this.opts.account.email)! } : {}),
      ...(action.profile ? { profile: action.profile } : {}),
    };
    const result = await obtainLineage({ store: this.opts.store, clock: this.opts.clock, logger: this.log, roots: this.opts.roots, ...(this.opts.onAcmeResponse ? { onAcmeResponse: this.opts.onAcmeResponse } : {}) }, {
      meta,
      account: { ...this.opts.account, ...(action.email ? { email: action.email } : {}) },
      responder: this.responder,
      signal: this.abort.signal,
    });
    return result.notAfter;
  }

  private async obtainLocal(action: Extract<Action, { kind: 'obtain' | 'renew' }>): Promise<Date> {
    const { store, clock } = this.opts;
    const unlock = await store.lock(action.name);
    try {
      const root = await ensureLocalRoot(store, clock);
      const key = await generatePrivateKey({ keyType: 'ecdsa', ellipticCurve: 'P-256' });
      const bundle = await issueLocalCertificate(root, action.domains, key, clock);
      const { verified } = await verifyAndStore(
        { store, clock, logger: this.log, roots: { pem: root.certPem, count: 1, sources: ['padlock local CA'] } },
        bundle,
        { name: action.name, domains: action.domains, server: LOCAL_ISSUER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: this.opts.httpPort } },
      );
      return verified.leaf.notAfter;
    } catch (err) {
      await recordFailure(store, action.name, err, clock).catch(() => undefined);
      throw err;
    } finally {
      await unlock();
    }
  }

  /** Re-reads one lineage into the cache (or drops it when gone). */
  private async refresh(name: string): Promise<void> {
    const lineage = await this.opts.store.readLineage(name);
    if (!lineage || lineage.meta.server === LOCAL_ROOT_SERVER) {
      this.cache.delete(name);
      return;
    }
    const cached = this.cache.get(name);
    if (cached && cached.version === lineage.version) return;
    const leaf = describeCertificate(lineage.bundle.cert);
    this.cache.set(name, {
      version: lineage.version,
      server: lineage.meta.server,
      certPem: lineage.bundle.fullchain,
      keyPem: lineage.bundle.privkey,
      info: {
        domains: lineage.meta.domains,
        issuer: lineage.meta.server === LOCAL_ISSUER ? 'local' : 'acme',
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        obtainedAt: new Date(lineage.meta.updatedAt),
      },
    });
  }

  /** Hands the TLS layer the certificates of the HTTPS sites wanted now. */
  private publish(): void {
    const snapshot = new Map<string, { certPem: string; keyPem: string; version: string }>();
    for (const site of this.sites) {
      if (!site.https) continue;
      const c = this.cache.get(site.host);
      if (c) snapshot.set(site.host, { certPem: c.certPem, keyPem: c.keyPem, version: `${site.host}#${c.version}` });
    }
    this.opts.onSnapshot(snapshot);
  }
}
