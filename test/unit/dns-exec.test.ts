/**
 * The exec DNS provider with real processes: what it passes to the program,
 * how a failure reads, and that padlock waits for the program, never for a
 * job it left in the background, nor past its time limit.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecProvider } from '../../src/dns/providers/exec.js';
import type { PadlockError } from '../../src/errors.js';

let dir: string;
before(async () => (dir = await mkdtemp(join(tmpdir(), 'padlock-dns-exec-'))));
after(() => rm(dir, { recursive: true, force: true }));

async function program(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o700 });
  return path;
}

const record = { fqdn: '_acme-challenge.a.example.com', zone: 'example.com', value: 'v4lue' };

describe('the exec DNS provider', () => {
  it('calls PROGRAM present FQDN. VALUE with the record in its environment too', async () => {
    const log = join(dir, 'args.log');
    const p = new ExecProvider(await program('args.sh', `echo "$* $PADLOCK_DNS_FQDN $PADLOCK_DNS_VALUE $PADLOCK_DNS_ZONE" > ${log}`));
    await p.present(record);
    assert.equal((await readFile(log, 'utf8')).trim(), 'present _acme-challenge.a.example.com. v4lue _acme-challenge.a.example.com v4lue example.com');
  });

  it('names the provider, the zone, the exit status and the end of the output when the program fails', async () => {
    const p = new ExecProvider(await program('fail.sh', 'echo "no API token" >&2; exit 3'));
    await assert.rejects(p.cleanup(record), (err: PadlockError) => err.code === 'DNS_PROVIDER_FAILED'
      && /exec .*fail\.sh for the zone example\.com: "cleanup _acme-challenge\.a\.example\.com\." exited 3; its output ended with: no API token/.test(err.message));
  });

  it('returns once the program exits, although a job it left in the background holds its output open', async () => {
    const pidFile = join(dir, 'bg.pid');
    const p = new ExecProvider(await program('bg.sh', `sleep 30 &\necho $! > ${pidFile}\necho added`), 20_000);
    const started = Date.now();
    try {
      await p.present(record);
      assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    } finally {
      process.kill(Number(await readFile(pidFile, 'utf8')), 'SIGKILL');
    }
  });

  it('kills a program that runs past its time limit and says so', async () => {
    const p = new ExecProvider(await program('slow.sh', 'sleep 30'), 300);
    await assert.rejects(p.present(record), /"present _acme-challenge\.a\.example\.com\." was killed after 0\.3 s/);
  });
});
