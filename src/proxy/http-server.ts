/**
 * The plain-HTTP front (:80).
 *
 * In this order, for every request:
 * 1. `/.well-known/acme-challenge/TOKEN` is answered from the shared
 *    `TokenMap`, whatever the Host (the CA validates names padlock may not
 *    route yet; RFC 8555 section 8.3);
 * 2. an unknown Host gets **404**;
 * 3. a site with `https: true` and `redirect: true` gets **308** to
 *    `https://HOST[:httpsPort]/path?query` (the port only when it is not 443;
 *    308 keeps the method and body, unlike 301);
 * 4. every other site (`https: false`, or `redirect: false`) is proxied as is,
 *    with `X-Forwarded-Proto: http`.
 *
 * WebSocket upgrades follow the same rules (a redirect site answers 308 on
 * the raw socket).
 */
import type * as http from 'node:http';
import nodeHttp from '../node-http.js';
import type { Duplex } from 'node:stream';
import { handleChallengeRequest, type TokenMap } from '../acme/http01.js';
import type { Logger } from '../log.js';
import { sendErrorPage, errorPageBody, type Forwarder } from './forward.js';
import { hostForUrl, hostFromHeader, type RouteTable } from './routes.js';

/** Slow-client protection shared by both fronts. */
export interface ServerLimits {
  /** Whole request head must arrive within this (slowloris). */
  headersTimeoutMs: number;
  /** Whole request (head and body) must arrive within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive client connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** Largest request head accepted, in bytes (larger gets 431). */
  maxHeaderSize: number;
  /** A TLS handshake must finish within this (HTTPS only). */
  handshakeTimeoutMs: number;
}

export const DEFAULT_SERVER_LIMITS: Readonly<ServerLimits> = Object.freeze({
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderSize: 16 * 1024,
  handshakeTimeoutMs: 10_000,
});

/** What a front needs; `routes` is read on every request, so a swap applies to the next one. */
export interface FrontDeps {
  routes: () => RouteTable;
  forwarder: Forwarder;
  logger: Logger;
  limits: ServerLimits;
}

export interface HttpFrontDeps extends FrontDeps {
  tokens: TokenMap;
  /** The HTTPS port clients should be sent to (the public one; 443 is left out of Location). */
  httpsPort: () => number;
}

/** Applies `limits` to a server (http or https). */
export function applyLimits(server: http.Server, limits: ServerLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node checks the two request timeouts on this interval; keep it well below them.
  // (It is a constructor option too; set in the create* functions.)
}

/** Creates (does not start) the :80 server. */
export function createHttpFront(deps: HttpFrontDeps): http.Server {
  const server = nodeHttp.createServer(
    { maxHeaderSize: deps.limits.maxHeaderSize, connectionsCheckingInterval: checkInterval(deps.limits) },
    (req, res) => handleHttpRequest(deps, req, res),
  );
  applyLimits(server, deps.limits);
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => handleHttpUpgrade(deps, req, socket, head));
  return server;
}

/** The :80 request logic, exported for tests of the order of the rules. */
export function handleHttpRequest(deps: HttpFrontDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (handleChallengeRequest(deps.tokens, req, res)) return;
  const route = deps.routes().lookup(req.headers.host);
  if (!route) return sendErrorPage(res, 404);
  if (route.site.https && route.site.redirect) {
    const location = httpsLocation(req, deps.httpsPort());
    if (location === undefined) return sendErrorPage(res, 400);
    res.writeHead(308, { location, 'content-type': 'text/plain; charset=utf-8', 'content-length': 0, 'cache-control': 'no-store' });
    res.end();
    return;
  }
  deps.forwarder.web(req, res, route, { proto: 'http' });
}

function handleHttpUpgrade(deps: HttpFrontDeps, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => socket.destroy());
  const route = deps.routes().lookup(req.headers.host);
  if (!route) return rawAnswer(socket, 404);
  if (route.site.https && route.site.redirect) {
    const location = httpsLocation(req, deps.httpsPort());
    return rawAnswer(socket, location === undefined ? 400 : 308, location);
  }
  deps.forwarder.ws(req, socket, head, route, { proto: 'http' });
}

/** `https://host[:port]/path?query` for a request, or undefined for a malformed Host/target. */
export function httpsLocation(req: http.IncomingMessage, httpsPort: number): string | undefined {
  const host = hostFromHeader(req.headers.host);
  if (host === undefined) return undefined;
  let target = req.url ?? '/';
  if (!target.startsWith('/')) {
    // absolute-form (RFC 9112 section 3.2.2): keep only path and query.
    try {
      const u = new URL(target);
      target = `${u.pathname}${u.search}`;
    } catch {
      return undefined;
    }
  }
  // `//evil.example/` as a path would read as a network-path reference in some clients; the scheme+host prefix makes it safe.
  const port = httpsPort === 443 ? '' : `:${httpsPort}`;
  return `https://${hostForUrl(host)}${port}${target}`;
}

/** A short answer on a raw socket that never became HTTP-parsed (upgrade requests). */
export function rawAnswer(socket: Duplex, status: number, location?: string): void {
  if (socket.destroyed) return;
  const body = status === 308 ? '' : errorPageBody(status);
  socket.end(
    `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\n` +
      (location ? `location: ${location}\r\n` : '') +
      `content-type: text/html; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Node's default is 30 s; checks must run often enough for the configured timeouts to mean something. */
export function checkInterval(limits: ServerLimits): number {
  return Math.max(50, Math.min(30_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}
