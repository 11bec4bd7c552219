/**
 * The HTTPS front (:443).
 *
 * TLS 1.2 and 1.3 only, Mozilla "intermediate" suites and order (`TLS_POLICY`
 * in tls/contexts). Certificates come from the `CertificateRegistry` through
 * the SNI callback, so a `replace()` applies to the next handshake and never
 * to one already done. Session tickets follow tls/session-tickets.ts (keys
 * shared by the workers, a new ticket after each resumption).
 *
 * ## HTTP/2 and HTTP/1.1 on one port
 * With `http2` limits given (the default in `padlock run`), the server is
 * `node:http2`'s `createSecureServer({ allowHTTP1: true })`: ALPN offers `h2`,
 * then `http/1.1`. An h2 connection's streams go to proxy/h2-stream.ts (Node's
 * core stream API); an HTTP/1.1 connection (ALPN `http/1.1`, or no ALPN) gets
 * Node's HTTP/1.1 server, with the same limits, the same request handler and
 * WebSocket upgrades, exactly as without HTTP/2. Node's HTTP/2 compatibility
 * layer (`Http2ServerRequest`) is kept out: it would handle every h2 stream a
 * second time, at about half the speed. Without `http2` it is a plain
 * `https.Server` with ALPN `http/1.1`.
 *
 * ## An SNI name padlock has no certificate for: the handshake is refused
 *
 * padlock answers such a ClientHello with a fatal TLS `unrecognized_name`
 * alert (112) and closes the connection, as nginx's `ssl_reject_handshake on`
 * does. It never presents a fallback certificate. Why:
 * - No wrong certificate is ever shown. With a self-signed fallback, a client
 *   first sees a certificate error for a certificate nobody asked for, and the
 *   421 behind it is reachable only by clicking through; the fallback is also
 *   exactly the "default-certificate flash" padlock promises never to show.
 * - It is clear where it matters: curl and OpenSSL print
 *   `tlsv1 unrecognized name`, Node reports `ERR_SSL_TLSV1_UNRECOGNIZED_NAME`,
 *   and browsers show `ERR_SSL_UNRECOGNIZED_NAME_ALERT`, naming the cause.
 * - It costs nothing: no key or certificate to mint (node:crypto cannot create
 *   X.509 certificates), no signature per probe, and scanners sweeping IP
 *   addresses learn no name and no certificate from padlock.
 *
 * Node gives an SNI callback no way to choose the alert, so padlock writes the
 * two-byte alert record itself on the raw TCP socket before anything else was
 * sent, then fails the callback. If a future Node hides that socket, the
 * handshake is still refused, only with a plain close instead of the alert
 * (the integration test pins the alert so that change is noticed).
 *
 * A client that sends no SNI at all (an IP address in the URL) gets the
 * certificate of the address it connected to when that address is an IP
 * host (proxy/ip-hosts.ts); otherwise a `handshake_failure` alert: there is
 * no default certificate.
 *
 * ## `acme-tls/1`: TLS-ALPN-01 challenges
 * While a TLS-ALPN-01 challenge is pending, a handshake that offers ALPN
 * `acme-tls/1` is answered with the challenge certificate and closed; every
 * other connection is served as usual (proxy/acme-tls-gate.ts).
 *
 * ## Known name, wrong Host: 421
 * The certificate of a connection covers its SNI name (without SNI: the IP
 * address it connected to, proxy/ip-hosts.ts). A request whose Host names
 * another host (or no routed host) gets **421 Misdirected Request** (RFC 9110
 * section 15.5.20), so a client opens a connection to the right name.
 *
 * ## HSTS
 * Forwarded responses of a site with `hstsMaxAge` carry
 * `Strict-Transport-Security: max-age=N` unless the upstream sent its own.
 */
import https from 'node:https';
import http2 from 'node:http2';
import type http from 'node:http';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { TLS_POLICY, UnknownServerNameError, type CertificateRegistry } from '../tls/contexts.js';
import { installTicketKeys, type TicketKeys } from '../tls/session-tickets.js';
import { sendErrorPage } from './forward.js';
import { applyLimits, checkInterval, rawAnswer, type FrontDeps } from './http-server.js';
import { http2ServerOptions, type Http2Limits } from './h2-limits.js';
import { H2Sessions } from './h2-sessions.js';
import { H2Front } from './h2-stream.js';
import { hostFromHeader, type HostRoute } from './routes.js';
import { installAcmeTlsGate } from './acme-tls-gate.js';
import { connectionName, installIpHosts } from './ip-hosts.js';
import type { AcmeTlsChallenges } from '../acme/tls-alpn01.js';

export interface HttpsFrontDeps extends FrontDeps {
  certificates: CertificateRegistry;
  /** HTTP/2 with these limits; undefined serves HTTP/1.1 only. */
  http2?: Http2Limits | undefined;
  /** The session ticket keys in force (read at every handshake). */
  ticketKeys: () => TicketKeys;
  /** Pending TLS-ALPN-01 challenges: `acme-tls/1` handshakes are answered from these (proxy/acme-tls-gate.ts). */
  acmeTls?: AcmeTlsChallenges | undefined;
}

/** The :443 server and, with HTTP/2, its connections (for the drain). */
export interface HttpsFront {
  /** An `https.Server`, or an `Http2SecureServer` that also speaks HTTP/1.1. */
  server: tls.Server & Pick<http.Server, 'closeIdleConnections'>;
  /** The HTTP/2 connections; undefined when HTTP/2 is off. */
  sessions?: H2Sessions;
}

/** TLS alert record: content type 21 (alert), TLS 1.2 record version, length 2, fatal (2), unrecognized_name (112). */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/** Creates (does not start) the :443 server. */
export function createHttpsFront(deps: HttpsFrontDeps): HttpsFront {
  const tlsOptions = {
    ...TLS_POLICY,
    handshakeTimeout: deps.limits.handshakeTimeoutMs,
    SNICallback: sniCallback(deps.certificates),
  };
  let front: HttpsFront;
  if (deps.http2) {
    const server = http2.createSecureServer({ ...tlsOptions, ...http2ServerOptions(deps.http2), allowHTTP1: true });
    // Node attaches its compatibility layer to 'stream' when a 'request' listener is added; HTTP/2 streams are
    // handled below on the core API, and 'request' must only carry HTTP/1.1 requests.
    server.removeAllListeners('newListener');
    const sessions = new H2Sessions(deps.http2, deps.logger);
    server.on('session', sessions.onSession);
    server.on('stream', sessions.onStream);
    server.on('stream', new H2Front({ ...deps, http2: deps.http2 }).onStream);
    server.on('sessionError', (err: Error & { code?: string }) => deps.logger.debug('http2 connection error', { error: err.code ?? err.message }));
    // HTTP/1.1 on this server reads its limits from these properties (as http.Server's options would set them).
    Object.assign(server, { maxHeaderSize: deps.limits.maxHeaderSize, connectionsCheckingInterval: checkInterval(deps.limits) });
    applyLimits(server as unknown as http.Server, deps.limits);
    const streamListeners = server.listenerCount('stream');
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => handleHttpsRequest(deps, req, res));
    if (server.listenerCount('stream') !== streamListeners) throw new Error("node:http2's compatibility layer attached itself to :443; padlock cannot serve HTTP/2 on this Node version");
    front = { server: server as unknown as HttpsFront['server'], sessions };
  } else {
    const server = https.createServer(
      { ...tlsOptions, ALPNProtocols: ['http/1.1'], maxHeaderSize: deps.limits.maxHeaderSize, connectionsCheckingInterval: checkInterval(deps.limits) },
      (req, res) => handleHttpsRequest(deps, req, res),
    );
    applyLimits(server, deps.limits);
    front = { server };
  }
  const server = front.server;
  // Before anyone else listens for connections: a connection to an IP host's address starts with its context,
  // and (installed after, so it runs first) the acme-tls/1 gate decides which TLS server a connection reaches.
  installIpHosts(server, { certificates: deps.certificates, ticketKeys: deps.ticketKeys, logger: deps.logger });
  if (deps.acmeTls) installAcmeTlsGate(server, { challenges: deps.acmeTls, logger: deps.logger });
  if (!installTicketKeys(server, deps.ticketKeys)) deps.logger.warn('this Node version offers no session ticket hook: TLS resumption uses per-process keys and no ticket renewal');
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const route = routeFor(deps, req);
    if (!route) return rawAnswer(socket, 421);
    deps.forwarder.ws(req, socket, head, route, { proto: 'https', hstsMaxAge: route.site.hstsMaxAge });
  });
  server.on('tlsClientError', (err: Error & { code?: string }) => {
    deps.logger.debug('tls handshake failed', { error: err.code ?? err.message });
  });
  return front;
}

/**
 * The SNI callback: the registry's context, or the refusal described in the
 * module comment. `this` is the server-side TLSSocket (Node calls
 * owner._SNICallback); `_parent` its TCP socket.
 */
function sniCallback(registry: CertificateRegistry) {
  return function (this: unknown, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void {
    registry.sniCallback(servername, (err, ctx) => {
      if (err instanceof UnknownServerNameError) {
        const raw = (this as { _parent?: unknown } | undefined)?._parent;
        if (isWritableSocket(raw)) {
          raw.write(UNRECOGNIZED_NAME_ALERT, () => cb(err));
          return;
        }
      }
      cb(err, ctx);
    });
  };
}

/** The :443 request logic (HTTP/1.1): Host must be the connection's SNI name and a routed site. */
export function handleHttpsRequest(deps: FrontDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  const route = routeFor(deps, req);
  if (!route) return sendErrorPage(res, 421);
  deps.forwarder.web(req, res, route, { proto: 'https', hstsMaxAge: route.site.hstsMaxAge });
}

/** The route when Host names the connection's SNI name, or without SNI its local address (an IP host: proxy/ip-hosts.ts). */
function routeFor(deps: FrontDeps, req: http.IncomingMessage): HostRoute | undefined {
  const host = hostFromHeader(req.headers.host);
  if (host === undefined || host !== connectionName(req.socket as tls.TLSSocket)) return undefined;
  return deps.routes().get(host);
}

function isWritableSocket(value: unknown): value is Socket {
  return typeof value === 'object' && value !== null && typeof (value as Socket).write === 'function' && (value as Socket).writable === true;
}
