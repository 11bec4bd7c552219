/**
 * certbot-style deploy hooks: a shell command run after a certificate is
 * stored, with RENEWED_LINEAGE (the live folder) and RENEWED_DOMAINS
 * (space-separated names) in its environment.
 *
 * The hook runs in its own process group (session), so that:
 * - padlock waits for the shell, not for every process holding its output.
 *   `systemctl reload x &` or `sleep 1000 &` keeps the pipes open long after
 *   the shell exits; waiting for them (Node's `close`) would hang `padlock
 *   renew` for as long as the job runs. After the shell exits, padlock reads
 *   its output for {@link PIPE_GRACE_MS} more, then closes its ends.
 * - a hook that times out is stopped with everything it started: the whole
 *   group gets SIGTERM, then SIGKILL after {@link KILL_GRACE_MS}. A process
 *   that moved itself to another session (setsid, a daemon) is out of reach.
 *
 * A background job left running when the shell exits normally is NOT killed:
 * a hook may start a long-lived process on purpose. Its output after the
 * grace is lost (writes to the closed pipe fail), so redirect it.
 */
import { spawn } from 'node:child_process';
import { PadlockError } from '../errors.js';

/** How long padlock keeps reading a hook's output after the shell exited (background jobs may hold the pipes). */
export const PIPE_GRACE_MS = 1_000;
/** After SIGTERM on timeout, how long the hook's processes get before SIGKILL. */
export const KILL_GRACE_MS = 2_000;
/** Default hook time limit. */
export const DEFAULT_HOOK_TIMEOUT_MS = 300_000;

export interface HookRun {
  command: string;
  lineageDir: string;
  domains: string[];
  /** Time limit for the shell to exit; then its whole process group is stopped. Default {@link DEFAULT_HOOK_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Where the hook's output goes. Default: padlock's stderr. */
  output?: NodeJS.WritableStream;
}

/**
 * Runs the hook and settles when its shell has exited (plus at most
 * {@link PIPE_GRACE_MS} for output). Resolves on exit code 0; rejects with
 * HOOK_FAILED (the certificate stays stored) on a non-zero exit, a signal,
 * a failure to start, or the timeout, after which every process in the
 * hook's group has been sent SIGTERM and then SIGKILL.
 */
export function runDeployHook(run: HookRun): Promise<void> {
  return new Promise((resolve, reject) => {
    const limit = run.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
    const child = spawn('/bin/sh', ['-c', run.command], {
      env: { ...process.env, RENEWED_LINEAGE: run.lineageDir, RENEWED_DOMAINS: run.domains.join(' ') },
      stdio: ['ignore', 'pipe', 'pipe'],
      // setsid(): the shell leads a new process group, which a timeout kills whole.
      detached: true,
    });
    const out = run.output ?? process.stderr;
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });

    const timers: NodeJS.Timeout[] = [];
    let timedOut = false;
    let settled = false;
    const fail = (message: string, details: Record<string, unknown>, cause?: unknown) =>
      new PadlockError('HOOK_FAILED', `the deploy hook "${run.command}" ${message}; the certificate itself was saved`, { details, ...(cause ? { cause } : {}) });
    const settle = (err: PadlockError | null) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      child.stdout.destroy();
      child.stderr.destroy();
      if (err) reject(err);
      else resolve();
    };
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // ESRCH: every process in the group is gone already
      }
    };

    child.on('error', (err) => settle(fail(`could not start: ${err.message}`, {}, err)));
    // Known once the shell has exited; until then undefined.
    let verdict: PadlockError | null | undefined;
    child.on('exit', (code, signal) => {
      if (timedOut) return; // the timeout path settles once the group is dead
      for (const t of timers) clearTimeout(t);
      verdict = code === 0 ? null : fail(signal ? `was killed by ${signal}` : `exited with ${code}`, { exitCode: code, signal });
      // Output already written is still in the pipes: let it drain ('close'), but never wait on a background job for it.
      const result = verdict;
      timers.push(setTimeout(() => settle(result), PIPE_GRACE_MS));
    });
    child.on('close', () => {
      if (!timedOut && verdict !== undefined) settle(verdict);
    });
    timers.push(
      setTimeout(() => {
        timedOut = true;
        killGroup('SIGTERM');
        const verdict = fail(`timed out after ${limit / 1000} s and was stopped, with every process it started`, { timeoutMs: limit });
        const started = Date.now();
        // Poll for the group to be gone, so a hook that obeys SIGTERM settles at once; SIGKILL the rest after the grace.
        const poll = setInterval(() => {
          let alive = true;
          try {
            process.kill(-child.pid!, 0);
          } catch {
            alive = false;
          }
          if (alive && Date.now() - started < KILL_GRACE_MS) return;
          clearInterval(poll);
          if (alive) killGroup('SIGKILL');
          settle(verdict);
        }, 50);
        timers.push(poll);
      }, limit),
    );
  });
}
