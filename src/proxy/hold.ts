/**
 * Requests that wait for an upstream: while every upstream of a route is
 * down (refused a connection, or failing its health check) or the route is
 * in its grace period (no upstream at all), a request is held rather than
 * failed, for up to the route's upstream wait (`--upstream-wait`,
 * `padlock.upstream-wait`). It goes on as soon as an upstream can take it:
 * - the route table is replaced and the host's new route has one
 *   (`routesChanged()`: discovery saw the new container);
 * - a TCP probe to a down upstream connects (every `probeEveryMs` while
 *   requests are held; the probe sends nothing);
 * - a health check passes (`poke()`).
 * When the wait ends first, or the name goes away meanwhile, the caller
 * answers 503 with `Retry-After`.
 *
 * ## Limits
 * - At most `maxHeld` requests are held at once in this process, and at most
 *   `maxHeldPerHost` (default half of `maxHeld`) for one name, so a flood on
 *   one name leaves room for the others. A request over a limit is not held:
 *   the caller answers 503 at once.
 * - The forwarder pauses a held request's socket, so its body stays in the
 *   client and the kernel: measured, a held request costs padlock about
 *   50 KiB without a body and about 160 KiB with one (what TLS and Node had
 *   read before the pause), whatever the body's size.
 * - A client that goes away is forgotten at once (`gone`).
 *
 * The hold never forwards anything itself: `wait()` only says when, and the
 * forwarder picks the upstream.
 */
import type { HostRoute, RouteTable, UpstreamHealth, UpstreamTarget } from './routes.js';

/**
 * How a hold ended: an upstream can take the request (`released`); the wait
 * ran out or the name went away (`unavailable`); a limit was reached so it
 * was never held (`full`); the client left (`gone`); padlock is stopping
 * (`closed`).
 */
export type HoldOutcome = 'released' | 'unavailable' | 'full' | 'gone' | 'closed';

/** Something that emits `close` when the client goes away (a ServerResponse or an upgrade socket). */
export interface ClientEnd {
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

export interface RequestHoldOptions {
  /** The route table in force now (read on every check, so a swap applies at once). */
  routes: () => RouteTable;
  /** Where a successful probe clears the down mark. */
  health: UpstreamHealth;
  /** One connect attempt to a down upstream; resolves true when it is back. Never rejects. */
  probe: (target: UpstreamTarget) => Promise<boolean>;
  /** The wait for a route whose site sets no `upstreamWait` (ms). */
  defaultWaitMs: number;
  /** Most requests held at once in this process. */
  maxHeld: number;
  /** Most requests held at once for one name (default half of `maxHeld`, at least 1). */
  maxHeldPerHost?: number;
  /** How often held requests' routes are checked and down upstreams probed (default 100 ms). */
  probeEveryMs?: number;
  /** Called once per request that asked to be held, when its hold ends (for metrics; must not throw). */
  onSettled?: (host: string, outcome: HoldOutcome, seconds: number) => void;
}

interface Waiter {
  readonly host: string;
  readonly started: number;
  readonly end: ClientEnd;
  timer: NodeJS.Timeout | undefined;
  onClose: () => void;
  resolve: (outcome: HoldOutcome) => void;
}

/** The default share of `maxHeld` one name may take: half, so a second name redeploying at the same time still has room. */
export const HOST_SHARE = 2;

/**
 * Holds requests until their route can take them. One per process (per
 * worker with `--workers`). Not tied to a request's lifetime: `close()` ends
 * every hold with `closed`.
 */
export class RequestHold {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private count = 0;
  private ticker: NodeJS.Timeout | undefined;
  private readonly probing = new Set<string>();
  private closed = false;
  readonly maxHeld: number;
  readonly maxHeldPerHost: number;
  private readonly probeEveryMs: number;

  constructor(private readonly opts: RequestHoldOptions) {
    this.maxHeld = opts.maxHeld;
    this.maxHeldPerHost = Math.max(1, Math.min(opts.maxHeld, opts.maxHeldPerHost ?? Math.floor(opts.maxHeld / HOST_SHARE)));
    this.probeEveryMs = opts.probeEveryMs ?? 100;
  }

  /** How long a request to `route` may be held in all (ms): the site's `upstreamWait`, else the default. */
  waitMsFor(route: HostRoute): number {
    const s = route.site.upstreamWait;
    return s !== undefined ? Math.round(s * 1000) : this.opts.defaultWaitMs;
  }

  /** The route for `host` now (the table may have been replaced while the request waited). */
  route(host: string): HostRoute | undefined {
    return this.opts.routes().get(host);
  }

  /**
   * Waits until `host`'s route has an upstream that can take a request, for at
   * most `waitMs`. Resolves `full` at once when a limit is reached, `gone`
   * when `end` emits close first, `closed` on `close()`. Never rejects.
   */
  wait(host: string, waitMs: number, end: ClientEnd): Promise<HoldOutcome> {
    const started = performance.now();
    const mine = this.waiters.get(host);
    if (this.closed || waitMs <= 0 || this.count >= this.maxHeld || (mine?.size ?? 0) >= this.maxHeldPerHost) {
      const outcome: HoldOutcome = this.closed ? 'closed' : waitMs <= 0 ? 'unavailable' : 'full';
      this.opts.onSettled?.(host, outcome, 0);
      return Promise.resolve(outcome);
    }
    return new Promise<HoldOutcome>((resolve) => {
      const w: Waiter = {
        host,
        started,
        end,
        timer: undefined,
        onClose: () => this.settle(w, 'gone'),
        resolve,
      };
      w.timer = setTimeout(() => this.settle(w, 'unavailable'), waitMs);
      end.once('close', w.onClose);
      let set = mine;
      if (!set) this.waiters.set(host, (set = new Set()));
      set.add(w);
      this.count++;
      this.ticker ??= setInterval(() => this.check(), this.probeEveryMs);
      // An upstream may be back already (a probe finished just now): the first check runs on the next tick.
      setImmediate(() => this.checkHost(host));
    });
  }

  /** The route table was replaced: hosts that can be served now release their requests. */
  routesChanged(): void {
    this.check();
  }

  /** An upstream's health changed (a health check passed): same as `routesChanged()`. */
  poke(): void {
    this.check();
  }

  /** Requests held now. */
  held(): number {
    return this.count;
  }

  /** Ends every hold with `closed` (the caller answers them) and stops probing. Idempotent. */
  close(): void {
    this.closed = true;
    for (const set of [...this.waiters.values()]) for (const w of [...set]) this.settle(w, 'closed');
    this.stopTicker();
  }

  private check(): void {
    for (const host of [...this.waiters.keys()]) this.checkHost(host);
  }

  private checkHost(host: string): void {
    const set = this.waiters.get(host);
    if (!set || set.size === 0) return;
    const route = this.route(host);
    if (!route) {
      // The name went away while its requests waited (its grace period ended): nothing will come back.
      for (const w of [...set]) this.settle(w, 'unavailable');
      return;
    }
    if (route.available()) {
      for (const w of [...set]) this.settle(w, 'released');
      return;
    }
    const health = this.opts.health;
    for (const target of route.upstreams) {
      // An upstream failing its health check comes back through the checker (poke), not a bare connect.
      if (!route.usable(target) || !health.isDown(target.key) || this.probing.has(target.key)) continue;
      this.probing.add(target.key);
      void this.opts.probe(target).then((up) => {
        this.probing.delete(target.key);
        // Still refused: the down window starts again, so it cannot lapse into releasing requests to a dead upstream.
        if (!up) return void health.markDown(target.key);
        health.markUp(target.key);
        this.check();
      });
    }
  }

  private settle(w: Waiter, outcome: HoldOutcome): void {
    const set = this.waiters.get(w.host);
    if (!set?.delete(w)) return;
    if (set.size === 0) this.waiters.delete(w.host);
    this.count--;
    clearTimeout(w.timer);
    w.end.off('close', w.onClose);
    if (this.count === 0) this.stopTicker();
    this.opts.onSettled?.(w.host, outcome, (performance.now() - w.started) / 1000);
    w.resolve(outcome);
  }

  private stopTicker(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.ticker = undefined;
  }
}
