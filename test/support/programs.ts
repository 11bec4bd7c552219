import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { join, delimiter } from 'node:path';

/** The full path of an executable on PATH (or in /usr/sbin and /sbin, where daemons live), if any. */
export function onPath(cmd: string): string | undefined {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']) {
    if (!d) continue;
    try {
      accessSync(join(d, cmd), fsConstants.X_OK);
      return join(d, cmd);
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Like onPath, but a missing program fails the test with the Debian package to install. */
export function requireProgram(cmd: string, pkg: string, why: string): string {
  const p = onPath(cmd);
  if (!p) throw new Error(`test harness: the program "${cmd}" (${why}) is missing; install the Debian package: apt-get install ${pkg}`);
  return p;
}

/**
 * Runs a program in its own process group to completion within `timeoutMs`,
 * keeping the tail of its output for the error message; kills the whole
 * group when the time runs out. Rejects unless it exits 0.
 */
export function runBounded(what: string, cmd: string, args: string[], options: { timeoutMs: number; env?: NodeJS.ProcessEnv; tailChars?: number; onOutput?: (text: string) => void }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...(options.env ? { env: options.env } : {}), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    const add = (b: Buffer): void => {
      out = (out + b.toString('utf8')).slice(-(options.tailChars ?? 20_000));
      options.onOutput?.(out);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
      reject(new Error(`${what} took longer than ${options.timeoutMs / 1000} s\n${out}`));
    }, options.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${what} failed (${code ?? signal})\n${out}`));
    });
  });
}
