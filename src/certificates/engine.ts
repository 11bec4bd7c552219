/**
 * The certificate engine: the one place where padlock obtains, renews and
 * decides about certificates. `padlock run` (through certificates/manager.ts,
 * its scheduler), `padlock renew` and `padlock issue` all drive it; a command
 * parses its flags, calls the engine and prints.
 *
 * It owns, for every issuer alike (it never branches on which issuer it
 * holds):
 * - the decision (is a lineage due? ARI first, the lifetime rule otherwise;
 *   a revocation, expiry or a superseded issuer make it due);
 * - the waits: the lineage's backoff after failures, the CA-wide holds a CA
 *   asked for (503, directory 429) and the governor's rate limits, each
 *   honoured by every command and the daemon, `--ignore-rate-limit` the only
 *   override (and it says what it overrides);
 * - the issuance: lineage lock, key, the issuer's order, verification before
 *   anything is stored, the store, the failure record, deploy hooks, events.
 *
 * Failures are recorded in the lineage state (backoff) unless nothing was
 * attempted (a busy lock, a wait, bad input); the current certificate keeps
 * serving. Every thrown error is a PadlockError with its cause kept.
 */
import type { ChallengeSolver } from '../acme/solver.js';
import type { Issuer, LineageSpec, ProgressEvent, Issued } from './issuer.js';
import type { CertBundle, CertStore, Lineage, LineageState } from '../store/store.js';
import { MemoryStore } from '../store/memory-store.js';
import { Governor, GOVERNOR_STATE } from './governor.js';
import { blockedUntil, decideWithAri, nextFailureRecord, type FailureRecord, type RenewalReason } from './policy.js';
import { AriPoller, storedAriDecision, type AriPollItem } from './ari-poller.js';
import { runDeployHook } from './hooks.js';
import { forEachLimit } from '../concurrency.js';
import { generatePrivateKey, describePrivateKey } from '../tls/keys.js';
import { verifyCertificate } from '../tls/verify.js';
import { describeCertificate } from '../tls/inspect.js';
import { leafFacts } from '../tls/leaf-facts.js';
import { AcmeProblemError, PadlockError, asPadlockError, caRetryAfter, errorMessage, type ErrorCode } from '../errors.js';
import type { EngineEventBus, CheckedCertificate } from '../events.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

/** Why a certificate is being obtained. */
export type ObtainReason = RenewalReason | 'new' | 'names-changed' | 'issuer-changed';

export interface EngineOptions {
  store: CertStore;
  clock: Clock;
  logger: Logger;
  events: EngineEventBus;
  /** The issuer for a lineage's settings. The caller's factory may cache; the engine calls it per issuance. */
  issuerFor: (spec: LineageSpec) => Issuer;
  /** The challenge solvers for a lineage's settings, in preference order. The issuer prepares them. */
  solversFor: (spec: LineageSpec) => ChallengeSolver[];
  /** certbot-style deploy hooks run after a stored certificate with this timeout; absent: hooks never run (the daemon). */
  hooks?: { timeoutMs: number; output?: NodeJS.WritableStream };
  /** Renewal-information polls: requests at once and the deadline of a pass (see ari-poller.ts). */
  ariPoll?: { concurrency?: number; deadlineMs?: number };
}

export interface ObtainOptions {
  reason: ObtainReason;
  /**
   * The user asked for this attempt now (`padlock issue`, `renew --force-renewal`):
   * padlock's own backoff is skipped, a wait the CA asked for is not.
   */
  forced?: boolean;
  /** `--ignore-rate-limit`: skip the CA's waits and the governor too. Said in the progress output. */
  ignoreRateLimit?: boolean;
  /** Order and verify against the CA, but store nothing (a memory copy of the store), run no hook, emit nothing. */
  dryRun?: boolean;
  /** Registration settings for a CA where padlock has no account yet. */
  account?: { agreeTos: boolean; externalAccountBinding?: { kid: string; hmacKey: string } };
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
  /**
   * The current version the decision was based on (null: no certificate
   * yet). Checked again once the lineage lock is taken: when another process
   * (another replica, a cron `padlock renew`) stored a different version in
   * the meantime, nothing is ordered and the result says `alreadyDone`.
   * Absent: no check (`padlock issue`, which means "now").
   */
  expectVersion?: number | null;
}

export interface Obtained {
  name: string;
  domains: string[];
  version: number;
  notBefore: Date;
  notAfter: Date;
  orderUrl?: string;
  /** The live folder and files (certbot's RENEWED_LINEAGE), when the store is on disk. */
  paths?: { dir: string; fullchain: string; privkey: string };
  /** The deploy hook failed (the certificate itself was stored). */
  hookError?: PadlockError;
  /** Nothing was ordered: another process stored a new version after the decision (see `expectVersion`); this describes that version. */
  alreadyDone?: true;
}

/** What `assess` found about one stored lineage: the facts every decision needs, read without contacting a CA. */
export interface Assessment {
  name: string;
  lineage: Lineage;
  state: LineageState | null;
  notBefore: Date;
  notAfter: Date;
  failure?: FailureRecord;
  revoked: boolean;
  /** A wait in force now (own backoff, a CA's wait, a rate limit), given the options. */
  blockedUntil?: Date;
  /** Why it is blocked: the CA asked for the wait, padlock's rate-limit ledger, or its own backoff. */
  blockedBy?: 'ca' | 'rate-limit' | 'backoff';
  /** Where the wait is kept: the lineage's own failure record, or its CA's hold. */
  blockedSource?: 'record' | 'ca-hold';
  blockedReason?: string;
  /** Set when the issuer says this certificate must be replaced whatever its dates. */
  superseded?: string;
}

/** Options of a renewal pass (`padlock renew`). */
export interface RenewOptions {
  forced?: boolean;
  ignoreRateLimit?: boolean;
  dryRun?: boolean;
  /** Orders in flight at once. */
  concurrency: number;
  /** Changes a lineage's stored settings for this run only (a dry run's CA, a deploy hook override). */
  adjust?: (spec: LineageSpec) => LineageSpec;
  onProgress?: (name: string, event: ProgressEvent) => void;
}

export type RenewOutcome =
  | { name: string; action: 'renewed'; reason: ObtainReason; notAfter: string; version: number; hookError?: PadlockError; explanationURL?: string }
  | { name: string; action: 'not-due'; dueAt: string; explanationURL?: string }
  | { name: string; action: 'backoff'; until: string; by: 'ca' | 'rate-limit' | 'backoff'; reason: string; expired: boolean }
  | { name: string; action: 'busy'; expired?: boolean }
  | { name: string; action: 'skipped'; why: string }
  | { name: string; action: 'failed'; error: PadlockError; expired: boolean };

/**
 * Codes that mean nothing was attempted, so no failure is recorded and no
 * alert goes out: another process holds the lineage, the store itself is
 * unusable, or a wait is in force. Everything else an issuance raises is
 * recorded and backs off (a CA that wants --agree-tos, a required profile it
 * lacks, a name the local CA may not sign): retrying it every 30 s unseen
 * would help nobody.
 */
const NOT_ATTEMPTED: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['STORE_LOCKED', 'CONFIG_DIR_UNUSABLE', 'RENEWAL_BACKOFF']);

/** Reads the failure record kept in a lineage's state. */
export function failureOf(state: LineageState | null | undefined): FailureRecord | undefined {
  const f = state?.['failure'];
  return f && typeof f === 'object' ? (f as FailureRecord) : undefined;
}

/** True for an error that the engine raised because of a wait, before contacting the CA. */
export function isHeld(err: unknown): boolean {
  return err instanceof PadlockError && err.details['held'] === true;
}

export class CertificateEngine {
  readonly events: EngineEventBus;
  private readonly log: Logger;
  private readonly poller: AriPoller;

  constructor(private readonly opts: EngineOptions) {
    this.events = opts.events;
    this.log = opts.logger.child({ component: 'certificates' });
    this.poller = new AriPoller({ store: opts.store, clock: opts.clock, logger: this.log, ...opts.ariPoll });
  }

  get store(): CertStore {
    return this.opts.store;
  }

  issuerFor(spec: LineageSpec): Issuer {
    return this.opts.issuerFor(spec);
  }

  /**
   * Reads one lineage and what decides about it, without contacting a CA.
   * Null when it does not exist. Throws the store's error (STORE_CORRUPT,
   * STORE_IO) for an unreadable lineage.
   */
  async assess(name: string, options: { forced?: boolean; ignoreRateLimit?: boolean } = {}): Promise<Assessment | null> {
    const { store, clock } = this.opts;
    const lineage = await store.readLineage(name);
    if (!lineage) return null;
    const state = await store.readState(name);
    const leaf = describeCertificate(lineage.bundle.cert);
    const now = clock.now();
    const failure = failureOf(state);
    const out: Assessment = {
      name, lineage, state, notBefore: leaf.notBefore, notAfter: leaf.notAfter,
      ...(failure ? { failure } : {}),
      revoked: Boolean(state?.['revokedAt']),
    };
    // The governor's limits are checked (and recorded) by obtain(); here only the waits already on record.
    const wait = await this.waitFor(lineage.meta, failure, lineage.meta.domains, now, options, false);
    if (wait && wait.source !== 'governor') Object.assign(out, { blockedUntil: wait.until, blockedBy: wait.by, blockedReason: wait.reason, blockedSource: wait.source });
    const superseded = await this.opts.issuerFor(lineage.meta).supersedes(lineage, store).catch(() => undefined);
    if (superseded) out.superseded = superseded;
    return out;
  }

  /**
   * Whether a stored lineage is due now, from its own facts and the stored
   * ARI window (RFC 9773): the CA's window when it gave one, else the
   * lifetime rule; revoked, expired or superseded certificates are due at once.
   */
  decide(a: Assessment, options: { forced?: boolean } = {}): { due: boolean; reason: ObtainReason; dueAt: Date; explanationURL?: string } {
    const now = this.opts.clock.now();
    if (a.superseded && !options.forced) return { due: true, reason: 'issuer-changed', dueAt: now };
    const ari = options.forced || a.revoked ? undefined : storedAriDecision(a.state, { certPem: a.lineage.bundle.cert, notBefore: a.notBefore, notAfter: a.notAfter }, now);
    const d = decideWithAri({ notBefore: a.notBefore, notAfter: a.notAfter }, now, ari, {
      forced: options.forced ?? false, revoked: a.revoked, obtainedAt: new Date(a.lineage.meta.updatedAt),
    });
    return { due: d.due, reason: d.reason, dueAt: d.dueAt, ...(ari?.explanationURL ? { explanationURL: ari.explanationURL } : {}) };
  }

  /**
   * Polls renewal information (ARI) for these lineages where a poll is due,
   * with the engine's concurrency limit and deadline. Never throws; what it
   * learns is in the store for the next `assess`.
   */
  async pollRenewalInfo(items: ReadonlyArray<{ assessment: Assessment }>, signal?: AbortSignal): Promise<{ polled: string[]; skipped: string[] }> {
    const list: AriPollItem[] = items.map(({ assessment: a }) => ({
      name: a.name,
      certPem: a.lineage.bundle.cert,
      notBefore: a.notBefore,
      notAfter: a.notAfter,
      obtainedAt: new Date(a.lineage.meta.updatedAt),
      state: a.state,
      issuerId: this.opts.issuerFor(a.lineage.meta).id,
      source: () => this.opts.issuerFor(a.lineage.meta).renewalInfo(),
    }));
    return this.poller.pollDue(list, signal);
  }

  /** The ARI poller for callers that hold their own view of lineages (the daemon's cache). */
  get ariPoller(): AriPoller {
    return this.poller;
  }

  /**
   * Obtains a certificate for `spec` and makes it current, or changes
   * nothing: waits, lock, key, the issuer's order, verification, store,
   * state, hook, events. See the module comment for what is recorded.
   * Rejects with STORE_LOCKED (another process works on it) or a held error
   * (`isHeld`: a wait in force, nothing attempted) without recording anything.
   */
  async obtain(spec: LineageSpec, options: ObtainOptions): Promise<Obtained> {
    const { clock } = this.opts;
    const progress = options.onProgress ?? (() => {});
    const issuer = this.opts.issuerFor(spec);
    const store = options.dryRun ? await dryRunStore(this.opts.store, spec.server, spec.name) : this.opts.store;
    const log = this.log.child({ name: spec.name });
    // Never wait for another process working on the same name: it is already doing this job.
    const unlock = await store.lock(spec.name, { waitMs: 0, ...(options.signal ? { signal: options.signal } : {}) });
    let current: Lineage | null = null;
    let previousFailures = 0;
    try {
      const state = await store.readState(spec.name);
      const failure = failureOf(state);
      previousFailures = failure?.failures ?? 0;
      current = await store.readLineage(spec.name).catch(() => null);
      // The decision was made before the lock: re-read, and do nothing if someone else did the job meanwhile.
      if (options.expectVersion !== undefined && (current?.version ?? null) !== options.expectVersion && current) {
        const leaf = describeCertificate(current.bundle.cert);
        log.info('another process stored a new certificate meanwhile; not ordering again', { version: current.version, expected: options.expectVersion });
        return {
          name: spec.name, domains: current.meta.domains, version: current.version, notBefore: leaf.notBefore, notAfter: leaf.notAfter, alreadyDone: true,
          ...(current.paths ? { paths: { dir: current.paths.dir, fullchain: current.paths.fullchain, privkey: current.paths.privkey } } : {}),
        };
      }
      const ariRenewal = options.reason === 'ari-window' || options.reason === 'ari-past-window';
      const now = clock.now();
      const wait = await this.waitFor(spec, failure, spec.domains, now, { forced: options.forced ?? false, ignoreRateLimit: false }, ariRenewal, store);
      // The governor's limit is a new finding (recorded and alerted like a CA's rateLimited); the other waits are already on record.
      if (wait && !options.ignoreRateLimit) throw wait.source === 'governor' ? governorHold(spec.name, wait, current) : heldError(spec.name, wait, current);
      if (wait) progress({ step: 'order', message: `--ignore-rate-limit: asking anyway, although ${spec.name} is ${wait.reason} until ${wait.until.toISOString()}; the CA will likely refuse again` });

      const governor = new Governor(store, issuer.id, clock);
      const count = (event: Parameters<Governor['record']>[0]) => governor.record(event).catch((e: unknown) => log.warn('could not update the rate-limit ledger', { error: errorMessage(e) }));
      const keyPem = await chooseKey(current, spec);
      const issued: Issued = await issuer.issue({
        spec,
        store,
        keyPem,
        current,
        solvers: this.opts.solversFor(spec),
        account: options.account ?? { agreeTos: true },
        ledger: {
          orderCreated: () => count({ kind: 'order', ariRenewal }),
          validationFailed: (name) => count({ kind: 'failed-validation', name }),
        },
        onProgress: progress,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      // Counted now, even if it fails verification below: the CA counted it too.
      await count({ kind: 'issued', names: spec.domains, ariRenewal });

      progress({ step: 'verifying', message: 'verifying the chain, names, key and validity' });
      const bundle: CertBundle = { cert: issued.cert, chain: issued.chain, fullchain: issued.fullchain, privkey: keyPem };
      const verified = await verifyCertificate({ cert: bundle.cert, chain: bundle.chain, key: bundle.privkey, names: spec.domains, roots: await issuer.trustAnchors(store), clock });
      const storedAt = clock.now();
      // Fenced: if this process lost the lineage lock meanwhile (a stalled replica whose lock expired), the write
      // fails with STORE_LOCK_LOST instead of racing the replica that took over (the CA's extra certificate is the cost).
      // The leaf's facts ride along (tls/leaf-facts.ts), so loading this lineage later parses nothing.
      const leaf = leafFacts(bundle.fullchain, verified.leaf, verified.path.at(-1)?.fingerprint256);
      const version = await store.putVersion(spec.name, bundle, { ...spec, ...(issued.accountUrl ? { accountUrl: issued.accountUrl } : {}), leaf, updatedAt: storedAt.toISOString() }, { lock: unlock });
      // The certificate is stored and current: failing to clear the old failure record must not turn that into a failure.
      await store.updateState(spec.name, (s) => ({
        ...s, failure: null, revokedAt: null, ...(ariRenewal ? { ariRenewedAt: storedAt.toISOString() } : {}),
      })).catch((e: unknown) => log.warn('stored the certificate, but could not clear its failure record', { error: errorMessage(e) }));
      const stored = await store.readLineage(spec.name);
      progress({ step: 'saved', message: stored?.paths ? `saved ${stored.paths.fullchain} and ${stored.paths.privkey}` : `saved (version ${version}, in ${store.location})` });
      log.info('certificate stored', { version, notAfter: verified.leaf.notAfter.toISOString(), reason: options.reason, ...(issued.orderUrl ? { orderUrl: issued.orderUrl } : {}) });
      const result: Obtained = {
        name: spec.name,
        domains: spec.domains,
        version,
        notBefore: verified.leaf.notBefore,
        notAfter: verified.leaf.notAfter,
        ...(issued.orderUrl ? { orderUrl: issued.orderUrl } : {}),
        ...(stored?.paths ? { paths: { dir: stored.paths.dir, fullchain: stored.paths.fullchain, privkey: stored.paths.privkey } } : {}),
      };
      if (options.dryRun) return result;
      if (this.opts.hooks && spec.deployHook && !result.paths) {
        // A hook stored with a lineage that moved to a shared store (padlock store copy): never skip it silently.
        result.hookError = new PadlockError('HOOK_FAILED', `the deploy hook of ${spec.name} was not run: the store ${store.location} has no live folder for RENEWED_LINEAGE; run hooks on a host with a folder store`);
      } else if (this.opts.hooks && spec.deployHook && result.paths) {
        progress({ step: 'hook', message: `running deploy hook: ${spec.deployHook}` });
        await runDeployHook({
          command: spec.deployHook, lineageDir: result.paths.dir, domains: spec.domains, timeoutMs: this.opts.hooks.timeoutMs,
          ...(this.opts.hooks.output ? { output: this.opts.hooks.output } : {}),
        }).catch((e: unknown) => (result.hookError = asPadlockError(e, `the deploy hook of ${spec.name}`)));
      }
      this.events.emit(current ? 'cert_renewed' : 'cert_obtained', {
        name: spec.name, names: spec.domains, ...(spec.email ? { email: spec.email } : {}),
        issuer: issuer.id, version, notBefore: result.notBefore, notAfter: result.notAfter,
        renewal: current !== null, reason: options.reason, previousFailures,
      });
      return result;
    } catch (err) {
      // A cancelled order (shutdown) is not the CA's failure: no backoff, no alert.
      if (options.signal?.aborted) throw err;
      const error = asPadlockError(err, `obtaining ${spec.name}`);
      if (NOT_ATTEMPTED.has(error.code) || isHeld(error)) throw error;
      const record = await this.recordFailure(store, spec, issuer, error).catch((e: unknown) => {
        log.warn('could not record the failure', { error: errorMessage(e) });
        return undefined;
      });
      if (!options.dryRun) {
        const notAfter = current ? describeCertificate(current.bundle.cert).notAfter : undefined;
        this.events.emit('cert_failed', {
          name: spec.name, names: spec.domains, ...(spec.email ? { email: spec.email } : {}), error,
          ...(record ? { failures: record.failures, ...(record.nextAttemptAt ? { nextAttemptAt: new Date(record.nextAttemptAt) } : {}) } : {}),
          ...(notAfter ? { notAfter } : {}),
        });
      }
      throw error;
    } finally {
      await unlock();
    }
  }

  /**
   * `padlock renew`: every named lineage that is due is renewed, at most
   * `concurrency` at once; one unreadable lineage fails on its own. The
   * order of checks is the one that costs the CA nothing: waits first (a
   * lineage in backoff, or a CA that asked to wait, is not even asked for its
   * renewal information), then the ARI polls that are due (bounded), then
   * the decision, then the orders.
   */
  async renew(names: readonly string[], options: RenewOptions): Promise<RenewOutcome[]> {
    const now = this.opts.clock.now();
    const outcomes: RenewOutcome[] = [];
    const candidates: Array<{ assessment: Assessment; spec: LineageSpec }> = [];
    const checked: CheckedCertificate[] = [];
    for (const name of names) {
      let a: Assessment | null;
      try {
        a = await this.assess(name, options);
      } catch (err) {
        outcomes.push({ name, action: 'failed', error: asPadlockError(err, `reading ${name}`), expired: false });
        continue;
      }
      if (!a) continue;
      const meta = a.lineage.meta;
      // A lineage for no names is a CA root (padlock's local CA), not a certificate to renew.
      if (meta.domains.length === 0) {
        outcomes.push({ name, action: 'skipped', why: 'a CA root, not a certificate for names (padlock trust shows it)' });
        continue;
      }
      checked.push({ name, names: meta.domains, notBefore: a.notBefore, notAfter: a.notAfter, ...(meta.email ? { email: meta.email } : {}) });
      const expired = a.notAfter.getTime() <= now.getTime();
      // The lineage's own backoff: it is failing, whatever its dates say. A CA-wide wait only matters if it is due.
      if (a.blockedUntil && a.blockedSource === 'record') {
        outcomes.push({ name, action: 'backoff', until: a.blockedUntil.toISOString(), by: a.blockedBy!, reason: a.blockedReason!, expired });
        continue;
      }
      candidates.push({ assessment: a, spec: options.adjust ? options.adjust(stripUpdated(meta)) : stripUpdated(meta) });
    }
    this.events.emit('cert_checked', checked);

    // RFC 9773: ask the CAs whose renewal information is due, bounded, before deciding; never a CA that asked
    // to wait, and not in a dry run (it stores nothing, the ARI state included).
    const pollable = candidates.filter((c) => !options.forced && !options.dryRun && !c.assessment.revoked && !c.assessment.blockedUntil);
    if (pollable.length) {
      const { polled } = await this.pollRenewalInfo(pollable);
      for (const c of candidates) {
        if (polled.includes(c.assessment.name)) c.assessment = { ...c.assessment, state: await this.opts.store.readState(c.assessment.name) };
      }
    }

    const due: Array<{ spec: LineageSpec; reason: ObtainReason; explanationURL?: string; expired: boolean; version: number }> = [];
    for (const c of candidates) {
      const d = this.decide(c.assessment, options);
      if (!d.due) {
        outcomes.push({ name: c.assessment.name, action: 'not-due', dueAt: d.dueAt.toISOString(), ...(d.explanationURL ? { explanationURL: d.explanationURL } : {}) });
        continue;
      }
      const a = c.assessment;
      if (a.blockedUntil) {
        outcomes.push({ name: a.name, action: 'backoff', until: a.blockedUntil.toISOString(), by: a.blockedBy!, reason: a.blockedReason!, expired: a.notAfter.getTime() <= now.getTime() });
        continue;
      }
      due.push({ spec: c.spec, reason: d.reason, ...(d.explanationURL ? { explanationURL: d.explanationURL } : {}), expired: c.assessment.notAfter.getTime() <= now.getTime(), version: c.assessment.lineage.version });
    }

    await forEachLimit(due, options.concurrency, async (job) => {
      const { spec, reason, explanationURL, expired, version } = job;
      try {
        const r = await this.obtain(spec, {
          reason,
          expectVersion: version,
          forced: options.forced ?? false,
          ignoreRateLimit: options.ignoreRateLimit ?? false,
          dryRun: options.dryRun ?? false,
          onProgress: (e) => options.onProgress?.(spec.name, e),
        });
        if (r.alreadyDone) {
          outcomes.push({ name: spec.name, action: 'busy', ...(r.notAfter.getTime() <= now.getTime() ? { expired: true } : {}) });
          return;
        }
        outcomes.push({ name: spec.name, action: 'renewed', reason, notAfter: r.notAfter.toISOString(), version: r.version, ...(r.hookError ? { hookError: r.hookError } : {}), ...(explanationURL ? { explanationURL } : {}) });
      } catch (err) {
        const error = asPadlockError(err, `renewing ${spec.name}`);
        if (error.code === 'STORE_LOCKED') outcomes.push({ name: spec.name, action: 'busy', ...(expired ? { expired } : {}) });
        else if (isHeld(error)) outcomes.push({ name: spec.name, action: 'backoff', until: String(error.details['retryAfter']), by: error.details['by'] as 'ca', reason: String(error.details['reason']), expired });
        else outcomes.push({ name: spec.name, action: 'failed', error, expired });
      }
    });
    return outcomes.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The wait in force for an order of `names` from `spec`'s issuer, or
   * undefined: the lineage's backoff (skipped by `forced` unless the CA asked
   * for it or it is a rate limit), the CA's hold, the governor's limit.
   * `ignoreRateLimit` skips them all.
   */
  private async waitFor(
    spec: LineageSpec, failure: FailureRecord | undefined, names: readonly string[], now: Date,
    options: { forced?: boolean; ignoreRateLimit?: boolean }, ariRenewal: boolean, store: CertStore = this.opts.store,
  ): Promise<Wait | undefined> {
    if (options.ignoreRateLimit) return undefined;
    const until = blockedUntil(failure, now, options);
    if (until && failure) {
      const last = failure.lastError?.message ?? 'unknown error';
      if (failure.rateLimited) return { until, by: 'rate-limit', source: 'record', reason: `rate limited (${last})` };
      if (failure.caWait) return { until, by: 'ca', source: 'record', reason: `asked by the CA to wait (${last})` };
      return { until, by: 'backoff', source: 'record', reason: `backing off after ${failure.failures} failed attempt${failure.failures === 1 ? '' : 's'} (${last})` };
    }
    const issuer = this.opts.issuerFor(spec);
    const governor = new Governor(store, issuer.id, this.opts.clock);
    const hold = await governor.hold();
    if (hold) return { until: hold.until, by: 'ca', source: 'ca-hold', reason: `asked by ${issuer.describe()} to wait (${hold.reason})` };
    const limit = await governor.check(names, { ariRenewal });
    if (limit) return { until: limit.until, by: 'rate-limit', source: 'governor', reason: `${limit.message}, at ${issuer.describe()}'s published limit` };
    return undefined;
  }

  /** Records a failed attempt: the lineage's failure record, and a CA-wide hold when the CA asked everyone to wait. */
  private async recordFailure(store: CertStore, spec: LineageSpec, issuer: Issuer, error: PadlockError): Promise<FailureRecord> {
    const now = this.opts.clock.now();
    const retryAfter = caRetryAfter(error);
    if (retryAfter && error.code === 'ACME_CA_UNAVAILABLE') {
      const status = error instanceof AcmeProblemError ? error.httpStatus : error.details['status'];
      await new Governor(store, issuer.id, this.opts.clock).setHold({ until: retryAfter, reason: `${typeof status === 'number' ? `HTTP ${status}` : 'unavailable'}: ${error.message}` });
    }
    let record: FailureRecord | undefined;
    await store.updateState(spec.name, (state) => {
      record = nextFailureRecord(failureOf(state), error, now);
      return { ...state, failure: record };
    });
    return record!;
  }
}

/** A wait in force, and where it comes from: the lineage's failure record, a CA-wide hold, or the governor's ledger. */
interface Wait {
  until: Date;
  by: 'ca' | 'rate-limit' | 'backoff';
  source: 'record' | 'ca-hold' | 'governor';
  reason: string;
}

function expiryNote(current: Lineage | null, until: Date): { expires: string; expiry?: Date } {
  const expiry = current ? describeCertificate(current.bundle.cert).notAfter : undefined;
  if (!expiry) return { expires: '' };
  return { expiry, expires: `; the current certificate expires at ${expiry.toISOString()}${expiry.getTime() <= until.getTime() ? ', before then: renew it by hand or wait for the limit to pass' : ''}` };
}

/**
 * padlock's own governor holds back an order (the CA's published limit would
 * refuse it). Recorded and alerted like the CA's own `rateLimited`, with the
 * current certificate's expiry in the message, so an operator sees a hold
 * that expiry needs before it becomes an outage.
 */
function governorHold(name: string, wait: Wait, current: Lineage | null): PadlockError {
  const { expires, expiry } = expiryNote(current, wait.until);
  return new PadlockError('ACME_RATE_LIMITED',
    `padlock holds back the order for ${name}: ${wait.reason}; the next order is allowed after ${wait.until.toISOString()}${expires}`,
    { retryable: true, details: { selfImposed: true, retryAfter: wait.until.toISOString(), ...(expiry ? { notAfter: expiry.toISOString() } : {}) } });
}

/** The held error for a wait already on record: nothing was attempted. */
function heldError(name: string, wait: Wait, current: Lineage | null): PadlockError {
  const { expires, expiry } = expiryNote(current, wait.until);
  const override = wait.by === 'backoff' ? ' (--force-renewal skips this wait)' : ' (--ignore-rate-limit overrides it)';
  return new PadlockError(wait.by === 'rate-limit' ? 'ACME_RATE_LIMITED' : 'RENEWAL_BACKOFF',
    `${name} is ${wait.reason}; padlock will not ask again before ${wait.until.toISOString()}${override}${expires}`,
    { retryable: true, details: { held: true, by: wait.by, reason: wait.reason, retryAfter: wait.until.toISOString(), ...(expiry ? { notAfter: expiry.toISOString() } : {}) } });
}

function stripUpdated(meta: Lineage['meta']): LineageSpec {
  const { updatedAt: _u, leaf: _l, ...spec } = meta;
  return spec;
}

/** A fresh key, or the lineage's current one when `reuseKey` is set and it still fits the key settings. */
async function chooseKey(current: Lineage | null, spec: LineageSpec): Promise<string> {
  const wanted = {
    keyType: spec.keyType,
    ...(spec.ellipticCurve ? { ellipticCurve: spec.ellipticCurve } : {}),
    ...(spec.rsaKeySize ? { rsaKeySize: spec.rsaKeySize } : {}),
  };
  if (spec.reuseKey && current) {
    const have = describePrivateKey(current.bundle.privkey);
    const same = have.keyType === wanted.keyType &&
      (wanted.keyType === 'rsa' ? have.rsaKeySize === (wanted.rsaKeySize ?? 2048) : have.ellipticCurve === (wanted.ellipticCurve ?? 'P-256'));
    if (same) return current.bundle.privkey;
  }
  return generatePrivateKey(wanted);
}

/**
 * A memory store for a dry run: it starts with the real store's account for
 * this CA, the lineage's current version and state, and the governor's
 * ledger (so a dry run respects a backoff, a hold and the limits), and
 * writes nothing to disk.
 */
export async function dryRunStore(disk: CertStore, server: string, name: string): Promise<CertStore> {
  const mem = new MemoryStore();
  const account = await disk.readAccount(server);
  if (account) await mem.writeAccount(account);
  for (const stateName of [name, GOVERNOR_STATE]) {
    const state = await disk.readState(stateName);
    if (state) await mem.writeState(stateName, state);
  }
  return mem;
}
