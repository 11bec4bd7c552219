/**
 * The idle collector's decision (observe/idle-gc.ts): one memory-reducing
 * collection after each busy spell, none while a process stays idle, and a
 * slow collection holds the next one off.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { IdleGcPolicy, startIdleGc, IDLE_GC_BACKOFF_FACTOR } from '../../src/observe/idle-gc.js';
import { createLogger } from '../../src/log.js';
import { envLayer, fromString, parseRunConfig } from '../../src/config/schema.js';
import { PadlockError } from '../../src/errors.js';

const quiet = 10; // ms of CPU in a 5 s interval: 0.2 %
const busy = 2_000; // 40 %
const some = 200; // 4 %: neither quiet nor busy

describe('IdleGcPolicy', () => {
  it('collects on the first quiet interval after start-up, then not again while idle', () => {
    const p = new IdleGcPolicy();
    assert.equal(p.sample(quiet, 5_000, 5_000), true);
    p.collected(40, 5_040);
    for (let t = 10_000; t <= 60_000; t += 5_000) assert.equal(p.sample(quiet, 5_000, t), false, `idle at ${t} ms`);
  });

  it('waits while the process is busy and collects once it is quiet again', () => {
    const p = new IdleGcPolicy();
    assert.equal(p.sample(busy, 5_000, 5_000), false);
    assert.equal(p.sample(busy, 5_000, 10_000), false);
    assert.equal(p.sample(quiet, 5_000, 15_000), true);
    p.collected(40, 15_040);
    assert.equal(p.sample(busy, 5_000, 20_000), false);
    assert.equal(p.sample(quiet, 5_000, 25_000), true, 'a second busy spell earns a second collection');
  });

  it('neither collects nor counts as busy between the two thresholds', () => {
    const p = new IdleGcPolicy();
    assert.equal(p.sample(some, 5_000, 5_000), false, 'not quiet enough to collect');
    assert.equal(p.sample(quiet, 5_000, 10_000), true, 'start-up still counts');
    p.collected(40, 10_040);
    assert.equal(p.sample(some, 5_000, 15_000), false);
    assert.equal(p.sample(quiet, 5_000, 20_000), false, 'a little work (timers, a health check) is not a busy spell');
  });

  it('holds the next collection off for 100 times the last one took', () => {
    const p = new IdleGcPolicy();
    assert.equal(p.sample(quiet, 5_000, 5_000), true);
    p.collected(300, 5_300); // a large heap: 300 ms
    const until = 5_300 + IDLE_GC_BACKOFF_FACTOR * 300;
    assert.equal(p.sample(busy, 5_000, 10_000), false);
    assert.equal(p.sample(quiet, 5_000, 15_000), false, 'too soon after a slow collection');
    assert.equal(p.sample(quiet, 5_000, until - 1), false);
    assert.equal(p.sample(quiet, 5_000, until), true, 'the busy spell is still owed its collection');
  });
});

describe('startIdleGc', () => {
  it('runs a memory-reducing full collection once the process is quiet, and logs what it returned', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const calls: unknown[] = [];
    const cpu = 0;
    let now = 0;
    let rss = 90 * 1048576;
    const g = startIdleGc({
      logger,
      checkMs: 5,
      gc: (o) => { calls.push(o); rss = 75 * 1048576; now += 30; },
      cpuMicros: () => { now += 2_500; return cpu; }, // the test's clock moves between samples only
      nowMs: () => now,
      rss: () => rss,
    });
    assert.ok(g);
    await new Promise((r) => setTimeout(r, 60));
    g.stop();
    assert.deepEqual(calls, [{ type: 'major', execution: 'sync', flavor: 'last-resort' }], 'one collection for one quiet spell');
    assert.equal(g.collections, 1);
    const line = JSON.parse(lines.find((l) => l.includes('memory released'))!);
    assert.equal(line.rssBeforeMiB, 90);
    assert.equal(line.rssAfterMiB, 75);
    assert.equal(line.tookMs, 30);
  });

  it('is off, and says so at debug level, when node exposes no gc()', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const saved = (globalThis as { gc?: unknown }).gc;
    delete (globalThis as { gc?: unknown }).gc;
    try {
      assert.equal(startIdleGc({ logger }), undefined);
    } finally {
      if (saved) (globalThis as { gc?: unknown }).gc = saved;
    }
    assert.ok(lines.some((l) => l.includes('--expose-gc')), lines.join('\n'));
  });
});

describe('the --idle-gc setting', () => {
  it('is on by default', () => assert.equal(parseRunConfig({}).idleGc, true));
  it('is turned off by the flag, PADLOCK_IDLE_GC or the config file', () => {
    assert.equal(parseRunConfig({ flags: { idleGc: fromString('idleGc', 'false') } }).idleGc, false);
    assert.equal(parseRunConfig({ env: envLayer({ PADLOCK_IDLE_GC: 'false' }) }).idleGc, false);
    assert.equal(parseRunConfig({ file: { idleGc: false } }).idleGc, false);
  });
  it('refuses a value that is not a boolean, naming the env var', () => {
    assert.throws(() => parseRunConfig({ env: envLayer({ PADLOCK_IDLE_GC: 'sometimes' }) }),
      (err: unknown) => err instanceof PadlockError && err.code === 'CONFIG_INVALID' && /PADLOCK_IDLE_GC/.test(err.message));
  });
});
