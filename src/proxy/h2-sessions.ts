/**
 * The HTTP/2 connections of one :443 server: their two timeouts, and a
 * graceful GOAWAY for all of them when padlock drains.
 *
 * - Idle: a connection with no request in flight for `idleTimeoutMs` gets a
 *   GOAWAY (NO_ERROR) and closes. A request still running keeps it open,
 *   however quiet it is (a long poll), unlike Node's own session timeout,
 *   which counts only frames.
 * - SETTINGS: a client that has not acknowledged padlock's SETTINGS within
 *   `settingsTimeoutMs` gets GOAWAY `SETTINGS_TIMEOUT` (RFC 9113 section
 *   6.5.3) and is cut.
 * - Drain: `goAway()` sends every connection a GOAWAY naming the last stream
 *   padlock took, so clients send new requests elsewhere (a new connection)
 *   while those in flight finish; `destroyAll()` cuts what is left.
 */
import http2 from 'node:http2';
import type { Logger } from '../log.js';
import type { Http2Limits } from './h2-limits.js';

const { NGHTTP2_SETTINGS_TIMEOUT } = http2.constants;

interface SessionState {
  /** Streams open now. */
  active: number;
  idle: NodeJS.Timeout;
  settings: NodeJS.Timeout | undefined;
}

/** Tracks one server's sessions. Wire `onSession` to the server's 'session' event and `onStream` to its 'stream' event. */
export class H2Sessions {
  private readonly states = new Map<http2.ServerHttp2Session, SessionState>();

  constructor(private readonly limits: Http2Limits, private readonly log: Logger) {}

  /** Connections open now. */
  get size(): number {
    return this.states.size;
  }

  readonly onSession = (session: http2.ServerHttp2Session): void => {
    const state: SessionState = {
      active: 0,
      idle: setTimeout(closeIfIdle, this.limits.idleTimeoutMs, session, this.states),
      settings: setTimeout(settingsTimedOut, this.limits.settingsTimeoutMs, session, this.log),
    };
    state.idle.unref();
    state.settings!.unref();
    this.states.set(session, state);
    session.once('localSettings', () => {
      clearTimeout(state.settings);
      state.settings = undefined;
    });
    session.once('close', () => {
      clearTimeout(state.idle);
      clearTimeout(state.settings);
      this.states.delete(session);
    });
  };

  readonly onStream = (stream: http2.ServerHttp2Stream): void => {
    const state = this.states.get(stream.session as http2.ServerHttp2Session);
    if (!state) return;
    state.active++;
    // (The stream no longer knows its session once closed, so the state is captured here.)
    stream.once('close', () => {
      if (--state.active === 0) state.idle.refresh();
    });
  };

  /** Sends every connection a GOAWAY: no new requests on it; those in flight finish. */
  goAway(): void {
    for (const session of this.states.keys()) if (!session.closed) session.close();
  }

  /** Cuts every connection now (after the drain deadline). */
  destroyAll(): void {
    for (const session of this.states.keys()) session.destroy();
  }
}

function closeIfIdle(session: http2.ServerHttp2Session, states: ReadonlyMap<http2.ServerHttp2Session, SessionState>): void {
  const state = states.get(session);
  // A request in flight keeps the connection; the timer starts again when the last one ends.
  if (!state || state.active > 0 || session.closed) return;
  session.close();
}

function settingsTimedOut(session: http2.ServerHttp2Session, log: Logger): void {
  if (session.destroyed || !session.pendingSettingsAck) return;
  log.debug('http2 client did not acknowledge SETTINGS in time; closing', {});
  session.goaway(NGHTTP2_SETTINGS_TIMEOUT);
  // The GOAWAY needs a moment to be written; destroying at once would send NO_ERROR instead.
  setTimeout(() => session.destroy(), 200).unref();
}
