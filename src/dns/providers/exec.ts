/**
 * The escape hatch for every other DNS provider: a program the user names,
 * called as `PROGRAM present FQDN. VALUE` and `PROGRAM cleanup FQDN. VALUE`
 * (lego's exec provider's arguments, so its scripts work), without a shell.
 * Exit 0 means done. It also gets PADLOCK_DNS_FQDN, PADLOCK_DNS_VALUE and
 * PADLOCK_DNS_ZONE in its environment.
 */
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { PadlockError } from '../../errors.js';
import { PIPE_GRACE_MS } from '../../certificates/hooks.js';
import { providerError, type DnsProvider, type TxtRecord } from './provider.js';

/** How long one call may run before it (and its process group) is killed. */
export const EXEC_TIMEOUT_MS = 120_000;
/** How much of its output is kept for the error message. */
const OUTPUT_TAIL = 2_000;

export class ExecProvider implements DnsProvider {
  readonly kind = 'exec' as const;
  readonly key: string;
  constructor(private readonly program: string, private readonly timeoutMs = EXEC_TIMEOUT_MS) {
    this.key = `exec:${program}`;
  }

  describe(): string {
    return `exec ${this.program}`;
  }

  async prepare(): Promise<void> {
    try {
      await access(this.program, constants.X_OK);
    } catch (err) {
      throw new PadlockError('CONFIG_INVALID', `--dns-exec ${this.program}: not an executable file (${(err as NodeJS.ErrnoException).code ?? 'error'}); give the full path of a program padlock may run`, { cause: err });
    }
  }

  present(record: TxtRecord): Promise<void> {
    return this.run('present', record);
  }

  cleanup(record: TxtRecord): Promise<void> {
    return this.run('cleanup', record);
  }

  private run(action: 'present' | 'cleanup', record: TxtRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.program, [action, `${record.fqdn}.`, record.value], {
        stdio: ['ignore', 'pipe', 'pipe'], detached: true,
        env: { ...process.env, PADLOCK_DNS_FQDN: record.fqdn, PADLOCK_DNS_VALUE: record.value, PADLOCK_DNS_ZONE: record.zone },
      });
      let out = '';
      const add = (b: Buffer) => (out = (out + b.toString('utf8')).slice(-OUTPUT_TAIL));
      child.stdout.on('data', add);
      child.stderr.on('data', add);
      let grace: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(grace);
        child.stdout.destroy();
        child.stderr.destroy();
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }, this.timeoutMs);
      child.on('error', (err) => settle(providerError(this.describe(), record.zone, `could not run it for ${action} ${record.fqdn}: ${err.message}`, { cause: err })));
      child.on('exit', (code, signal) => {
        const verdict = () => {
          if (code === 0) return settle();
          const how = signal === 'SIGKILL' ? `was killed after ${this.timeoutMs / 1000} s` : `exited ${code ?? signal}`;
          settle(providerError(this.describe(), record.zone, `"${action} ${record.fqdn}." ${how}${out.trim() ? `; its output ended with: ${out.trim()}` : ''}`, { retryable: true }));
        };
        // A job the program left in the background may hold its output open: read on for a moment, not until that job ends.
        grace = setTimeout(verdict, PIPE_GRACE_MS);
        child.once('close', verdict);
      });
    });
  }
}
