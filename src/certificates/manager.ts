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
 *
 * ## Serving before everything is read
 * `load()` reads nothing before it returns: it publishes every routed name
 * as *pending* and reads the stored certificates in the background (the
 * routed ones first, a few at a time, yielding to the event loop). A
 * handshake for a pending name reads that one certificate at once through
 * `certificateFor` (one read per name in flight), and a local name with no
 * usable certificate gets one from the local CA right there. So :443 can
 * open as soon as the routes are known, and a start with 10,000 stored
 * certificates no longer grows with the number of certificates. Planning
 * waits until every routed certificate was read, so it never mistakes one
 * not read yet for one missing.
 */
import { Cron } from 'croner';
import type { CertificateEngine, Assessment, ObtainReason } from './engine.js';
import { failureOf, isHeld } from './engine.js';
import type { FailureRecord } from './policy.js';
import { lineageNameFor, planCertificates, wantedCertificates, type Action, type Plan, type StoredCertificate } from '../state/reconcile.js';
import type { SiteSpec } from '../state/desired-state.js';
import type { LineageMeta, LineageState } from '../store/store.js';
import type { LineageSpec } from './issuer.js';
import { certIdOf, storedAriDecision, type AriPollItem } from './ari-poller.js';
import { servedLeaf } from '../tls/leaf-facts.js';
import { LOCAL_ISSUER, LOCAL_ROOT_LINEAGE, LOCAL_ROOT_SERVER } from '../tls/local-ca.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { asPadlockError, errorMessage } from '../errors.js';
import { forEachLimit, timeSlicer } from '../concurrency.js';
import { Governor } from './governor.js';
import type { CertificateStatus, CheckedCertificate } from '../events.js';

export type { CertificateStatus, CheckedCertificate } from '../events.js';

/** One certificate as the TLS layer serves it (tls/contexts.ts CertificateEntry). */
export interface ServedCertificate {
  certPem: string;
  keyPem: string;
  /** Changes whenever the certificate does, so a renewed one gets a new TLS context. */
  version: string;
}

/** What the TLS layer serves: name -> PEMs, with a version so changed certificates get new contexts. */
export type CertificateSnapshot = ReadonlyMap<string, ServedCertificate>;

/**
 * Lineages read at once by the background load. Each read waits on I/O (the
 * fs store's reads run in libuv's pool of 4 threads; Redis pipelines them),
 * so a few in flight keep it busy without queueing much in front of anything else.
 */
const LOAD_CONCURRENCY = 8;
/** Lineage states read at once by a planning pass that re-reads them all. */
const STATE_READ_CONCURRENCY = 8;
/** A planning pass, the background load and the ARI item pass yield to the event loop after this much work. */
const SLICE_MS = 5;
/** Certificates read in a burst (the background load, a handshake's read) reach the TLS layer in one snapshot after this delay. */
const PUBLISH_DELAY_MS = 100;

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
  /** Cron expression (croner) for the periodic full check (re-reads state changed by other processes). */
  renewCron: string;
  /**
   * Hands the TLS layer the certificates in memory for the HTTPS sites, and
   * the names of the HTTPS sites whose certificate must be read first (or,
   * for a local name, issued): a handshake for one of those asks
   * `certificateFor`. Each call replaces the last whole.
   */
  onSnapshot: (snapshot: CertificateSnapshot, pending: ReadonlySet<string>) => void;
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
  /** Its ARI CertID, computed the first time it is needed (parsing costs ~1.5 ms); null when it has none. */
  certId?: string | null;
}

export class CertificateManager {
  private sites: SiteSpec[] = [];
  private readonly cache = new Map<string, Cached>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly queue: Array<Extract<Action, { kind: 'obtain' | 'renew' }>> = [];
  /**
   * Per queued name, the version the planning pass that queued it saw (null: none). The job hands it to the
   * engine, which orders nothing when the store holds another version by then: the cache may already hold a
   * certificate another replica (or this process's previous job) stored after that pass read it.
   */
  private readonly plannedVersion = new Map<string, number | null>();
  /**
   * Names whose store notification arrived while a job of ours ran for them. Re-read when the job ends: a job
   * that found the lock busy ends without reading the store, and the other replica's write it was waiting
   * for would otherwise wait for the periodic comparison (up to `refreshMs`).
   */
  private readonly changedWhileRunning = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private tick: Cron | undefined;
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
  /** Reads in flight, one per name, shared by the background load, handshakes and planning. */
  private readonly loading = new Map<string, Promise<void>>();
  /** The last read error logged per name, so a name that keeps failing is logged once, not per handshake. */
  private readonly loadErrors = new Map<string, string>();
  /** The background read of the routed names at start; planning waits for it. */
  private wantedLoad: Promise<void> | undefined;
  private background: Promise<void> | undefined;
  private publishTimer: NodeJS.Timeout | undefined;
  /** The HTTPS sites by lineage name (`wantedCertificates`: a wildcard's is `wildcard_.BASE`; names under a wanted wildcard have none). */
  private httpsSites = new Map<string, SiteSpec>();
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
   * Starts serving from the store: watches it for versions other processes
   * write, publishes every HTTPS site as pending, and reads the stored
   * certificates in the background, the routed ones first (then every other
   * stored lineage, which only matters for the status of retired names).
   * Resolves at once, without reading a certificate: a handshake reads its
   * own through `certificateFor` if the background load has not reached it
   * yet. See the module comment.
   */
  async load(): Promise<void> {
    const store = this.opts.engine.store;
    this.unwatch = store.watch((name) => void this.onStoreChange(name));
    this.publish();
    const every = this.opts.refreshMs ?? 60_000;
    this.refreshTimer = setInterval(() => void this.compareVersions(), every);
    this.refreshTimer.unref();
    this.wantedLoad = this.loadNames(this.wantedNames());
    this.background = this.wantedLoad.then(async () => {
      this.publish();
      if (this.abort.signal.aborted) return;
      const names = await store.listLineages().catch((err: unknown) => {
        this.log.warn('cannot list the stored certificates; only the routed ones are loaded', { error: errorMessage(err) });
        return [] as string[];
      });
      await this.loadNames(names.filter((n) => !this.loaded.has(n)));
      this.publish();
    });
  }

  /**
   * The certificate a handshake for `host` (an HTTPS site's host, exact or
   * `*.` wildcard) gets now: read from the store first if it is not in
   * memory yet (one read per name in flight, however many handshakes wait),
   * and, for a local-CA site without a usable one (none stored, expired, or
   * signed by a replaced root), issued by the local CA first. Undefined when
   * `host` is no HTTPS site, its certificate cannot be read (logged; the
   * next handshake tries again) or there is none: the handshake is then
   * refused. Never rejects.
   */
  async certificateFor(host: string): Promise<ServedCertificate | undefined> {
    const name = lineageNameFor(host);
    const site = this.httpsSites.get(name);
    if (!site) return undefined;
    await this.ensureLoaded(name);
    if (!this.loaded.has(name)) return undefined;
    if (site.issuer === 'local' && !this.servable(name)) await this.obtainLocal(name).catch((err: unknown) => this.log.warn('could not issue a local certificate for a handshake', { name, error: errorMessage(err) }));
    this.schedulePublish();
    const c = this.cache.get(name);
    return c && served(site.host, c);
  }

  /** How many routed certificates are in memory and how many are still to be read (for /readyz). */
  loadProgress(): { inMemory: number; pending: number } {
    let inMemory = 0;
    let pending = 0;
    for (const name of this.httpsSites.keys()) {
      if (this.cache.has(name)) inMemory++;
      else if (!this.loaded.has(name)) pending++;
    }
    return { inMemory, pending };
  }

  /** Reads these lineages, `LOAD_CONCURRENCY` at a time, yielding to the event loop; one that cannot be read is logged and left unread. */
  private async loadNames(names: readonly string[]): Promise<void> {
    const slice = timeSlicer(SLICE_MS);
    await forEachLimit(names, LOAD_CONCURRENCY, async (name) => {
      if (this.abort.signal.aborted) return;
      await this.ensureLoaded(name);
      await slice();
    });
  }

  /** Reads one lineage into the cache unless it was read already; concurrent callers share one read. Never rejects. */
  private ensureLoaded(name: string): Promise<void> {
    if (this.loaded.has(name)) return Promise.resolve();
    const inFlight = this.loading.get(name);
    if (inFlight) return inFlight;
    const read = this.refresh(name)
      .then(() => {
        this.loaded.add(name);
        this.loadErrors.delete(name);
      }, (err: unknown) => {
        const error = errorMessage(err);
        if (this.loadErrors.get(name) !== error) this.log.error('cannot read this certificate; will try again', { name, error });
        this.loadErrors.set(name, error);
      })
      .finally(() => this.loading.delete(name));
    this.loading.set(name, read);
    return read;
  }

  /** Whether the certificate in memory for lineage `name` can serve its site now: it covers the site's host, has not expired, and its issuer does not supersede it. */
  private servable(name: string): boolean {
    const c = this.cache.get(name);
    const host = this.httpsSites.get(name)?.host ?? name;
    return c !== undefined && !c.superseded && c.info.domains.includes(host) && c.info.notAfter.getTime() > this.opts.clock.now().getTime();
  }

  /**
   * Issues lineage `host`'s local-CA certificate now, as planning would (or waits
   * for the job already running for it). Nothing when the plan says another
   * action, when a wait holds the name, or once stopping.
   */
  private async obtainLocal(host: string): Promise<void> {
    const now = this.opts.clock.now();
    const running = this.running.get(host);
    if (running) return running;
    const hold = this.holds.get(host);
    if (this.abort.signal.aborted || (hold !== undefined && hold > now.getTime())) return;
    const site = this.httpsSites.get(host);
    if (!site) return;
    const stored = await this.storedOne(host, false, now);
    const action = planCertificates([site], [stored], now).actions.find((a): a is Extract<Action, { kind: 'obtain' | 'renew' }> => (a.kind === 'obtain' || a.kind === 'renew') && a.issuer === 'local');
    if (!action) return;
    const again = this.running.get(host);
    if (again) return again;
    // Registered as running, so planning does not start it twice and the store's notification of this write is not taken for another process's.
    const job = this.runJob(action).finally(() => {
      this.jobEnded(host);
      this.states.delete(host);
    });
    this.running.set(host, job);
    return job;
  }

  /** Lineage names the current sites need (a wildcard's serves the names under it). */
  private wantedNames(): string[] {
    return [...wantedCertificates(this.sites).keys()];
  }

  /** Replaces the wanted sites whole and re-plans. */
  setSites(sites: SiteSpec[]): void {
    this.sites = sites;
    this.httpsSites = wantedCertificates(sites);
    const wanted = new Set(this.httpsSites.keys());
    // Bounded state: what is kept per name goes when neither a site nor a stored certificate names it.
    for (const map of [this.holds, this.states, this.holdReasons] as Array<Map<string, unknown>>) {
      for (const name of map.keys()) if (!wanted.has(name) && !this.cache.has(name)) map.delete(name);
    }
    for (const name of this.loaded) if (!wanted.has(name) && !this.cache.has(name)) this.loaded.delete(name);
    this.publish();
    this.replan();
  }

  start(): void {
    this.stopped = false;
    this.tick = new Cron(this.opts.renewCron, { name: 'padlock-renewal-check', protect: true, unref: true }, () => {
      this.fullRefresh = true;
      this.replan();
    });
    this.replan();
  }

  /** Stops planning and cancels orders in flight (not counted as failures); waits up to `waitMs` for them to end. */
  async stop(waitMs = 10_000): Promise<void> {
    this.stopped = true;
    this.abort.abort(new Error('padlock is stopping'));
    this.tick?.stop();
    this.tick = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.plannedVersion.clear();
    this.changedWhileRunning.clear();
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

  /**
   * Resolves when no job, planning pass, renewal-information poll or
   * background load is running or queued, and the TLS layer has the last
   * snapshot.
   */
  async idle(): Promise<void> {
    await this.background;
    while (this.running.size || this.queue.length || this.planning || this.polling || this.loading.size) {
      await Promise.allSettled([...this.running.values(), ...this.loading.values(), this.planning, this.polling, this.background]);
      await new Promise((r) => setImmediate(r));
    }
    if (this.publishTimer) this.publish();
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
  private async stored(full: boolean, seen?: Map<string, number | null>): Promise<StoredCertificate[]> {
    // Planning needs every routed certificate read: wait for the start's background read of them, then read the sites added since.
    await this.wantedLoad;
    await this.loadNames(this.wantedNames().filter((n) => !this.loaded.has(n)));
    const names = [...new Set([...this.cache.keys(), ...this.httpsSites.keys()])];
    // States change only through jobs here (re-read after each), the poller (re-read after it) or from
    // outside (the periodic pass re-reads all).
    const slice = timeSlicer(SLICE_MS);
    await forEachLimit(names.filter((name) => full || !this.states.has(name)), STATE_READ_CONCURRENCY, async (name) => {
      this.states.set(name, await this.opts.engine.store.readState(name).catch((err: unknown) => {
        this.log.error('cannot read this certificate\'s state; planning without it', { name, error: errorMessage(err) });
        return null;
      }));
      await slice();
    });
    const now = this.opts.clock.now();
    const out: StoredCertificate[] = [];
    for (const name of names) {
      seen?.set(name, this.cache.get(name)?.version ?? null);
      out.push(await this.storedOne(name, false, now));
      await slice();
    }
    return out;
  }

  /** What planning needs about one name; reads its state when it is not known yet (or `full`). */
  private async storedOne(name: string, full: boolean, now: Date): Promise<StoredCertificate> {
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
    // Without a stored window nothing is parsed; with one, the CertID is computed once per certificate.
    const ari = cached && cert && state?.['ari'] ? storedAriDecision(state, this.ariCertificate(cached), now, { known: true }) : undefined;
    if (cert && ari) cert = { ...cert, ari: { due: ari.due, at: ari.at, reason: ari.reason, ...(ari.pollAt ? { pollAt: ari.pollAt } : {}) } };
    return {
      name,
      ...(cert ? { cert } : {}),
      ...(failure ? { failure } : {}),
      ...(state?.['revokedAt'] ? { revoked: true } : {}),
      ...(cached?.superseded ? { superseded: cached.superseded } : {}),
    };
  }

  /** The facts ARI decisions need about a cached certificate, its CertID computed once per version. */
  private ariCertificate(c: Cached): { certPem: string; notBefore: Date; notAfter: Date; certId: string | null } {
    if (c.certId === undefined) c.certId = certIdOf({ certPem: c.certPem });
    return { certPem: c.certPem, notBefore: c.info.notBefore, notAfter: c.info.notAfter, certId: c.certId };
  }

  private async plan(): Promise<void> {
    this.passes += 1;
    const full = this.fullRefresh;
    this.fullRefresh = false;
    const seen = new Map<string, number | null>();
    const stored = await this.stored(full, seen);
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
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const name = this.queue[i]!.name;
      if (!due.has(name)) {
        this.queue.splice(i, 1);
        this.plannedVersion.delete(name);
      }
    }
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
        this.plannedVersion.set(a.name, seen.get(a.name) ?? null);
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
   * something, it asks for a new plan. Deciding whether a poll is due needs
   * each certificate's CertID (parsed once per certificate version, ~1.5 ms
   * each), so the items are built in slices that yield to the event loop:
   * 10,000 certificates cost seconds of CPU on the first pass, and
   * handshakes must be answered meanwhile.
   */
  private pollAri(stored: readonly StoredCertificate[], now: Date): void {
    if (this.polling || this.stopped) return;
    this.polling = this.ariItems(stored, now)
      .then(async (items) => {
        if (items.length === 0 || this.stopped) return;
        const { polled, unsupported } = await this.opts.engine.ariPoller.pollDue(await this.withoutHeldIssuers(items), this.abort.signal);
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

  /** The certificates whose renewal information is due for a poll now, with their CertIDs; see pollAri. */
  private async ariItems(stored: readonly StoredCertificate[], now: Date): Promise<AriPollItem[]> {
    const t = now.getTime();
    const slice = timeSlicer(SLICE_MS);
    const items: AriPollItem[] = [];
    for (const s of stored) {
      if (this.stopped) return [];
      await slice();
      const c = this.cache.get(s.name);
      if (!c || this.running.has(s.name) || (this.noAri.get(c.meta.server) ?? 0) > t) continue;
      // The local CA offers no renewal information (RFC 9773 is ACME's): with 10,000 local names, deciding
      // whether each poll is due blocked serving for 25 s.
      if (c.info.issuer === 'local') continue;
      const cert = this.ariCertificate(c);
      if (cert.certId === null) continue;
      const state = this.states.get(s.name) ?? null;
      const d = storedAriDecision(state, cert, now);
      if (!d?.pollAt || d.pollAt.getTime() > t) continue;
      const spec = specOf(c.meta);
      items.push({ name: s.name, ...cert, obtainedAt: c.info.obtainedAt, state,
        issuerId: this.opts.engine.issuerFor(spec).id, source: () => this.opts.engine.issuerFor(spec).renewalInfo() });
    }
    return items;
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
      const expectVersion = this.plannedVersion.has(action.name) ? this.plannedVersion.get(action.name) : undefined;
      this.plannedVersion.delete(action.name);
      // A handshake may have started this name's local certificate meanwhile (obtainLocal).
      if (this.running.has(action.name)) continue;
      const job = this.runJob(action, expectVersion).finally(() => {
        this.jobEnded(action.name);
        this.states.delete(action.name);
        this.pump();
        this.replan();
      });
      this.running.set(action.name, job);
    }
  }

  /** A job for `name` ended: it no longer counts as running, and a store change heard meanwhile is read now. */
  private jobEnded(name: string): void {
    this.running.delete(name);
    if (this.changedWhileRunning.delete(name)) void this.onStoreChange(name);
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

  /** `expectVersion`: what the plan saw (default: the cached version now, for jobs not planned through the queue). */
  private async runJob(action: Extract<Action, { kind: 'obtain' | 'renew' }>, expectVersion?: number | null): Promise<void> {
    const { name } = action;
    const log = this.log.child({ name });
    log.info(action.kind === 'renew' ? 'renewing certificate' : 'obtaining certificate', { reason: action.reason, issuer: action.issuer });
    try {
      const result = await this.opts.engine.obtain(this.specFor(action), {
        reason: action.reason as ObtainReason,
        // What the plan saw: another replica, a cron renewal or our own previous job may have stored one since.
        expectVersion: expectVersion !== undefined ? expectVersion : this.cache.get(name)?.version ?? null,
        account: { agreeTos: this.opts.account.agreeTos },
        signal: this.abort.signal,
      });
      this.changedWhileRunning.delete(name); // read just below, with whatever was written meanwhile
      await this.refresh(name);
      this.loaded.add(name);
      this.schedulePublish();
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
    if (this.running.has(name)) {
      // Our own write, or another replica's while our job found the lock busy: look again once the job ends.
      this.changedWhileRunning.add(name);
      return;
    }
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
        this.schedulePublish();
        this.log.info('the certificate was deleted from the store by another process', { name });
        this.replan();
      }
      return;
    }
    this.states.delete(name);
    // Served before it is announced (cert_changed).
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

  /** Re-reads one lineage into the cache (or drops it when gone): its serving read, and no parsing when its meta records the leaf's facts. */
  private async refresh(name: string): Promise<void> {
    const lineage = await this.opts.engine.store.readServing(name);
    if (!lineage || lineage.meta.server === LOCAL_ROOT_SERVER || lineage.meta.domains.length === 0) {
      this.cache.delete(name);
      return;
    }
    const cached = this.cache.get(name);
    if (cached && cached.version === lineage.version && cached.certPem === lineage.bundle.fullchain) return;
    const leaf = servedLeaf(lineage.meta, lineage.bundle.fullchain);
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

  /** Publishes soon, once for a burst of changes: each snapshot costs a pass over every site. */
  private schedulePublish(): void {
    if (this.publishTimer || this.abort.signal.aborted) return;
    this.publishTimer = setTimeout(() => this.publish(), PUBLISH_DELAY_MS);
    this.publishTimer.unref();
  }

  /**
   * Hands the TLS layer the certificates of the HTTPS sites wanted now, and
   * the sites to ask `certificateFor` about: those not read yet, and local
   * ones without a usable certificate (issued on their first handshake).
   */
  private publish(): void {
    if (this.publishTimer) clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
    const snapshot = new Map<string, ServedCertificate>();
    const pending = new Set<string>();
    // By lineage: a host under a wanted wildcard has no entry, the TLS layer's wildcard lookup serves it.
    for (const [name, site] of this.httpsSites) {
      const c = this.cache.get(name);
      const local = site.issuer === 'local' && !this.abort.signal.aborted;
      if (!this.loaded.has(name) || (local && !this.servable(name))) pending.add(site.host);
      else if (c) snapshot.set(site.host, served(site.host, c));
    }
    this.opts.onSnapshot(snapshot, pending);
  }
}

/** The TLS layer's view of a cached certificate. The serial is in the version: a lineage deleted and obtained again starts at version 1 again. */
function served(host: string, c: Cached): ServedCertificate {
  return { certPem: c.certPem, keyPem: c.keyPem, version: `${host}#${c.version}#${c.serial}` };
}

function specOf(meta: LineageMeta): LineageSpec {
  const { updatedAt: _u, leaf: _l, ...spec } = meta;
  return spec;
}

export type { Assessment };
