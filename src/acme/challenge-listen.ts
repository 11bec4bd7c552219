/**
 * Binding a standalone challenge server (HTTP-01 on :80, TLS-ALPN-01 on
 * :443), with the errors a user can act on: the port is taken, or binding a
 * low port needs privileges.
 */
import type net from 'node:net';
import { PadlockError, errorMessage } from '../errors.js';

/**
 * Listens `server` on `port` (all addresses, or `address`). Rejects with
 * CHALLENGE_PORT_IN_USE (message: `inUse`, given the address) when the port
 * is taken, CHALLENGE_SERVER_FAILED otherwise; the cause is kept.
 */
export function listenForChallenge(server: net.Server, port: number, address: string | undefined, inUse: (where: string) => string): Promise<void> {
  const where = `${address ?? '*'}:${port}`;
  return new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new PadlockError('CHALLENGE_PORT_IN_USE', inUse(where), { cause: err }));
      else if (err.code === 'EACCES') reject(new PadlockError('CHALLENGE_SERVER_FAILED', `no permission to listen on ${where}: ports below 1024 need root or CAP_NET_BIND_SERVICE`, { cause: err }));
      else reject(new PadlockError('CHALLENGE_SERVER_FAILED', `cannot listen on ${where}: ${errorMessage(err)}`, { cause: err }));
    });
    server.listen({ port, ...(address ? { host: address } : {}) }, () => resolve());
  });
}
