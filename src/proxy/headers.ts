/**
 * The header policy of a forwarded request. Pure: no sockets, no clock; the
 * forwarder gathers the facts (client address, listener port, whether the
 * client is a trusted proxy) and these functions apply them.
 *
 * ## Forwarding headers
 * A client's own `X-Forwarded-For`, `X-Forwarded-Proto`, `X-Forwarded-Host`,
 * `X-Forwarded-Port`, `X-Real-IP` and `Forwarded` are claims anyone can make,
 * so they are **replaced** unless the client's address is in
 * `--trusted-proxies` (as nginx's real_ip module and Traefik's
 * `forwardedHeaders.trustedIPs` do):
 *
 * | header | untrusted client | trusted proxy |
 * |---|---|---|
 * | `X-Forwarded-For` | the client address | appended to |
 * | `Forwarded` (RFC 7239) | `for=CLIENT;host=HOST;proto=PROTO` | that element appended |
 * | `X-Real-IP` | the client address | kept when present |
 * | `X-Forwarded-Proto`, `-Host`, `-Port` | set by padlock | kept when present |
 *
 * `X-Forwarded-Port` is the port padlock accepted the connection on, never
 * read from the Host header. `Via` always gets `1.1 padlock` appended (RFC
 * 9110 section 7.6.3): the admin API refuses any request that carries it, so
 * a route that reaches the admin API cannot read it.
 */
import type http from 'node:http';

/** The pseudonym padlock adds to `Via`; the admin API refuses requests that carry it. */
export const VIA_PSEUDONYM = 'padlock';

/** Hop-by-hop headers (RFC 9110 section 7.6.1) plus the legacy `proxy-connection`. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'];

/** RFC 9110 tchar: a Forwarded value made only of these needs no quotes. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** What the front knows about a request that its headers must not be trusted for. */
export interface ForwardFacts {
  /** The scheme the client used to reach padlock. */
  readonly proto: 'http' | 'https';
  /** The client's address (IPv4-mapped addresses unwrapped); empty when the socket is gone. */
  readonly client: string;
  /** The port padlock accepted the connection on. */
  readonly port: number;
  /** The request's HTTP version (`1.1`, `1.0`), for `Via`. */
  readonly httpVersion: string;
  /** The client is in `--trusted-proxies`: its forwarding headers are kept and appended to. */
  readonly trusted: boolean;
}

/**
 * Removes hop-by-hop headers in place: the fixed list and every header the
 * `Connection` header names (except Host, Content-Length and
 * Transfer-Encoding, which a client must not be able to strip).
 */
export function stripHopByHop(headers: http.IncomingHttpHeaders): void {
  // Repeated Connection headers come from undici as an array (Node's server joins them).
  const connection: string | string[] | undefined = headers.connection;
  const named = Array.isArray(connection) ? connection.join(',') : connection;
  if (named) {
    for (const token of named.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && name !== 'host' && name !== 'content-length' && name !== 'transfer-encoding') delete headers[name];
    }
  }
  for (const name of HOP_BY_HOP) delete headers[name];
}

/**
 * Turns a client's request headers into the upstream's, in place (this runs
 * once per request, so it edits rather than copies): hop-by-hop headers and
 * `Expect` go, an upgrade keeps `Connection: upgrade` and its `Upgrade`, the
 * forwarding headers follow the table in the module comment, and `Via` gets
 * padlock's element.
 */
export function prepareRequestHeaders(h: http.IncomingHttpHeaders, facts: ForwardFacts, upgrade: boolean): void {
  const upgradeTo = h.upgrade;
  stripHopByHop(h);
  delete h.expect;
  if (upgrade && upgradeTo !== undefined) {
    h.connection = 'upgrade';
    h.upgrade = upgradeTo;
  }
  const host = h.host ?? '';
  const element = `for=${forwardedNode(facts.client)};host=${forwardedValue(host)};proto=${facts.proto}`;
  if (facts.trusted) {
    h['x-forwarded-for'] = appended(h['x-forwarded-for'], facts.client);
    h.forwarded = appended(h.forwarded, element);
    if (!h['x-real-ip']) h['x-real-ip'] = facts.client;
    if (!h['x-forwarded-proto']) h['x-forwarded-proto'] = facts.proto;
    if (!h['x-forwarded-host']) h['x-forwarded-host'] = host;
    if (!h['x-forwarded-port']) h['x-forwarded-port'] = String(facts.port);
  } else {
    h['x-forwarded-for'] = facts.client;
    h.forwarded = element;
    h['x-real-ip'] = facts.client;
    h['x-forwarded-proto'] = facts.proto;
    h['x-forwarded-host'] = host;
    h['x-forwarded-port'] = String(facts.port);
  }
  h.via = appended(h.via, `${facts.httpVersion} ${VIA_PSEUDONYM}`);
}

/**
 * Whether a `Via` header names padlock as a hop (`1.1 padlock`, in any
 * position of the list), i.e. the request came through padlock's proxy.
 */
export function viaNamesPadlock(via: string | string[] | undefined): boolean {
  if (via === undefined) return false;
  for (const element of (Array.isArray(via) ? via.join(',') : via).split(',')) {
    // received-protocol RWS received-by [ RWS comment ]
    const by = element.trim().split(/\s+/)[1];
    if (by !== undefined && by.toLowerCase() === VIA_PSEUDONYM) return true;
  }
  return false;
}

function appended(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined || existing === '') return value;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${value}`;
}

/** RFC 7239 section 6: an IPv6 node is bracketed and quoted; an unknown one is `unknown`. */
function forwardedNode(address: string): string {
  if (address === '') return 'unknown';
  return address.includes(':') ? `"[${address}]"` : address;
}

/** A token as is, anything else (a `host:port`) as a quoted-string. */
function forwardedValue(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** Fields that must not travel in a trailer section (RFC 9110 section 6.5.1), plus hop-by-hop ones. */
const NOT_IN_TRAILERS = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'content-length', 'content-type', 'content-encoding', 'content-range', 'host', 'authorization', 'set-cookie', 'cache-control', 'expect',
]);

/**
 * The fields of a trailer section padlock passes on, either way (gRPC's
 * `grpc-status`, checksums), or undefined when none is left.
 */
export function endToEndTrailers(trailers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders | undefined {
  let out: http.OutgoingHttpHeaders | undefined;
  for (const [name, value] of Object.entries(trailers)) {
    if (value === undefined || NOT_IN_TRAILERS.has(name) || name.startsWith(':')) continue;
    (out ??= {})[name] = value;
  }
  return out;
}

/** Whether a `TE` field value lists `trailers` (the one TE an HTTP/2 upstream may get; gRPC servers require it). */
export function teAcceptsTrailers(te: string | string[] | undefined): boolean {
  if (te === undefined) return false;
  return (Array.isArray(te) ? te.join(',') : te).split(',').some((t) => t.split(';')[0]!.trim().toLowerCase() === 'trailers');
}
