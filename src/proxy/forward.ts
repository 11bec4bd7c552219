/**
 * Forwarding one request (or one WebSocket upgrade) to a site's upstream.
 *
 * Plain requests go through undici's dispatcher (one keep-alive pool per
 * upstream origin); WebSocket upgrades go through http-proxy-3 with a
 * keep-alive `http.Agent`. Measured with bench/proxy/forward-cpu.ts
 * (proxy-process CPU per request, loopback, plain HTTP, 20k requests over 8
 * keep-alive client connections, median of 3; only the ratios mean anything):
 * http-proxy-3 as configured by default ~190 µs and one upstream connection
 * per request; http-proxy-3 + keep-alive agent ~76 µs; padlock's earlier
 * http-proxy-3 forward ~71 µs; a bare hand-rolled `http.request` forward with a
 * keep-alive agent ~51 µs; undici's `dispatch` ~42 µs. Node's HTTP client
 * (`http.request`, which http-proxy-3 is built on) is most of the cost, so
 * requests use undici, whose HTTP/1.1 client is leaner. Upgrades are rare and
 * long-lived, and http-proxy-3's WebSocket plumbing is well tested, so they
 * stay on it.
 *
 * What this module promises:
 * - Upstreams get HTTP/1.1 whatever the client spoke (HTTP/2 clients
 *   included): undici's HTTP/2 is turned off, so an `https://` upstream that
 *   offers `h2` in ALPN still gets `http/1.1`.
 * - Upstream connections are reused (undici pools per origin, keep-alive,
 *   idle ones closed after `idleUpstreamMs` or the upstream's shorter
 *   Keep-Alive hint). The client connection stays keep-alive too: the
 *   response's `Connection` is Node's own decision from the client's request,
 *   never copied from the upstream.
 * - Hop-by-hop headers (RFC 9110 section 7.6.1: `Connection` and every header
 *   it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`,
 *   `Proxy-Authorization`/`-Authenticate`) are stripped both ways. Bodies are
 *   re-framed: Node de-chunked the client's body and undici frames it again
 *   (by length, else chunked); the response's `Transfer-Encoding` is dropped
 *   and Node frames it again. `Expect` is dropped: Node already answered
 *   `100 Continue` to the client.
 * - Backpressure both ways: the client's body is streamed to the upstream, and
 *   the upstream is paused while the client is not reading. A client that
 *   goes away aborts its upstream request.
 * - Forwarding headers (`X-Forwarded-*`, `X-Real-IP`, `Forwarded`, `Via`)
 *   follow proxy/headers.ts: a client's own are replaced unless it is a
 *   trusted proxy (`trustedProxies`). The Host header is passed unchanged.
 * - Upstream addresses follow proxy/upstream-guard.ts, applied when a
 *   connection opens (proxy/upstream-connect.ts): padlock's own listeners,
 *   link-local and cloud metadata addresses are refused before any byte is
 *   sent, with a 502 to the client and a log line naming the rule.
 * - Errors: connection refused/reset -> 502, connect timeout or response
 *   timeout -> 504, each a short page naming no address, port or stack. An
 *   idempotent request without a body whose upstream refused the connection,
 *   timed out connecting, or reset the connection before answering (usually a
 *   pooled keep-alive connection the upstream closed as we wrote), is retried
 *   once (on another upstream when there is one). A request with a body is
 *   never replayed.
 * - Held requests (with a `RequestHold`, proxy/hold.ts): a request whose
 *   route has no upstream that can take it (all down, all failing their
 *   health check, or the route in its grace period) waits for one before it
 *   is sent, up to the route's upstream wait; an idempotent request without
 *   a body whose connection was refused waits too and goes to the next
 *   upstream that comes up, as does one whose retry was reset again before
 *   any answer (the upstream going away). When the wait ends first: 503 with
 *   `Retry-After`. Without a hold (or with a wait of 0), a route with no
 *   usable upstream answers 503 at once.
 * - Passive health: connect failures mark the upstream down in the route's
 *   `UpstreamHealth`; any answer marks it up.
 * - Request targets go upstream in origin form (`/path?query`). An
 *   absolute-form target (`GET http://host/path`) must name the Host the
 *   request was routed by, else 400 (RFC 9112 section 3.2.2 puts the target's
 *   authority before Host; padlock does not let the two disagree). `OPTIONS *`
 *   is answered 200 by padlock.
 * - Interim answers: 103 Early Hints are passed on (their `Link`), 102 is
 *   dropped. An unsolicited `100 Continue` (padlock never sends `Expect`) is a
 *   protocol error for undici and becomes a 502.
 * - A reason phrase Node cannot send (anything but visible ASCII) is replaced
 *   by the standard one.
 * - Upstream HTTPS certificates are not verified (as nginx's default and
 *   nginx-proxy's `VIRTUAL_PROTO=https`): upstreams are containers on private
 *   networks, often with self-signed certificates.
 */
import type * as http from 'node:http';
import nodeHttp from '../node-http.js';
import https from 'node:https';
import type { BlockList, LookupFunction } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { ProxyServer as HttpProxy } from 'http-proxy-3';
import type { Agent as UndiciAgentType, Dispatcher as UndiciDispatcher } from 'undici';
import { Agent as UndiciAgent } from './undici-parts.js';
import type { Logger } from '../log.js';
import { endToEndTrailers, prepareRequestHeaders, stripHopByHop, teAcceptsTrailers, type ForwardFacts } from './headers.js';
import { H2cPool } from './h2c-upstream.js';
import { hostFromHeader, type HostRoute, type UpstreamTarget } from './routes.js';
import { guardAgent, guardedPoolFactory } from './upstream-connect.js';
import { addressIn, cidrList, UpstreamGuard } from './upstream-guard.js';
import type { ClientEnd, HoldOutcome, RequestHold } from './hold.js';

export { endToEndTrailers } from './headers.js';

export interface ForwardTimeouts {
  /** Opening a new TCP connection to an upstream; then 504 and the upstream is marked down. */
  connectMs: number;
  /** The upstream silent this long (before or while answering); 504 if nothing was sent to the client yet. */
  responseMs: number;
  /** An idle pooled upstream connection is closed after this long (the upstream's Keep-Alive hint wins when shorter). */
  idleUpstreamMs: number;
}

export const DEFAULT_FORWARD_TIMEOUTS: Readonly<ForwardTimeouts> = Object.freeze({
  connectMs: 5_000,
  responseMs: 60_000,
  idleUpstreamMs: 15_000,
});

export interface ForwarderOptions {
  logger: Logger;
  timeouts?: Partial<ForwardTimeouts>;
  /** Most concurrent connections to one upstream origin (default 256). */
  maxSocketsPerUpstream?: number;
  /**
   * Called once per failed upstream attempt (connection refused, timeouts,
   * resets; a retried attempt counts too) while the client is still there.
   * For metrics; it must not throw and must be cheap.
   */
  onUpstreamError?: (host: string, error: string) => void;
  /** The upstream rules (default: link-local and metadata refused, no own port known yet); `setGuard` replaces it. */
  guard?: UpstreamGuard;
  /** CIDRs whose clients' forwarding headers are kept and appended to (`--trusted-proxies`); default none. */
  trustedProxies?: readonly string[];
  /** Resolves upstream names (default: the system resolver). Tests map names to 127.0.0.1 with it. */
  lookup?: LookupFunction;
  /** Holds requests while no upstream is up (proxy/hold.ts); without it they fail at once, as before. */
  hold?: RequestHold;
  /**
   * Called once per request padlock answers 503 itself because no upstream
   * could take it: `no-upstream` (no wait configured, or none usable),
   * `wait-elapsed` (held until its wait ran out), `hold-full` (a hold limit
   * was reached). For metrics; it must not throw.
   */
  onUnavailable?: (host: string, reason: UnavailableReason) => void;
}

/** Why padlock answered 503 itself (see `ForwarderOptions.onUnavailable`). */
export type UnavailableReason = 'no-upstream' | 'wait-elapsed' | 'hold-full';

/** The `Retry-After` (seconds) on padlock's own 503 answers. */
export const RETRY_AFTER_SECONDS = 5;

/** What the front server knows about the request that the upstream cannot. */
export interface ForwardContext {
  /** The scheme the client used to reach padlock. */
  proto: 'http' | 'https';
  /** When set (HTTPS only), responses without their own HSTS header get `max-age=N`. */
  hstsMaxAge?: number | undefined;
}

export interface ForwardStats {
  /** Upstream connections opened (not reused) since start. */
  upstreamConnectionsOpened: number;
  /** WebSockets currently proxied. */
  websockets: number;
  retries: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESPONSE_TIMEOUT = 'PADLOCK_UPSTREAM_TIMEOUT';
const CLIENT_GONE = 'PADLOCK_CLIENT_GONE';
const FORBIDDEN = 'UPSTREAM_FORBIDDEN';
/** A reason phrase Node will send: tabs and visible ASCII (RFC 9112 allows obs-text too, Node does not). */
const PRINTABLE_REASON = /^[\t\x20-\x7e]*$/;

/**
 * The client side of one exchange: where the upstream's answer goes.
 * `http.ServerResponse` has this shape; proxy/h2-response.ts adapts an
 * HTTP/2 stream to it, so both protocols share one forwarding path.
 */
export interface ClientResponse {
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  /** The client connection, or null once it is gone. */
  readonly socket: { readonly destroyed: boolean } | null;
  statusMessage: string;
  /**
   * `complete`: the answer is this head alone (an h2c upstream's trailers-only answer, gRPC's error shape);
   * an HTTP/2 response then ends its stream with the HEADERS frame. Others ignore it and are ended as usual.
   */
  writeHead(status: number, reason: string | undefined, headers: http.OutgoingHttpHeaders, complete?: boolean): unknown;
  /** Sends the head now rather than with the first body byte (HTTP/1.1 only). */
  flushHeaders?(): void;
  write(chunk: Buffer): boolean;
  end(body?: string): unknown;
  destroy(): unknown;
  writeEarlyHints(hints: Record<string, string | string[]>): void;
  /** Set on an HTTP/2 gRPC call: padlock's own errors go out as gRPC statuses (`sendErrorPage`). */
  readonly grpc?: boolean;
  /** Trailer fields sent after the body (HTTP/1.1: only on a chunked response; HTTP/2: always). */
  addTrailers(trailers: http.OutgoingHttpHeaders): void;
  once(event: 'close' | 'drain', listener: () => void): unknown;
  off(event: 'close' | 'drain', listener: () => void): unknown;
}

/** One client request as it goes upstream, from either protocol: headers already prepared (proxy/headers.ts). */
export interface ForwardRequest {
  readonly method: string;
  /** The target in origin form (`/path?query`). */
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  /** The request body, or null when there is none (such a request may be retried). */
  readonly body: Readable | null;
  /** What to pause while the request is held for an upstream: the client's socket (HTTP/1.1) or its HTTP/2 stream. */
  readonly source?: { pause(): unknown; resume(): unknown; readonly destroyed: boolean } | undefined;
  /** The client sent `TE: trailers` (passed on to h2c upstreams only, where gRPC needs it; HTTP/1.1 upstreams get no TE). */
  readonly acceptsTrailers?: boolean | undefined;
  /** The client's request trailers, once its body has ended (h2c upstreams get them; HTTP/1.1 upstreams do not). */
  readonly trailers?: (() => http.IncomingHttpHeaders | undefined) | undefined;
}

interface Attempt {
  readonly route: HostRoute;
  readonly target: UpstreamTarget;
  readonly ctx: ForwardContext;
  /** Keys of the upstreams tried so far, this one included. */
  readonly tried: readonly string[];
}

/**
 * Sends a short error page that names nothing internal. Does nothing once
 * headers are out. A gRPC call (`res.grpc`) gets a gRPC status instead, in a
 * trailers-only answer (HTTP 200, `grpc-status`, `grpc-message`), as Envoy
 * answers: a gRPC client reads that status, where an HTML page would only
 * tell it "bad content type".
 */
export function sendErrorPage(res: ClientResponse, status: number, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  if (res.grpc) {
    const text = `padlock: ${status} ${TITLES[status]?.[0] ?? nodeHttp.STATUS_CODES[status] ?? 'Error'}`;
    res.writeHead(200, undefined, {
      'content-type': 'application/grpc',
      'grpc-status': String(grpcStatusFor(status)),
      'grpc-message': grpcMessage(text),
      ...extraHeaders,
    }, true);
    if (!res.writableFinished) res.end();
    return;
  }
  const body = errorPageBody(status);
  // The reason phrase is given, so one left over from a failed writeHead() is never reused.
  res.writeHead(status, nodeHttp.STATUS_CODES[status] ?? 'Error', {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extraHeaders,
  });
  res.end(body);
}

const TITLES: Record<number, [string, string]> = {
  400: ['Bad Request', 'The request could not be understood.'],
  404: ['Not Found', 'No site is served under this name here.'],
  421: ['Misdirected Request', 'This connection cannot serve the name in the request. Open a new connection to that name.'],
  502: ['Bad Gateway', 'The site is not answering right now. Please try again in a moment.'],
  503: ['Service Unavailable', 'The site is restarting or busy. Please try again in a moment.'],
  504: ['Gateway Timeout', 'The site took too long to answer. Please try again in a moment.'],
};

/**
 * The gRPC status for one of padlock's own HTTP errors, by the gRPC
 * project's HTTP-to-gRPC mapping (doc/http-grpc-status-mapping.md, which
 * Envoy follows): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function grpcStatusFor(status: number): number {
  switch (status) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

/** A `grpc-message` value: percent-encoded outside visible ASCII and space, and `%` itself (the gRPC HTTP/2 protocol spec). */
export function grpcMessage(text: string): string {
  return Array.from(Buffer.from(text, 'utf8'), (b) => (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** The body of padlock's own error pages: status and one sentence, no internals. */
export function errorPageBody(status: number): string {
  const [title, text] = TITLES[status] ?? [nodeHttp.STATUS_CODES[status] ?? 'Error', 'The request could not be served.'];
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${status} ${title}</title></head>\n<body><h1>${status} ${title}</h1><p>${text}</p></body></html>\n`;
}

/**
 * Forwards requests and upgrades for one process. Holds the upstream agents;
 * `close()` destroys their pooled connections (not the in-flight ones).
 */
export class Forwarder {
  /** Plain requests: undici, one keep-alive pool per upstream origin. */
  private readonly dispatcher: UndiciAgentType;
  /** Requests to h2c upstreams (gRPC): one HTTP/2 session per upstream address. */
  private readonly h2c: H2cPool;
  /** WebSocket upgrades: http-proxy-3 over a keep-alive `http.Agent` (rare; not on the hot path). */
  private readonly proxy: HttpProxy;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeouts: ForwardTimeouts;
  private guard: UpstreamGuard;
  private readonly trusted: BlockList | undefined;
  readonly log: Logger;
  private readonly upgraded = new Set<Duplex>();
  private opened = 0;
  retried = 0;
  readonly onUpstreamError: ((host: string, error: string) => void) | undefined;
  readonly hold: RequestHold | undefined;
  private readonly onUnavailable: ForwarderOptions['onUnavailable'];

  constructor(options: ForwarderOptions) {
    this.log = options.logger;
    this.onUpstreamError = options.onUpstreamError;
    this.hold = options.hold;
    this.onUnavailable = options.onUnavailable;
    this.timeouts = { ...DEFAULT_FORWARD_TIMEOUTS, ...options.timeouts };
    const maxSockets = options.maxSocketsPerUpstream ?? 256;
    this.guard = options.guard ?? new UpstreamGuard();
    this.trusted = cidrList(options.trustedProxies);
    const guard = () => this.guard;
    this.dispatcher = new UndiciAgent({
      // One pool per upstream origin, as undici's default factory, with padlock's guarded connector.
      factory: guardedPoolFactory(guard, options.lookup),
      connections: maxSockets,
      pipelining: 1,
      // The upstream's own Keep-Alive hint wins when shorter (minus undici's 1 s threshold).
      keepAliveTimeout: this.timeouts.idleUpstreamMs,
      keepAliveMaxTimeout: this.timeouts.idleUpstreamMs,
      headersTimeout: this.timeouts.responseMs,
      bodyTimeout: this.timeouts.responseMs,
      connect: { timeout: this.timeouts.connectMs, rejectUnauthorized: false },
      // Upstreams are spoken to over HTTP/1.1 keep-alive, whatever the client used: undici 7+ would
      // otherwise offer h2 to an https:// upstream, and its h2 client follows other rules (no retry on reset).
      allowH2: false,
    });
    this.dispatcher.on('connect', () => this.opened++);
    this.h2c = new H2cPool({
      guard,
      lookup: options.lookup,
      connectMs: this.timeouts.connectMs,
      responseMs: this.timeouts.responseMs,
      idleMs: this.timeouts.idleUpstreamMs,
      onConnect: () => this.opened++,
    });
    const agentOptions = {
      keepAlive: true,
      maxSockets,
      maxFreeSockets: 64,
      timeout: this.timeouts.idleUpstreamMs,
      // LIFO: hot sockets are reused, surplus ones idle out.
      scheduling: 'lifo' as const,
    };
    this.httpAgent = guardAgent(new nodeHttp.Agent(agentOptions), guard, options.lookup);
    this.httpsAgent = guardAgent(new https.Agent({ ...agentOptions, rejectUnauthorized: false }), guard, options.lookup);
    this.proxy = new HttpProxy({
      xfwd: false,
      connectTimeout: this.timeouts.connectMs,
      secure: false,
    });
    this.proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.onProxyReqWs(proxyReq, socket));
    // Errors on a client WebSocket socket reach here (http-proxy-3 emits them before any callback exists).
    this.proxy.on('error', (err, _req, res) => {
      this.log.debug('websocket client error', { error: errorCode(err) });
      if (!(res instanceof nodeHttp.ServerResponse)) (res as Duplex).destroy();
    });
  }

  /** Prepares an HTTP/1.1 request's target and headers and forwards it (see `forward`), writing the answer or an error page to `res`. */
  web(req: http.IncomingMessage, res: http.ServerResponse, route: HostRoute, ctx: ForwardContext): void {
    const path = originFormTarget(req.url ?? '/', req.method, req.headers.host);
    if (path === undefined) return sendErrorPage(res, 400);
    const hasBody = requestHasBody(req);
    const acceptsTrailers = teAcceptsTrailers(req.headers.te);
    prepareRequestHeaders(req.headers, this.facts(req, ctx), false);
    // undici frames the body itself (chunked when there is no Content-Length) and refuses these headers.
    delete req.headers['transfer-encoding'];
    this.forward({
      method: req.method ?? 'GET', path, headers: req.headers, body: hasBody ? req : null, source: req.socket,
      acceptsTrailers, trailers: () => req.trailers,
    }, res, route, ctx);
  }

  /**
   * Forwards a request whose headers are already prepared (`web()` does that
   * for HTTP/1.1; proxy/h2-stream.ts for HTTP/2) to the next upstream of
   * `route`, and writes the answer, or an error page, to `res`. When no
   * upstream can take it (all down, or the route is in its grace period), it
   * is held first (proxy/hold.ts), then forwarded or answered 503 with
   * `Retry-After`.
   */
  forward(request: ForwardRequest, res: ClientResponse, route: HostRoute, ctx: ForwardContext): void {
    if (request.path === '*') {
      // `OPTIONS *` asks about the server, not a resource: answered here (as Go's net/http does).
      res.writeHead(200, undefined, { 'content-length': 0 });
      return void res.end();
    }
    if (this.hold && !route.available() && this.hold.waitMsFor(route) > 0) {
      const deadline = Date.now() + this.hold.waitMsFor(route);
      // Read no more of the client's body while it waits: it stays in the kernel (HTTP/2: with the client, by flow control), not in padlock's memory.
      const source = request.source;
      source?.pause();
      const resume = (): void => void (source && !source.destroyed && source.resume());
      return this.whenUp(route, deadline, res, (next) => {
        resume();
        this.send(request, res, next, ctx, deadline);
      }, (reason) => {
        resume();
        this.unavailable(res, route.site.host, reason);
      });
    }
    this.send(request, res, route, ctx, undefined);
  }

  /** Picks the upstream and sends; 503 when the route has none that can take a request. */
  private send(request: ForwardRequest, res: ClientResponse, route: HostRoute, ctx: ForwardContext, deadline: number | undefined): void {
    const target = route.pick();
    if (!target) return this.unavailable(res, route.site.host, 'no-upstream');
    new Exchange(this, request, res, { route, target, ctx, tried: [target.key] }, deadline).dispatch();
  }

  /**
   * Holds until `route`'s host can take a request (or `deadline`), then calls
   * `go` with the route in force then, or `fail` with why not. Nothing is
   * called when the client left meanwhile.
   */
  whenUp(route: HostRoute, deadline: number, end: ClientEnd, go: (route: HostRoute) => void, fail: (reason: UnavailableReason) => void): void {
    const hold = this.hold;
    const host = route.site.host;
    if (!hold || deadline <= Date.now()) return fail(hold ? 'wait-elapsed' : 'no-upstream');
    void hold.wait(host, deadline - Date.now(), end).then((outcome: HoldOutcome) => {
      if (outcome === 'gone') return;
      const next = outcome === 'released' ? hold.route(host) : undefined;
      if (!next) return fail(outcome === 'full' ? 'hold-full' : 'wait-elapsed');
      // Released, but the upstream went down again before this request's turn: wait out the rest.
      if (!next.available()) return this.whenUp(next, deadline, end, go, fail);
      go(next);
    });
  }

  /** padlock's own 503: no upstream could take the request. */
  unavailable(res: ClientResponse, host: string, reason: UnavailableReason): void {
    this.onUnavailable?.(host, reason);
    sendErrorPage(res, 503, { 'retry-after': String(RETRY_AFTER_SECONDS) });
  }

  /** Sends one attempt of `exchange` through the pool of its current target. */
  dispatch(exchange: Exchange): void {
    const { request, attempt } = exchange;
    if (attempt.target.h2c) return this.h2c.dispatch(attempt.target, request, exchange);
    try {
      this.dispatcher.dispatch(
        {
          origin: attempt.target.url.origin,
          path: request.path,
          method: request.method,
          headers: request.headers as Record<string, string | string[]>,
          body: request.body,
          // undici closes the connection after every HEAD (against upstreams that send a body anyway);
          // Node's HTTP client and nginx keep it, and so does padlock.
          ...(request.method === 'HEAD' ? { reset: false } : {}),
        },
        exchange,
      );
    } catch (err) {
      // undici refuses a request it cannot send (a header value it rejects, say): that is a bad gateway, not a crash.
      exchange.onResponseError(undefined, err as Error);
    }
  }

  /** Whether `client` is in `--trusted-proxies` (its forwarding headers are kept). */
  trusts(client: string): boolean {
    return this.trusted !== undefined && addressIn(this.trusted, client);
  }

  /** Forwards a WebSocket upgrade; on failure before the upgrade answers 502/504 on the raw socket. */
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, route: HostRoute, ctx: ForwardContext, deadline?: number): void {
    if (this.hold && !route.available() && deadline === undefined && this.hold.waitMsFor(route) > 0) {
      const until = Date.now() + this.hold.waitMsFor(route);
      const fail = (reason: UnavailableReason): void => {
        this.onUnavailable?.(route.site.host, reason);
        rawError(socket, 503);
      };
      return this.whenUp(route, until, socket, (next) => this.ws(req, socket, head, next, ctx, until), fail);
    }
    const target = route.pick();
    if (!target) {
      this.onUnavailable?.(route.site.host, 'no-upstream');
      return rawError(socket, 503);
    }
    prepareRequestHeaders(req.headers, this.facts(req, ctx), true);
    this.proxy.ws(req, socket, head, { target: target.url, agent: this.agentFor(target) }, (err) => {
      const code = errorCode(err);
      // After the upgrade the socket carries WebSocket frames: an HTTP error page would corrupt them; just close.
      if (this.upgraded.has(socket)) return void socket.destroy();
      this.onUpstreamError?.(route.site.host, code);
      if (CONNECT_FAILURES.has(code)) route.markDown(target);
      const status = code === 'ECONNECT_TIMEOUT' || code === RESPONSE_TIMEOUT ? 504 : 502;
      this.logFailure('websocket upstream failed', route, target, err, code, status);
      rawError(socket, status);
    });
  }

  /** Replaces the upstream rules; the next new upstream connection is judged by `guard`. */
  setGuard(guard: UpstreamGuard): void {
    this.guard = guard;
  }

  /** One failed attempt in the log: a refused upstream says which rule, anything else its error code. */
  logFailure(message: string, route: HostRoute, target: UpstreamTarget, err: unknown, code: string, status: number): void {
    const fields = { host: route.site.host, upstream: target.containerName, error: code, status };
    if (code === FORBIDDEN) {
      const rule = (err as { details?: { rule?: string } }).details?.rule;
      this.log.warn('upstream refused: padlock does not forward there', { ...fields, rule, reason: (err as Error).message });
    } else {
      this.log.warn(message, fields);
    }
  }

  stats(): ForwardStats {
    return { upstreamConnectionsOpened: this.opened, websockets: this.upgraded.size, retries: this.retried };
  }

  /** Ends every proxied WebSocket (client side; the upstream side follows). For shutdown after the drain. */
  destroyWebSockets(): void {
    for (const s of this.upgraded) s.destroy();
  }

  /**
   * The route table changed: closes the h2c sessions of upstreams no route
   * names any more (their open streams finish first).
   */
  routesChanged(upstreamKeys: ReadonlySet<string>): void {
    this.h2c.closeExcept(upstreamKeys);
  }

  /** Closes pooled idle upstream connections and the agents. In-flight requests are not cut. */
  close(): void {
    this.h2c.close();
    this.dispatcher.close().catch(() => undefined);
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** The facts the header policy needs; the CIDR check runs only when trusted proxies are configured. */
  private facts(req: http.IncomingMessage, ctx: ForwardContext): ForwardFacts {
    const client = clientAddress(req);
    return {
      proto: ctx.proto,
      client,
      port: req.socket.localPort ?? 0,
      httpVersion: req.httpVersion,
      trusted: this.trusts(client),
    };
  }

  private agentFor(target: UpstreamTarget): http.Agent {
    return target.url.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
  }

  private onProxyReqWs(proxyReq: http.ClientRequest, socket: Duplex): void {
    if (!proxyReq.reusedSocket) this.opened++;
    proxyReq.setTimeout(this.timeouts.responseMs, () => proxyReq.destroy(codedError(RESPONSE_TIMEOUT, 'upstream upgrade timeout')));
    proxyReq.once('upgrade', () => {
      proxyReq.setTimeout(0);
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
    });
  }
}

/**
 * One client request on its way through undici: the dispatch handler that
 * writes the upstream's answer to the client, with backpressure both ways, and
 * decides what a failure becomes (a retry, 502/504, or a cut).
 * A class rather than closures: this is the per-request hot path.
 */
class Exchange implements UndiciDispatcher.DispatchHandler {
  private controller: UndiciDispatcher.DispatchController | undefined;
  private readonly onClientClose = (): void => {
    if (!this.res.writableFinished) this.controller?.abort(codedError(CLIENT_GONE, 'client closed'));
  };
  private waitingForDrain = false;
  private readonly onClientDrain = (): void => {
    this.waitingForDrain = false;
    this.controller?.resume();
  };

  constructor(
    private readonly fwd: Forwarder,
    readonly request: ForwardRequest,
    private readonly res: ClientResponse,
    public attempt: Attempt,
    /** When this request's wait for an upstream ends (ms since epoch), once it has been held; see `Forwarder.whenUp`. */
    private deadline: number | undefined,
  ) {
    res.once('close', this.onClientClose);
  }

  dispatch(): void {
    this.controller = undefined;
    this.fwd.dispatch(this);
  }

  onRequestStart(controller: UndiciDispatcher.DispatchController): void {
    this.controller = controller;
    if (this.res.destroyed) controller.abort(codedError(CLIENT_GONE, 'client closed'));
  }

  onResponseStart(controller: UndiciDispatcher.DispatchController, status: number, headers: http.IncomingHttpHeaders, statusMessage?: string, complete = false): void {
    const res = this.res;
    if (status < 200) {
      // Interim answers (102, 103) are not the response. Early hints are passed on; the rest are dropped.
      if (status === 103 && headers.link !== undefined && !res.headersSent) {
        try {
          res.writeEarlyHints({ link: headers.link });
        } catch {
          // A hint Node will not send is only a hint.
        }
      }
      return;
    }
    if (res.headersSent || res.destroyed) return void controller.abort(codedError(CLIENT_GONE, 'client closed'));
    stripHopByHop(headers);
    delete headers['transfer-encoding'];
    const { ctx, route, target } = this.attempt;
    if (ctx.proto === 'https' && ctx.hstsMaxAge !== undefined && headers['strict-transport-security'] === undefined) {
      headers['strict-transport-security'] = `max-age=${ctx.hstsMaxAge}`;
    }
    route.markUp(target);
    try {
      // undici decodes the reason phrase as UTF-8; Node sends only visible ASCII, so anything else gets the standard one.
      res.writeHead(status, statusMessage && PRINTABLE_REASON.test(statusMessage) ? statusMessage : undefined, headers, complete);
      // Node holds an HTTP/1.1 head back until the first body byte. An answer of unknown length (server-sent
      // events, a long poll, a streamed page) goes out head first, as Caddy does; HTTP/2 sends it at once anyway.
      if (!complete && headers['content-length'] === undefined && status !== 204 && status !== 304) res.flushHeaders?.();
    } catch {
      // A header Node will not send (an invalid value from the upstream): 502 rather than a half-written head.
      res.statusMessage = '';
      return void controller.abort(codedError('EBADHEADER', 'upstream sent a header that cannot be forwarded'));
    }
    if (complete) {
      // A trailers-only answer (h2c): nothing follows.
      res.off('close', this.onClientClose);
      if (!res.writableFinished) res.end();
    }
  }

  onResponseData(controller: UndiciDispatcher.DispatchController, chunk: Buffer): void {
    if (!this.res.write(chunk) && !this.waitingForDrain) {
      // The client is not reading: stop reading from the upstream until it does.
      this.waitingForDrain = true;
      controller.pause();
      this.res.once('drain', this.onClientDrain);
    }
  }

  onResponseEnd(_controller: UndiciDispatcher.DispatchController, trailers: http.IncomingHttpHeaders): void {
    this.res.off('close', this.onClientClose);
    const forwarded = trailers ? endToEndTrailers(trailers) : undefined;
    if (forwarded) {
      try {
        this.res.addTrailers(forwarded);
      } catch {
        // A trailer field Node will not send is dropped; the body is complete without it.
      }
    }
    this.res.end();
  }

  onResponseError(_controller: UndiciDispatcher.DispatchController | undefined, err: Error): void {
    const { request, res, attempt, fwd } = this;
    const code = upstreamErrorCode(err);
    // (undici destroys the request body stream on error, which detaches `req.socket`: ask `res`.)
    if (code === CLIENT_GONE || res.headersSent || res.destroyed || !res.socket || res.socket.destroyed) {
      // The client went away, or the answer was already under way: all that is left is to cut.
      res.off('close', this.onClientClose);
      if (code !== CLIENT_GONE && res.headersSent && !res.destroyed) {
        // The upstream cut or stalled its own answer (an app killed mid-answer): the client sees a cut connection, so say why.
        fwd.onUpstreamError?.(attempt.route.site.host, code);
        fwd.log.warn('upstream failed after its answer began; cutting the client connection', { host: attempt.route.site.host, upstream: attempt.target.containerName, error: code });
      }
      if (!res.destroyed) res.destroy();
      return;
    }
    fwd.onUpstreamError?.(attempt.route.site.host, code);
    const connectFailed = CONNECT_FAILURES.has(code);
    // A reset before any answer is usually a pooled keep-alive connection the upstream closed as we wrote.
    const reset = code === 'ECONNRESET' || code === 'EPIPE';
    // The retry reset too: the upstream is going away (a container stopping), not a stale pooled connection.
    // Nothing was answered, so it counts as down like a refused connection, and the request may wait as one would.
    const gone = connectFailed || (reset && attempt.tried.length >= 2);
    if (gone) attempt.route.markDown(attempt.target);

    const replayable = request.body === null && IDEMPOTENT.has(request.method);
    if ((connectFailed || reset) && replayable && attempt.tried.length < 2) {
      const next = attempt.route.pick(new Set(attempt.tried)) ?? (reset ? attempt.target : undefined);
      if (next) {
        fwd.retried++;
        this.attempt = { ...attempt, target: next, tried: [...attempt.tried, next.key] };
        this.dispatch();
        return;
      }
    }
    const hold = fwd.hold;
    if (gone && replayable && hold) {
      // No upstream answered: wait for the next one that comes up (within this request's wait) and send it there.
      this.deadline ??= Date.now() + hold.waitMsFor(attempt.route);
      if (this.deadline > Date.now()) {
        this.controller = undefined;
        fwd.whenUp(attempt.route, this.deadline, res, (route) => {
          const target = route.pick();
          if (!target) return this.giveUp(route.site.host, 'no-upstream');
          fwd.retried++;
          this.attempt = { ...attempt, route, target, tried: [...attempt.tried, target.key] };
          this.dispatch();
        }, (reason) => this.giveUp(attempt.route.site.host, reason));
        return;
      }
    }
    res.off('close', this.onClientClose);
    const status = code === 'ECONNECT_TIMEOUT' || code === RESPONSE_TIMEOUT ? 504 : 502;
    fwd.logFailure('upstream failed', attempt.route, attempt.target, err, code, status);
    sendErrorPage(res, status);
  }

  /** The held retry found no upstream in time: 503. */
  private giveUp(host: string, reason: UnavailableReason): void {
    this.res.off('close', this.onClientClose);
    this.fwd.unavailable(this.res, host, reason);
  }
}

/** undici's error codes, mapped onto the names padlock reports (metrics labels, logs). */
function upstreamErrorCode(err: unknown): string {
  const code = errorCode(err);
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'ECONNECT_TIMEOUT';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return RESPONSE_TIMEOUT;
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      // "other side closed" and friends (mid-body too): the connection went away under the request.
      return errorCode((err as { cause?: unknown }).cause) === 'EPIPE' ? 'EPIPE' : 'ECONNRESET';
    default:
      return code;
  }
}

/**
 * The request target to send upstream, in origin form; `*` for `OPTIONS *`; undefined for a target
 * padlock refuses (400). An absolute-form target (`GET http://host/path`) names its own host, which
 * RFC 9112 section 3.2.2 puts before the Host header; padlock routed by Host, so the two must agree.
 */
export function originFormTarget(target: string, method: string | undefined, hostHeader: string | undefined): string | undefined {
  if (target.startsWith('/')) return target;
  if (target === '*') return method === 'OPTIONS' ? '*' : undefined;
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const host = hostFromHeader(hostHeader);
  if (host === undefined || host !== hostFromHeader(url.host)) return undefined;
  return `${url.pathname}${url.search}`;
}

/** Whether the client sent a body (framed by length or chunked): such a request is never replayed. */
function requestHasBody(req: http.IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}

function clientAddress(req: http.IncomingMessage): string {
  const a = req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** An error answer written on a raw (not yet upgraded) socket, then closed. */
function rawError(socket: Duplex, status: number): void {
  if (socket.destroyed) return;
  const body = errorPageBody(status);
  socket.end(
    `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\ncontent-type: text/html; charset=utf-8\r\n` +
      (status === 503 ? `retry-after: ${RETRY_AFTER_SECONDS}\r\n` : '') +
      `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}
