/**
 * The `acme-tls/1` gate on :443 (RFC 8737): while a TLS-ALPN-01 challenge is
 * pending, each new connection's ClientHello is read on the raw socket before
 * any TLS happens; a hello that offers ALPN `acme-tls/1` goes to the
 * challenge server (acme/tls-alpn01.ts), every other connection to the normal
 * :443 server with its bytes put back (`unshift`), exactly as if nothing had
 * been read.
 *
 * Why peek: Node's SNICallback sees the name but not the ALPN list, and the
 * ALPN choice comes after the certificate, so the normal server cannot both
 * pick the challenge certificate and keep h2/http1.1 for everyone else.
 *
 * Cost: with no challenge pending (nearly always) a connection costs one
 * size check and nothing is read. While one is pending, a connection's first
 * bytes are parsed once (proxy/client-hello.ts, bounded to
 * `MAX_PEEK_BYTES`). A connection whose bytes are not a ClientHello, are
 * malformed or oversized, or do not arrive within `peekTimeoutMs`, goes to
 * the normal server, which then behaves as it always does (its own
 * handshake timeout applies); a connection that ends or fails while being
 * read is destroyed, since no handshake could follow.
 */
import type tls from 'node:tls';
import type { Socket } from 'node:net';
import type { AcmeTlsChallenges } from '../acme/tls-alpn01.js';
import { createAcmeTlsServer } from '../acme/tls-alpn01.js';
import { ACME_TLS_ALPN } from '../acme/tls-alpn-cert.js';
import { MAX_PEEK_BYTES, readClientHello, type ClientHelloVerdict } from './client-hello.js';
import type { Logger } from '../log.js';

/** How long :443 waits for a ClientHello while a challenge is pending, by default. */
export const DEFAULT_PEEK_TIMEOUT_MS = 5_000;

export interface AcmeTlsGateOptions {
  challenges: AcmeTlsChallenges;
  logger: Logger;
  /** Default {@link DEFAULT_PEEK_TIMEOUT_MS}. */
  peekTimeoutMs?: number;
}

/**
 * Puts the gate in front of `server`'s TLS: its current `connection`
 * listeners (the TLS server's own) run only for connections the gate passes
 * on. Call it before adding other `connection` listeners (connection
 * tracking), which then see every connection at once.
 */
export function installAcmeTlsGate(server: tls.Server, options: AcmeTlsGateOptions): void {
  const normal = server.listeners('connection') as Array<(this: tls.Server, socket: Socket) => void>;
  server.removeAllListeners('connection');
  const toNormal = (socket: Socket) => {
    for (const listener of normal) listener.call(server, socket);
  };
  const challengeServer = createAcmeTlsServer(options.challenges);
  const timeoutMs = options.peekTimeoutMs ?? DEFAULT_PEEK_TIMEOUT_MS;
  server.on('connection', (socket: Socket) => {
    if (options.challenges.size === 0) return toNormal(socket);
    peekClientHello(socket, timeoutMs, (verdict) => {
      if (verdict.kind === 'hello' && verdict.alpn.includes(ACME_TLS_ALPN)) {
        options.logger.info('answering an acme-tls/1 handshake', { name: verdict.serverName ?? null });
        challengeServer.emit('connection', socket);
      } else {
        if (verdict.kind === 'other') options.logger.debug('not a ClientHello padlock could read; passed to the TLS server as is', { reason: verdict.reason });
        toNormal(socket);
      }
    });
  });
}

/**
 * Reads `socket`'s first bytes until they make a verdict, then pauses it,
 * puts every byte read back, and calls `done` (at most once). An `end` or
 * `error` before that destroys the socket and `done` is not called.
 */
export function peekClientHello(socket: Socket, timeoutMs: number, done: (verdict: ClientHelloVerdict) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const stop = () => {
    finished = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onGone);
    socket.removeListener('error', onGone);
  };
  const finish = (verdict: ClientHelloVerdict) => {
    if (finished) return;
    stop();
    socket.pause();
    if (size > 0) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    done(verdict);
  };
  const onData = (chunk: Buffer) => {
    chunks.push(chunk);
    size += chunk.length;
    const verdict = readClientHello(chunks.length === 1 ? chunk : Buffer.concat(chunks, size));
    if (verdict.kind !== 'incomplete') finish(verdict);
    else if (size >= MAX_PEEK_BYTES) finish({ kind: 'other', reason: `no verdict after ${size} bytes` });
  };
  const onGone = () => {
    if (finished) return;
    stop();
    socket.destroy();
  };
  const timer = setTimeout(() => finish({ kind: 'other', reason: `no ClientHello within ${timeoutMs} ms` }), timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.once('end', onGone);
  socket.once('error', onGone);
}
