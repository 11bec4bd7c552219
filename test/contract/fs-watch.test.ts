import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LiveFolderWatcher, type WatchFolder } from '../../src/store/fs-watch.js';
import { sleep, waitUntil } from './store.contract.js';

function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated`), { code });
}

/** fs.watch that fails with `code` for its first `failures` calls, then watches for real; keeps every watcher it made. */
function flakyWatch(failures: number, code = 'ENOSPC'): { watch: WatchFolder; calls: () => number; watchers: FSWatcher[] } {
  let calls = 0;
  const watchers: FSWatcher[] = [];
  const watch: WatchFolder = (dir, options, listener) => {
    calls += 1;
    if (calls <= failures) throw errnoError(code);
    const w = fsWatch(dir, options, listener);
    watchers.push(w);
    return w;
  };
  return { watch, calls: () => calls, watchers };
}

describe('LiveFolderWatcher', () => {
  let root: string;
  let live: string;
  let names: string[];
  let watcher: LiveFolderWatcher | undefined;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'padlock-fs-watch-'));
    live = join(root, 'live');
    await mkdir(live);
    names = [];
    watcher = undefined;
  });
  afterEach(async () => {
    watcher?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const start = (watch: WatchFolder, maxBackoffMs = 5_000): LiveFolderWatcher => {
    watcher = new LiveFolderWatcher(live, (name) => names.push(name), { watch, minBackoffMs: 10, maxBackoffMs });
    watcher.start();
    return watcher;
  };

  it('reports only valid lineage names, not README, temp links or other files', async () => {
    start(fsWatch);
    await writeFile(join(live, 'README'), 'x');
    await symlink('../archive/a.example.test/v1', join(live, '.a.example.test.tmp-1'));
    await writeFile(join(live, 'UPPER.example.test'), 'x');
    await symlink('../archive/a.example.test/v1', join(live, 'a.example.test'));
    await waitUntil(() => names.includes('a.example.test'), 'the lineage name is reported');
    await sleep(100);
    assert.deepEqual(new Set(names), new Set(['a.example.test']));
  });

  it('re-arms with backoff when fs.watch fails (ENOSPC: inotify watch limit), then reports what changed meanwhile and later', async () => {
    const flaky = flakyWatch(3);
    start(flaky.watch);
    assert.equal(flaky.calls(), 1);
    await symlink('../archive/gap.example.test/v1', join(live, 'gap.example.test'));
    await waitUntil(() => flaky.watchers.length === 1, 'a watcher after three failures');
    assert.equal(flaky.calls(), 4);
    await waitUntil(() => names.includes('gap.example.test'), 'a name created while the watch was down is reported after the re-arm');
    await symlink('../archive/later.example.test/v1', join(live, 'later.example.test'));
    await waitUntil(() => names.includes('later.example.test'), 'a later change is reported by the re-armed watcher');
  });

  it('re-arms when the watcher emits an error', async () => {
    const flaky = flakyWatch(0);
    start(flaky.watch);
    flaky.watchers[0]?.emit('error', errnoError('EIO'));
    await waitUntil(() => flaky.watchers.length === 2, 'a second watcher');
    await symlink('../archive/after.example.test/v1', join(live, 'after.example.test'));
    await waitUntil(() => names.includes('after.example.test'), 'a change after the error is reported');
  });

  it('stops retrying after stop(), even while a re-arm is pending', async () => {
    const flaky = flakyWatch(Number.POSITIVE_INFINITY, 'ENOENT');
    start(flaky.watch, 20).stop();
    const calls = flaky.calls();
    await sleep(150);
    assert.equal(flaky.calls(), calls, 'no arming attempt after stop()');
  });
});
