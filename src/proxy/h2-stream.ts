/**
 * One HTTP/2 request on :443, from its HEADERS frame to the forwarder.
 *
 * ## Routing and 421 (connection coalescing)
 * A request is routed by `:authority` (else `Host`). Browsers reuse one h2
 * connection for every name its certificate covers that resolves to the same
 * address (RFC 9113 section 9.1.1), so the authority need not be the
 * connection's SNI name. padlock serves such a request only when
 * - the connection's certificate covers the name, and
 * - padlock would present that same certificate to a new connection for the
 *   name (a name with a certificate of its own "belongs" to that one), and
 * - the name is routed.
 * Anything else gets **421 Misdirected Request** (RFC 9110 section 15.5.20),
 * and the browser retries on a connection of its own for that name.
 *
 * A connection without SNI (to an IP host's address, proxy/ip-hosts.ts) is
 * named by that address and serves only it: `:authority` `203.0.113.10`,
 * `203.0.113.10:8443` or `[2001:db8::10]:443` for the address, 421 for
 * anything else.
 *
 * ## What the upstream gets
 * The same as for HTTP/1.1 (proxy/headers.ts), with `X-Forwarded-Proto:
 * https`, `Host` from `:authority`, `Via: 2 padlock`, and the request over
 * HTTP/1.1 keep-alive (proxy/forward.ts), or over h2c to an h2c upstream
 * (proxy/h2c-upstream.ts), which also gets `te: trailers` when the client
 * sent it and the client's request trailers.
 *
 * ## gRPC calls
 * A request with `content-type: application/grpc...` has no whole-request
 * deadline (`requestTimeoutMs`): client-streaming and bidirectional calls
 * stream for as long as they live. padlock's own errors (no route, no
 * upstream, upstream refused) reach it as gRPC statuses (forward.ts
 * `sendErrorPage`).
 *
 * ## Rapid Reset
 * The upstream request starts on the next turn of the event loop
 * (`setImmediate`), after every frame of the current read has been handled. A
 * client that sends HEADERS and RST_STREAM together (CVE-2023-44487) has
 * closed the stream by then, and nothing is sent upstream: a reset stream
 * costs a stream object, not an upstream request (which, on HTTP/1.1, could
 * only be cancelled by closing its connection).
 */
import http2 from 'node:http2';
import { X509Certificate } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { CertificateRegistry } from '../tls/contexts.js';
import { sendErrorPage, type ForwardContext, type ForwardRequest, type Forwarder } from './forward.js';
import type { FrontDeps } from './http-server.js';
import { h1RequestFromH2, headerListSize } from './h2-headers.js';
import type { Http2Limits } from './h2-limits.js';
import { H2Response } from './h2-response.js';
import { prepareRequestHeaders } from './headers.js';
import type { HostRoute } from './routes.js';
import { connectionName } from './ip-hosts.js';
import { isGrpcRequest } from './h2c-upstream.js';

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_NO_ERROR } = http2.constants;

export interface H2FrontDeps extends FrontDeps {
  certificates: CertificateRegistry;
  http2: Http2Limits;
}

/** What padlock needs from a connection, read once per connection. */
interface ConnectionFacts {
  /**
   * The connection's name: its SNI name, lowercase, no trailing dot, or
   * without SNI the IP address it connected to (an IP host, proxy/ip-hosts.ts).
   */
  name: string | undefined;
  /** True when `name` is the local address (no SNI): only that address is served, nothing coalesces. */
  byAddress: boolean;
  client: string;
  port: number;
  /** The connection's certificate, parsed on the first coalesced request (null: none could be read). */
  cert?: X509Certificate | null;
}

/** Swallows a stream's error: a reset stream is the client's choice, and an unhandled 'error' would end the process. */
const ignore = (): void => {};

/** Handles every HTTP/2 stream of one :443 server (`server.on('stream', front.onStream)`). */
export class H2Front {
  private readonly connections = new WeakMap<http2.Http2Session, ConnectionFacts>();

  constructor(private readonly deps: H2FrontDeps) {}

  readonly onStream = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number): void => {
    stream.on('error', ignore);
    const res = new H2Response(stream, headers[':method'] === 'HEAD', isGrpcRequest(headers));
    const session = stream.session;
    if (!session) return;
    // nghttp2 enforces the header list limit only once the client has acknowledged padlock's SETTINGS;
    // the client's first flight of requests is checked here.
    if (session.pendingSettingsAck && headerListSize(headers) > this.deps.http2.maxHeaderListSize) return sendErrorPage(res, 431);
    const request = h1RequestFromH2(headers);
    if (typeof request === 'string') return sendErrorPage(res, request === 'connect' ? 405 : 400);
    const conn = this.connection(session);
    const route = this.route(session, conn, request.host);
    if (!route) return sendErrorPage(res, 421);
    const forwarder = this.deps.forwarder;
    // h1RequestFromH2 kept `te` only when it is `trailers`; h2c upstreams get it back (gRPC servers require it).
    const acceptsTrailers = request.headers.te !== undefined;
    prepareRequestHeaders(request.headers, { proto: 'https', client: conn.client, port: conn.port, httpVersion: '2', trusted: forwarder.trusts(conn.client) }, false);
    let trailers: http2.IncomingHttpHeaders | undefined;
    const body = (flags & NGHTTP2_FLAG_END_STREAM) !== 0 ? null : this.body(stream, res.grpc);
    if (body) stream.once('trailers', (t) => void (trailers = t));
    const ctx: ForwardContext = { proto: 'https', hstsMaxAge: route.site.hstsMaxAge };
    // A held request pauses the h2 stream itself (flow control stops the client), not `body`: resuming a
    // PassThrough nobody reads yet would let the body flow away before undici takes it.
    const forwardRequest: ForwardRequest = {
      method: request.method, path: request.path, headers: request.headers, body, source: body ? stream : undefined,
      acceptsTrailers, trailers: () => trailers,
    };
    setImmediate(forwardIfOpen, forwarder, stream, forwardRequest, res, route, ctx);
  };

  /**
   * The request body as its own stream: undici destroys a body on error, and the h2 stream is also the response.
   * A gRPC call's body has no deadline: a client-streaming or bidirectional call streams as long as the call lives.
   */
  private body(stream: http2.ServerHttp2Stream, grpc: boolean): PassThrough {
    const body = new PassThrough();
    stream.pipe(body);
    if (grpc) return body;
    // The whole request must arrive within requestTimeoutMs, as for HTTP/1.1 (a trickled body holds an upstream connection).
    const timer = setTimeout(() => {
      if (stream.destroyed) return;
      if (!stream.headersSent) sendErrorPage(new H2Response(stream, false), 408);
      // NO_ERROR after a complete answer asks the client to stop sending (RFC 9113 section 8.1).
      stream.close(NGHTTP2_NO_ERROR);
    }, this.deps.limits.requestTimeoutMs);
    const done = (): void => clearTimeout(timer);
    stream.once('end', done);
    stream.once('close', done);
    return body;
  }

  private connection(session: http2.Http2Session): ConnectionFacts {
    let facts = this.connections.get(session);
    if (!facts) {
      const socket = session.socket as unknown as { servername?: string | false; remoteAddress?: string; localAddress?: string; localPort?: number };
      const remote = socket.remoteAddress ?? '';
      const byAddress = typeof socket.servername !== 'string' || socket.servername === '';
      facts = { name: connectionName(socket), byAddress, client: remote.startsWith('::ffff:') ? remote.slice(7) : remote, port: socket.localPort ?? 0 };
      this.connections.set(session, facts);
    }
    return facts;
  }

  private route(session: http2.Http2Session, conn: ConnectionFacts, host: string): HostRoute | undefined {
    if (conn.name === undefined) return undefined;
    // An IP certificate covers its address only: a connection by address serves that address alone.
    if (host !== conn.name && (conn.byAddress || !this.coalesces(session, conn, conn.name, host))) return undefined;
    return this.deps.routes().get(host);
  }

  /** A request for another name on this connection: see "Routing and 421" above. */
  private coalesces(session: http2.Http2Session, conn: ConnectionFacts, sni: string, host: string): boolean {
    const registry = this.deps.certificates;
    const mine = registry.resolve(sni);
    const theirs = registry.resolve(host);
    if (!mine || !theirs || mine.entry.certPem !== theirs.entry.certPem) return false;
    if (conn.cert === undefined) conn.cert = connectionCertificate(session);
    // The certificate the connection was handshaken with (a renewal since then does not widen it), by OpenSSL's RFC 6125 rules.
    return conn.cert !== null && conn.cert.checkHost(host) !== undefined;
  }
}

function connectionCertificate(session: http2.Http2Session): X509Certificate | null {
  try {
    const raw = (session.socket as unknown as { getCertificate(): { raw?: Buffer } | null }).getCertificate()?.raw;
    return raw ? new X509Certificate(raw) : null;
  } catch {
    return null;
  }
}

/** The deferred half of `onStream`: forwards unless the client already reset the stream. */
function forwardIfOpen(forwarder: Forwarder, stream: http2.ServerHttp2Stream, request: ForwardRequest, res: H2Response, route: HostRoute, ctx: ForwardContext): void {
  if (stream.destroyed || stream.closed) {
    request.body?.destroy();
    return;
  }
  forwarder.forward(request, res, route, ctx);
}
