import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PadlockError } from '../../src/errors.js';
import { fixedClock } from '../../src/clock.js';
import { FsStore, openFsStore, FS_STORE_FAULT_POINTS } from '../../src/store/fs-store.js';
import { runStoreContract, fakeBundle, fakeMeta, recordChanges, waitUntil } from './store.contract.js';
import { runChild, spawnChild, taggedBundle } from '../support/store-crash-child.js';

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'padlock-fs-store-'));
}

runStoreContract('fs', async () => {
  const root = await tempRoot();
  // A config dir that does not exist yet: openFsStore must create it.
  const dir = join(root, 'config');
  const store = await openFsStore(dir);
  const takenOver: (() => Promise<void>)[] = [];
  return {
    store,
    cleanup: async () => {
      for (const unlock of takenOver) await unlock();
      await rm(root, { recursive: true, force: true });
    },
    // The holder's heartbeat looks stopped for two minutes, so another taker
    // (with the default 60 s lockStaleMs) reclaims the lock as stale.
    loseLock: async (name) => {
      const lockFile = join(dir, 'locks', `${name}.lock`);
      const twoMinutesAgo = new Date(Date.now() - 120_000);
      await utimes(lockFile, twoMinutesAgo, twoMinutesAgo);
      takenOver.push(await new FsStore({ dir }).lock(name));
    },
  };
}, { withLoseLock: true });

function isCode(code: string, ...mentions: string[]) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof PadlockError, `expected a PadlockError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    for (const m of mentions) assert.ok(err.message.includes(m), `message ${JSON.stringify(err.message)} should mention ${m}`);
    return true;
  };
}

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

/** How many inotify watches this process holds (Linux lists one `inotify wd:` line per watch in /proc/self/fdinfo). */
function inotifyWatches(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    try {
      count += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // the fd closed while we looked
    }
  }
  return count;
}

describe('FsStore on disk', () => {
  let root: string;
  let dir: string;
  let store: FsStore;
  beforeEach(async () => {
    root = await tempRoot();
    dir = join(root, 'config');
    store = await openFsStore(dir);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('layout and modes', () => {
    it('writes private keys and account files 0600 and every folder 0700, even under a permissive umask', async () => {
      const old = process.umask(0o000);
      try {
        await store.putVersion('a.example.test', fakeBundle('a1'), fakeMeta('a.example.test'));
        await store.writeAccount({ directoryUrl: 'https://acme.test/dir', keyPem: 'secret', createdAt: 'now' });
        await store.writeState('a.example.test', { failures: 0 });
      } finally {
        process.umask(old);
      }
      const v1 = join(dir, 'archive', 'a.example.test', 'v1');
      assert.equal(await mode(join(v1, 'privkey.pem')), 0o600);
      assert.equal(await mode(join(v1, 'fullchain.pem')), 0o644);
      const accountDir = join(dir, 'accounts', createHash('sha256').update('https://acme.test/dir').digest('hex').slice(0, 16));
      assert.equal(await mode(join(accountDir, 'account.json')), 0o600);
      for (const d of [dir, join(dir, 'archive'), join(dir, 'archive', 'a.example.test'), v1, join(dir, 'live'), join(dir, 'renewal'), join(dir, 'state'), join(dir, 'accounts'), accountDir, join(dir, 'locks')]) {
        assert.equal(await mode(d), 0o700, `${d} should be 0700`);
      }
    });

    it('tightens an existing padlock folder to 0700', async () => {
      await chmod(join(dir, 'archive'), 0o755);
      await openFsStore(dir);
      assert.equal(await mode(join(dir, 'archive')), 0o700);
    });

    it('makes live/NAME a symlink to ../archive/NAME/vN so live/NAME/fullchain.pem is readable by path and follows renewals', async () => {
      const name = 'web.example.test';
      await store.putVersion(name, fakeBundle('w1'), fakeMeta(name));
      const l1 = await store.readLineage(name);
      assert.ok(l1?.paths);
      assert.equal(l1.paths.dir, join(dir, 'live', name));
      assert.equal(l1.paths.fullchain, join(dir, 'live', name, 'fullchain.pem'));
      assert.equal(await readFile(l1.paths.fullchain, 'utf8'), fakeBundle('w1').fullchain);
      assert.equal(await readFile(l1.paths.privkey, 'utf8'), fakeBundle('w1').privkey);
      assert.ok((await lstat(join(dir, 'live', name))).isSymbolicLink());
      assert.equal(await readlink(join(dir, 'live', name)), `../archive/${name}/v1`);

      await store.putVersion(name, fakeBundle('w2'), fakeMeta(name));
      assert.equal(await readlink(join(dir, 'live', name)), `../archive/${name}/v2`);
      for (const f of ['cert', 'chain', 'fullchain', 'privkey'] as const) {
        assert.equal(await readFile(join(dir, 'live', name, `${f}.pem`), 'utf8'), fakeBundle('w2')[f]);
        assert.equal(await readFile(join(dir, 'archive', name, 'v1', `${f}.pem`), 'utf8'), fakeBundle('w1')[f], 'older versions stay in archive/');
      }
      const live = await readdir(join(dir, 'live'));
      assert.deepEqual(live.sort(), ['README', name], 'no temp links left behind');
    });

    it('writes a certbot-style live/README that listLineages ignores', async () => {
      assert.match(await readFile(join(dir, 'live', 'README'), 'utf8'), /fullchain\.pem/);
      assert.deepEqual(await store.listLineages(), []);
    });

    it('keeps each version meta beside its PEMs and renewal/NAME.json for the current one', async () => {
      const name = 'meta.example.test';
      await store.putVersion(name, fakeBundle('m1'), fakeMeta(name, ['one.test']));
      await store.putVersion(name, fakeBundle('m2'), fakeMeta(name, ['two.test']));
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'archive', name, 'v1', 'meta.json'), 'utf8')).domains, ['one.test']);
      const renewal = JSON.parse(await readFile(join(dir, 'renewal', `${name}.json`), 'utf8'));
      assert.deepEqual(renewal.domains, ['two.test']);
      assert.equal(renewal.storedForVersion, 2);
    });

    it('numbers a new version above leftover version folders and ignores crash debris', async () => {
      const name = 'debris.example.test';
      await store.putVersion(name, fakeBundle('d1'), fakeMeta(name));
      // A half-written staging folder and a v7 that never became current.
      await mkdir(join(dir, 'archive', name, '.staging-1-abc'), { recursive: true });
      await mkdir(join(dir, 'archive', name, 'v7'));
      await symlink(`../archive/${name}/v7`, join(dir, 'live', `.${name}.tmp-dead`));
      assert.equal((await store.readLineage(name))?.version, 1);
      assert.deepEqual(await store.listLineages(), [name]);
      assert.equal(await store.putVersion(name, fakeBundle('d8'), fakeMeta(name)), 8);
      assert.deepEqual((await store.readLineage(name))?.bundle, fakeBundle('d8'));
      const entries = (await readdir(join(dir, 'archive', name))).sort();
      assert.deepEqual(entries, ['v1', 'v7', 'v8'], 'the staging debris was removed');
      assert.deepEqual((await readdir(join(dir, 'live'))).sort(), ['README', name]);
    });
  });

  it('never tears a version even when two putVersion calls race without the lock', async () => {
    const name = 'race.example.test';
    await store.putVersion(name, fakeBundle('r0'), fakeMeta(name, ['r0.test']));
    const tags = ['r1', 'r2', 'r3'];
    const results = await Promise.allSettled(tags.map((t) => new FsStore({ dir }).putVersion(name, fakeBundle(t), fakeMeta(name, [`${t}.test`]))));
    const versions = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    assert.equal(new Set(versions).size, versions.length, `versions handed out twice: ${versions.join(', ')}`);
    for (const r of results) if (r.status === 'rejected') isCode('STORE_IO')(r.reason);
    const l = await store.readLineage(name);
    assert.ok(l);
    const tag = /^leaf (\S+)$/m.exec(l.bundle.cert)?.[1] ?? '';
    assert.deepEqual(l.bundle, fakeBundle(tag), 'the current version is one whole bundle');
    assert.deepEqual(l.meta.domains, [`${tag}.test`], 'and its meta is its own');
  });

  it('checks the fence again right before the switch, and removes the version it staged when the lock was lost meanwhile', async () => {
    const name = 'late-loss.example.test';
    let loseNow = false;
    let thief: (() => Promise<void>) | undefined;
    const writer = new FsStore({
      dir,
      faults: async (point) => {
        if (point !== 'putVersion:before-switch' || !loseNow) return;
        const lockFile = join(dir, 'locks', `${name}.lock`);
        const longAgo = new Date(Date.now() - 120_000);
        await utimes(lockFile, longAgo, longAgo);
        thief = await new FsStore({ dir }).lock(name);
      },
    });
    await writer.putVersion(name, fakeBundle('l1'), fakeMeta(name));
    const unlock = await writer.lock(name);
    try {
      loseNow = true;
      await assert.rejects(writer.putVersion(name, fakeBundle('l2'), fakeMeta(name, ['l2.test']), { lock: unlock }), isCode('STORE_LOCK_LOST', name, 'nothing was written'));
      assert.ok(thief, 'the lock was taken over between staging and the switch');
      assert.deepEqual((await store.readLineage(name))?.bundle, fakeBundle('l1'));
      assert.deepEqual((await readdir(join(dir, 'archive', name))).sort(), ['v1'], 'the staged v2 is gone');
      assert.deepEqual((await readdir(join(dir, 'live'))).sort(), ['README', name], 'no temp link left');
      assert.deepEqual(JSON.parse(await readFile(join(dir, 'renewal', `${name}.json`), 'utf8')).domains, [name]);
    } finally {
      await unlock();
      await thief?.();
    }
  });

  describe('damaged stores', () => {
    it('rejects a dangling live/NAME with STORE_CORRUPT naming the path, and does not list it', async () => {
      await symlink('../archive/gone.example.test/v3', join(dir, 'live', 'gone.example.test'));
      await assert.rejects(store.readLineage('gone.example.test'), isCode('STORE_CORRUPT', join(dir, 'live', 'gone.example.test')));
      await assert.rejects(store.readServing('gone.example.test'), isCode('STORE_CORRUPT', join(dir, 'live', 'gone.example.test'), 'does not exist'));
      assert.deepEqual(await store.listLineages(), []);
    });

    it('rejects a live/NAME that is a certbot-style folder with STORE_CORRUPT', async () => {
      await mkdir(join(dir, 'live', 'certbot.example.test'));
      await assert.rejects(store.readLineage('certbot.example.test'), isCode('STORE_CORRUPT', 'certbot.example.test'));
      await assert.rejects(store.readServing('certbot.example.test'), isCode('STORE_CORRUPT', 'certbot.example.test'));
    });

    it('rejects a version folder with a missing file with STORE_CORRUPT naming the file', async () => {
      const name = 'half.example.test';
      await store.putVersion(name, fakeBundle('h1'), fakeMeta(name));
      await rm(join(dir, 'archive', name, 'v1', 'privkey.pem'));
      await assert.rejects(store.readLineage(name), isCode('STORE_CORRUPT', 'privkey.pem'));
      await assert.rejects(store.readServing(name), isCode('STORE_CORRUPT', 'privkey.pem'));
      await rm(join(dir, 'archive', name, 'v1', 'fullchain.pem'));
      await assert.rejects(store.readServing(name), isCode('STORE_CORRUPT', 'fullchain.pem'));
    });

    it('rejects unparseable state JSON with STORE_CORRUPT naming the file', async () => {
      await writeFile(join(dir, 'state', 'bad.example.test.json'), '{ nope');
      await assert.rejects(store.readState('bad.example.test'), isCode('STORE_CORRUPT', 'bad.example.test.json'));
    });
  });

  describe('config dir', () => {
    it('rejects a config dir that is a regular file with CONFIG_DIR_UNUSABLE before creating anything', async () => {
      const file = join(root, 'a-file');
      await writeFile(file, 'not a folder');
      await assert.rejects(openFsStore(file), isCode('CONFIG_DIR_UNUSABLE', file, 'is not writable', '--config-dir'));
      assert.equal(await readFile(file, 'utf8'), 'not a folder');
    });

    it('rejects a config dir below a regular file with CONFIG_DIR_UNUSABLE', async () => {
      const file = join(root, 'a-file');
      await writeFile(file, 'x');
      await assert.rejects(openFsStore(join(file, 'padlock')), isCode('CONFIG_DIR_UNUSABLE', join(file, 'padlock'), '--config-dir'));
    });

    it('keeps the cause of CONFIG_DIR_UNUSABLE', async () => {
      const file = join(root, 'a-file');
      await writeFile(file, 'x');
      const err = await openFsStore(join(file, 'padlock')).catch((e: unknown) => e);
      assert.ok(err instanceof PadlockError);
      assert.ok(err.cause !== undefined);
    });
  });

  describe('locks on disk', () => {
    it('writes locks/NAME.lock holding pid, hostname and createdAt, and removes it on unlock', async () => {
      const unlock = await store.lock('l.example.test');
      const holder = JSON.parse(await readFile(join(dir, 'locks', 'l.example.test.lock'), 'utf8'));
      assert.equal(holder.pid, process.pid);
      assert.equal(holder.hostname, hostname());
      assert.ok(!Number.isNaN(Date.parse(holder.createdAt)));
      await unlock();
      assert.deepEqual((await readdir(join(dir, 'locks'))).filter((e) => !e.startsWith('.')), []);
    });

    it('stamps the lock with the injected clock', async () => {
      const clocked = await openFsStore(dir, { clock: fixedClock(new Date('2030-05-06T07:08:09.000Z')) });
      const unlock = await clocked.lock('clock.example.test');
      try {
        await assert.rejects(store.lock('clock.example.test'), isCode('STORE_LOCKED', '2030-05-06T07:08:09.000Z', `process ${process.pid}`));
      } finally {
        await unlock();
      }
    });

    it('reclaims a lock whose holder pid on this host is dead', async () => {
      // A pid that just exited (and was reaped) is a dead holder.
      const gone = spawnSync(process.execPath, ['-e', '0']).pid;
      assert.ok(gone);
      assert.throws(() => process.kill(gone, 0), { code: 'ESRCH' });
      await writeFile(join(dir, 'locks', 'stale.example.test.lock'), JSON.stringify({ pid: gone, hostname: hostname(), createdAt: '2020-01-01T00:00:00.000Z', token: 'old' }));
      const unlock = await store.lock('stale.example.test');
      const holder = JSON.parse(await readFile(join(dir, 'locks', 'stale.example.test.lock'), 'utf8'));
      assert.equal(holder.pid, process.pid);
      await unlock();
    });

    it('gives a reclaimed stale lock to exactly one of several racing takers', async () => {
      const gone = spawnSync(process.execPath, ['-e', '0']).pid;
      assert.ok(gone);
      for (let round = 0; round < 20; round++) {
        await writeFile(join(dir, 'locks', 'race.example.test.lock'), JSON.stringify({ pid: gone, hostname: hostname(), createdAt: '2020-01-01T00:00:00.000Z', token: `stale-${round}` }));
        const takers = await Promise.allSettled([0, 1, 2, 3].map(() => new FsStore({ dir }).lock('race.example.test')));
        const won = takers.filter((t) => t.status === 'fulfilled');
        assert.equal(won.length, 1, `round ${round}: ${won.length} takers hold the lock at once`);
        for (const t of takers) if (t.status === 'rejected') isCode('STORE_LOCKED')(t.reason);
        await (won[0] as PromiseFulfilledResult<() => Promise<void>>).value();
      }
    });

    it('does not reclaim a lock held by a live process and names it and the lock file', async () => {
      const lockFile = join(dir, 'locks', 'busy.example.test.lock');
      await writeFile(lockFile, JSON.stringify({ pid: process.ppid, hostname: hostname(), createdAt: '2020-01-01T00:00:00.000Z', token: 'other' }));
      await assert.rejects(store.lock('busy.example.test'), isCode('STORE_LOCKED', `process ${process.ppid}`, '2020-01-01T00:00:00.000Z', lockFile, 'busy.example.test'));
    });

    it('never judges a fresh lock from another host stale by its pid', async () => {
      await writeFile(join(dir, 'locks', 'far.example.test.lock'), JSON.stringify({ pid: 999_999_999, hostname: 'some-other-host', createdAt: '2020-01-01T00:00:00.000Z', token: 'far' }));
      await assert.rejects(store.lock('far.example.test'), isCode('STORE_LOCKED', 'some-other-host'));
    });

    it('reclaims a lock from another host whose holder stopped refreshing it', async () => {
      const lockFile = join(dir, 'locks', 'quiet.example.test.lock');
      await writeFile(lockFile, JSON.stringify({ pid: 4242, hostname: 'some-other-host', createdAt: '2020-01-01T00:00:00.000Z', token: 'quiet' }));
      const twoMinutesAgo = new Date(Date.now() - 120_000);
      await utimes(lockFile, twoMinutesAgo, twoMinutesAgo);
      const unlock = await store.lock('quiet.example.test');
      assert.equal(JSON.parse(await readFile(lockFile, 'utf8')).pid, process.pid);
      await unlock();
    });

    it('keeps a lock it holds fresh, so a holder working longer than lockStaleMs keeps it', async () => {
      const holder = new FsStore({ dir, lockStaleMs: 300 });
      const unlock = await holder.lock('long.example.test');
      try {
        await new Promise((r) => setTimeout(r, 700));
        await assert.rejects(new FsStore({ dir, lockStaleMs: 300 }).lock('long.example.test'), isCode('STORE_LOCKED'));
      } finally {
        await unlock();
      }
    });

    it('excludes another process holding the lock, and hands it over when that process releases it', async () => {
      const child = spawnChild(['hold-lock', dir, 'shared.example.test']);
      const lines = createInterface({ input: child.stdout! });
      const exited = once(child, 'exit');
      try {
        const [first] = (await once(lines, 'line')) as [string];
        assert.equal(first, 'locked');
        await assert.rejects(store.lock('shared.example.test'), isCode('STORE_LOCKED', `process ${child.pid}`));
        const waiting = store.lock('shared.example.test', { waitMs: 20_000 });
        child.stdin!.write('release\n');
        const unlock = await waiting;
        const [code] = (await exited) as [number | null];
        assert.equal(code, 0);
        await unlock();
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('updateState loses no update when two other processes and this one update the same state at once', async () => {
      const name = 'shared-state.example.test';
      const children = ['a', 'b'].map((prefix) => spawnChild(['update-state', dir, name, prefix]));
      const exits = children.map((c) => once(c, 'exit'));
      try {
        await Promise.all(Array.from({ length: 30 }, (_, i) =>
          store.updateState(name, (state) => ({ ...state, [`me-${i}`]: true, count: Number(state?.['count'] ?? 0) + 1 }))));
        for (const exited of exits) assert.deepEqual((await exited)[0], 0);
        const final = await store.readState(name);
        assert.equal(final?.['count'], 90, '30 updates from each of three processes');
        for (const prefix of ['me', 'a', 'b']) for (let i = 0; i < 30; i++) assert.equal(final?.[`${prefix}-${i}`], true, `${prefix}-${i}`);
      } finally {
        for (const c of children) c.kill('SIGKILL');
      }
    });

    it('reclaims the lock of another process that was SIGKILLed while holding it', async () => {
      const child = spawnChild(['hold-lock', dir, 'killed.example.test']);
      const lines = createInterface({ input: child.stdout! });
      const [first] = (await once(lines, 'line')) as [string];
      assert.equal(first, 'locked');
      await assert.rejects(store.lock('killed.example.test'), isCode('STORE_LOCKED'));
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      const unlock = await store.lock('killed.example.test');
      await unlock();
    });
  });

  describe('watching live/', () => {
    it('reports a new version written by another process within 5 s, and currentVersions shows it', async () => {
      const name = 'cross.example.test';
      await store.putVersion(name, fakeBundle('here'), fakeMeta(name));
      const seen = recordChanges(store);
      try {
        const child = await runChild(['put', dir, name, 'child']);
        assert.equal(child.code, 0, child.stderr);
        assert.equal(child.stdout, '2\n');
        await waitUntil(() => seen.names.includes(name), "the other process's new version is reported", 5_000);
        assert.deepEqual(new Set(seen.names), new Set([name]), 'only the lineage name (not live/ itself, README or temp links)');
        assert.deepEqual([...(await store.currentVersions())], [[name, 2]]);
        assert.deepEqual((await store.readLineage(name))?.bundle, taggedBundle('child'));
      } finally {
        seen.unsubscribe();
      }
    });

    it('leaves dangling, foreign and certbot-style live/ entries out of currentVersions instead of throwing', async () => {
      await store.putVersion('ok.example.test', fakeBundle('ok'), fakeMeta('ok.example.test'));
      await symlink('../archive/gone.example.test/v3', join(dir, 'live', 'gone.example.test'));
      await symlink('../archive/ok.example.test/v1', join(dir, 'live', 'alias.example.test'));
      await symlink('/etc', join(dir, 'live', 'abs.example.test'));
      await mkdir(join(dir, 'live', 'certbot.example.test'));
      await writeFile(join(dir, 'live', 'certbot.example.test', 'fullchain.pem'), 'x');
      await symlink('../archive/ok.example.test/v1', join(dir, 'live', '.ok.example.test.tmp-dead'));
      assert.deepEqual([...(await store.currentVersions())], [['ok.example.test', 1]]);
      await assert.rejects(store.readLineage('gone.example.test'), isCode('STORE_CORRUPT'), 'readLineage still names the damage');
    });

    it('keeps reporting changes made by another writer after live/ is removed and created again', async () => {
      const name = 'phoenix.example.test';
      const other = new FsStore({ dir }); // its writes reach `store` only through live/
      const seen = recordChanges(store);
      try {
        await rm(join(dir, 'live'), { recursive: true });
        await other.putVersion(name, fakeBundle('p1'), fakeMeta(name)); // creates live/ again
        await waitUntil(() => seen.names.includes(name), 'the version in the new live/ is reported');
        seen.names.length = 0;
        await other.putVersion(name, fakeBundle('p2'), fakeMeta(name));
        await waitUntil(() => seen.names.includes(name), 'a later version is reported by the re-armed watcher');
        assert.deepEqual([...(await store.currentVersions())], [[name, 2]]);
      } finally {
        seen.unsubscribe();
      }
    });

    it('holds one inotify watch while anyone listens, and none once the last listener unsubscribed', async () => {
      const before = inotifyWatches();
      const first = store.watch(() => undefined);
      const second = store.watch(() => undefined);
      assert.equal(inotifyWatches(), before + 1);
      first();
      assert.equal(inotifyWatches(), before + 1);
      second();
      assert.equal(inotifyWatches(), before);
    });

    it('does not keep alive a process that subscribed and never unsubscribed', async () => {
      const child = await runChild(['watch', dir, 'alive.example.test'], 30_000);
      assert.equal(child.signal, null, 'the child had to be killed: the subscription kept it alive');
      assert.equal(child.code, 0, child.stderr);
      assert.equal(child.stdout, 'watching\n');
    });
  });

  it('exports its fault points, putVersion ones in order', () => {
    assert.ok(FS_STORE_FAULT_POINTS.includes('putVersion:before-switch'));
    assert.ok(FS_STORE_FAULT_POINTS.indexOf('putVersion:after-archive') < FS_STORE_FAULT_POINTS.indexOf('putVersion:after-switch'));
  });
});
