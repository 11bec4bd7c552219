/**
 * certbot-style deploy hooks: a shell command run after a certificate is
 * stored, with RENEWED_LINEAGE (the live folder) and RENEWED_DOMAINS
 * (space-separated names) in its environment.
 */
import { spawn } from 'node:child_process';
import { PadlockError } from '../errors.js';

export interface HookRun {
  command: string;
  lineageDir: string;
  domains: string[];
  timeoutMs?: number;
  /** Where the hook's output goes. Default: padlock's stderr. */
  output?: NodeJS.WritableStream;
}

/** Runs the hook; rejects with HOOK_FAILED (the certificate stays stored) on a non-zero exit or timeout. */
export function runDeployHook(run: HookRun): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', run.command], {
      env: { ...process.env, RENEWED_LINEAGE: run.lineageDir, RENEWED_DOMAINS: run.domains.join(' ') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = run.output ?? process.stderr;
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    const limit = run.timeoutMs ?? 300_000;
    const timer = setTimeout(() => child.kill('SIGKILL'), limit);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new PadlockError('HOOK_FAILED', `the deploy hook could not start: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve();
      const how = signal ? `was killed (${signal}${signal === 'SIGKILL' ? `, over ${limit / 1000} s?` : ''})` : `exited with ${code}`;
      reject(new PadlockError('HOOK_FAILED', `the deploy hook "${run.command}" ${how}; the certificate itself was saved`, {
        details: { exitCode: code, signal },
      }));
    });
  });
}
