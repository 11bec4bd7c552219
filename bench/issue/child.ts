/**
 * Runs one CLI invocation with a hard time bound and times it with hrtime.
 * The child leads its own process group so a timeout (or our own exit) kills
 * everything it started, not just the top process.
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

/**
 * Runs `cmd args` with `env`, kills its process group after `timeoutMs`, and
 * resolves (never rejects) with the exit status, output and wall time.
 */
export function runTimed(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number, cwd?: string): Promise<ChildResult> {
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
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, Math.max(1, timeoutMs));
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      running.delete(child);
      // Anything the tool left behind in its group goes too (e.g. a stuck standalone server).
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* group is empty */
      }
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (err) stderr += `\n[spawn error: ${err.message}]`;
      resolve({ ok: !err && !timedOut && code === 0, code, signal, timedOut, seconds, stdout, stderr });
    };
    child.on('error', (e) => finish(null, null, e));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
