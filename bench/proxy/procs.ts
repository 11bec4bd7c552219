/**
 * Long-running servers for the proxy bench (upstream nginx, the proxies) and
 * what the bench reads about them from /proc (RSS, PSS, CPU time).
 *
 * Every server is spawned as `timeout -k 5 CAP cmd ...` in its own process
 * group: the bench kills the group when it is done with the server (and from
 * its exit hook), and `timeout` kills it anyway at the overall cap, even if the
 * bench itself is SIGKILLed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

export interface Daemon {
  name: string;
  /** pid of the `timeout` wrapper, which leads the process group. */
  pid: number;
  /** stdout+stderr so far (capped), for error messages. */
  output(): string;
  exited(): boolean;
  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves when the wrapper is gone. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every server group still running. Safe from an 'exit' hook. */
export function killAllDaemons(): void {
  for (const c of live) {
    if (c.pid === undefined) continue;
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/**
 * Spawns `cmd args` under `timeout` (see the module comment). `onOutput`, when
 * given, also receives every chunk of stdout and stderr as it arrives, with
 * its stream (the kept `output()` is capped and mixes both).
 */
export function startDaemon(
  name: string,
  cmd: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd?: string; capSeconds: number; onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void },
): Daemon {
  const child = spawn('timeout', ['-k', '5', String(Math.max(1, Math.ceil(opts.capSeconds))), cmd, ...args], {
    env: opts.env,
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
  live.add(child);
  let out = '';
  let done = false;
  const keep = (d: string): void => {
    out = (out + d).slice(-20_000);
  };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    keep(d);
    opts.onOutput?.(d, 'stdout');
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    keep(d);
    opts.onOutput?.(d, 'stderr');
  });
  const closed = new Promise<void>((r) => {
    child.on('close', () => {
      done = true;
      live.delete(child);
      r();
    });
    child.on('error', (e) => {
      keep(`\n[spawn error: ${e.message}]`);
      done = true;
      live.delete(child);
      r();
    });
  });
  const pid = child.pid;
  return {
    name,
    pid,
    output: () => out,
    exited: () => done,
    async stop(graceMs = 5000) {
      if (!done) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          /* gone */
        }
        const t = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, graceMs);
        await closed;
        clearTimeout(t);
      }
      // Anything left in the group (a worker that outlived its master) goes too.
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* group empty */
      }
    },
  };
}

// ---------------- /proc ----------------

const CLK_TCK = 100; // Linux USER_HZ; /proc reports CPU time in these ticks.

function readStat(pid: number): { comm: string; ppid: number; ticks: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const comm = s.slice(s.indexOf('(') + 1, close);
    const f = s.slice(close + 2).split(' ');
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12)
    return { comm, ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

/** The server's own processes: every descendant of the wrapper, without the `timeout` wrapper itself. */
export function serverPids(wrapperPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(e));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(wrapperPid);
  return out.filter((p) => readStat(p)?.comm !== 'timeout');
}

export interface MemSample {
  /** Sum over the processes, in MiB. Shared pages count once per process. */
  rssMiB: number;
  /** Proportional set size summed (shared pages split between sharers), in MiB. */
  pssMiB?: number;
  processes: { pid: number; comm: string; rssMiB: number; pssMiB?: number }[];
}

function kbField(text: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

export function memory(pids: number[]): MemSample {
  const processes: MemSample['processes'] = [];
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rss = kbField(status, 'VmRSS') ?? 0;
      let pss: number | undefined;
      try {
        pss = kbField(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      } catch {
        pss = undefined;
      }
      processes.push({ pid, comm: readStat(pid)?.comm ?? '?', rssMiB: r1(rss / 1024), ...(pss !== undefined ? { pssMiB: r1(pss / 1024) } : {}) });
    } catch {
      /* exited */
    }
  }
  const havePss = processes.every((p) => p.pssMiB !== undefined);
  return {
    rssMiB: r1(processes.reduce((s, p) => s + p.rssMiB, 0)),
    ...(havePss && processes.length ? { pssMiB: r1(processes.reduce((s, p) => s + (p.pssMiB ?? 0), 0)) } : {}),
    processes,
  };
}

/** CPU seconds (user+system) used so far by these processes together. */
export function cpuSeconds(pids: number[]): number {
  return pids.reduce((s, p) => s + (readStat(p)?.ticks ?? 0), 0) / CLK_TCK;
}

/** Fraction of all CPUs busy over `ms`, from /proc/stat. */
export async function machineBusy(ms = 1000): Promise<number | undefined> {
  const sample = (): { busy: number; total: number } | undefined => {
    try {
      const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
      const v = line.trim().split(/\s+/).slice(1).map(Number);
      const idle = (v[3] ?? 0) + (v[4] ?? 0);
      const total = v.reduce((a, b) => a + b, 0);
      return { busy: total - idle, total };
    } catch {
      return undefined;
    }
  };
  const a = sample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  if (!a || !b || b.total === a.total) return undefined;
  return Math.round(((b.busy - a.busy) / (b.total - a.total)) * 1000) / 1000;
}

function r1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Busy and total CPU seconds of the whole machine so far (all CPUs), from /proc/stat. */
export function machineCpu(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.reduce((a, b) => a + b, 0);
    return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process plus its reaped children (wrk, curl via timeout, openssl). */
export function selfAndChildrenCpu(): number {
  try {
    const s = readFileSync('/proc/self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return 0;
  }
}
