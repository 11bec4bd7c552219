/**
 * The daemon's scheduler over the certificate engine: keeps a certificate for
 * every HTTPS site in the desired state, and hands the serving layer a fresh
 * snapshot after each change. Every decision and every issuance is the
 * engine's (engine.ts); this file only decides *when* to ask it.
 *
 * It re-plans (state/reconcile.ts) whenever the sites change, a job ends, a
 * renewal falls due or a backoff ends, and on a periodic tick (`renewCron`,
 * every 10 minutes by default), which also re-reads state other processes
 * (`padlock revoke`, `padlock renew`) may have changed.
 * - Planning never waits on a CA: renewal information (ARI) is polled in a
 *   separate, bounded pass (engine.ariPoller), which asks for a new plan when
 *   it learnt something.
 * - It runs at most `concurrency` orders at once and one job per name; the
 *   store lock also keeps other processes off the same name.
 * - It notices a newer current version written to the store by another
 *   process (cron, `padlock issue`, `padlock import`, another replica) within
 *   seconds: the store's watch, plus a periodic full comparison of versions
 *   (`refreshMs`) in case a notification was missed.
 */
import { schedule, type ScheduledTask } from 'node-cron';
import type { CertificateEngine, Assessment, ObtainReason } from './engine.js';
import { failureOf, isHeld } from './engine.js';
import type { FailureRecord } from './policy.js';
import { planCertificates, wantedCertificates, type Action, type Plan, type StoredCertificate } from '../state/reconcile.js';
import type { SiteSpec } from '../state/desired-state.js';
import type { LineageMeta, LineageState } from '../store/store.js';
import type { LineageSpec } from './issuer.js';
import { storedAriDecision } from './ari-poller.js';
import { certificateValidity } from '../tls/inspect.js';
import { LOCAL_ISSUER, LOCAL_ROOT_LINEAGE, LOCAL_ROOT_SERVER } from '../tls/local-ca.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { asPadlockError, errorMessage } from '../errors.js';
import { forEachLimit } from '../concurrency.js';
import { Governor } from './governor.js';
import type { CertificateStatus, CheckedCertificate } from '../events.js';

export type { CertificateStatus, CheckedCertificate } from '../events.js';

/** What the TLS layer serves: name -> PEMs, with a version so changed certificates get new contexts. */
export type CertificateSnapshot = ReadonlyMap<string, { certPem: string; keyPem: string; version: string }>;

/** Lineages read at once before the ports open, and in the background afterwards. */
const LOAD_CONCURRENCY = 32;
const BACKGROUND_LOAD_CONCURRENCY = 4;

export interface ManagerOptions {
  engine: CertificateEngine;
  clock: Clock;
  logger: Logger;
  /** The ACME directory URL for public names. */
  server: string;
  /** Registration settings for a CA where padlock has no account yet. */
  account: { agreeTos: boolean; email?: string };
  /** How HTTP-01 is answered, recorded in each lineage's settings (default: standalone on `httpPort`). */
  challenge: LineageMeta['challenge'];
  /** The DNS-01 settings of the provider covering these names (config `dns:`), for wildcards and `padlock.challenge=dns-01`. */
  dnsChallengeFor?: (names: string[]) => LineageMeta['challenge'] | undefined;
  /** The PEM file trusted for the CA's HTTPS and the extra trust anchors, recorded in lineage settings so `padlock renew` works on the same store. */
  serverCaFile?: string;
  trustedRootsFile?: string;
  concurrency: number;
  /** node-cron expression for the periodic full check (re-reads state changed by other processes). */
  renewCron: string;
  onSnapshot: (snapshot: CertificateSnapshot) => void;
  /** How often every lineage's version is compared with the store, in case a change notification was missed. Default 60 s. */
  refreshMs?: number;
}

interface Cached {
  version: number;
  /** The leaf's serial number: with the version, what identifies this exact certificate. */
  serial: string;
  meta: LineageMeta;
  certPem: string;
  keyPem: string;
  info: NonNullable<StoredCertificate['cert']>;
  /** Set when the issuer says it must be replaced whatever its dates (checked once per version). */
  superseded?: string;
}

export class CertificateManager {
  private sites: SiteSpec[] = [];
  private readonly cache = new Map<string, Cached>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly queue: Array<Extract<Action, { kind: 'obtain' | 'renew' }>> = [];
  private timer: NodeJS.Timeout | undefined;
  private tick: ScheduledTask | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private lastPlan: Plan = { actions: [] };
  private failures = new Map<string, FailureRecord>();
  private readonly states = new Map<string, LineageState | null>();
  /**
   * Names not to try again before a time, whatever the stored state says: after a busy lock, a wait the
   * CA asked for, or an error that could not be recorded (disk full), so a failing job can never spin.
   */
  private readonly holds = new Map<string, number>();
  private fullRefresh = true;
  /** Cancels orders in flight when the daemon stops. */
  private readonly abort = new AbortController();
  /**
   * Nothing is planned before start(): the daemon calls it once :80 listens (in every worker), so an
   * HTTP-01 challenge is never offered to the CA before padlock can answer it.
   */
  private stopped = true;
  private planning: Promise<void> | undefined;
  private replanRequested = false;
  private passes = 0;
  private polling: Promise<void> | undefined;
  /** Why a name is held (a wait the CA asked for), for the status API. */
  private readonly holdReasons = new Map<string, { code: string; message: string }>();
  /** Names whose lineage was read at least once (loaded or found absent); the rest load in the background. */
  private readonly loaded = new Set<string>();
  private background: Promise<void> | undefined;
  /** Issuers (by id) that offered no renewal information, and until when not to ask again. */
  private readonly noAri = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: ManagerOptions) {
    this.log = opts.logger.child({ component: 'certificates' });
  }

  /** The engine's events (cert_obtained, cert_renewed, cert_failed, cert_checked, cert_changed). */
  get events(): CertificateEngine['events'] {
    return this.opts.engine.events;
  }

  /**
   * Loads, before the HTTPS port opens, the stored certificates the current
   * sites need (in parallel), publishes the first snapshot, and starts
   * watching the store for versions other processes write. Every other
   * stored lineage is read in the background afterwards (it only matters for
   * the status of retired names), and a site added later reads its own on
   * demand. So a replica joining a fleet with 10,000 certificates starts in
   * the time its own routes need, not the time the whole store needs.
   */
  async load(): Promise<void> {
    const store = this.opts.engine.store;
    this.unwatch = store.watch((name) => void this.onStoreChange(name));
    const names = await store.listLineages();
    const wanted = new Set(this.wantedNames());
    await this.loadNames(names.filter((n) => wanted.has(n)), LOAD_CONCURRENCY);
    this.publish();
    const every = this.opts.refreshMs ?? 60_000;
    this.refreshTimer = setInterval(() => void this.compareVersions(), every);
    this.refreshTimer.unref();
    const rest = names.filter((n) => !wanted.has(n));
    this.background = this.loadNames(rest, BACKGROUND_LOAD_CONCURRENCY).then(() => this.publish());
  }

  /** Reads these lineages into the cache, `limit` at a time; one unreadable lineage is logged and skipped. */
  private async loadNames(names: readonly string[], limit: number): Promise<void> {
    await forEachLimit(names, limit, async (name) => {
      if (this.loaded.has(name)) return;
      this.loaded.add(name);
      await this.refresh(name).catch((err: unknown) => this.log.error('cannot read this certificate; skipping it', { name, error: errorMessage(err) }));
    });
  }

  /** Lineage names the current sites need (a wildcard's serves the names under it). */
  private wantedNames(): string[] {
    return [...wantedCertificates(this.sites).keys()];
  }

  /** Replaces the wanted sites whole and re-plans. */
  setSites(sites: SiteSpec[]): void {
    this.sites = sites;
    const wanted = new Set(this.wantedNames());
    // Bounded state: what is kept per name goes when neither a site nor a stored certificate names it.
    for (const map of [this.holds, this.states, this.holdReasons] as Array<Map<string, unknown>>) {
      for (const name of map.keys()) if (!wanted.has(name) && !this.cache.has(name)) map.delete(name);
    }
    for (const name of this.loaded) if (!wanted.has(name) && !this.cache.has(name)) this.loaded.delete(name);
    this.publish();
    this.replan();
  }

  /**
   * Issues, now, the local-CA certificates the current sites need: the local
   * CA needs no network, so the daemon calls this before :443 opens and no
   * local name is ever refused for want of a certificate.
   */
  async obtainLocalNow(): Promise<void> {
    const plan = planCertificates(this.sites, await this.stored(false), this.opts.clock.now());
    const local = plan.actions.filter((a): a is Extract<Action, { kind: 'obtain' | 'renew' }> => (a.kind === 'obtain' || a.kind === 'renew') && a.issuer === 'local');
    // Registered as running, so the store notifications of these writes are not taken for another process's.
    await Promise.all(local.map((a) => {
      const job = this.runJob(a).finally(() => this.running.delete(a.name));
      this.running.set(a.name, job);
      return job;
    }));
    this.publish();
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
    this.tick = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }

  /** Per-name status for the admin API, sorted by name. */
  status(): CertificateStatus[] {
    const out: CertificateStatus[] = [];
    const now = this.opts.clock.now().getTime();
    for (const a of this.lastPlan.actions) {
      const c = this.cache.get(a.name);
      const failure = this.failures.get(a.name);
      const hold = this.holds.get(a.name);
      const nextAttemptAt = failure?.nextAttemptAt ?? (hold !== undefined && hold > now ? new Date(hold).toISOString() : undefined);
      const base: CertificateStatus = {
        name: a.name,
        state: 'valid',
        ...(c ? { issuer: c.info.issuer, notBefore: c.info.notBefore.toISOString(), notAfter: c.info.notAfter.toISOString() } : {}),
        ...(failure?.rateLimited ? { rateLimited: true } : {}),
        ...(failure?.lastError ? { lastError: failure.lastError } : {}),
        ...(nextAttemptAt ? { nextAttemptAt } : {}),
      };
      const busy = this.running.has(a.name);
      const held = !busy && hold !== undefined && hold > now ? this.holdReasons.get(a.name) : undefined;
      switch (a.kind) {
        case 'keep': out.push({ ...base, state: busy ? 'renewing' : 'valid', renewAt: a.dueAt.toISOString(), renewReason: a.basis }); break;
        case 'obtain': out.push({ ...base, state: busy ? 'obtaining' : held ? 'waiting' : 'missing', ...(held && !base.lastError ? { lastError: held } : {}) }); break;
        case 'renew':
          // Due, but held back by a wait (the CA asked for it): say so, rather than "renewing".
          if (held) out.push({ ...base, state: c && c.info.notAfter.getTime() > now ? 'valid' : 'waiting', renewReason: a.reason, ...(!base.lastError ? { lastError: held } : {}) });
          else out.push({ ...base, state: 'renewing', renewReason: a.reason });
          break;
        case 'wait': out.push({ ...base, state: c && c.info.notAfter.getTime() > now ? 'valid' : 'waiting', nextAttemptAt: a.until.toISOString() }); break;
        case 'retire': out.push({ ...base, state: 'retired' }); break;
      }
    }
    return out;
  }

  /**
   * Re-reads every state and plans now, as the periodic tick does; resolves
   * when the planning pass is done (jobs it started may still be running; see `idle`).
   */
  async checkNow(): Promise<void> {
    this.fullRefresh = true;
    this.replan();
    while (this.planning) await this.planning;
  }

  /** Resolves when no job, planning pass, renewal-information poll or background load is running or queued. */
  async idle(): Promise<void> {
    while (this.running.size || this.queue.length || this.planning || this.polling) {
      await Promise.allSettled([...this.running.values(), this.planning, this.polling, this.background]);
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Planning passes since start (each re-reads what changed and decides); for tests and diagnostics. */
  get planningPasses(): number {
    return this.passes;
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

  /** Everything planning needs per name, from the cache and the stored states (no CA contact). */
  private async stored(full: boolean): Promise<StoredCertificate[]> {
    // A site added after start reads its own lineage now, not when the background load reaches it.
    await this.loadNames(this.wantedNames().filter((n) => !this.loaded.has(n)), LOAD_CONCURRENCY);
    const out: StoredCertificate[] = [];
    const names = new Set([...this.cache.keys(), ...this.wantedNames()]);
    const now = this.opts.clock.now();
    for (const name of names) {
      // States change only through jobs here (re-read after each), the poller (re-read after it) or from
      // outside (the periodic pass re-reads all).
      if (full || !this.states.has(name)) {
        this.states.set(name, await this.opts.engine.store.readState(name).catch((err: unknown) => {
          this.log.error('cannot read this certificate\'s state; planning without it', { name, error: errorMessage(err) });
          return null;
        }));
      }
      const state = this.states.get(name) ?? null;
      const failure = failureOf(state);
      const cached = this.cache.get(name);
      let cert = cached?.info;
      // RFC 9773: the CA's window, as last stored, replaces the lifetime rule (polls happen apart, see pollAri).
      const ari = cached && cert ? storedAriDecision(state, { certPem: cached.certPem, notBefore: cert.notBefore, notAfter: cert.notAfter }, now, { known: true }) : undefined;
      if (cert && ari) cert = { ...cert, ari: { due: ari.due, at: ari.at, reason: ari.reason, ...(ari.pollAt ? { pollAt: ari.pollAt } : {}) } };
      out.push({
        name,
        ...(cert ? { cert } : {}),
        ...(failure ? { failure } : {}),
        ...(state?.['revokedAt'] ? { revoked: true } : {}),
        ...(cached?.superseded ? { superseded: cached.superseded } : {}),
      });
    }
    return out;
  }

  private async plan(): Promise<void> {
    this.passes += 1;
    const full = this.fullRefresh;
    this.fullRefresh = false;
    const stored = await this.stored(full);
    const now = this.opts.clock.now();
    const plan = planCertificates(this.sites, stored, now);
    if (full) {
      const checked: CheckedCertificate[] = [];
      for (const [name, site] of wantedCertificates(this.sites)) {
        const c = this.cache.get(name);
        if (c) checked.push({ name, names: c.info.domains, notBefore: c.info.notBefore, notAfter: c.info.notAfter, ...(site.email ? { email: site.email } : {}) });
      }
      this.events.emit('cert_checked', checked);
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
        this.holdReasons.delete(a.name);
        this.queue.push(a);
      }
    }
    this.pump();
    this.pollAri(stored, now);
    // Besides the periodic tick, wake exactly when the next renewal falls due or a backoff ends.
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const wakeAt = Math.min(plan.nextCheck?.getTime() ?? Infinity, heldUntil ?? Infinity);
    if (wakeAt !== Infinity) {
      const wait = Math.max(250, Math.min(wakeAt - now.getTime(), 2 ** 31 - 1));
      this.timer = setTimeout(() => this.replan(), wait);
      this.timer.unref();
    }
  }

  /**
   * Starts a renewal-information pass for the certificates whose poll is
   * due, unless one is running. It never delays planning; when it learnt
   * something, it asks for a new plan.
   */
  private pollAri(stored: readonly StoredCertificate[], now: Date): void {
    if (this.polling || this.stopped) return;
    const t = now.getTime();
    const items = stored.flatMap((s) => {
      const c = this.cache.get(s.name);
      if (!c || this.running.has(s.name) || (this.noAri.get(c.meta.server) ?? 0) > t) return [];
      // The local CA offers no renewal information (RFC 9773 is ACME's), and deciding whether a poll is due
      // parses the certificate (its CertID, ~1.5 ms each): with 10,000 local names that blocked serving for 25 s.
      if (c.info.issuer === 'local') return [];
      const state = this.states.get(s.name) ?? null;
      const d = storedAriDecision(state, { certPem: c.certPem, notBefore: c.info.notBefore, notAfter: c.info.notAfter }, now);
      if (!d?.pollAt || d.pollAt.getTime() > t) return [];
      return [{ name: s.name, certPem: c.certPem, notBefore: c.info.notBefore, notAfter: c.info.notAfter, obtainedAt: c.info.obtainedAt, state,
        issuerId: this.opts.engine.issuerFor(specOf(c.meta)).id, source: () => this.opts.engine.issuerFor(specOf(c.meta)).renewalInfo() }];
    });
    if (items.length === 0) return;
    this.polling = this.withoutHeldIssuers(items)
      .then((free) => this.opts.engine.ariPoller.pollDue(free, this.abort.signal))
      .then(({ polled, unsupported }) => {
        // An issuer without ARI is not asked again for an hour (its directory is re-read then).
        for (const name of unsupported) {
          const server = this.cache.get(name)?.meta.server;
          if (server) this.noAri.set(server, this.opts.clock.now().getTime() + 3_600_000);
        }
        for (const name of polled) this.states.delete(name);
        if (polled.length) this.replan();
      })
      .catch((err: unknown) => this.log.warn('renewal information pass failed', { error: errorMessage(err) }))
      .finally(() => {
        this.polling = undefined;
      });
  }

  /** The items whose CA has not asked every client to wait (a 503's Retry-After): no poll goes to a CA in its wait. */
  private async withoutHeldIssuers<T extends { issuerId: string }>(items: readonly T[]): Promise<T[]> {
    const held = new Set<string>();
    for (const id of new Set(items.map((i) => i.issuerId))) {
      if (await new Governor(this.opts.engine.store, id, this.opts.clock).hold().catch(() => undefined)) held.add(id);
    }
    return items.filter((i) => !held.has(i.issuerId));
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

  /** The lineage settings for a planned action. */
  private specFor(action: Extract<Action, { kind: 'obtain' | 'renew' }>): LineageSpec {
    const email = action.email ?? this.opts.account.email;
    const local = action.issuer === 'local';
    return {
      name: action.name,
      domains: action.domains,
      server: local ? LOCAL_ISSUER : this.opts.server,
      keyType: 'ecdsa',
      ellipticCurve: 'P-256',
      challenge: (action.challenge === 'dns-01' && !local ? this.opts.dnsChallengeFor?.(action.domains) : undefined) ?? this.opts.challenge,
      ...(email ? { email } : {}),
      ...(action.profile && !local ? { profile: action.profile } : {}),
      ...(this.opts.serverCaFile && !local ? { serverCa: this.opts.serverCaFile } : {}),
      ...(this.opts.trustedRootsFile && !local ? { trustedRoots: this.opts.trustedRootsFile } : {}),
    };
  }

  private async runJob(action: Extract<Action, { kind: 'obtain' | 'renew' }>): Promise<void> {
    const { name } = action;
    const log = this.log.child({ name });
    log.info(action.kind === 'renew' ? 'renewing certificate' : 'obtaining certificate', { reason: action.reason, issuer: action.issuer });
    try {
      const result = await this.opts.engine.obtain(this.specFor(action), {
        reason: action.reason as ObtainReason,
        // What this plan saw: another replica or a cron renewal may have stored a newer one since.
        expectVersion: this.cache.get(name)?.version ?? null,
        account: { agreeTos: this.opts.account.agreeTos },
        signal: this.abort.signal,
      });
      await this.refresh(name);
      this.publish();
      log.info(result.alreadyDone ? 'another padlock process stored this certificate meanwhile; serving it' : 'certificate ready', { notAfter: result.notAfter.toISOString() });
    } catch (err) {
      if (this.abort.signal.aborted) {
        log.info('order cancelled because padlock is stopping; it will be tried again after the restart');
        return;
      }
      const error = asPadlockError(err, `obtaining ${name}`);
      if (error.code === 'STORE_LOCKED') {
        this.holds.set(name, this.opts.clock.now().getTime() + 30_000);
        log.info('another padlock is working on this certificate; will look again in 30 s');
        return;
      }
      if (isHeld(error)) {
        const until = Date.parse(String(error.details['retryAfter']));
        this.holds.set(name, Number.isNaN(until) ? this.opts.clock.now().getTime() + 30_000 : until);
        this.holdReasons.set(name, { code: error.code, message: error.message });
        log.info('waiting before trying again', { until: error.details['retryAfter'], reason: error.message });
        return;
      }
      // The stored failure record (if it could be written) sets the real backoff; this is the floor.
      this.holds.set(name, this.opts.clock.now().getTime() + 30_000);
      log.warn('certificate failed; the current one (if any) keeps serving', { code: error.code, error: error.message });
    }
  }

  /** A store notification: re-read the lineage; a newer version from elsewhere is served and announced. */
  private async onStoreChange(name: string): Promise<void> {
    if (this.running.has(name)) return; // our own job re-reads it when it ends
    const prev = this.cache.get(name);
    const before = prev ? `${prev.version}#${prev.serial}` : undefined;
    this.loaded.add(name);
    try {
      await this.refresh(name);
    } catch (err) {
      this.log.warn('cannot read a changed certificate; keeping the one in memory', { name, error: errorMessage(err) });
      return;
    }
    const after = this.cache.get(name);
    if (!after || `${after.version}#${after.serial}` === before) {
      if (before !== undefined && !after) {
        // Deleted from outside (padlock delete): stop serving it, and obtain a new one if a site still wants it.
        this.states.delete(name);
        this.publish();
        this.log.info('the certificate was deleted from the store by another process', { name });
        this.replan();
      }
      return;
    }
    this.states.delete(name);
    this.publish();
    this.log.info('a newer certificate appeared in the store (written by another padlock process); serving it', { name, version: after.version, notAfter: after.info.notAfter.toISOString() });
    this.events.emit('cert_changed', { name, names: after.info.domains, version: after.version, notAfter: after.info.notAfter, ...(after.meta.email ? { email: after.meta.email } : {}) });
    this.replan();
  }

  /** The periodic full comparison: any lineage whose current version differs from the cached one is re-read. */
  private async compareVersions(): Promise<void> {
    try {
      const versions = await this.opts.engine.store.currentVersions();
      const changed = new Set<string>();
      for (const [name, version] of versions) if (this.cache.get(name)?.version !== version && name !== LOCAL_ROOT_LINEAGE) changed.add(name);
      for (const name of this.cache.keys()) if (!versions.has(name)) changed.add(name);
      for (const name of changed) await this.onStoreChange(name);
    } catch (err) {
      this.log.warn('could not compare stored versions; will try again', { error: errorMessage(err) });
    }
  }

  /** Re-reads one lineage into the cache (or drops it when gone). */
  private async refresh(name: string): Promise<void> {
    const lineage = await this.opts.engine.store.readLineage(name);
    if (!lineage || lineage.meta.server === LOCAL_ROOT_SERVER || lineage.meta.domains.length === 0) {
      this.cache.delete(name);
      return;
    }
    const cached = this.cache.get(name);
    if (cached && cached.version === lineage.version && cached.certPem === lineage.bundle.fullchain) return;
    const leaf = certificateValidity(lineage.bundle.cert);
    const superseded = await this.opts.engine.issuerFor(specOf(lineage.meta)).supersedes(lineage, this.opts.engine.store).catch(() => undefined);
    this.cache.set(name, {
      version: lineage.version,
      serial: leaf.serialNumber,
      meta: lineage.meta,
      certPem: lineage.bundle.fullchain,
      keyPem: lineage.bundle.privkey,
      info: {
        domains: lineage.meta.domains,
        issuer: lineage.meta.server === LOCAL_ISSUER ? 'local' : 'acme',
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        obtainedAt: new Date(lineage.meta.updatedAt),
      },
      ...(superseded ? { superseded } : {}),
    });
  }

  /** Hands the TLS layer the certificates of the HTTPS sites wanted now. */
  private publish(): void {
    const snapshot = new Map<string, { certPem: string; keyPem: string; version: string }>();
    // A host under a wanted wildcard has no entry: the TLS layer's wildcard lookup serves it.
    for (const [name, site] of wantedCertificates(this.sites)) {
      const c = this.cache.get(name);
      // The serial too: a lineage deleted and obtained again starts at version 1 again, with another certificate.
      if (c) snapshot.set(site.host, { certPem: c.certPem, keyPem: c.keyPem, version: `${site.host}#${c.version}#${c.serial}` });
    }
    this.opts.onSnapshot(snapshot);
  }
}

function specOf(meta: LineageMeta): LineageSpec {
  const { updatedAt: _u, ...spec } = meta;
  return spec;
}

export type { Assessment };
