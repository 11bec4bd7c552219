/**
 * Runs one CLI invocation with a hard time bound and times it with hrtime.
 * The child leads its own process group so a timeout (or our own exit) kills
 * everything it started, not just the top process.
 *
 * A server that never exits by itself (Caddy) is timed with `until`: the clock
 * stops when the predicate first holds, then the server is stopped.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface ChildResult {
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  seconds: number;
  stdout: string;
  stderr: string;
}

const running = new Set<ChildProcess>();

/** SIGKILLs every child still running (their whole groups). Safe to call from an 'exit' hook. */
export function killAllChildren(): void {
  for (const c of running) {
    if (c.pid === undefined) continue;
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/** For a server: when it is done, and how long to wait for it to stop afterwards. */
export interface UntilOptions {
  /** Polled from spawn on; the first true stops the clock. Must not throw. */
  done: () => Promise<boolean>;
  /** Time between the end of one poll and the start of the next. */
  pollMs: number;
  /** After `done`, SIGTERM the group, then SIGKILL if it has not exited after this long. */
  stopGraceMs: number;
}

/**
 * Runs `cmd args` with `env`, kills its process group after `timeoutMs`, and
 * resolves (never rejects) with the exit status, output and wall time.
 * With `until`, the time is from spawn to the first poll that finds the work
 * done, and ok means exactly that (the exit status after the stop is ignored);
 * exiting before then is a failure.
 */
export function runTimed(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, cwd?: string, until?: UntilOptions): Promise<ChildResult> {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    let stdout = '';
    let stderr = '';
    const cap = (s: string): string => (s.length > 200_000 ? s.slice(-100_000) : s);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = cap(stdout + d)));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = cap(stderr + d)));
    let timedOut = false;
    let doneSeconds: number | undefined;
    let settled = false;
    let graceTimer: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    if (until) {
      const poll = async (): Promise<void> => {
        if (settled || timedOut) return;
        if (await until.done()) {
          if (settled || timedOut) return;
          doneSeconds = Number(process.hrtime.bigint() - start) / 1e9;
          signalGroup('SIGTERM');
          graceTimer = setTimeout(() => signalGroup('SIGKILL'), until.stopGraceMs);
          return;
        }
        setTimeout(() => void poll(), until.pollMs);
      };
      void poll();
    }
    const timer = setTimeout(() => {
      if (doneSeconds !== undefined) return;
      timedOut = true;
      signalGroup('SIGKILL');
    }, Math.max(1, timeoutMs));
    const finish = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(graceTimer);
      running.delete(child);
      // Anything the tool left behind in its group goes too (e.g. a stuck standalone server).
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* group is empty */
      }
      const seconds = doneSeconds ?? Number(process.hrtime.bigint() - start) / 1e9;
      if (err) stderr += `\n[spawn error: ${err.message}]`;
      const ok = until ? !err && doneSeconds !== undefined : !err && !timedOut && code === 0;
      resolve({ ok, code, signal, timedOut, seconds, stdout, stderr });
    };
    child.on('error', (e) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
