/**
 * Deploy hooks with real process trees: padlock waits for the hook's shell,
 * never for a job it left in the background, and a hook that runs too long
 * is stopped together with everything it started.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDeployHook, KILL_GRACE_MS } from '../../src/certificates/hooks.js';
import { PadlockError } from '../../src/errors.js';

let dir: string;
const leftovers: number[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'padlock-hook-'));
});
after(async () => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await rm(dir, { recursive: true, force: true });
});

/** Alive, not a zombie: this machine's PID 1 does not reap orphans, and a zombie is a dead process. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('utf8')));
  return { stream, text: () => text };
}

const run = (command: string, extra: { timeoutMs?: number; output?: NodeJS.WritableStream } = {}) =>
  runDeployHook({ command, lineageDir: '/etc/padlock/live/example.com', domains: ['example.com', 'www.example.com'], ...extra });

describe('deploy hook', () => {
  it('returns soon after the hook exits although a job it started in the background keeps running', { timeout: 15_000 }, async () => {
    const pidFile = join(dir, 'background.pid');
    const out = collector();
    const started = Date.now();
    await run(`echo before; sleep 1000 & echo $! > ${pidFile}`, { output: out.stream });
    const took = Date.now() - started;
    assert.ok(took < 2_500, `returned after ${took} ms`);
    assert.equal(out.text(), 'before\n', "the hook's output reaches padlock's output");
    const pid = Number(await readFile(pidFile, 'utf8'));
    leftovers.push(pid);
    assert.ok(alive(pid), 'a job left running on purpose is not killed at a normal exit');
  });

  const timeoutCases = [
    { desc: 'that stops on SIGTERM', child: 'sleep 1000' },
    { desc: 'that ignores SIGTERM (so it needs SIGKILL)', child: `sh -c "trap '' TERM; sleep 1000; :"` },
  ];
  for (const c of timeoutCases) {
    it(`stops a hook that runs past its time limit, with a grandchild ${c.desc}, and fails with HOOK_FAILED`, { timeout: 15_000 }, async () => {
      const pidFile = join(dir, `grandchild-${timeoutCases.indexOf(c)}.pid`);
      const started = Date.now();
      await assert.rejects(run(`${c.child} & echo $! > ${pidFile}; sleep 1000`, { timeoutMs: 500, output: collector().stream }), (e: unknown) => {
        assert.ok(e instanceof PadlockError);
        assert.equal(e.code, 'HOOK_FAILED');
        assert.match(e.message, /timed out after 0\.5 s/);
        assert.match(e.message, /the certificate itself was saved/);
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took < 500 + KILL_GRACE_MS + 1_500, `settled after ${took} ms`);
      const pid = Number(await readFile(pidFile, 'utf8'));
      leftovers.push(pid);
      assert.ok(await gone(pid, 2_000), `the grandchild ${pid} was killed with the hook`);
    });
  }

  it('fails with HOOK_FAILED naming the exit code when the hook fails, keeping its output', { timeout: 15_000 }, async () => {
    const out = collector();
    await assert.rejects(run('echo oops >&2; exit 3', { output: out.stream }), (e: unknown) =>
      e instanceof PadlockError && e.code === 'HOOK_FAILED' && /exited with 3/.test(e.message) && (e.details as { exitCode?: number }).exitCode === 3);
    assert.equal(out.text(), 'oops\n');
  });

  it('gives the hook RENEWED_LINEAGE and RENEWED_DOMAINS', { timeout: 15_000 }, async () => {
    const out = collector();
    await run('printf "%s|%s" "$RENEWED_LINEAGE" "$RENEWED_DOMAINS"', { output: out.stream });
    assert.equal(out.text(), '/etc/padlock/live/example.com|example.com www.example.com');
  });
});
