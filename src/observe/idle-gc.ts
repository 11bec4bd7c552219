/**
 * Gives memory back to the system once a burst of work is over.
 *
 * V8 grows its young generation and keeps freed pages while a process is
 * busy. Its own "memory reducer" would release them once the process goes
 * quiet, but it judges quiet by the allocation rate it saw at the last
 * garbage collection, and a server that has gone idle runs none: the rate it
 * remembers is the burst's, so it never acts (`--trace-memory-reducer` prints
 * "high alloc" every 8 s on an idle padlock). Measured on one idle padlock:
 * 91 MiB of RSS before, 77 MiB after one memory-reducing collection.
 *
 * So padlock does what the reducer would: it samples its own CPU time every
 * `checkMs`; after at least one busy interval (start-up counts), the first
 * interval that is quiet again runs one full, memory-reducing collection.
 * An idle process collects once and then never again until it works again.
 * A slow collection pushes the next one back by 100 times its duration, so
 * a large heap under an on-and-off load costs at most about 1 % of a core.
 *
 * The collection blocks the process for its duration (on a 2-core machine,
 * 60-150 ms with one site, 170-200 ms with 10,000 certificates): a request
 * that arrives in that window waits. That is why it only runs after a whole
 * quiet interval.
 */
import type { Logger } from '../log.js';

/** How often padlock looks at its CPU time (ms). */
export const IDLE_GC_CHECK_MS = 5_000;
/** An interval is quiet below this share of one core. */
export const IDLE_GC_QUIET_SHARE = 0.02;
/** An interval is busy at or above this share of one core. */
export const IDLE_GC_BUSY_SHARE = 0.1;
/** A collection that took D ms holds the next one off for this many times D. */
export const IDLE_GC_BACKOFF_FACTOR = 100;

/** The pure decision: feed it one sample per interval, it says when to collect. */
export class IdleGcPolicy {
  private busySinceCollect = true; // start-up is work
  private notBefore = 0;

  /**
   * One interval's sample: `cpuMs` of CPU used over `intervalMs` of wall time,
   * ending at `nowMs`. True means: collect now (then call `collected`).
   */
  sample(cpuMs: number, intervalMs: number, nowMs: number): boolean {
    const share = intervalMs > 0 ? cpuMs / intervalMs : 1;
    if (share >= IDLE_GC_BUSY_SHARE) {
      this.busySinceCollect = true;
      return false;
    }
    return share < IDLE_GC_QUIET_SHARE && this.busySinceCollect && nowMs >= this.notBefore;
  }

  /** A collection that ended at `nowMs` and took `tookMs`. */
  collected(tookMs: number, nowMs: number): void {
    this.busySinceCollect = false;
    this.notBefore = nowMs + IDLE_GC_BACKOFF_FACTOR * tookMs;
  }
}

/** A V8 full collection, as `--expose-gc` provides it. */
export type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export interface IdleGcOptions {
  logger: Logger;
  /** Defaults to `globalThis.gc`, which `bin/padlock` exposes with `--expose-gc`. */
  gc?: GcFunction | undefined;
  /** Process CPU time in microseconds (user + system); defaults to `process.cpuUsage()`. */
  cpuMicros?: () => number;
  /** Monotonic milliseconds; defaults to `performance.now()`. */
  nowMs?: () => number;
  /** Resident memory in bytes; defaults to `process.memoryUsage.rss()`. */
  rss?: () => number;
  checkMs?: number;
}

export interface IdleGc {
  stop(): void;
  /** Collections so far. */
  readonly collections: number;
}

/**
 * Starts the idle collector for this process, or returns undefined (and says
 * so at debug level) when no `gc` is exposed, for example when padlock runs
 * under a plain `node` without `--expose-gc`.
 */
export function startIdleGc(opts: IdleGcOptions): IdleGc | undefined {
  const gc = opts.gc ?? (globalThis as { gc?: unknown }).gc as GcFunction | undefined;
  if (typeof gc !== 'function') {
    opts.logger.debug('idle memory release is off: node was started without --expose-gc');
    return undefined;
  }
  const cpuMicros = opts.cpuMicros ?? (() => { const u = process.cpuUsage(); return u.user + u.system; });
  const nowMs = opts.nowMs ?? (() => performance.now());
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  const policy = new IdleGcPolicy();
  let lastCpu = cpuMicros();
  let lastAt = nowMs();
  let collections = 0;
  const timer = setInterval(() => {
    const cpu = cpuMicros();
    const at = nowMs();
    const collect = policy.sample((cpu - lastCpu) / 1000, at - lastAt, at);
    if (collect) {
      const before = rss();
      const t0 = nowMs();
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
      const t1 = nowMs();
      policy.collected(t1 - t0, t1);
      collections++;
      opts.logger.debug('idle: memory released', { rssBeforeMiB: mib(before), rssAfterMiB: mib(rss()), tookMs: Math.round(t1 - t0) });
    }
    // The collection's own CPU time is not the next interval's work.
    lastCpu = cpuMicros();
    lastAt = nowMs();
  }, opts.checkMs ?? IDLE_GC_CHECK_MS);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    get collections() { return collections; },
  };
}

function mib(bytes: number): number {
  return Math.round(bytes / 1048576 * 10) / 10;
}
