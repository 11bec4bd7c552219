/**
 * The limits of padlock's HTTP/2 listener, with their defaults and why, and
 * how they become Node's `http2.createSecureServer` options. Pure: no
 * sockets, no timers (proxy/h2-sessions.ts applies the two timeouts).
 *
 * What each one stops:
 * - `maxConcurrentStreams` (250, as Go's net/http2 and so Traefik and Caddy):
 *   one connection cannot hold more requests in flight than this. Node's own
 *   default is unlimited. Browsers open at most this many at once, and more
 *   than about 100 is rarely useful.
 * - `maxHeaderListSize` (32 KiB): the request head, counted as RFC 9113
 *   section 6.5.2 does (name + value + 32 per field, uncompressed). Twice the
 *   HTTP/1.1 head limit (16 KiB), because of that per-field overhead. A larger
 *   head resets the stream; the connection and its other streams go on.
 * - `maxSessionMemoryMiB` (10, Node's default): what one connection may hold
 *   in nghttp2's buffers (headers being decoded, frames not yet sent). Past
 *   it, new streams are refused with `ENHANCE_YOUR_CALM` until it drains.
 * - `idleTimeoutMs` (75 s, nginx's `keepalive_timeout`): a connection with no
 *   request in flight for this long gets a GOAWAY and is closed. A request
 *   that is still running (a long poll, a download) keeps its connection.
 * - `settingsTimeoutMs` (10 s, as the TLS handshake timeout): a client that
 *   does not acknowledge padlock's SETTINGS in time (a half-open h2
 *   connection) gets GOAWAY `SETTINGS_TIMEOUT` (RFC 9113 section 6.5.3).
 * - `resetBurst` and `resetRate` (1,000 and 33 per second, nghttp2's own
 *   defaults): a token bucket per connection for the streams the client
 *   resets (`RST_STREAM`). Rapid Reset (CVE-2023-44487) opens and cancels
 *   streams without end, which `maxConcurrentStreams` alone does not bound;
 *   when the bucket is empty the connection gets a GOAWAY. A browser that
 *   cancels every image of a page on navigation spends at most
 *   `maxConcurrentStreams` tokens per page, far from the burst. Besides, a
 *   stream reset within the same read as its request never reaches the
 *   upstream (proxy/h2-stream.ts), so a reset costs padlock little either way.
 *
 * Fixed, from Node: resets padlock itself has to send because the client
 * sent something malformed (MadeYouReset, CVE-2025-8671) count as invalid
 * frames, and 1,000 of them close the connection (`maxSessionInvalidFrames`),
 * as do 100 streams refused for exceeding the stream limit
 * (`maxSessionRejectedStreams`); nghttp2 (1.66 and later) also rate-limits
 * the resets it sends. At most 128 header fields per request
 * (`maxHeaderListPairs`) and 32 SETTINGS entries per frame.
 */
import type http2 from 'node:http2';

export interface Http2Limits {
  maxConcurrentStreams: number;
  /** Bytes, counted as SETTINGS_MAX_HEADER_LIST_SIZE is. */
  maxHeaderListSize: number;
  maxSessionMemoryMiB: number;
  idleTimeoutMs: number;
  settingsTimeoutMs: number;
  /** Client stream resets allowed at once (the bucket's size). */
  resetBurst: number;
  /** Client stream resets refilled per second. */
  resetRate: number;
}

export const DEFAULT_HTTP2_LIMITS: Readonly<Http2Limits> = Object.freeze({
  maxConcurrentStreams: 250,
  maxHeaderListSize: 32 * 1024,
  maxSessionMemoryMiB: 10,
  idleTimeoutMs: 75_000,
  settingsTimeoutMs: 10_000,
  resetBurst: 1000,
  resetRate: 33,
});

/** The limits from `padlock run`'s config keys (seconds and MiB there), or false when HTTP/2 is off. */
export function http2LimitsFromConfig(config: {
  http2: boolean;
  http2MaxConcurrentStreams: number;
  http2MaxHeaderListSize: number;
  http2MaxSessionMemory: number;
  http2IdleTimeout: number;
  http2SettingsTimeout: number;
  http2ResetBurst: number;
  http2ResetRate: number;
}): Http2Limits | false {
  if (!config.http2) return false;
  return {
    maxConcurrentStreams: config.http2MaxConcurrentStreams,
    maxHeaderListSize: config.http2MaxHeaderListSize,
    maxSessionMemoryMiB: config.http2MaxSessionMemory,
    idleTimeoutMs: Math.round(config.http2IdleTimeout * 1000),
    settingsTimeoutMs: Math.round(config.http2SettingsTimeout * 1000),
    resetBurst: config.http2ResetBurst,
    resetRate: config.http2ResetRate,
  };
}

/** The limits with every missing one at its default. */
export function http2Limits(partial: Partial<Http2Limits> = {}): Http2Limits {
  const out = { ...DEFAULT_HTTP2_LIMITS };
  for (const [k, v] of Object.entries(partial) as Array<[keyof Http2Limits, number | undefined]>) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * The `http2.createSecureServer` options that carry `limits`. SETTINGS
 * advertise them to the client; nghttp2 and Node enforce them.
 * `enableConnectProtocol` stays off: padlock does not implement RFC 8441
 * (WebSockets over HTTP/2), so it must not advertise it; browsers then open
 * WebSockets over HTTP/1.1, which the same port serves.
 */
export function http2ServerOptions(limits: Http2Limits): Pick<http2.SecureServerOptions, 'settings' | 'maxSessionMemory' | 'streamResetBurst' | 'streamResetRate'> {
  return {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      enableConnectProtocol: false,
      // A server never receives pushes; saying so costs nothing.
      enablePush: false,
    },
    maxSessionMemory: limits.maxSessionMemoryMiB,
    streamResetBurst: limits.resetBurst,
    streamResetRate: limits.resetRate,
  };
}
