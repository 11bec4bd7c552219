/**
 * The data plane in N `node:cluster` worker processes (`workers` > 1).
 *
 * The primary keeps everything else (config, store, certificates, ACME,
 * discovery, admin API, metrics) and drives the workers through this class,
 * which has the surface `main.ts` uses on a `ProxyServer`: `setSites()`,
 * `replace(snapshot)` for certificates, `listen()`, `close()`, `stats()` and
 * `upstreamStatus()`. Each worker runs a whole `ProxyServer` (:80 and :443).
 *
 * ## Each worker accepts its own connections (Linux)
 * Every worker binds :80 and :443 itself with SO_REUSEPORT (`accept:
 * 'reuseport'`, the default on Linux): each port has one listening socket per
 * worker, in one reuseport group, and the kernel spreads new connections over
 * them by a hash of the connection's addresses and ports. The primary holds
 * no listening socket and never sees a connection. node:cluster's default
 * (`'primary'`, SCHED_RR) has the primary accept every connection and send
 * its handle to a worker over IPC: a JSON message and an fd passed per
 * connection, all on the primary's one thread, which also runs ACME, the
 * store and discovery. That cost shows on short connections (docs/BENCHMARKS.md,
 * resumed reconnects).
 * - **Port 0** (tests): the first worker binds, reports the real ports, and
 *   the others (and every replacement) bind those.
 * - **A port already taken** fails start-up with the usual LISTEN_FAILED
 *   error: before forking, the primary binds each configured port once
 *   without SO_REUSEPORT and lets go. Without that, a reuseport socket of
 *   the same user on the port (a second padlock) would be joined silently
 *   and the two would split the connections. A program of the same user that
 *   binds the port with SO_REUSEPORT *after* padlock started can still join
 *   the group: run padlock as a user of its own.
 * - **A worker that exits** takes its listening sockets with it. New
 *   connections go to the other workers from then on, and connections the
 *   other workers hold are untouched. Connections the kernel had queued on
 *   the dead worker's socket but the worker had not accepted yet are reset,
 *   unless `net.ipv4.tcp_migrate_req=1` (Linux 5.14+) moves them to another
 *   socket of the group; with `'primary'` they waited in the primary. Only a
 *   crash replaces a worker (hot reload sends routes and certificates over
 *   IPC and never touches a socket), and on SIGTERM all workers stop
 *   listening together, as before.
 * - Elsewhere (`'primary'`): Node refuses `reusePort` on macOS and Windows;
 *   FreeBSD's balancing variant is untested. node:cluster's SCHED_NONE (one
 *   socket bound by the primary, every worker accepting from it) was
 *   measured as well (docs/BENCHMARKS.md): it also takes the primary out of
 *   the path and keeps a crashed worker's queue, but was not clearly better.
 *
 * ## State reaches every worker
 * The primary holds the current routes, certificate snapshot and HTTP-01
 * tokens. A worker gets all three in its `init` message and applies them
 * before it listens, so it never accepts a connection with less than the
 * primary had then. Every later change goes to every initialised worker, in
 * order, over its IPC channel (FIFO): routes whole, certificates as a diff
 * against what was last sent (by version), tokens one by one.
 *
 * A name whose certificate the primary has not read yet is *pending* (see
 * tls/contexts.ts): a worker's handshake for it asks the primary
 * (`cert-request`), which reads it through `certificateFor` and answers that
 * worker alone; every worker then gets it in the next certificate diff.
 *
 * ## HTTP-01 is race-free
 * The CA may fetch a challenge through any worker, and it does
 * so only after padlock answers the challenge URL (RFC 8555 section 7.5.1).
 * `challengeResponder().present()` sets the token in the primary's map, sends
 * it to every worker, and resolves only when every worker has acknowledged
 * that it applied it (a worker that exits meanwhile counts as done: it serves
 * nothing; a worker still starting gets the token in its `init`). So by the
 * time the issuer tells the CA to validate, every worker that can accept a
 * connection answers the token. No ack within `ackTimeoutMs` fails the
 * challenge before the CA is asked, which costs a retry, never a failed
 * validation.
 *
 * ## Stats and metrics
 * Workers report every `reportMs`: their `ProxyStats`, their upstream health
 * (when it changed) and their metric events batched by (host, status,
 * duration rounded up to 0.1 ms). The primary replays the events into the
 * observer (so `Metrics` histograms and counters are exact up to that
 * rounding) and sums the stats. Counts of a worker that exited are kept, so
 * counters never go down.
 *
 * TLS-ALPN-01 challenge certificates travel the same way
 * (`acmeTlsPublisher()`): in `init`, then one by one with an ack each, so
 * every worker's :443 answers `acme-tls/1` before the CA is told to validate.
 *
 * A worker that exits unexpectedly is replaced (at most once a second).
 */
import cluster, { type Worker } from 'node:cluster';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { ChallengeResponder } from '../acme/http01.js';
import type { AcmeTlsEntry, AcmeTlsPublisher } from '../acme/tls-alpn01.js';
import { PadlockError } from '../errors.js';
import type { Level, Logger } from '../log.js';
import type { SiteSpec } from '../state/desired-state.js';
import { DEFAULT_TLS_CONTEXT_CACHE, type CertificateEntry, type CertificateSnapshot } from '../tls/contexts.js';
import { newTicketKeys, ticketKeysToWire, type TicketKeys, type TicketKeysWire } from '../tls/session-tickets.js';
import type { Http2Limits } from './h2-limits.js';
import { RouteTable, UpstreamHealth } from './routes.js';
import { listenOn, type ProxyObserver, type ProxyStats, type RouteUpstreams } from './server.js';
import type { HoldOutcome } from './hold.js';
import type { UnavailableReason } from './forward.js';

// ---- the IPC protocol (plain JSON data) ----

export interface WorkerSettings {
  httpPort: number;
  httpsPort: number;
  bind?: string;
  /** Listen with SO_REUSEPORT in the worker itself (`accept: 'reuseport'`), on these exact ports. */
  reusePort?: boolean;
  logLevel: Level;
  pretty: boolean;
  /** 1-based worker slot, for log lines. */
  slot: number;
  /** How often the worker reports stats and metric events (ms). */
  reportMs: number;
  /** `--allow-upstream` CIDRs. */
  allowUpstream: string[];
  /** `--trusted-proxies` CIDRs. */
  trustedProxies: string[];
  /** Other ports padlock listens on (the admin API), refused as upstreams. */
  ownPorts: number[];
  /** HTTP/2 on :443 with these limits (a missing one at its default), or false (HTTP/1.1 only). */
  http2: Partial<Http2Limits> | false;
  /** `--tls-context-cache`: SecureContexts the worker keeps. */
  tlsContextCache: number;
  /** `--idle-gc`: release memory after a busy spell (observe/idle-gc.ts). */
  idleGc?: boolean;
  /** Holding requests while no upstream is up (`ProxyServerOptions.hold`); each worker holds up to `maxHeld`. */
  hold?: { waitMs: number; maxHeld: number };
}

/** Names that turned pending, and names that no longer are, since the last message. */
export interface PendingDiff {
  add: string[];
  del: string[];
}

export type ToWorker =
  | {
    t: 'init'; settings: WorkerSettings; sites: SiteSpec[]; certs: Array<[string, CertificateEntry]>; pending: string[]; tokens: Array<[string, string]>; stateless?: string; ticketKeys: TicketKeysWire;
    /** Pending TLS-ALPN-01 challenge certificates by SNI name. */
    acmeTls: Array<[string, AcmeTlsEntry]>;
  }
  /** New TLS session ticket keys (rotation): every worker issues and accepts the same tickets. */
  | { t: 'ticket-keys'; keys: TicketKeysWire }
  | { t: 'sites'; sites: SiteSpec[] }
  | { t: 'certs'; set: Array<[string, CertificateEntry]>; del: string[]; pending: PendingDiff }
  /** The answer to a worker's `cert-request`: the certificate, or none (the handshake is refused). */
  | { t: 'cert'; id: number; entry?: CertificateEntry }
  | { t: 'token'; id: number; set?: [string, string]; del?: string }
  /** A TLS-ALPN-01 challenge certificate for an SNI name, or its removal (name, token); acknowledged like a token. */
  | { t: 'acme-tls'; id: number; set?: [string, AcmeTlsEntry]; del?: [string, string] }
  | { t: 'own-ports'; ports: number[] }
  /** The account thumbprint for stateless HTTP-01 answers (acme/http01.ts TokenMap), or none. */
  | { t: 'stateless'; thumbprint?: string }
  | { t: 'close'; drainMs: number };

/** Metric events batched by a worker: [host or null, status, duration in 0.1 ms units (rounded up), count]. */
export type RequestBatch = Array<[string | null, number, number, number]>;
/** [host, error, count]. */
export type UpstreamErrorBatch = Array<[string, string, number]>;
/** Ended holds: [host, outcome, duration in 0.1 ms units (rounded up), count]. */
export type HeldBatch = Array<[string, HoldOutcome, number, number]>;
/** padlock's own 503s: [host, reason, count]. */
export type UnavailableBatch = Array<[string, UnavailableReason, number]>;

export type FromWorker =
  | { t: 'hello' }
  | { t: 'listening'; httpPort: number; httpsPort: number }
  | { t: 'listen-error'; message: string; code?: string }
  | { t: 'ack'; id: number }
  /** A handshake for a pending name: the primary reads its certificate (`certificateFor`) and answers `cert`. */
  | { t: 'cert-request'; id: number; name: string }
  | { t: 'report'; stats: ProxyStats; upstreams?: RouteUpstreams[]; requests: RequestBatch; upstreamErrors: UpstreamErrorBatch; held?: HeldBatch; unavailable?: UnavailableBatch }
  | { t: 'closed' };

/** Durations travel in 0.1 ms units, rounded up: a histogram bound that is a multiple of 0.1 ms keeps every observation on its side. */
export const DURATION_UNIT_S = 1e-4;
export function durationUnits(seconds: number): number {
  return Math.max(0, Math.ceil(seconds / DURATION_UNIT_S - 1e-6));
}

// ---- the primary side ----

/**
 * How the workers get their connections (see the module comment):
 * - `reuseport`: each worker binds its own sockets with SO_REUSEPORT and the
 *   kernel spreads new connections over them (Linux);
 * - `primary`: the primary accepts every connection and passes it to a
 *   worker, round robin (node:cluster's default, SCHED_RR).
 */
export type WorkerAccept = 'reuseport' | 'primary';

/** The default: `reuseport` where the kernel balances a reuseport group (Linux), else `primary`. */
export const DEFAULT_WORKER_ACCEPT: WorkerAccept = process.platform === 'linux' ? 'reuseport' : 'primary';

export interface ProxyClusterOptions {
  workers: number;
  httpPort: number;
  httpsPort: number;
  bind?: string;
  logger: Logger;
  logLevel: Level;
  pretty: boolean;
  observer?: ProxyObserver;
  /** Default 1000. */
  reportMs?: number;
  /** How long `present()` waits for every worker's ack (default 10 s). */
  ackTimeoutMs?: number;
  /** How long `listen()` waits for every worker (default 30 s). */
  startTimeoutMs?: number;
  /** `--allow-upstream` CIDRs, for every worker's upstream rules. */
  allowUpstream?: readonly string[];
  /** `--trusted-proxies` CIDRs, for every worker's forwarding headers. */
  trustedProxies?: readonly string[];
  /** Other ports padlock listens on (the admin API); `setOwnPorts` replaces them. */
  ownPorts?: readonly number[];
  /** HTTP/2 on :443 with these limits, or false; default on with the default limits (proxy/h2-limits.ts). */
  http2?: Http2Limits | false;
  /** TLS session ticket keys shared by every worker; default fresh ones. `setTicketKeys` replaces them. */
  ticketKeys?: TicketKeys;
  /** `--tls-context-cache` for every worker (default DEFAULT_TLS_CONTEXT_CACHE). */
  tlsContextCache?: number;
  /** `--idle-gc` in every worker (default on). */
  idleGc?: boolean;
  /** Reads a pending name's certificate for a worker's handshake (the manager's `certificateFor`); without it, pending names are refused. */
  certificateFor?: (name: string) => Promise<CertificateEntry | undefined>;
  /** Hold requests while no upstream is up, in every worker (`ProxyServerOptions.hold`). */
  hold?: { waitMs: number; maxHeld: number };
  /** How the workers get their connections; default DEFAULT_WORKER_ACCEPT. */
  accept?: WorkerAccept;
}

interface Slot {
  slot: number;
  worker: Worker;
  initialised: boolean;
  listening: boolean;
  stats?: ProxyStats;
  upstreams?: RouteUpstreams[];
  onListen?: (r: { ok: true; httpPort: number; httpsPort: number } | { ok: false; error: Error }) => void;
  exited: Promise<void>;
}

const EMPTY_STATS: ProxyStats = {
  openConnections: 0, websockets: 0, inFlight: 0, requestsByStatus: {}, upstreamConnectionsOpened: 0, upstreamRetries: 0,
  routes: 0, upstreamsDown: 0, certificates: { names: 0, cachedContexts: 0, builtContexts: 0 },
};

export class ProxyCluster {
  private sites: SiteSpec[] = [];
  private routes = new RouteTable([]);
  private certs = new Map<string, CertificateEntry>();
  private pending = new Set<string>();
  /** HTTP-01 tokens being presented: the source of truth a starting worker gets in its `init`. */
  private readonly tokens = new Map<string, string>();
  /** TLS-ALPN-01 challenge certificates being presented, by SNI name: likewise in a starting worker's `init`. */
  private readonly acmeTls = new Map<string, AcmeTlsEntry>();
  /** The thumbprint for stateless HTTP-01 answers, when the store is shared. */
  private stateless: string | undefined;
  private readonly slots = new Map<number, Slot>();
  private readonly pendingAcks = new Map<number, { waiting: Set<number>; done: () => void }>();
  private nextAck = 1;
  /** Monotonic counts of workers that exited. */
  private readonly retired = { byStatus: new Map<string, number>(), upstreamConnectionsOpened: 0, upstreamRetries: 0, builtContexts: 0 };
  private bound: { httpPort: number; httpsPort: number } | undefined;
  /** `reuseport`: the ports every worker binds (the configured ones, or the first worker's real ones for port 0). */
  private workerPorts: { httpPort: number; httpsPort: number } | undefined;
  private readonly accept: WorkerAccept;
  private listening: Promise<{ httpPort: number; httpsPort: number }> | undefined;
  private closing: Promise<void> | undefined;
  private lastRespawn = 0;
  private readonly log: Logger;
  private ownPorts: number[];
  private ticketKeys: TicketKeys;

  constructor(private readonly opts: ProxyClusterOptions) {
    if (!cluster.isPrimary) throw new Error('ProxyCluster runs in the primary process only');
    this.log = opts.logger.child({ component: 'proxy-cluster' });
    this.ownPorts = [...(opts.ownPorts ?? [])];
    this.ticketKeys = opts.ticketKeys ?? newTicketKeys();
    this.accept = opts.accept ?? DEFAULT_WORKER_ACCEPT;
  }

  /** Replaces the TLS session ticket keys in every worker (a ticket from one worker resumes on any other). */
  setTicketKeys(keys: TicketKeys): void {
    this.ticketKeys = keys;
    this.broadcast({ t: 'ticket-keys', keys: ticketKeysToWire(keys) });
  }

  /** Replaces the other ports padlock listens on (the admin API, once bound) in every worker's upstream rules. */
  setOwnPorts(ports: readonly number[]): void {
    this.ownPorts = [...ports];
    this.broadcast({ t: 'own-ports', ports: this.ownPorts });
  }

  /** Replaces the whole route table in every worker. */
  setSites(sites: readonly SiteSpec[]): void {
    this.sites = sites.map((s) => ({ ...s, upstreams: s.upstreams.map((u) => ({ ...u })) }));
    this.routes = new RouteTable(this.sites);
    this.broadcast({ t: 'sites', sites: this.sites });
  }

  /**
   * Certificates: the manager's `onSnapshot` (what is in memory, and the
   * names still to be read). Sends every worker what changed (by version).
   */
  replace(snapshot: CertificateSnapshot, pending: Iterable<string> = []): void {
    const next = new Map<string, CertificateEntry>();
    for (const [name, entry] of snapshot) next.set(name.toLowerCase(), { certPem: entry.certPem, keyPem: entry.keyPem, version: entry.version });
    const set: Array<[string, CertificateEntry]> = [];
    for (const [name, entry] of next) if (this.certs.get(name)?.version !== entry.version) set.push([name, entry]);
    const del = [...this.certs.keys()].filter((name) => !next.has(name));
    const nextPending = new Set([...pending].map((name) => name.toLowerCase()));
    const diff: PendingDiff = { add: [...nextPending].filter((n) => !this.pending.has(n)), del: [...this.pending].filter((n) => !nextPending.has(n)) };
    this.certs = next;
    this.pending = nextPending;
    if (set.length || del.length || diff.add.length || diff.del.length) this.broadcast({ t: 'certs', set, del, pending: diff });
  }

  /**
   * The manager's HTTP-01 responder: `present()` resolves once every worker
   * answers the token (see the module comment).
   */
  challengeResponder(): ChallengeResponder {
    return {
      describe: () => `padlock's HTTP server on port ${this.opts.httpPort} (${this.opts.workers} workers)`,
      prepare: async () => {},
      present: async (token, keyAuthorization) => {
        this.tokens.set(token, keyAuthorization);
        await this.acked('HTTP-01 token', (id) => ({ t: 'token', id, set: [token, keyAuthorization] }));
      },
      remove: async (token) => {
        this.tokens.delete(token);
        await this.acked('HTTP-01 token', (id) => ({ t: 'token', id, del: token })).catch(() => undefined);
      },
      close: async () => {},
    };
  }

  /**
   * The TLS-ALPN-01 publisher: `present()` resolves once every worker's :443
   * answers `acme-tls/1` for the name with the certificate, exactly as for
   * HTTP-01 tokens (see the module comment).
   */
  acmeTlsPublisher(): AcmeTlsPublisher {
    return {
      describe: () => `padlock's HTTPS server on port ${this.opts.httpsPort} (${this.opts.workers} workers)`,
      prepare: async () => {},
      present: async (serverName, entry) => {
        this.acmeTls.set(serverName, entry);
        await this.acked('TLS-ALPN-01 certificate', (id) => ({ t: 'acme-tls', id, set: [serverName, entry] }));
      },
      remove: async (serverName, token) => {
        if (this.acmeTls.get(serverName)?.token === token) this.acmeTls.delete(serverName);
        await this.acked('TLS-ALPN-01 certificate', (id) => ({ t: 'acme-tls', id, del: [serverName, token] })).catch(() => undefined);
      },
      close: async () => {},
    };
  }

  /** Every worker (and every worker started later) answers unknown HTTP-01 tokens statelessly with this thumbprint. */
  setStateless(thumbprint: string | undefined): void {
    if (thumbprint === this.stateless) return;
    this.stateless = thumbprint;
    this.broadcast({ t: 'stateless', ...(thumbprint ? { thumbprint } : {}) });
  }

  /** Forks the workers and resolves with the real ports once every one listens. Rejects (and stops them) if any cannot. */
  listen(): Promise<{ httpPort: number; httpsPort: number }> {
    this.listening ??= this.start();
    return this.listening;
  }

  /** Drains every worker (each stops accepting, lets requests finish for up to `drainMs`), then they exit. Idempotent. */
  close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.drainMs ?? 10_000);
    return this.closing;
  }

  /** The workers' stats summed (as of their last report, at most `reportMs` old). */
  stats(): ProxyStats {
    const byStatus = new Map(this.retired.byStatus);
    const out: ProxyStats = {
      ...EMPTY_STATS,
      requestsByStatus: {},
      upstreamConnectionsOpened: this.retired.upstreamConnectionsOpened,
      upstreamRetries: this.retired.upstreamRetries,
      routes: this.routes.size,
      certificates: { names: this.certs.size, cachedContexts: 0, builtContexts: this.retired.builtContexts },
    };
    for (const { stats: s } of this.slots.values()) {
      if (!s) continue;
      out.openConnections += s.openConnections;
      out.websockets += s.websockets;
      out.inFlight += s.inFlight;
      out.held = (out.held ?? 0) + (s.held ?? 0);
      out.upstreamConnectionsOpened += s.upstreamConnectionsOpened;
      out.upstreamRetries += s.upstreamRetries;
      out.certificates.cachedContexts += s.certificates.cachedContexts;
      out.certificates.builtContexts += s.certificates.builtContexts;
      for (const [k, v] of Object.entries(s.requestsByStatus)) byStatus.set(k, (byStatus.get(k) ?? 0) + v);
    }
    out.requestsByStatus = Object.fromEntries([...byStatus].sort((a, b) => Number(a[0]) - Number(b[0])));
    out.upstreamsDown = this.upstreamStatus().reduce((n, r) => n + r.upstreams.filter((u) => !u.healthy).length, 0);
    return out;
  }

  /** Every route with its upstreams; an upstream is unhealthy while any worker has it in its down window. */
  upstreamStatus(): RouteUpstreams[] {
    const down = new Map<string, number>();
    const now = Date.now();
    for (const { upstreams } of this.slots.values()) {
      for (const r of upstreams ?? []) {
        for (const u of r.upstreams) {
          const until = u.downUntil ? Date.parse(u.downUntil) : 0;
          const key = `${r.host}\0${u.url}`;
          if (!u.healthy && until > now) down.set(key, Math.max(until, down.get(key) ?? 0));
          // Failing its health check: down with no end known (Infinity reads as "no downUntil" below).
          else if (!u.healthy && u.check === 'failing') down.set(key, Infinity);
        }
      }
    }
    return this.routes.all().map((route) => ({
      host: route.site.host,
      upstreams: route.upstreams.map((u) => {
        const until = down.get(`${route.site.host}\0${u.key}`) ?? 0;
        return {
          url: u.key,
          ...(u.containerName ? { containerName: u.containerName } : {}),
          healthy: until === 0,
          ...(until && until !== Infinity ? { downUntil: new Date(until).toISOString() } : {}),
          ...(u.checkKey ? { check: until === Infinity ? 'failing' as const : 'passing' as const } : {}),
        };
      }),
    }));
  }

  /** Per worker, for the status document. */
  describe(): Array<{ slot: number; pid: number | undefined; listening: boolean; requests: number; openConnections: number }> {
    return [...this.slots.values()].sort((a, b) => a.slot - b.slot).map((s) => ({
      slot: s.slot,
      pid: s.worker.process.pid,
      listening: s.listening,
      requests: Object.values(s.stats?.requestsByStatus ?? {}).reduce((a, b) => a + b, 0),
      openConnections: s.stats?.openConnections ?? 0,
    }));
  }

  // ---- internals ----

  private async start(): Promise<{ httpPort: number; httpsPort: number }> {
    const exec = workerModule(fileURLToPath(import.meta.url));
    if (!existsSync(exec)) throw new Error(`proxy worker module not found at ${exec}`);
    cluster.setupPrimary({ exec, args: [] });
    cluster.on('exit', (worker, code, signal) => this.onExit(worker, code, signal));
    const deadline = this.opts.startTimeoutMs ?? 30_000;
    const started = (slots: number[]) => Promise.all(slots.map((slot) => withTimeout(this.fork(slot), deadline, 'a proxy worker did not start listening in time')));
    const all = Array.from({ length: this.opts.workers }, (_, i) => i + 1);
    try {
      let results: Array<{ httpPort: number; httpsPort: number }>;
      if (this.accept !== 'reuseport') results = await started(all);
      else {
        // A reuseport socket of the same user would let padlock join it instead of failing (a second padlock
        // on the same ports): bind each configured port once without SO_REUSEPORT first, for the usual error.
        await this.probePorts();
        const { httpPort, httpsPort } = this.opts;
        if (httpPort !== 0 && httpsPort !== 0) {
          this.workerPorts = { httpPort, httpsPort };
          results = await started(all);
        } else {
          // Port 0: the first worker picks the ports, the others join them.
          const [first] = await started([1]);
          this.workerPorts = first!;
          results = [first!, ...await started(all.slice(1))];
        }
      }
      const first = results[0]!;
      for (const r of results) {
        if (r.httpPort !== first.httpPort || r.httpsPort !== first.httpsPort) throw new Error(`proxy workers listen on different ports: ${JSON.stringify(results)}`);
      }
      this.bound = first;
      this.log.info('listening', { ...first, workers: this.opts.workers, bind: this.opts.bind ?? '*' });
      return first;
    } catch (err) {
      await this.close({ drainMs: 0 });
      throw err;
    }
  }

  /**
   * Binds each configured (non-zero) port, without SO_REUSEPORT, and lets go:
   * LISTEN_FAILED if anyone holds it. Both stay bound until both are checked,
   * so the same port given for HTTP and HTTPS fails as in one process (a
   * worker's two reuseport servers would otherwise share it).
   */
  private async probePorts(): Promise<void> {
    const probes: net.Server[] = [];
    try {
      for (const port of [this.opts.httpPort, this.opts.httpsPort]) {
        if (port === 0) continue;
        const probe = net.createServer();
        probes.push(probe);
        await listenOn(probe, port, this.opts.bind);
      }
    } finally {
      await Promise.all(probes.map((probe) => new Promise((resolve) => (probe.listening ? probe.close(resolve) : resolve(undefined)))));
    }
  }

  private fork(slot: number): Promise<{ httpPort: number; httpsPort: number }> {
    const worker = cluster.fork({ PADLOCK_PROXY_WORKER: String(slot) });
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const entry: Slot = { slot, worker, initialised: false, listening: false, exited };
    this.slots.set(worker.id, entry);
    worker.on('message', (msg: FromWorker) => this.onMessage(entry, msg));
    worker.on('error', (err) => this.log.warn('proxy worker IPC error', { slot, error: err.message }));
    return new Promise((resolve, reject) => {
      entry.onListen = (r) => {
        entry.onListen = undefined;
        if (r.ok) resolve({ httpPort: r.httpPort, httpsPort: r.httpsPort });
        else reject(r.error);
      };
    });
  }

  private onMessage(entry: Slot, msg: FromWorker): void {
    switch (msg.t) {
      case 'hello': {
        const reusePort = this.accept === 'reuseport';
        const ports = reusePort ? this.workerPorts ?? this.opts : this.opts;
        const settings: WorkerSettings = {
          // reuseport: the ports the group is on (a worker that joins must not bind port 0 again).
          // Otherwise always the configured ports (0 stays 0): cluster shares one listening handle per (address, port) key.
          httpPort: ports.httpPort,
          httpsPort: ports.httpsPort,
          ...(this.opts.bind ? { bind: this.opts.bind } : {}),
          ...(reusePort ? { reusePort } : {}),
          logLevel: this.opts.logLevel,
          pretty: this.opts.pretty,
          slot: entry.slot,
          reportMs: this.opts.reportMs ?? 1000,
          allowUpstream: [...(this.opts.allowUpstream ?? [])],
          trustedProxies: [...(this.opts.trustedProxies ?? [])],
          ownPorts: this.ownPorts,
          http2: this.opts.http2 ?? {},
          tlsContextCache: this.opts.tlsContextCache ?? DEFAULT_TLS_CONTEXT_CACHE,
          idleGc: this.opts.idleGc ?? true,
          ...(this.opts.hold ? { hold: this.opts.hold } : {}),
        };
        this.send(entry, {
          t: 'init', settings, sites: this.sites, certs: [...this.certs], pending: [...this.pending], tokens: [...this.tokens], acmeTls: [...this.acmeTls], ...(this.stateless ? { stateless: this.stateless } : {}),
          ticketKeys: ticketKeysToWire(this.ticketKeys),
        });
        entry.initialised = true;
        return;
      }
      case 'listening':
        entry.listening = true;
        entry.onListen?.({ ok: true, httpPort: msg.httpPort, httpsPort: msg.httpsPort });
        return;
      case 'listen-error':
        // The worker's message is already listenError's (proxy/server.ts); keep its code.
        entry.onListen?.({ ok: false, error: new PadlockError('LISTEN_FAILED', msg.message, { details: { ...(msg.code ? { errno: msg.code } : {}), worker: entry.worker.id } }) });
        return;
      case 'ack': {
        const pending = this.pendingAcks.get(msg.id);
        if (pending) {
          pending.waiting.delete(entry.worker.id);
          if (pending.waiting.size === 0) pending.done();
        }
        return;
      }
      case 'cert-request': {
        const read = this.opts.certificateFor?.(msg.name) ?? Promise.resolve(undefined);
        void read.catch(() => undefined).then((found) => this.send(entry, { t: 'cert', id: msg.id, ...(found ? { entry: { certPem: found.certPem, keyPem: found.keyPem, version: found.version } } : {}) }));
        return;
      }
      case 'report':
        entry.stats = msg.stats;
        if (msg.upstreams) entry.upstreams = msg.upstreams;
        this.replay(msg);
        return;
      case 'closed':
        return;
    }
  }

  /** Metric events from a worker, into the primary's observer. */
  private replay(msg: Extract<FromWorker, { t: 'report' }>): void {
    const observer = this.opts.observer;
    if (!observer) return;
    try {
      for (const [host, status, units, count] of msg.requests) {
        const seconds = units * DURATION_UNIT_S;
        for (let i = 0; i < count; i++) observer.request(host ?? undefined, status, seconds);
      }
      for (const [host, error, count] of msg.upstreamErrors) for (let i = 0; i < count; i++) observer.upstreamError(host, error);
      for (const [host, outcome, units, count] of msg.held ?? []) for (let i = 0; i < count; i++) observer.held?.(host, outcome, units * DURATION_UNIT_S);
      for (const [host, reason, count] of msg.unavailable ?? []) for (let i = 0; i < count; i++) observer.unavailable?.(host, reason);
    } catch (err) {
      this.log.warn('metrics replay failed', { error: (err as Error).message });
    }
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    const entry = this.slots.get(worker.id);
    if (!entry) return;
    this.slots.delete(worker.id);
    this.retire(entry.stats);
    for (const [id, pending] of this.pendingAcks) {
      if (pending.waiting.delete(worker.id) && pending.waiting.size === 0) {
        this.pendingAcks.delete(id);
        pending.done();
      }
    }
    entry.onListen?.({ ok: false, error: new Error(`proxy worker ${entry.slot} exited before listening (code ${code}, signal ${signal})`) });
    if (this.closing || !this.bound) return;
    this.log.error('proxy worker exited; starting a new one', { slot: entry.slot, pid: worker.process.pid, code, signal });
    const wait = Math.max(0, this.lastRespawn + 1000 - Date.now());
    this.lastRespawn = Date.now() + wait;
    setTimeout(() => {
      if (this.closing) return;
      this.fork(entry.slot).catch((err: unknown) => this.log.error('replacement proxy worker failed', { slot: entry.slot, error: (err as Error).message }));
    }, wait).unref();
  }

  private retire(stats: ProxyStats | undefined): void {
    if (!stats) return;
    for (const [k, v] of Object.entries(stats.requestsByStatus)) this.retired.byStatus.set(k, (this.retired.byStatus.get(k) ?? 0) + v);
    this.retired.upstreamConnectionsOpened += stats.upstreamConnectionsOpened;
    this.retired.upstreamRetries += stats.upstreamRetries;
    this.retired.builtContexts += stats.certificates.builtContexts;
  }

  /** Sends every initialised worker the message `build(id)` makes and resolves once each acknowledged `id` (or exited). */
  private acked(what: string, build: (id: number) => ToWorker): Promise<void> {
    const id = this.nextAck++;
    const targets = [...this.slots.values()].filter((s) => s.initialised);
    if (targets.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingAcks.delete(id);
        reject(new Error(`not every proxy worker confirmed the ${what} within ${this.opts.ackTimeoutMs ?? 10_000} ms`));
      }, this.opts.ackTimeoutMs ?? 10_000);
      timer.unref();
      this.pendingAcks.set(id, {
        waiting: new Set(targets.map((s) => s.worker.id)),
        done: () => {
          clearTimeout(timer);
          this.pendingAcks.delete(id);
          resolve();
        },
      });
      const msg = build(id);
      for (const s of targets) this.send(s, msg);
    });
  }

  private broadcast(msg: ToWorker): void {
    for (const s of this.slots.values()) if (s.initialised) this.send(s, msg);
  }

  private send(entry: Slot, msg: ToWorker): void {
    if (!entry.worker.isConnected()) return;
    try {
      entry.worker.send(msg);
    } catch (err) {
      this.log.warn('cannot reach proxy worker', { slot: entry.slot, error: (err as Error).message });
    }
  }

  private async shutdown(drainMs: number): Promise<void> {
    const all = [...this.slots.values()];
    if (all.length === 0) return;
    this.log.info('draining proxy workers', { workers: all.length, drainMs });
    for (const s of all) {
      if (s.initialised) this.send(s, { t: 'close', drainMs });
      else s.worker.kill('SIGTERM');
    }
    const hardStop = setTimeout(() => {
      for (const s of all) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, drainMs + 5_000);
    hardStop.unref();
    await Promise.all(all.map((s) => s.exited));
    clearTimeout(hardStop);
    this.log.info('proxy workers stopped');
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
      timer.unref();
    }),
  ]);
}

/**
 * The worker's entry module, next to this one: `worker.ts` or `worker.js`
 * beside `cluster.ts`/`cluster.js` (tsc's dist/, tests from src/), or
 * `worker.js` in the same folder as the chunk this code was bundled into
 * (dist/app/, scripts/bundle.mjs).
 */
export function workerModule(here: string): string {
  const own = /cluster\.(ts|js)$/.exec(here);
  return own ? `${here.slice(0, own.index)}worker.${own[1]}` : join(dirname(here), 'worker.js');
}
