/**
 * The admin listener: health, readiness and a JSON status document.
 * Loopback only by default (see `adminListen`). The operations issue adds
 * metrics, a dashboard and token auth for non-loopback binds.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PadlockError, errorMessage } from '../errors.js';

export interface AdminOptions {
  listen: string;
  /** Builds the status document on request. */
  status: () => Record<string, unknown>;
  ready: () => boolean;
}

export function parseHostPort(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) throw new PadlockError('CONFIG_INVALID', `adminListen "${listen}" must be HOST:PORT`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

export class AdminServer {
  private readonly server: http.Server;
  constructor(private readonly opts: AdminOptions) {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body, null, 2) + '\n');
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
      try {
        if (path === '/healthz') return json(200, { ok: true });
        if (path === '/readyz') return this.opts.ready() ? json(200, { ready: true }) : json(503, { ready: false });
        if (path === '/api/status') return json(200, this.opts.status());
        json(404, { error: 'not found', endpoints: ['/healthz', '/readyz', '/api/status'] });
      } catch (err) {
        json(500, { error: errorMessage(err) });
      }
    });
    this.server.headersTimeout = 5_000;
    this.server.requestTimeout = 10_000;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = parseHostPort(this.opts.listen);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new PadlockError('CONFIG_INVALID', `admin listener ${this.opts.listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : errorMessage(err)}; pick another --admin-listen`, { cause: err })));
      this.server.listen(port, host, () => resolve());
    });
    return { host, port: (this.server.address() as AddressInfo).port };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
