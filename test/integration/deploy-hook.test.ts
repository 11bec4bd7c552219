/**
 * `padlock issue --deploy-hook` with a hook that leaves a job in the
 * background, against a real Pebble: padlock finishes, the job lives on.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
const leftovers: number[] = [];

before(async () => {
  pebble = await startPebble();
  cfg = await tempConfigDir();
});
after(async () => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await pebble?.stop();
  await cfg?.cleanup();
});

describe('padlock issue with a deploy hook', () => {
  it('exits once the hook does, although the hook left "sleep 1000 &" running', async () => {
    const name = uniqueName('bghook');
    const pidFile = join(cfg.dir, 'background.pid');
    const started = Date.now();
    // Well under the 1000 s the old padlock waited for the background job's pipes.
    const r = await runCli(['issue', '-d', name, '--deploy-hook', `echo hook-ran; sleep 1000 & echo $! > ${pidFile}`, ...pebbleFlags(pebble), '--config-dir', cfg.dir], { timeoutMs: 45_000 });
    const pid = Number(await readFile(pidFile, 'utf8'));
    leftovers.push(pid);
    assert.equal(r.signal, null, `padlock was still running after ${Date.now() - started} ms`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^hook-ran$/m, "the hook's output is on padlock's stderr");
    await stat(join(cfg.dir, 'live', name, 'fullchain.pem'));
    process.kill(pid, 0); // the background job was left alone (throws ESRCH if it was killed)
  });
});
