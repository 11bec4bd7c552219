/**
 * Running a standalone challenge server (HTTP-01 on :80, TLS-ALPN-01 on
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

/**
 * A challenge server padlock runs itself for one command (`--standalone`):
 * bound once on first use however many orders prepare it at the same time
 * (`renew --concurrency`), closed with the command.
 */
export abstract class StandaloneChallengeServer<S extends net.Server> {
  private server: S | undefined;
  private preparing: Promise<void> | undefined;
  protected constructor(protected readonly port: number, protected readonly address: string | undefined) {}

  /** The server to bind, not listening yet. */
  protected abstract createServer(): S;
  /** The CHALLENGE_PORT_IN_USE message for `where` (ADDRESS:PORT), saying what to do. */
  protected abstract inUseMessage(where: string): string;
  /** Runs before the server closes (to drop kept-alive connections, say). */
  protected beforeClose(_server: S): void {}

  /** Binds once, even when several orders call it at the same time; a failed bind is tried again next time. */
  prepare(): Promise<void> {
    this.preparing ??= this.bind().catch((err: unknown) => {
      this.preparing = undefined;
      throw err;
    });
    return this.preparing;
  }

  /** Stops listening (after a bind still in flight). Idempotent. */
  async close(): Promise<void> {
    await this.preparing?.catch(() => undefined);
    const server = this.server;
    this.server = undefined;
    this.preparing = undefined;
    if (!server) return;
    this.beforeClose(server);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async bind(): Promise<void> {
    const server = this.createServer();
    await listenForChallenge(server, this.port, this.address, (where) => this.inUseMessage(where));
    this.server = server;
  }
}
