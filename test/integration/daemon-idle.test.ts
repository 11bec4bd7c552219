/**
 * An idle `padlock run`: it gives memory back once start-up, and later each
 * busy spell, is over (observe/idle-gc.ts), in every process with
 * `--workers`; `--idle-gc false` turns that off. And the system's trust
 * anchors are no longer read at start, yet a bad `--trusted-roots` file
 * still stops start-up.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../support/cli.js';
import { tempConfigDir } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';

const name = 'idle.localhost';
let cfg: { dir: string; cleanup: () => Promise<void> };
let app: Awaited<ReturnType<typeof startUpstream>>;
let one: RunningDaemon;
let off: RunningDaemon;
let two: RunningDaemon;
let file: string;

interface Released { msg: string; worker?: number; rssBeforeMiB: number; rssAfterMiB: number; tookMs: number }
const released = (d: RunningDaemon): Released[] => d.output().split('\n')
  .filter((l) => l.includes('"idle: memory released"'))
  .map((l) => JSON.parse(l) as Released);

const run = (store: string, ...flags: string[]) => startPadlockRun([
  '--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, store), '--log-level', 'debug', '--log-format', 'json', ...flags,
]);

/** Keep-alive HTTPS requests from 8 clients for `ms`: a busy spell for the daemon. */
async function busySpell(d: RunningDaemon, ca: string, ms: number): Promise<number> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  const end = Date.now() + ms;
  let ok = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < end) {
      const r = await httpsGet(d.httpsPort, name, ca, '/', agent);
      if (r.status === 200) ok++;
    }
  }));
  agent.destroy();
  return ok;
}

before(async () => {
  cfg = await tempConfigDir();
  app = await startUpstream('idle-app');
  file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, ['sites:', `  - host: ${name}`, `    upstream: ${app.url}`].join('\n'));
  // One after another, each kept as soon as it runs: after() stops those that started even when a later one fails
  // (started together, their free ports were picked at once and could collide; a daemon left running kept the file alive).
  one = await run('one');
  off = await run('off', '--idle-gc', 'false');
  two = await run('two', '--workers', '2');
});
after(async () => {
  await Promise.all([one?.stop(), off?.stop(), two?.stop()]);
  await app?.close();
  await cfg?.cleanup();
});

describe('padlock run when idle', () => {
  it('releases memory once start-up is over, says how much at debug level, and keeps serving', async () => {
    const [first] = await waitFor('the first release', async () => released(one).length > 0 && released(one), 30_000, 200);
    assert.ok(first!.rssAfterMiB < first!.rssBeforeMiB, `RSS went from ${first!.rssBeforeMiB} to ${first!.rssAfterMiB} MiB`);
    assert.ok(first!.tookMs >= 0);
    const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'one')]);
    const r = await httpsGet(one.httpsPort, name, root.stdout);
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).app, 'idle-app');
  });

  it('releases again after a busy spell, and only then', async () => {
    const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'one')]);
    const before = released(one).length;
    assert.ok(await busySpell(one, root.stdout, 3_000) > 50, 'the busy spell was served');
    await waitFor('a release after the busy spell', async () => released(one).length > before, 30_000, 200);
    assert.equal(released(one).length, before + 1, 'one release per busy spell');
  });

  it('--workers 2: the main process and each worker release their own memory', async () => {
    await waitFor('releases in all three processes', async () => {
      const seen = new Set(released(two).map((l) => l.worker ?? 0));
      return seen.has(0) && seen.has(1) && seen.has(2);
    }, 30_000, 200);
  });

  it('--idle-gc false never collects', async () => {
    // By now the other daemons, started with this one, have each released at least once.
    assert.ok(released(one).length >= 1 && released(two).length >= 3);
    assert.deepEqual(released(off), [], off.output());
  });

  it('a --trusted-roots file that cannot be read still stops start-up, with the file named', async () => {
    const missing = join(cfg.dir, 'no-such-roots.pem');
    const r = await runCli(['run', '--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'bad'), '--http-port', '0', '--https-port', '0',
      '--admin-listen', '127.0.0.1:0', '--bind', '127.0.0.1', '--trusted-roots', missing], { timeoutMs: 30_000 });
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null, 'it exited by itself');
    assert.match(r.stderr, /cannot read trust anchor file .*no-such-roots\.pem/);
  });
});
