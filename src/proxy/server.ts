/**
 * The data plane: the :80 and :443 fronts, the route table and the forwarder.
 *
 * Routes and certificates are immutable snapshots swapped whole:
 * `setSites()` builds a new `RouteTable` and assigns it; the
 * `CertificateRegistry` (owned by the caller) is `replace()`d. Neither touches
 * an open connection, an in-flight request or a WebSocket. Passive upstream
 * health survives route swaps.
 *
 * Start order is the caller's: give the registry its snapshot (certificates
 * in memory, and the routed names it reads on their first handshake) before
 * `listen()`, so no handshake ever meets an empty registry.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { PadlockError } from '../errors.js';
import type { AddressInfo, LookupFunction, Server as NetServer, Socket } from 'node:net';
import type { TokenMap } from '../acme/http01.js';
import type { AcmeTlsChallenges } from '../acme/tls-alpn01.js';
import type { Logger } from '../log.js';
import type { SiteSpec } from '../state/desired-state.js';
import type { CertificateRegistry } from '../tls/contexts.js';
import { Forwarder, type ForwardTimeouts, type UnavailableReason } from './forward.js';
import { HealthChecks } from './health-check.js';
import { RequestHold, type HoldOutcome } from './hold.js';
import { probeConnect } from './upstream-probe.js';
import { createHttpFront, DEFAULT_SERVER_LIMITS, type ServerLimits } from './http-server.js';
import { http2Limits, type Http2Limits } from './h2-limits.js';
import { createHttpsFront, type HttpsFront } from './https-server.js';
import { newTicketKeys, type TicketKeys } from '../tls/session-tickets.js';
import { RouteTable, UpstreamHealth } from './routes.js';
import { interfaceAddresses } from './upstream-connect.js';
import { UpstreamGuard } from './upstream-guard.js';

export interface ProxyTimeouts extends Partial<ServerLimits>, Partial<ForwardTimeouts> {
  /** How long an upstream that failed to connect is skipped (default 10 s). */
  upstreamDownMs?: number;
}

export interface ProxyServerOptions {
  httpPort: number;
  httpsPort: number;
  /** Address to bind both fronts to; default all interfaces. */
  bind?: string;
  tokens: TokenMap;
  certificates: CertificateRegistry;
  logger: Logger;
  timeouts?: ProxyTimeouts;
  /** The HTTPS port named in redirects, when a port mapping makes it differ from the bound one. */
  publicHttpsPort?: number;
  /** Request instrumentation (metrics); absent means none, at no cost. */
  observer?: ProxyObserver;
  /** CIDRs exempt from the link-local and metadata upstream rule (`--allow-upstream`). */
  allowUpstream?: readonly string[];
  /**
   * Other ports padlock listens on (the admin API), refused as upstreams like
   * this server's own HTTP and HTTPS ports; `setOwnPorts` replaces them.
   */
  ownPorts?: readonly number[];
  /** CIDRs of proxies in front of padlock whose forwarding headers are kept (`--trusted-proxies`). */
  trustedProxies?: readonly string[];
  /** Resolves upstream names; default the system resolver. For tests. */
  lookup?: LookupFunction;
  /**
   * HTTP/2 on :443 (with HTTP/1.1 on the same port), with these limits (each
   * missing one at its default, proxy/h2-limits.ts); `false` serves HTTP/1.1
   * only. Default: on, with the default limits.
   */
  http2?: Partial<Http2Limits> | false;
  /** TLS session ticket keys (tls/session-tickets.ts); default fresh random ones. `setTicketKeys` replaces them. */
  ticketKeys?: TicketKeys;
  /**
   * Hold requests while no upstream of their route is up (proxy/hold.ts):
   * `waitMs` is the wait for sites that set none (`--upstream-wait`),
   * `maxHeld` the most held at once (`--held-requests-max`). Absent: no
   * request is held (a down upstream answers 502 at once, a route in its
   * grace period 503).
   */
  hold?: { waitMs: number; maxHeld: number };
  /** Pending TLS-ALPN-01 challenges answered on :443 (`acme-tls/1` handshakes); absent: :443 never reads a ClientHello itself. */
  acmeTls?: AcmeTlsChallenges;
  /**
   * Bind both fronts with SO_REUSEPORT in this process (a `--workers` worker,
   * proxy/cluster.ts): each worker has its own listening sockets in one
   * reuseport group and accepts its own connections. Linux only.
   */
  reusePort?: boolean;
}

/**
 * What the proxy reports per request, for metrics. Implementations must be
 * cheap and must not throw: they run on the request path.
 */
export interface ProxyObserver {
  /**
   * One finished request on either front. `host` is the routed site's host
   * (`*.example.com` for a wildcard route), or undefined when no route
   * matched, so label sets stay bounded by the route table. `status` is 0
   * when the request was cut before any answer.
   */
  request(host: string | undefined, status: number, seconds: number): void;
  /** One failed upstream attempt (refused, timed out, reset), retried or not. */
  upstreamError(host: string, error: string): void;
  /** A request that asked to be held, when its hold ended: how and after how long. */
  held?(host: string, outcome: HoldOutcome, seconds: number): void;
  /** padlock answered 503 itself because no upstream could take the request. */
  unavailable?(host: string, reason: UnavailableReason): void;
}

/** One route's upstreams with their passive health, for the status API. */
export interface RouteUpstreams {
  host: string;
  /**
   * `healthy`: neither in its down window nor failing its health check.
   * `check`: the health check's last result, for upstreams that have one
   * (`pending` until the first one passes).
   */
  upstreams: Array<{ url: string; containerName?: string; healthy: boolean; downUntil?: string; check?: 'passing' | 'failing' }>;
}

export interface ProxyStats {
  /** Client TCP connections open now (both fronts, WebSockets included). */
  openConnections: number;
  websockets: number;
  /** Requests in flight now. */
  inFlight: number;
  /** Requests held now, waiting for an upstream (part of `inFlight`); absent from a proxy that holds none. */
  held?: number;
  /** Finished requests by status code; `0` counts requests cut before any answer. */
  requestsByStatus: Record<string, number>;
  upstreamConnectionsOpened: number;
  upstreamRetries: number;
  routes: number;
  upstreamsDown: number;
  certificates: { names: number; cachedContexts: number; builtContexts: number };
}

export class ProxyServer {
  private routes: RouteTable;
  private readonly health: UpstreamHealth;
  private readonly forwarder: Forwarder;
  private readonly hold: RequestHold | undefined;
  private readonly checks: HealthChecks;
  /** The upstream rules in force (replaced with the forwarder's). */
  private currentGuard: UpstreamGuard;
  private readonly http: http.Server;
  private readonly https: HttpsFront;
  private ticketKeys: TicketKeys;
  private readonly sockets = new Set<Socket>();
  private readonly byStatus = new Map<number, number>();
  private inFlight = 0;
  private bound: { httpPort: number; httpsPort: number } | undefined;
  private closing: Promise<void> | undefined;
  private readonly log: Logger;
  private ownPorts: readonly number[];
  /** The h2c hosts last warned about while --http2 is false (warned again only when they change). */
  private h2cWarned = '';
  /** This host's addresses, read once at construction: the own-listener rule also covers loopback and 0.0.0.0 without them. */
  private readonly localAddresses = interfaceAddresses();

  constructor(private readonly opts: ProxyServerOptions) {
    this.ownPorts = opts.ownPorts ?? [];
    this.ticketKeys = opts.ticketKeys ?? newTicketKeys();
    this.log = opts.logger.child({ component: 'proxy' });
    const t = opts.timeouts ?? {};
    const limits: ServerLimits = {
      headersTimeoutMs: t.headersTimeoutMs ?? DEFAULT_SERVER_LIMITS.headersTimeoutMs,
      requestTimeoutMs: t.requestTimeoutMs ?? DEFAULT_SERVER_LIMITS.requestTimeoutMs,
      keepAliveTimeoutMs: t.keepAliveTimeoutMs ?? DEFAULT_SERVER_LIMITS.keepAliveTimeoutMs,
      maxHeaderSize: t.maxHeaderSize ?? DEFAULT_SERVER_LIMITS.maxHeaderSize,
      handshakeTimeoutMs: t.handshakeTimeoutMs ?? DEFAULT_SERVER_LIMITS.handshakeTimeoutMs,
    };
    this.health = new UpstreamHealth(t.upstreamDownMs ?? 10_000);
    this.routes = new RouteTable([], this.health);
    const observer = opts.observer;
    this.currentGuard = this.guard();
    const currentGuard = () => this.currentGuard;
    this.hold = opts.hold
      ? new RequestHold({
        routes: () => this.routes,
        health: this.health,
        probe: (target) => probeConnect(target.url, currentGuard, 1_000, opts.lookup),
        defaultWaitMs: opts.hold.waitMs,
        maxHeld: opts.hold.maxHeld,
        ...(observer?.held ? { onSettled: (host: string, outcome: HoldOutcome, seconds: number) => observer.held!(host, outcome, seconds) } : {}),
      })
      : undefined;
    this.checks = new HealthChecks({
      health: this.health,
      guard: currentGuard,
      logger: this.log,
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
      onChange: () => this.hold?.poke(),
    });
    this.forwarder = new Forwarder({
      logger: this.log,
      ...(this.hold ? { hold: this.hold } : {}),
      ...(observer?.unavailable ? { onUnavailable: (host: string, reason: UnavailableReason) => observer.unavailable!(host, reason) } : {}),
      ...(observer ? { onUpstreamError: (host: string, error: string) => observer.upstreamError(host, error) } : {}),
      timeouts: {
        ...(t.connectMs !== undefined ? { connectMs: t.connectMs } : {}),
        ...(t.responseMs !== undefined ? { responseMs: t.responseMs } : {}),
        ...(t.idleUpstreamMs !== undefined ? { idleUpstreamMs: t.idleUpstreamMs } : {}),
      },
      guard: this.currentGuard,
      ...(opts.trustedProxies ? { trustedProxies: opts.trustedProxies } : {}),
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
    });
    const deps = { routes: () => this.routes, forwarder: this.forwarder, logger: this.log, limits };
    this.http = createHttpFront({
      ...deps,
      tokens: opts.tokens,
      httpsPort: () => opts.publicHttpsPort ?? this.bound?.httpsPort ?? opts.httpsPort,
    });
    this.https = createHttpsFront({
      ...deps,
      certificates: opts.certificates,
      http2: opts.http2 === false ? undefined : http2Limits(opts.http2),
      ticketKeys: () => this.ticketKeys,
      acmeTls: opts.acmeTls,
    });
    for (const server of [this.http, this.https.server]) {
      server.on('connection', (socket: Socket) => this.track(socket));
      server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.count(req, res));
    }
    this.https.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.countStream(stream, headers));
  }

  /** Replaces the TLS session ticket keys; the next handshake uses them. */
  setTicketKeys(keys: TicketKeys): void {
    this.ticketKeys = keys;
  }

  /** Replaces the whole route table. Requests already forwarded keep their upstream. */
  setSites(sites: readonly SiteSpec[]): void {
    this.routes = new RouteTable(sites, this.health);
    this.checks.update(this.routes);
    this.hold?.routesChanged();
    // h2c sessions to upstreams no route names any more are closed (a reload leaks none).
    this.forwarder.routesChanged(new Set(this.routes.all().flatMap((r) => r.upstreams.map((u) => u.key))));
    if (this.opts.http2 === false) {
      const h2c = this.routes.all().filter((r) => r.upstreams.some((u) => u.h2c)).map((r) => r.site.host);
      // Routed all the same: HTTP/1.1 clients are forwarded over h2c (as Caddy does since caddyserver/caddy#4777); gRPC clients need HTTP/2.
      const said = h2c.join(' ');
      if (h2c.length > 0 && said !== this.h2cWarned) this.log.warn('h2c (gRPC) routes while --http2 is false: gRPC clients cannot reach them, since they need HTTP/2 at :443; HTTP/1.1 requests are still forwarded', { hosts: h2c });
      this.h2cWarned = said;
    }
    this.log.info('routes replaced', { hosts: this.routes.size });
  }

  /**
   * Replaces the other ports padlock listens on (the admin API, once bound)
   * in the upstream rules. The next new upstream connection is judged by them.
   */
  setOwnPorts(ports: readonly number[]): void {
    this.ownPorts = [...ports];
    this.setGuard();
  }

  /** Starts both fronts. Port 0 picks a free port; the real ports are returned. Rejects (and closes both) if either cannot bind. */
  async listen(): Promise<{ httpPort: number; httpsPort: number }> {
    if (this.bound) return this.bound;
    try {
      const reusePort = this.opts.reusePort === true;
      const httpPort = await listenOn(this.http, this.opts.httpPort, this.opts.bind, reusePort);
      const httpsPort = await listenOn(this.https.server, this.opts.httpsPort, this.opts.bind, reusePort);
      this.bound = { httpPort, httpsPort };
      // Port 0 became a real port: the upstream rules must know it before a request can arrive.
      this.setGuard();
    } catch (err) {
      for (const s of [this.http, this.https.server]) if (s.listening) s.close();
      throw err;
    }
    this.log.info('listening', { ...this.bound, bind: this.opts.bind ?? '*' });
    return this.bound;
  }

  /**
   * Graceful stop (SIGTERM): stop accepting, close idle keep-alive
   * connections, let in-flight requests finish for up to `drainMs`, then
   * destroy what is left (WebSockets included). Idempotent: a second call
   * returns the first call's promise.
   */
  close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.drainMs ?? 10_000);
    return this.closing;
  }

  stats(): ProxyStats {
    const f = this.forwarder.stats();
    return {
      openConnections: this.sockets.size,
      websockets: f.websockets,
      inFlight: this.inFlight,
      held: this.hold?.held() ?? 0,
      requestsByStatus: Object.fromEntries([...this.byStatus].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v])),
      upstreamConnectionsOpened: f.upstreamConnectionsOpened,
      upstreamRetries: f.retries,
      routes: this.routes.size,
      upstreamsDown: this.health.downCount(),
      certificates: this.opts.certificates.stats(),
    };
  }

  /**
   * Every route with its upstreams and their passive health now (an upstream
   * is unhealthy while inside its down window after a failed connect).
   */
  upstreamStatus(): RouteUpstreams[] {
    return this.routes.all().map((route) => ({
      host: route.site.host,
      upstreams: route.upstreams.map((u) => {
        const until = this.health.downUntilMs(u.key);
        const usable = route.usable(u);
        return {
          url: u.key,
          ...(u.containerName ? { containerName: u.containerName } : {}),
          healthy: until === 0 && usable,
          ...(until ? { downUntil: new Date(until).toISOString() } : {}),
          ...(u.checkKey ? { check: usable ? 'passing' as const : 'failing' as const } : {}),
        };
      }),
    }));
  }

  /** Rebuilds the upstream rules and hands them to the forwarder (the probes and checks read `currentGuard`). */
  private setGuard(): void {
    this.currentGuard = this.guard();
    this.forwarder.setGuard(this.currentGuard);
  }

  /** The upstream rules: this server's ports (configured and bound), the other own ports, the allow list. */
  private guard(): UpstreamGuard {
    const bound = this.bound ? [this.bound.httpPort, this.bound.httpsPort] : [];
    return new UpstreamGuard({
      ...(this.opts.allowUpstream ? { allow: this.opts.allowUpstream } : {}),
      ownPorts: [this.opts.httpPort, this.opts.httpsPort, ...bound, ...this.ownPorts],
      localAddresses: this.localAddresses,
    });
  }

  private async shutdown(drainMs: number): Promise<void> {
    const https = this.https.server;
    const closed = [this.http, https].map(
      (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
    );
    // Held requests are answered 503 now rather than kept through the drain: the next padlock will serve their retry.
    this.hold?.close();
    this.checks.close();
    this.log.info('draining', { inFlight: this.inFlight, drainMs });
    // HTTP/2 clients get a GOAWAY: they send new requests on a new connection (to another replica, or after the restart).
    this.https.sessions?.goAway();
    const deadline = Date.now() + drainMs;
    // Keep closing connections as they go idle: a keep-alive client must not start a new request on a closing server.
    while (this.inFlight > 0 && Date.now() < deadline) {
      this.http.closeIdleConnections();
      https.closeIdleConnections();
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    if (this.inFlight > 0) this.log.warn('drain deadline passed; cutting requests', { inFlight: this.inFlight });
    this.forwarder.destroyWebSockets();
    const gone = [...this.sockets].map((s) => new Promise((resolve) => s.once('close', resolve)));
    this.http.closeAllConnections();
    // (An HTTP/2 server has no closeAllConnections; its sockets are destroyed just below.)
    (https as { closeAllConnections?: () => void }).closeAllConnections?.();
    this.https.sessions?.destroyAll();
    for (const s of this.sockets) s.destroy();
    await Promise.all([...closed, ...gone]);
    this.forwarder.close();
    this.log.info('stopped');
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private count(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.inFlight++;
    const observer = this.opts.observer;
    // Looked up now: the table may be swapped before the response ends.
    const host = observer ? this.routes.lookup(req.headers.host)?.site.host : undefined;
    const started = observer ? performance.now() : 0;
    res.once('close', () => this.finished(host, res.headersSent ? res.statusCode : 0, started));
  }

  /** `count()` for an HTTP/2 stream. */
  private countStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    this.inFlight++;
    const observer = this.opts.observer;
    const host = observer ? this.routes.lookup(headers[':authority'] ?? headers.host)?.site.host : undefined;
    const started = observer ? performance.now() : 0;
    stream.once('close', () => this.finished(host, stream.headersSent ? Number(stream.sentHeaders[':status']) : 0, started));
  }

  private finished(host: string | undefined, status: number, started: number): void {
    this.inFlight--;
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1);
    this.opts.observer?.request(host, status, (performance.now() - started) / 1000);
  }
}

/**
 * Listens, or rejects with LISTEN_FAILED naming the address and the likely fix.
 * `reusePort`: SO_REUSEPORT, bound in this process (`exclusive`), not through
 * a node:cluster primary's shared handle.
 */
export function listenOn(server: NetServer, port: number, host: string | undefined, reusePort = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenError(err, port, host));
    server.once('error', onError);
    server.listen({ port, ...(host ? { host } : {}), ...(reusePort ? { reusePort: true, exclusive: true } : {}) }, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** A listener that cannot bind, as a typed error (the cluster's workers report the same message). */
export function listenError(err: NodeJS.ErrnoException, port: number, host: string | undefined): PadlockError {
  const where = `${host ?? '*'}:${port}`;
  const why = err.code === 'EADDRINUSE' ? `another program already listens on ${where}: stop it, or pick another port (--http-port, --https-port)`
    : err.code === 'EACCES' ? `no permission to listen on ${where}: ports below 1024 need root or CAP_NET_BIND_SERVICE`
      : err.code === 'EADDRNOTAVAIL' ? `${host ?? 'that address'} is not an address of this machine: check --bind`
        : err.message;
  return new PadlockError('LISTEN_FAILED', `cannot listen on ${where} (${err.code ?? 'error'}): ${why}`, { cause: err, details: { address: where, ...(err.code ? { errno: err.code } : {}) } });
}
