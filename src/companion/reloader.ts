/**
 * Reloading nginx after the companion changed its files. **Reloading nginx
 * is opt-in**, one of:
 * - `exec`: run a command inside every running container that carries one of
 *   the configured labels (default `padlock.nginx=true` or
 *   `com.github.nginx-proxy.nginx`, any value), through the Docker API. The
 *   default command is acme-companion's for the nginx-proxy image: re-render
 *   the nginx config with docker-gen (nginx-proxy only enables HTTPS for a
 *   name whose `NAME.crt` existed when it rendered) and `nginx -s reload`.
 *   Use this with the one-container `nginxproxy/nginx-proxy` image: do not
 *   signal it, its PID 1 (forego) stops on SIGHUP.
 * - `signal`: send a signal (default `SIGHUP`) through the Docker API to every
 *   labelled container. Right for the official `nginx` image (SIGHUP is
 *   nginx's reload) and for a separate docker-gen container (SIGHUP makes it
 *   render again and notify nginx), as in nginx-proxy's three-container setup.
 * - `command`: run a shell command (`/bin/sh -c`) where padlock runs, killed
 *   after a timeout; for example `nginx -s reload` when padlock shares nginx's
 *   host.
 *
 * Reloads are debounced: certificates written within `debounceMs` of each
 * other (a start, several renewals at once) cause one reload. One reload
 * runs at a time; files that change while it runs cause another one after it.
 *
 * A failed reload (Docker unreachable, a failing command) is an outcome,
 * never a thrown error.
 */
import { spawn } from 'node:child_process';
import { errorMessage } from '../errors.js';

/** The Docker calls `exec` and `signal` reloads need. */
export interface ReloadDocker {
  /** Running containers carrying `label` (`KEY` or `KEY=VALUE`). */
  listByLabel(label: string): Promise<Array<{ id: string; name: string }>>;
  kill(id: string, signal: string): Promise<void>;
  /** Runs `cmd` in the container; resolves with its exit code and (the end of) its output; rejects after `timeoutMs`. */
  exec(id: string, cmd: string[], timeoutMs: number): Promise<{ exitCode: number | null; output: string }>;
}

/** How to reload nginx; `exec` and `signal` need Docker write access (docker-reload.ts). */
export type ReloadMode =
  | { kind: 'none' }
  | { kind: 'exec'; labels: string[]; command: string; timeoutMs: number; docker: ReloadDocker }
  | { kind: 'signal'; labels: string[]; signal: string; docker: ReloadDocker }
  | { kind: 'command'; command: string; timeoutMs: number };

/** How one reload went. */
export interface ReloadOutcome {
  at: string;
  ok: boolean;
  /** For `signal`: the containers signalled (name). For `command`: the command. */
  targets: string[];
  /** Why it failed (or, with ok, a note such as "no container carries the labels"). */
  error?: string;
}

/**
 * Debounces reloads and runs one at a time. `onOutcome` hears every reload
 * that ran (a `none` mode never runs one).
 */
export class ReloadScheduler {
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | undefined;
  private wantAnother = false;
  private closed = false;

  constructor(
    private readonly mode: ReloadMode,
    private readonly debounceMs: number,
    private readonly now: () => Date,
    private readonly onOutcome: (outcome: ReloadOutcome) => void,
  ) {}

  /** True while a reload waits for its debounce or runs. */
  get pending(): boolean {
    return this.timer !== undefined || this.reloading !== undefined;
  }

  /** Runs a pending reload now and resolves when every reload in flight is done. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.startReload();
    }
    while (this.reloading) await this.reloading;
  }

  /** Flushes a pending reload (bounded by the reload's own timeouts) and stops scheduling new ones. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  /** Asks for a reload after the debounce; joins one already waiting, or follows the one running. */
  schedule(): void {
    if (this.mode.kind === 'none' || this.closed) return;
    if (this.reloading) {
      // Files changed while a reload runs: that reload may have read the old ones.
      this.wantAnother = true;
      return;
    }
    if (this.timer) return; // joins the reload already scheduled
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startReload();
    }, this.debounceMs);
    this.timer.unref();
  }

  private startReload(): void {
    if (this.reloading) {
      this.wantAnother = true;
      return;
    }
    this.reloading = this.reloadOnce()
      .catch(() => undefined)
      .finally(() => {
        this.reloading = undefined;
        if (this.wantAnother && !this.closed) {
          this.wantAnother = false;
          this.schedule();
        }
      });
  }

  private async reloadOnce(): Promise<void> {
    const outcome = await reloadNginx(this.mode, this.now().toISOString());
    if (outcome) this.onOutcome(outcome);
  }
}

/** Reloads nginx once as `mode` says, at time `at`; resolves with the outcome (never rejects), or undefined for `none`. */
export async function reloadNginx(mode: ReloadMode, at: string): Promise<ReloadOutcome | undefined> {
  let outcome: ReloadOutcome;
  try {
    if (mode.kind === 'signal' || mode.kind === 'exec') {
      const seen = new Map<string, string>();
      for (const label of mode.labels) for (const c of await mode.docker.listByLabel(label)) seen.set(c.id, c.name);
      if (seen.size === 0) {
        outcome = { at, ok: false, targets: [], error: `no running container carries any of the labels ${mode.labels.join(', ')}; label your nginx container padlock.nginx=true` };
      } else {
        const failed: string[] = [];
        for (const [id, name] of seen) {
          if (mode.kind === 'signal') {
            await mode.docker.kill(id, mode.signal).catch((e: unknown) => failed.push(`${name}: ${errorMessage(e)}`));
          } else {
            await mode.docker.exec(id, ['/bin/sh', '-c', mode.command], mode.timeoutMs).then(
              (r) => {
                if (r.exitCode !== 0) failed.push(`${name}: exit status ${r.exitCode ?? 'unknown'}${r.output.trim() ? `: ${r.output.trim().split('\n').pop()}` : ''}`);
              },
              (e: unknown) => failed.push(`${name}: ${errorMessage(e)}`),
            );
          }
        }
        const what = mode.kind === 'signal' ? `send ${mode.signal} to` : 'run the reload command in';
        outcome = failed.length === 0
          ? { at, ok: true, targets: [...seen.values()] }
          : { at, ok: false, targets: [...seen.values()], error: `could not ${what} ${failed.join('; ')}` };
      }
    } else if (mode.kind === 'command') {
      await runCommand(mode.command, mode.timeoutMs);
      outcome = { at, ok: true, targets: [mode.command] };
    } else {
      return;
    }
  } catch (err) {
    outcome = { at, ok: false, targets: mode.kind === 'command' ? [mode.command] : [], error: errorMessage(err) };
  }
  return outcome;
}

/** Runs `/bin/sh -c command` in its own process group; kills the group after `timeoutMs`. */
function runCommand(command: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4000) stderr += d;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) return reject(new Error(`reload command did not finish within ${timeoutMs / 1000} s and was killed: ${command}`));
      if (code === 0) return resolve();
      const why = stderr.trim().split('\n').pop() ?? '';
      reject(new Error(`reload command failed (${code !== null ? `exit status ${code}` : `signal ${signal}`}): ${command}${why ? `: ${why}` : ''}`));
    });
  });
}
