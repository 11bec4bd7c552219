/**
 * The HTTPS front (:443).
 *
 * TLS 1.2 and 1.3 only, Mozilla "intermediate" TLS 1.2 suites (`TLS_POLICY`
 * in tls/contexts), ALPN `http/1.1` (HTTP/2 may come later). Certificates come
 * from the `CertificateRegistry` through the SNI callback, so a `replace()`
 * applies to the next handshake and never to one already done.
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
 * A client that sends no SNI at all (an IP address in the URL) gets a
 * `handshake_failure` alert: there is no default certificate.
 *
 * ## Known name, wrong Host: 421
 * The certificate of a connection covers its SNI name. A request whose Host
 * names another host (or no routed host) gets **421 Misdirected Request**
 * (RFC 9110 section 15.5.20), so a client opens a connection to the right name.
 *
 * ## HSTS
 * Forwarded responses of a site with `hstsMaxAge` carry
 * `Strict-Transport-Security: max-age=N` unless the upstream sent its own.
 */
import https from 'node:https';
import type http from 'node:http';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { TLS_POLICY, UnknownServerNameError, type CertificateRegistry } from '../tls/contexts.js';
import { sendErrorPage } from './forward.js';
import { applyLimits, checkInterval, rawAnswer, type FrontDeps } from './http-server.js';
import { hostFromHeader, type HostRoute } from './routes.js';

export interface HttpsFrontDeps extends FrontDeps {
  certificates: CertificateRegistry;
}

/** TLS alert record: content type 21 (alert), TLS 1.2 record version, length 2, fatal (2), unrecognized_name (112). */
const UNRECOGNIZED_NAME_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

/** Creates (does not start) the :443 server. */
export function createHttpsFront(deps: HttpsFrontDeps): https.Server {
  const registry = deps.certificates;
  const server = https.createServer(
    {
      ...TLS_POLICY,
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: deps.limits.handshakeTimeoutMs,
      maxHeaderSize: deps.limits.maxHeaderSize,
      connectionsCheckingInterval: checkInterval(deps.limits),
      // `this` is the server-side TLSSocket (Node calls owner._SNICallback); `_parent` its TCP socket.
      SNICallback: function (this: unknown, servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) {
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
      },
    },
    (req, res) => handleHttpsRequest(deps, req, res),
  );
  applyLimits(server, deps.limits);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const route = routeFor(deps, req);
    if (!route) return rawAnswer(socket, 421);
    deps.forwarder.ws(req, socket, head, route, { proto: 'https', hstsMaxAge: route.site.hstsMaxAge });
  });
  server.on('tlsClientError', (err: Error & { code?: string }) => {
    deps.logger.debug('tls handshake failed', { error: err.code ?? err.message });
  });
  return server;
}

/** The :443 request logic: Host must be the connection's SNI name and a routed site. */
export function handleHttpsRequest(deps: FrontDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  const route = routeFor(deps, req);
  if (!route) return sendErrorPage(res, 421);
  deps.forwarder.web(req, res, route, { proto: 'https', hstsMaxAge: route.site.hstsMaxAge });
}

function routeFor(deps: FrontDeps, req: http.IncomingMessage): HostRoute | undefined {
  const host = hostFromHeader(req.headers.host);
  const sni = (req.socket as tls.TLSSocket).servername;
  if (host === undefined || typeof sni !== 'string' || host !== sni.toLowerCase().replace(/\.$/, '')) return undefined;
  return deps.routes().lookup(host);
}

function isWritableSocket(value: unknown): value is Socket {
  return typeof value === 'object' && value !== null && typeof (value as Socket).write === 'function' && (value as Socket).writable === true;
}
