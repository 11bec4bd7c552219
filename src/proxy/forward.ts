/**
 * Forwarding one request (or one WebSocket upgrade) to a site's upstream.
 *
 * Built on http-proxy-3 with keep-alive agents. Measured with
 * bench/proxy/forward-cpu.ts (proxy-process CPU per request, loopback, plain
 * HTTP, 20k requests over 8 keep-alive client connections, median of 3; only
 * the ratios mean anything): http-proxy-3 as configured by default ~190 µs and
 * one upstream connection per request; http-proxy-3 + keep-alive agent ~76 µs;
 * this module ~81 µs; a bare hand-rolled `http.request` forward with a
 * keep-alive agent (no WebSockets, timeouts, retries or error pages) ~54 µs.
 * The agent is what matters (2.4x); http-proxy-3's own overhead over the bare
 * minimum (~25 µs) buys the WebSocket, timeout and error plumbing. Our
 * responses are written here rather than by http-proxy-3's passes so that the
 * upstream's `Connection`/`Keep-Alive` never reach the client; `stream.pipeline`
 * was measured ~30 µs dearer than `pipe` and is not used on this path.
 *
 * What this module promises:
 * - Upstream connections are reused (one `http.Agent`/`https.Agent` per
 *   Forwarder, keep-alive, LIFO so idle extras expire). The client connection
 *   stays keep-alive too: the response's `Connection` is Node's own decision
 *   from the client's request, never copied from the upstream.
 * - Hop-by-hop headers (RFC 9110 section 7.6.1: `Connection` and every header
 *   it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`,
 *   `Proxy-Authorization`/`-Authenticate`) are stripped both ways. The request's
 *   `Transfer-Encoding` is kept only so Node re-frames the body it already
 *   de-chunked; the response's is dropped and Node frames it again.
 *   `Expect` is dropped: Node already answered `100 Continue` to the client.
 * - `X-Forwarded-For` is appended to; `X-Forwarded-Proto`, `-Host` and `-Port`
 *   are set by padlock (overwritten, so a client cannot spoof them). The Host
 *   header is passed unchanged.
 * - Errors: connection refused/reset -> 502, connect timeout or response
 *   timeout -> 504, each a short page naming no address, port or stack. An
 *   idempotent request without a body whose upstream refused the connection,
 *   timed out connecting, or reset a reused keep-alive connection before
 *   answering, is retried once (on another upstream when there is one).
 * - Passive health: connect failures (and resets of fresh connections) mark
 *   the upstream down in the route's `UpstreamHealth`.
 * - Upstream HTTPS certificates are not verified (as nginx's default and
 *   nginx-proxy's `VIRTUAL_PROTO=https`): upstreams are containers on private
 *   networks, often with self-signed certificates.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { ProxyServer as HttpProxy } from 'http-proxy-3';
import type { Logger } from '../log.js';
import type { HostRoute, UpstreamTarget } from './routes.js';

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
}

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

/** Hop-by-hop headers (RFC 9110 section 7.6.1) plus the legacy `proxy-connection`. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'];
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
const RESPONSE_TIMEOUT = 'PADLOCK_UPSTREAM_TIMEOUT';

interface Attempt {
  route: HostRoute;
  target: UpstreamTarget;
  ctx: ForwardContext;
  tried: Set<string>;
  reusedSocket: boolean;
}

/** Sends a short error page that names nothing internal. Does nothing once headers are out. */
export function sendErrorPage(res: http.ServerResponse, status: number, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const body = errorPageBody(status);
  res.writeHead(status, {
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
  503: ['Service Unavailable', 'The server is restarting. Please try again in a moment.'],
  504: ['Gateway Timeout', 'The site took too long to answer. Please try again in a moment.'],
};

/** The body of padlock's own error pages: status and one sentence, no internals. */
export function errorPageBody(status: number): string {
  const [title, text] = TITLES[status] ?? [http.STATUS_CODES[status] ?? 'Error', 'The request could not be served.'];
  return `<!doctype html>\n<html><head><meta charset="utf-8"><title>${status} ${title}</title></head>\n<body><h1>${status} ${title}</h1><p>${text}</p></body></html>\n`;
}

/**
 * Forwards requests and upgrades for one process. Holds the upstream agents;
 * `close()` destroys their pooled connections (not the in-flight ones).
 */
export class Forwarder {
  private readonly proxy: HttpProxy;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly timeouts: ForwardTimeouts;
  private readonly log: Logger;
  private readonly attempts = new WeakMap<http.IncomingMessage, Attempt>();
  private readonly upgraded = new Set<Duplex>();
  private opened = 0;
  private retried = 0;
  private readonly onUpstreamError: ((host: string, error: string) => void) | undefined;

  constructor(options: ForwarderOptions) {
    this.log = options.logger;
    this.onUpstreamError = options.onUpstreamError;
    this.timeouts = { ...DEFAULT_FORWARD_TIMEOUTS, ...options.timeouts };
    const agentOptions = {
      keepAlive: true,
      maxSockets: options.maxSocketsPerUpstream ?? 256,
      maxFreeSockets: 64,
      timeout: this.timeouts.idleUpstreamMs,
      // LIFO: hot sockets are reused, surplus ones idle out.
      scheduling: 'lifo' as const,
    };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent({ ...agentOptions, rejectUnauthorized: false });
    this.proxy = new HttpProxy({
      xfwd: false,
      selfHandleResponse: true,
      connectTimeout: this.timeouts.connectMs,
      secure: false,
    });
    this.proxy.on('proxyReq', (proxyReq, req) => this.onProxyReq(proxyReq, req));
    this.proxy.on('proxyRes', (proxyRes, req, res) => this.onProxyRes(proxyRes, req, res));
    this.proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.onProxyReqWs(proxyReq, socket));
    // Errors on a client WebSocket socket reach here (http-proxy-3 emits them before any callback exists).
    this.proxy.on('error', (err, _req, res) => {
      this.log.debug('websocket client error', { error: errorCode(err) });
      if (!(res instanceof http.ServerResponse)) (res as Duplex).destroy();
    });
  }

  /** Forwards `req` to the next upstream of `route` and writes the answer (or an error page) to `res`. */
  web(req: http.IncomingMessage, res: http.ServerResponse, route: HostRoute, ctx: ForwardContext): void {
    const target = route.pick();
    if (!target) return sendErrorPage(res, 502);
    prepareRequestHeaders(req, ctx, false);
    this.send(req, res, { route, target, ctx, tried: new Set([target.key]), reusedSocket: false });
  }

  /** Forwards a WebSocket upgrade; on failure before the upgrade answers 502/504 on the raw socket. */
  ws(req: http.IncomingMessage, socket: Duplex, head: Buffer, route: HostRoute, ctx: ForwardContext): void {
    const target = route.pick();
    if (!target) return rawError(socket, 502);
    prepareRequestHeaders(req, ctx, true);
    this.proxy.ws(req, socket, head, { target: target.url, agent: this.agentFor(target) }, (err) => {
      const code = errorCode(err);
      // After the upgrade the socket carries WebSocket frames: an HTTP error page would corrupt them; just close.
      if (this.upgraded.has(socket)) return void socket.destroy();
      this.onUpstreamError?.(route.site.host, code);
      if (CONNECT_FAILURES.has(code)) route.markDown(target);
      this.log.warn('websocket upstream failed', { host: route.site.host, upstream: target.containerName, error: code });
      rawError(socket, code === 'ECONNECT_TIMEOUT' || code === RESPONSE_TIMEOUT ? 504 : 502);
    });
  }

  stats(): ForwardStats {
    return { upstreamConnectionsOpened: this.opened, websockets: this.upgraded.size, retries: this.retried };
  }

  /** Ends every proxied WebSocket (client side; the upstream side follows). For shutdown after the drain. */
  destroyWebSockets(): void {
    for (const s of this.upgraded) s.destroy();
  }

  /** Closes pooled idle upstream connections and the agents. In-flight requests are not cut. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private agentFor(target: UpstreamTarget): http.Agent {
    return target.url.protocol === 'https:' ? this.httpsAgent : this.httpAgent;
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, attempt: Attempt, replay?: Readable): void {
    this.attempts.set(req, attempt);
    const options = { target: attempt.target.url, agent: this.agentFor(attempt.target), ...(replay ? { buffer: replay } : {}) };
    this.proxy.web(req, res, options, (err) => this.onWebError(err, req, res, attempt));
  }

  private onProxyReq(proxyReq: http.ClientRequest, req: http.IncomingMessage): void {
    const attempt = this.attempts.get(req);
    if (attempt) attempt.reusedSocket = proxyReq.reusedSocket;
    if (!proxyReq.reusedSocket) this.opened++;
    proxyReq.setTimeout(this.timeouts.responseMs, () => proxyReq.destroy(codedError(RESPONSE_TIMEOUT, 'upstream response timeout')));
  }

  private onProxyRes(proxyRes: http.IncomingMessage, req: http.IncomingMessage, res: http.ServerResponse): void {
    const attempt = this.attempts.get(req);
    if (res.headersSent || res.destroyed) {
      proxyRes.resume();
      return;
    }
    const headers = proxyRes.headers;
    stripHopByHop(headers);
    delete headers['transfer-encoding'];
    if (attempt?.ctx.proto === 'https' && attempt.ctx.hstsMaxAge !== undefined && headers['strict-transport-security'] === undefined) {
      headers['strict-transport-security'] = `max-age=${attempt.ctx.hstsMaxAge}`;
    }
    if (attempt) attempt.route.markUp(attempt.target);
    res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
    // An upstream that dies mid-body: the client must see a cut, not a short "complete" body.
    // (pipe + one 'close' listener, not stream.pipeline: pipeline measured ~30 µs more per request.)
    proxyRes.once('close', () => {
      if (!proxyRes.complete && !res.destroyed) res.destroy();
    });
    proxyRes.pipe(res);
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

  private onWebError(err: Error, req: http.IncomingMessage, res: http.ServerResponse, attempt: Attempt): void {
    const code = errorCode(err);
    if (res.headersSent || res.destroyed || req.socket.destroyed) {
      // The client went away, or the answer was already under way: all that is left is to cut.
      if (!res.destroyed) res.destroy();
      return;
    }
    this.onUpstreamError?.(attempt.route.site.host, code);
    const connectFailed = CONNECT_FAILURES.has(code);
    const reset = code === 'ECONNRESET' || code === 'EPIPE';
    // A reset of a reused keep-alive socket is usually the upstream closing it as we wrote: not a sign it is down.
    const keepAliveRace = reset && attempt.reusedSocket;
    if (connectFailed || (reset && !attempt.reusedSocket)) attempt.route.markDown(attempt.target);

    if ((connectFailed || keepAliveRace) && canReplay(req) && attempt.tried.size < 2) {
      const next = attempt.route.pick(attempt.tried) ?? (keepAliveRace ? attempt.target : undefined);
      if (next) {
        this.retried++;
        attempt.tried.add(next.key);
        this.send(req, res, { ...attempt, target: next, reusedSocket: false }, Readable.from([]));
        return;
      }
    }
    const status = code === 'ECONNECT_TIMEOUT' || code === RESPONSE_TIMEOUT ? 504 : 502;
    this.log.warn('upstream failed', { host: attempt.route.site.host, upstream: attempt.target.containerName, error: code, status });
    sendErrorPage(res, status);
  }
}

/** Strips hop-by-hop headers from the client request and sets the X-Forwarded-* set. */
function prepareRequestHeaders(req: http.IncomingMessage, ctx: ForwardContext, upgrade: boolean): void {
  const h = req.headers;
  const upgradeTo = h.upgrade;
  stripHopByHop(h);
  delete h.expect;
  if (upgrade && upgradeTo !== undefined) {
    h.connection = 'upgrade';
    h.upgrade = upgradeTo;
  }
  const remote = clientAddress(req);
  const xff = h['x-forwarded-for'];
  h['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(', ') : xff}, ${remote}` : remote;
  h['x-forwarded-proto'] = ctx.proto;
  const host = h.host ?? '';
  h['x-forwarded-host'] = host;
  const port = /:(\d{1,5})$/.exec(host)?.[1];
  h['x-forwarded-port'] = port ?? (ctx.proto === 'https' ? '443' : '80');
}

function stripHopByHop(headers: http.IncomingHttpHeaders): void {
  const named = headers.connection;
  if (named) {
    for (const token of named.split(',')) {
      const name = token.trim().toLowerCase();
      // Never let the Connection header strip the end-to-end essentials.
      if (name && name !== 'host' && name !== 'content-length' && name !== 'transfer-encoding') delete headers[name];
    }
  }
  for (const name of HOP_BY_HOP) delete headers[name];
}

/** A request we may send again: idempotent, and with no body to have consumed. */
function canReplay(req: http.IncomingMessage): boolean {
  if (!IDEMPOTENT.has(req.method ?? '')) return false;
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  return length === undefined || length === '0';
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
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/html; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
  );
}
