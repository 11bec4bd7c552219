/**
 * Active health checks (`padlock.healthcheck=/path`): padlock GETs the path
 * on each upstream that asks for it and keeps the result in the routes'
 * `UpstreamHealth` under the upstream's `checkKey` (container, address,
 * path). An upstream gets requests only while its last check passed, so a
 * container that listens but is not ready yet receives no traffic.
 *
 * - A check passes on any 2xx or 3xx answer within `timeoutMs` (2 s); a
 *   refused connection, a timeout or any other status fails it. One result
 *   flips the state: there is no threshold.
 * - A new upstream (a new container, even on the address of the one it
 *   replaces) starts as not ready and is checked at once.
 * - While an upstream is not ready it is checked every `pendingEveryMs`
 *   (500 ms, or its interval when shorter), so a starting container gets
 *   traffic within half a second of being ready; once ready, every interval.
 * - One check per upstream at a time; the next is scheduled when it ends.
 * - An h2c upstream (`padlock.proto=h2c`, gRPC) is checked with an HTTP/2
 *   GET over h2c, on a connection opened for the check and closed after.
 * - The request goes through the upstream rules (upstream-connect.ts), with
 *   the route's host in `Host` and `User-Agent: padlock-healthcheck`. The
 *   body is read and dropped, at most `maxBodyBytes` (64 KiB).
 *
 * With `--workers N`, every worker runs its own checks.
 */
import type { LookupFunction } from 'node:net';
import type { Agent as UndiciAgent } from 'undici';
import { Agent, request } from './undici-parts.js';
import type { Logger } from '../log.js';
import type { RouteTable, UpstreamHealth, UpstreamTarget } from './routes.js';
import { guardedPoolFactory, type CurrentGuard } from './upstream-connect.js';
import { h2cGet } from './h2c-upstream.js';

export interface HealthChecksOptions {
  health: UpstreamHealth;
  guard: CurrentGuard;
  logger: Logger;
  lookup?: LookupFunction;
  /** Called when an upstream's state changes (for held requests). */
  onChange?: () => void;
  /** One check's deadline (default 2 000 ms). */
  timeoutMs?: number;
  /** The check interval while not ready (default 500 ms; an upstream's own shorter interval wins). */
  pendingEveryMs?: number;
}

interface Check {
  readonly key: string;
  target: UpstreamTarget;
  host: string;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  stopped: boolean;
  ready: boolean | undefined;
}

const MAX_BODY_BYTES = 64 * 1024;

/** Runs the checks the current route table asks for. `update()` on every route swap; `close()` on shutdown. */
export class HealthChecks {
  private readonly checks = new Map<string, Check>();
  private readonly agent: UndiciAgent;
  private readonly timeoutMs: number;
  private readonly pendingEveryMs: number;
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: HealthChecksOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    this.pendingEveryMs = opts.pendingEveryMs ?? 500;
    this.log = opts.logger;
    this.agent = new Agent({
      factory: guardedPoolFactory(opts.guard, opts.lookup),
      connections: 4,
      pipelining: 1,
      keepAliveTimeout: 1_000,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      // Upstream certificates are not verified, as for forwarded requests (forward.ts).
      connect: { timeout: this.timeoutMs, rejectUnauthorized: false },
    });
  }

  /** Starts checks for upstreams new in `table`, stops those gone, and forgets their results. */
  update(table: RouteTable): void {
    if (this.closed) return;
    const wanted = new Map<string, { target: UpstreamTarget; host: string }>();
    for (const route of table.all()) {
      for (const target of route.upstreams) {
        if (target.checkKey && !wanted.has(target.checkKey)) wanted.set(target.checkKey, { target, host: route.site.host.replace(/^\*\./, 'wildcard.') });
      }
    }
    for (const [key, check] of this.checks) {
      if (wanted.has(key)) continue;
      check.stopped = true;
      clearTimeout(check.timer);
      this.checks.delete(key);
    }
    for (const [key, { target, host }] of wanted) {
      const existing = this.checks.get(key);
      if (existing) {
        existing.target = target;
        existing.host = host;
        continue;
      }
      const check: Check = { key, target, host, timer: undefined, running: false, stopped: false, ready: undefined };
      this.checks.set(key, check);
      void this.run(check);
    }
    this.opts.health.forgetChecksExcept(new Set(wanted.keys()));
  }

  /** Checks running now, for stats. */
  get size(): number {
    return this.checks.size;
  }

  /** Stops every check and closes the connections. Idempotent. */
  close(): void {
    this.closed = true;
    for (const check of this.checks.values()) {
      check.stopped = true;
      clearTimeout(check.timer);
    }
    this.checks.clear();
    this.agent.close().catch(() => undefined);
  }

  private async run(check: Check): Promise<void> {
    if (check.stopped || check.running) return;
    check.running = true;
    const ok = await this.once(check.target, check.host);
    check.running = false;
    if (check.stopped) return;
    if (ok !== check.ready) {
      const first = check.ready === undefined;
      check.ready = ok;
      this.opts.health.setReady(check.key, ok);
      const fields = { host: check.host, upstream: check.target.containerName, path: check.target.healthcheck!.path };
      if (ok) this.log.info('health check passed; the upstream gets requests', fields);
      else if (!first) this.log.warn('health check failed; the upstream gets no requests until it passes', fields);
      this.opts.onChange?.();
    }
    const interval = check.target.healthcheck!.intervalMs;
    const next = ok ? interval : Math.min(interval, this.pendingEveryMs);
    check.timer = setTimeout(() => void this.run(check), next);
    check.timer.unref();
  }

  /** One GET; true on 2xx/3xx. Never rejects. */
  private async once(target: UpstreamTarget, host: string): Promise<boolean> {
    if (target.h2c) {
      // An h2c upstream (gRPC) may speak nothing but HTTP/2: the GET goes over h2c, on a connection of its own.
      const status = await h2cGet(target, target.healthcheck!.path, { ':authority': host, 'user-agent': 'padlock-healthcheck' }, {
        guard: this.opts.guard, lookup: this.opts.lookup, timeoutMs: this.timeoutMs, maxBodyBytes: MAX_BODY_BYTES,
      });
      return status !== undefined && status >= 200 && status < 400;
    }
    try {
      const res = await request.call(this.agent, {
        origin: target.url.origin,
        path: target.healthcheck!.path,
        method: 'GET',
        headers: { host, 'user-agent': 'padlock-healthcheck' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      let read = 0;
      for await (const chunk of res.body) {
        read += (chunk as Buffer).length;
        if (read > MAX_BODY_BYTES) break;
      }
      res.body.destroy();
      return res.statusCode >= 200 && res.statusCode < 400;
    } catch {
      return false;
    }
  }
}
