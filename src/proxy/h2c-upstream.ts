/**
 * Requests to upstreams that speak cleartext HTTP/2 with prior knowledge
 * (h2c, RFC 9113 section 3.3): gRPC apps, asked for with `padlock.proto=h2c`,
 * `VIRTUAL_PROTO=grpc` or an `h2c://` upstream URL. What Caddy's
 * `reverse_proxy h2c://` and Traefik's `scheme=h2c` do.
 *
 * Node's own HTTP/2 client rather than undici's `H2CClient`: undici 8
 * cannot send request trailers (a TODO in its client-h2.js) and does not
 * tell a trailers-only answer from a head followed by an empty body.
 *
 * One request is driven through undici's dispatch-handler interface
 * (`onResponseStart`, `onResponseData`, ...), so proxy/forward.ts's
 * `Exchange` writes the answer, retries, holds and maps failures to 502/504
 * exactly as for HTTP/1.1 upstreams.
 *
 * What this module promises:
 * - **One session per upstream address**, shared by every request to it, in
 *   every route that names it. A session that received GOAWAY, failed or
 *   closed is dropped from the pool at once: the next request opens a new
 *   one, while streams already on the old one finish there. A session with no
 *   stream open for `idleMs` is closed. `closeExcept()` closes (gracefully)
 *   the sessions of upstreams no route names any more, so a hot reload leaks
 *   none.
 * - **Streams per session:** as many as the upstream's
 *   SETTINGS_MAX_CONCURRENT_STREAMS allows. No request is sent before the
 *   upstream's first SETTINGS frame (sent before it, a request over the
 *   limit would be refused with REFUSED_STREAM); an upstream that sends none
 *   within `connectMs` counts as a connect timeout. Requests over the limit
 *   wait in padlock, oldest first, for a stream to end: a request that is
 *   not gRPC at most `responseMs` (then 504); a gRPC call until its client's
 *   deadline. How many can wait is bounded by the client side:
 *   `--http2-max-concurrent-streams` per client connection.
 * - **Streaming both ways, unbuffered:** each DATA frame from the upstream
 *   is written to the client as it comes, and the request body to the
 *   upstream as it comes, with backpressure both ways (HTTP/2 flow control
 *   stops the sender).
 * - **Trailers both ways:** the client's request trailers follow the body
 *   to the upstream, and the upstream's trailers (`grpc-status`,
 *   `grpc-message`) follow the answer to the client. A trailers-only answer
 *   (gRPC's error shape: one HEADERS frame that ends the stream) stays one.
 * - **Headers:** the request's head as proxy/headers.ts made it, with Host
 *   as `:authority`, `:scheme` http, and `te: trailers` when the client sent
 *   it (gRPC servers require it; every other hop-by-hop field is gone).
 * - **Timeouts:** connect within `connectMs` (else 504, upstream marked down).
 *   A request that is not gRPC gets its response head within `responseMs`
 *   of its body's end, and its body with no gap longer than `responseMs`
 *   (else 504 before the head, a reset after), as over HTTP/1.1. A gRPC call
 *   (`content-type: application/grpc...`) has no padlock timeout: a stream
 *   may stay silent as long as the call lives, and the client's own
 *   deadline (`grpc-timeout`) ends it, which cancels the upstream stream.
 * - **Failures** come out as the codes the forwarder knows: a refused
 *   connection `ECONNREFUSED`, a connect timeout `ECONNECT_TIMEOUT`, an
 *   address the upstream rules refuse `UPSTREAM_FORBIDDEN`, and a stream
 *   or session that ends before the answer is complete `ECONNRESET`.
 */
import http2 from 'node:http2';
import type http from 'node:http';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { guardedSocket, type CurrentGuard } from './upstream-connect.js';
import type { UpstreamTarget } from './routes.js';
import { endToEndTrailers } from './headers.js';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = http2.constants;

export interface H2cPoolOptions {
  /** The upstream rules in force, read at every new connection. */
  guard: CurrentGuard;
  /** Resolves upstream names (default: the system resolver). */
  lookup?: LookupFunction | undefined;
  connectMs: number;
  responseMs: number;
  /** A session with no open stream is closed after this long. */
  idleMs: number;
  /** Called once per new session (for the forwarder's connection count). */
  onConnect?: () => void;
}

/** One request as it goes to an h2c upstream. */
export interface H2cRequest {
  readonly method: string;
  readonly path: string;
  /** Prepared by proxy/headers.ts: no hop-by-hop field left; `host` becomes `:authority`. */
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Readable | null;
  /** The client sent `te: trailers` (forwarded: gRPC servers require it). */
  readonly acceptsTrailers?: boolean | undefined;
  /** The client's request trailers, read once its body has ended (undefined: none). */
  readonly trailers?: (() => http.IncomingHttpHeaders | undefined) | undefined;
}

/** The handler the answer goes to: proxy/forward.ts's Exchange (undici's interface, plus a trailers-only flag). */
export interface H2cHandler {
  onRequestStart(controller: Dispatcher.DispatchController): void;
  onResponseStart(controller: Dispatcher.DispatchController, status: number, headers: http.IncomingHttpHeaders, statusMessage: string | undefined, complete?: boolean): void;
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void;
  onResponseEnd(controller: Dispatcher.DispatchController, trailers: http.IncomingHttpHeaders): void;
  onResponseError(controller: Dispatcher.DispatchController | undefined, err: Error): void;
}

interface Entry {
  readonly key: string;
  readonly session: http2.ClientHttp2Session;
  /** Streams open now. */
  active: number;
  /** The upstream's first SETTINGS arrived: its stream limit is known. */
  ready: boolean;
  /** Requests waiting for a stream slot (or for the SETTINGS), oldest first. */
  readonly waiting: H2cStream[];
  /** The error the session failed with, if any (a refused connection, say). */
  failure: Error | undefined;
  idle: NodeJS.Timeout | undefined;
}

/** Request fields that never go to an HTTP/2 upstream (RFC 9113 section 8.2.2), whatever proxy/headers.ts left. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

/** Upstream failure codes the forwarder reports as they are; anything else on a stream or session is a reset. */
const KNOWN_CODES = new Set(['ECONNREFUSED', 'ECONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UPSTREAM_FORBIDDEN', 'ENOTFOUND', 'EAI_AGAIN']);

/** Whether a request is a gRPC call (`application/grpc`, `application/grpc+proto`, `application/grpc-web...` excluded). */
export function isGrpcRequest(headers: http.IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && /^application\/grpc(?:$|[+;])/i.test(type);
}

/** The HTTP/2 request head for a prepared request: pseudo-headers first, connection-specific fields dropped. */
export function h2cRequestHeaders(request: Pick<H2cRequest, 'method' | 'path' | 'headers' | 'acceptsTrailers'>): http2.OutgoingHttpHeaders {
  const h = request.headers;
  const out: http2.OutgoingHttpHeaders = { ':method': request.method, ':path': request.path, ':scheme': 'http', ':authority': String(h.host ?? '') };
  for (const name in h) {
    const value = h[name];
    if (value === undefined || CONNECTION_SPECIFIC.has(name) || name.charCodeAt(0) === 58 /* ':' */) continue;
    out[name] = value;
  }
  if (request.acceptsTrailers) out.te = 'trailers';
  return out;
}

/** The cause chain's first error with a known connect-failure code, else a reset that keeps `err` as its cause. */
function upstreamFailure(err: unknown): Error {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && KNOWN_CODES.has(code)) return e as Error;
    e = (e as { cause?: unknown }).cause;
  }
  return Object.assign(new Error('the upstream closed the HTTP/2 stream before the answer was complete', { cause: err }), { code: 'ECONNRESET' });
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The h2c sessions of one process. `close()` on shutdown; `closeExcept()` on every route change. */
export class H2cPool {
  private readonly sessions = new Map<string, Entry>();

  constructor(private readonly opts: H2cPoolOptions) {}

  /** Upstreams with a session open now (for tests and stats). */
  get size(): number {
    return this.sessions.size;
  }

  /** Sends `request` to `target` and reports its answer to `handler`; never throws. */
  dispatch(target: UpstreamTarget, request: H2cRequest, handler: H2cHandler): void {
    const stream = new H2cStream(this, this.opts, target, request, handler);
    if (stream.begin()) this.admit(stream, false);
  }

  /** Closes the sessions of upstreams not in `keep` (keys, as `UpstreamTarget.key`): streams open on them finish first. */
  closeExcept(keep: ReadonlySet<string>): void {
    for (const [key, entry] of this.sessions) {
      if (keep.has(key)) continue;
      this.sessions.delete(key);
      clearTimeout(entry.idle);
      entry.session.close();
    }
  }

  /** Closes every session; streams open on them finish first. */
  close(): void {
    this.closeExcept(new Set());
  }

  /**
   * Opens `stream` on its upstream's session when a slot is free (under the
   * upstream's SETTINGS_MAX_CONCURRENT_STREAMS, once its SETTINGS arrived),
   * else queues it there. `again`: it was queued on a session that got a
   * GOAWAY first; a second such move fails it instead.
   */
  admit(stream: H2cStream, again: boolean): void {
    const entry = this.entry(stream.target);
    if (entry.ready && entry.active < streamLimit(entry)) return this.open(entry, stream);
    entry.waiting.push(stream);
    stream.queued(entry, again);
  }

  /** A queued stream gave up (its client left, or its wait ran out). */
  unqueue(entry: Entry, stream: H2cStream): void {
    const i = entry.waiting.indexOf(stream);
    if (i >= 0) entry.waiting.splice(i, 1);
  }

  /** For H2cStream: a stream on `entry` closed. Frees its slot; the last one starts the idle timer. */
  streamClosed(entry: Entry): void {
    entry.active--;
    this.drain(entry);
    if (entry.active > 0 || entry.waiting.length > 0 || entry.session.closed || entry.session.destroyed) return;
    entry.idle = setTimeout(() => {
      if (entry.active === 0 && entry.waiting.length === 0) {
        if (this.sessions.get(entry.key) === entry) this.sessions.delete(entry.key);
        entry.session.close();
      }
    }, this.opts.idleMs);
    entry.idle.unref();
  }

  private open(entry: Entry, stream: H2cStream): void {
    entry.active++;
    clearTimeout(entry.idle);
    entry.idle = undefined;
    stream.open(entry);
  }

  /** Opens queued streams while slots are free. */
  private drain(entry: Entry): void {
    while (entry.ready && entry.waiting.length > 0 && entry.active < streamLimit(entry) && !entry.session.closed && !entry.session.destroyed) {
      this.open(entry, entry.waiting.shift()!);
    }
  }

  private entry(target: UpstreamTarget): Entry {
    const existing = this.sessions.get(target.key);
    if (existing && !existing.session.closed && !existing.session.destroyed) return existing;
    const host = target.url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(target.url.port) || 80;
    const { guard, lookup, connectMs } = this.opts;
    const session = http2.connect(`http://${target.url.host}`, {
      createConnection: () => guardedSocket(guard, host, port, connectMs, lookup),
      // padlock never accepts pushed streams (gRPC does not use push).
      settings: { enablePush: false },
    });
    const entry: Entry = { key: target.key, session, active: 0, ready: false, waiting: [], failure: undefined, idle: undefined };
    const forget = (): void => {
      clearTimeout(entry.idle);
      if (this.sessions.get(entry.key) === entry) this.sessions.delete(entry.key);
    };
    // An upstream that accepts the connection but never speaks HTTP/2 counts as one that did not answer the connect.
    const settingsTimer = setTimeout(() => session.destroy(codedError('ECONNECT_TIMEOUT', `the upstream ${target.key} sent no HTTP/2 SETTINGS within ${connectMs} ms`)), connectMs);
    session.once('remoteSettings', () => {
      clearTimeout(settingsTimer);
      entry.ready = true;
      this.drain(entry);
    });
    session.on('error', (err: Error) => {
      entry.failure ??= err;
      forget();
    });
    session.once('close', () => {
      clearTimeout(settingsTimer);
      forget();
      // Nothing of these was sent: they fail as the session did (ECONNREFUSED marks the upstream down).
      const failure = upstreamFailure(entry.failure ?? codedError('ECONNRESET', 'the upstream closed the HTTP/2 connection'));
      for (const s of entry.waiting.splice(0)) s.failQueued(failure);
    });
    // GOAWAY: streams the upstream took finish here; new ones, and those still queued here, go to a new session.
    session.once('goaway', () => {
      forget();
      for (const s of entry.waiting.splice(0)) s.requeue();
    });
    session.once('connect', () => this.opts.onConnect?.());
    this.sessions.set(target.key, entry);
    return entry;
  }
}

/** The most streams padlock opens at once on one session: the upstream's SETTINGS_MAX_CONCURRENT_STREAMS. */
function streamLimit(entry: Entry): number {
  return entry.session.remoteSettings.maxConcurrentStreams ?? 100;
}

/**
 * One request on an h2c session, seen by the handler as undici's dispatch
 * controller (abort, pause, resume). Reports exactly one of onResponseEnd,
 * onResponseError, or a complete (trailers-only) onResponseStart.
 */
class H2cStream implements Dispatcher.DispatchController {
  private stream: http2.ClientHttp2Stream | undefined;
  private done = false;
  private started = false;
  private abortReason: Error | null = null;
  private isPaused = false;
  private trailers: http.IncomingHttpHeaders | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private readonly grpc: boolean;
  /** The session this request waits on for a stream slot, while it waits. */
  private queuedOn: Entry | undefined;
  private queueTimer: NodeJS.Timeout | undefined;
  /** Already moved once from a session that got a GOAWAY while it waited. */
  private moved = false;

  constructor(
    private readonly pool: H2cPool,
    private readonly opts: H2cPoolOptions,
    readonly target: UpstreamTarget,
    private readonly request: H2cRequest,
    private readonly handler: H2cHandler,
  ) {
    this.grpc = isGrpcRequest(request.headers);
  }

  get aborted(): boolean {
    return this.abortReason !== null;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get reason(): Error | null {
    return this.abortReason;
  }

  abort(reason: Error): void {
    if (this.done) return;
    this.abortReason = reason;
    if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    this.fail(reason);
  }

  pause(): void {
    this.isPaused = true;
    this.stream?.pause();
  }

  resume(): void {
    this.isPaused = false;
    this.stream?.resume();
  }

  /** Tells the handler the request starts; false when it aborted at once (its client already gone). */
  begin(): boolean {
    this.handler.onRequestStart(this);
    return !this.done;
  }

  /** Waits on `entry` for a slot. Not gRPC: at most `responseMs` (then 504), as the answer would have been waited for. */
  queued(entry: Entry, moved: boolean): void {
    this.queuedOn = entry;
    this.moved ||= moved;
    if (!this.grpc && this.queueTimer === undefined) {
      this.queueTimer = setTimeout(() => this.abort(codedError('PADLOCK_UPSTREAM_TIMEOUT', 'no HTTP/2 stream to the upstream came free in time')), this.opts.responseMs);
    }
  }

  /** Its session got a GOAWAY before this request was sent: to a new session, once. */
  requeue(): void {
    this.queuedOn = undefined;
    if (this.moved) return this.failQueued(codedError('ECONNRESET', 'the upstream sent GOAWAY twice before the request could be sent'));
    this.pool.admit(this, true);
  }

  /** Its session failed before this request was sent. */
  failQueued(err: Error): void {
    this.queuedOn = undefined;
    this.fail(err);
  }

  /** Sends the request on `entry`, whose slot the pool has counted for it. */
  open(entry: Entry): void {
    this.queuedOn = undefined;
    clearTimeout(this.queueTimer);
    if (this.done) return void this.pool.streamClosed(entry);
    const { request } = this;
    const body = request.body;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = entry.session.request(h2cRequestHeaders(request), { endStream: body === null, waitForTrailers: body !== null });
    } catch (err) {
      // A header value Node refuses to send, or a session that closed just now.
      this.pool.streamClosed(entry);
      return this.fail(upstreamFailure(err));
    }
    this.stream = stream;
    stream.once('close', () => {
      this.pool.streamClosed(entry);
      clearTimeout(this.headTimer);
      if (this.done) return;
      const code = stream.rstCode;
      // REFUSED_STREAM: the upstream did not process it (RFC 9113 section 8.7), like a reset before any answer.
      this.fail(codedError('ECONNRESET', code === NGHTTP2_REFUSED_STREAM ? 'the upstream refused the stream' : `the upstream closed the stream (code ${code ?? 'none'}) before the answer was complete`));
    });
    stream.on('error', (err) => this.fail(upstreamFailure(err)));
    stream.on('headers', (headers) => this.interim(headers));
    stream.once('response', (headers, flags) => this.response(headers, flags));
    stream.on('data', (chunk: Buffer) => {
      if (!this.done) this.handler.onResponseData(this, chunk);
    });
    stream.once('trailers', (trailers) => {
      this.trailers = stripPseudo(trailers);
    });
    stream.once('end', () => {
      if (this.done || !this.started) return;
      this.done = true;
      clearTimeout(this.headTimer);
      this.handler.onResponseEnd(this, this.trailers ?? {});
    });
    if (this.isPaused) stream.pause();
    if (body === null) {
      this.armHeadTimer();
      return;
    }
    stream.once('wantTrailers', () => {
      const t = request.trailers?.();
      const fields = t ? endToEndTrailers(t) : undefined;
      try {
        // No fields: Node ends the stream with an empty DATA frame instead.
        stream.sendTrailers(fields ?? {});
      } catch {
        if (!stream.destroyed) stream.sendTrailers({});
      }
      this.armHeadTimer();
    });
    body.once('error', (err) => this.abort(codedError('PADLOCK_CLIENT_GONE', `client body failed: ${err.message}`)));
    body.pipe(stream);
  }

  /** Not for gRPC (see the module comment): the head within `responseMs` of the request's end, then no gap longer than that. */
  private armHeadTimer(): void {
    if (this.grpc || this.done || this.started) return;
    this.headTimer = setTimeout(() => this.abort(codedError('PADLOCK_UPSTREAM_TIMEOUT', 'upstream response timeout')), this.opts.responseMs);
  }

  private interim(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    const status = Number(headers[':status']);
    if (this.done || this.started || !(status >= 100 && status < 200)) return;
    this.handler.onResponseStart(this, status, stripPseudo(headers), undefined);
  }

  private response(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number): void {
    if (this.done) return;
    clearTimeout(this.headTimer);
    this.started = true;
    const status = Number(headers[':status']);
    const complete = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    this.handler.onResponseStart(this, status, stripPseudo(headers), undefined, complete);
    // Trailers-only: the answer is whole (unless the handler aborted it just now, which reported an error).
    if (complete) this.done = true;
    else if (!this.grpc && this.stream && !this.done) {
      this.stream.setTimeout(this.opts.responseMs, () => this.abort(codedError('PADLOCK_UPSTREAM_TIMEOUT', 'upstream body timeout')));
    }
  }

  private fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.headTimer);
    clearTimeout(this.queueTimer);
    if (this.queuedOn) this.pool.unqueue(this.queuedOn, this);
    this.queuedOn = undefined;
    const body = this.request.body;
    if (body) {
      if (this.stream) body.unpipe(this.stream);
      // As undici does: the body is not read any further.
      body.destroy();
    }
    if (this.stream && !this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
    this.handler.onResponseError(this, err);
  }
}

function stripPseudo(headers: http2.IncomingHttpHeaders): http.IncomingHttpHeaders {
  const out: http.IncomingHttpHeaders = {};
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    out[name] = headers[name] as string | string[];
  }
  return out;
}

/**
 * One GET of `path` on an h2c upstream over a session of its own, closed
 * after (the active health check, proxy/health-check.ts): resolves the status,
 * or undefined when no answer came within `timeoutMs`. Reads at most
 * `maxBodyBytes` of the body. Never rejects.
 */
export function h2cGet(target: UpstreamTarget, path: string, headers: http2.OutgoingHttpHeaders, opts: { guard: CurrentGuard; lookup?: LookupFunction | undefined; timeoutMs: number; maxBodyBytes: number }): Promise<number | undefined> {
  return new Promise((resolve) => {
    const host = target.url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(target.url.port) || 80;
    const session = http2.connect(`http://${target.url.host}`, {
      createConnection: () => guardedSocket(opts.guard, host, port, opts.timeoutMs, opts.lookup),
      settings: { enablePush: false },
    });
    let status: number | undefined;
    const done = (): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => {
      status = undefined;
      done();
    }, opts.timeoutMs);
    session.on('error', done);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':method': 'GET', ':path': path, ':scheme': 'http', ...headers }, { endStream: true });
    } catch {
      return done();
    }
    let read = 0;
    stream.on('error', done);
    stream.once('response', (h) => void (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > opts.maxBodyBytes) done();
    });
    stream.once('close', done);
  });
}
