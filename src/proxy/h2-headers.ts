/**
 * Header translation between an HTTP/2 client and an HTTP/1.1 upstream.
 * Pure: header objects in, header objects out.
 *
 * HTTP/2 forbids the connection-specific fields (RFC 9113 section 8.2.2):
 * `Connection`, `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding`,
 * `Upgrade`, and `TE` with any value but `trailers`. nghttp2 already resets a
 * client stream that carries one; they are still dropped here on the way in
 * (so no future parser change can leak one upstream), and always on the way
 * out, where Node would refuse to send them and an HTTP/1.1 upstream sends
 * them freely. Everything else (`X-Forwarded-*`, `Via`, the other hop-by-hop
 * fields) is proxy/headers.ts's job, the same for both protocols.
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { hostFromHeader } from './routes.js';

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** The request line and head of an HTTP/2 request, as padlock forwards it over HTTP/1.1. */
export interface H1Request {
  method: string;
  /** `:path` as sent: origin form, or `*` for `OPTIONS *`. */
  path: string;
  /** Lowercase, without pseudo-header fields, `Host` set from `:authority`. */
  headers: http.IncomingHttpHeaders;
  /** The host the request is for (from `:authority`, else `Host`), lowercase, no port. */
  host: string;
}

/** Why a request cannot be translated; each is answered 400 (malformed, RFC 9113 section 8.1.1). */
export type H1RequestProblem = 'no-authority' | 'authority-mismatch' | 'bad-path' | 'connect';

/**
 * Translates an HTTP/2 request head. `:authority` wins over `Host` (RFC 9113
 * section 8.3.1); a `Host` that names another host than `:authority` makes
 * the request malformed, so the upstream never sees two answers to "which
 * host?". `CONNECT` is refused: padlock is no tunnel.
 */
export function h1RequestFromH2(h2: http2.IncomingHttpHeaders): H1Request | H1RequestProblem {
  const method = h2[':method'] ?? 'GET';
  if (method === 'CONNECT') return 'connect';
  const path = h2[':path'];
  if (typeof path !== 'string' || (!path.startsWith('/') && !(path === '*' && method === 'OPTIONS'))) return 'bad-path';
  const authority = h2[':authority'] ?? h2.host;
  const host = hostFromHeader(typeof authority === 'string' ? authority : undefined);
  if (host === undefined) return 'no-authority';
  if (h2[':authority'] !== undefined && h2.host !== undefined && hostFromHeader(h2.host) !== host) return 'authority-mismatch';
  const headers: http.IncomingHttpHeaders = {};
  for (const name in h2) {
    if (name.charCodeAt(0) === 58 /* ':' */ || CONNECTION_SPECIFIC.has(name)) continue;
    if (name === 'te' && String(h2.te).trim().toLowerCase() !== 'trailers') continue;
    headers[name] = h2[name] as string | string[];
  }
  headers.host = authority as string;
  return { method, path, headers, host };
}

/**
 * The upstream's response head for an HTTP/2 client: `:status` plus every
 * field but the connection-specific ones (and `TE`). The input is not changed.
 */
export function h2ResponseHeaders(status: number, headers: http.OutgoingHttpHeaders): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':status': status };
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || CONNECTION_SPECIFIC.has(name) || name === 'te') continue;
    out[name] = value;
  }
  return out;
}

/**
 * The size of a request head as SETTINGS_MAX_HEADER_LIST_SIZE counts it
 * (RFC 9113 section 6.5.2): name and value octets plus 32 per field.
 */
export function headerListSize(headers: http2.IncomingHttpHeaders): number {
  let size = 0;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) size += name.length + Buffer.byteLength(String(v)) + 32;
  }
  return size;
}
