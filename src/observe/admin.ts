/**
 * The admin listener: health, readiness, the JSON status document, Prometheus
 * metrics and the dashboard.
 *
 * | path | what | auth |
 * |---|---|---|
 * | `/healthz` | the process is up | never |
 * | `/readyz` | 200 when certificates are loaded and the listeners are open, else 503 | token when set |
 * | `/api/status` | the status document (observe/status.ts) | token when set |
 * | `/metrics` | Prometheus text (observe/metrics.ts); 404 without a Metrics | token when set |
 * | `/`, `/dashboard.css`, `/dashboard.js` | the dashboard | token when set |
 *
 * Requests that came through padlock's own proxy (their `Via` names
 * padlock, which the forwarder always appends) get **403** on every path,
 * /healthz included, token or not: a route to the admin port, however it
 * slipped past the upstream rules, never reads the API.
 *
 * Access: loopback only by default. A non-loopback bind (or `requireToken`)
 * without a token refuses to construct. With a token, every path but
 * /healthz needs `Authorization: Bearer TOKEN` (or Basic with the token as
 * password, which browsers prompt for after the 401's `WWW-Authenticate`).
 * Without a token, requests whose Host header is not a loopback name are
 * refused, so a web page cannot read the API through DNS rebinding.
 * The token is never logged: only whether one was presented.
 */
import type * as http from 'node:http';
import nodeHttp from '../node-http.js';
import type { AddressInfo } from 'node:net';
import { PadlockError, errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { adminAccessProblem, authorizationMatches, isLoopbackHost, isLoopbackHostHeader } from './admin-auth.js';
import { DASHBOARD_ASSETS, DASHBOARD_HEADERS } from './dashboard/assets.js';
import { viaNamesPadlock } from '../proxy/headers.js';
import type { Metrics } from './metrics.js';

export interface AdminOptions {
  /** `HOST:PORT` (`[::1]:9180` for IPv6); port 0 picks a free one. */
  listen: string;
  /** Builds the status document on request (see `buildStatusDocument`). Thrown errors answer 500. */
  status: () => unknown;
  ready: () => boolean;
  /**
   * More facts for `/readyz`'s body that do not change its status (the
   * store's reachability: padlock serves from memory while a shared store is
   * down, so it stays ready, and says so).
   */
  readyDetails?: () => Record<string, unknown>;
  /** Serves /metrics when given. */
  metrics?: Metrics;
  /** The bearer token. Required for a non-loopback `listen`. */
  token?: string | undefined;
  /** Enforce the token even on loopback (and refuse to start without one). Default: true for non-loopback binds. */
  requireToken?: boolean;
  /** Serve the dashboard at `/` (default true). */
  dashboard?: boolean;
  logger?: Logger;
}

export function parseHostPort(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
  if (!m) throw new PadlockError('CONFIG_INVALID', `adminListen "${listen}" must be HOST:PORT`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

const ENDPOINTS = ['/healthz', '/readyz', '/api/status', '/metrics', '/'];

export class AdminServer {
  private readonly server: http.Server;
  private readonly log: Logger;
  private readonly token: string | undefined;
  private readonly host: string;
  private readonly port: number;

  /** Throws CONFIG_INVALID when the address is malformed, or non-loopback (or `requireToken`) without a token. */
  constructor(private readonly opts: AdminOptions) {
    this.log = (opts.logger ?? silentLogger).child({ component: 'admin' });
    ({ host: this.host, port: this.port } = parseHostPort(opts.listen));
    this.token = opts.token || undefined;
    const problem = opts.requireToken && !this.token
      ? 'the admin API is set to require a token, but none is configured: set adminToken (PADLOCK_ADMIN_TOKEN) or adminTokenFile'
      : adminAccessProblem(this.host, this.token);
    if (problem) throw new PadlockError('CONFIG_INVALID', problem);
    this.server = nodeHttp.createServer((req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        this.log.error('admin request failed', { path: pathOf(req), error: errorMessage(err) });
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: errorMessage(err) }) + '\n');
        else res.destroy();
      });
    });
    this.server.headersTimeout = 5_000;
    this.server.requestTimeout = 10_000;
  }

  /** Whether requests need the token (a token is configured). */
  get authenticated(): boolean {
    return this.token !== undefined;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = this;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new PadlockError('LISTEN_FAILED', `admin listener ${this.opts.listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : errorMessage(err)}; pick another --admin-listen`, { cause: err })));
      this.server.listen(port, host, () => resolve());
    });
    const bound = { host, port: (this.server.address() as AddressInfo).port };
    this.log.info('admin API listening', { ...bound, auth: this.token ? 'bearer token' : 'none (loopback only)', loopback: isLoopbackHost(host) });
    return bound;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = pathOf(req);
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body, null, 2) + '\n');
    };
    if (viaNamesPadlock(req.headers.via)) {
      this.log.warn('admin request refused: it came through padlock\'s own proxy', { path, via: req.headers.via });
      return json(403, { error: "forbidden: this request came through padlock's proxy (its Via header names padlock); the admin API answers only direct requests" });
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
    if (path === '/healthz') return json(200, { ok: true });

    if (this.token) {
      if (!authorizationMatches(req.headers.authorization, this.token)) {
        // Never the header itself: only whether one came.
        this.log.debug('admin request refused: bad or missing token', { path, remote: req.socket.remoteAddress, presented: req.headers.authorization !== undefined });
        // Two headers, not one with two challenges: browsers parse only the first challenge of a header.
        res.setHeader('www-authenticate', ['Bearer realm="padlock"', 'Basic realm="padlock admin (any user name, the admin token as password)", charset="UTF-8"']);
        return json(401, { error: 'unauthorized: send Authorization: Bearer <adminToken> (browsers: any user name, the token as password)' });
      }
    } else if (!isLoopbackHostHeader(req.headers.host)) {
      this.log.debug('admin request refused: Host is not a loopback name', { path, host: req.headers.host });
      return json(421, { error: 'this admin API answers only to loopback names (127.0.0.1, [::1], localhost); set adminToken to serve other names' });
    }

    if (path === '/readyz') {
      const details = this.opts.readyDetails?.() ?? {};
      return this.opts.ready() ? json(200, { ready: true, ...details }) : json(503, { ready: false, ...details });
    }
    if (path === '/api/status') return json(200, this.opts.status());
    if (path === '/metrics' && this.opts.metrics) {
      const text = await this.opts.metrics.exposition();
      res.writeHead(200, { 'content-type': this.opts.metrics.contentType, 'cache-control': 'no-store' }).end(text);
      return;
    }
    const asset = this.opts.dashboard === false ? undefined : DASHBOARD_ASSETS.get(path === '/index.html' ? '/' : path);
    if (asset) {
      res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...DASHBOARD_HEADERS });
      res.end(req.method === 'HEAD' ? undefined : asset.body);
      return;
    }
    json(404, { error: 'not found', endpoints: ENDPOINTS.filter((e) => (e !== '/metrics' || this.opts.metrics) && (e !== '/' || this.opts.dashboard !== false)) });
  }
}

function pathOf(req: http.IncomingMessage): string {
  return (req.url ?? '/').split('?')[0] ?? '/';
}
