/**
 * What the fleet bench reads about the machine and the processes it started:
 * the load average, and CPU time and memory of its descendants by program
 * name (Pebble, challtestsrv, Redis), from /proc. Also the last resort at
 * exit: SIGKILL, by pid, every redis-server this bench started that is still
 * running (test/support/redis.ts does not put it under `timeout`).
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { serverPids, cpuSeconds } from '../proxy/procs.js';
import { rssOf } from '../startup/probes.js';

/** 1, 5 and 15 minute load averages, two decimals. */
export function loadAverage(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** This process's descendants whose program name (`/proc/PID/comm`, 15 characters at most) is `name`. */
export function descendantsNamed(name: string): number[] {
  return serverPids(process.pid).filter((p) => comm(p) === name.slice(0, 15));
}

export interface ProcessUse {
  processes: number;
  /** user+system CPU seconds over the processes' lives. */
  cpuSeconds: number;
  rssMiB: number;
  /** VmHWM summed. */
  peakMiB: number;
}

/** CPU and memory of a set of processes, now. */
export function usageOf(pids: number[]): ProcessUse {
  let rss = 0;
  let peak = 0;
  for (const p of pids) {
    const m = rssOf(p);
    rss += m?.rssMiB ?? 0;
    peak += m?.peakMiB ?? 0;
  }
  return { processes: pids.length, cpuSeconds: Math.round(cpuSeconds(pids) * 100) / 100, rssMiB: Math.round(rss * 10) / 10, peakMiB: Math.round(peak * 10) / 10 };
}

/** SIGKILLs every redis-server descended from this process. Safe from an 'exit' hook. */
export function killOwnRedis(): void {
  for (const pid of descendantsNamed('redis-server')) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
