/**
 * The filesystem store, padlock's default CertStore.
 *
 * Layout under the config dir (certbot-compatible for programs that read it):
 *
 *   archive/NAME/vN/{cert,chain,fullchain,privkey}.pem   version N (privkey 0600)
 *   archive/NAME/vN/meta.json                           the LineageMeta version N was issued with
 *   live/NAME -> ../archive/NAME/vN                      the current version (one symlink)
 *   live/README
 *   renewal/NAME.json                                   LineageMeta (+ storedForVersion)
 *   state/NAME.json                                     LineageState
 *   accounts/<sha256(directoryUrl)[0:16]>/account.json  AccountRecord (0600)
 *   locks/NAME.lock                                     { pid, hostname, createdAt, ... }
 *   locks/state/NAME.lock                               the same, held only while updateState runs
 *
 * Every folder is 0700.
 *
 * Why `live/NAME` is a symlink to a version folder: certbot makes `live/NAME`
 * a real folder holding four per-file symlinks and updates them one by one,
 * so a reader (nginx reloading, a crash in between) can see a new cert.pem
 * next to an old privkey.pem. Here the whole set switches with ONE atomic
 * rename() of a fresh symlink over the old one, and `live/NAME/fullchain.pem`
 * still resolves for nginx and HAProxy exactly as with certbot.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, readlink, rename, rm, stat, symlink, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PadlockError, errorMessage } from '../errors.js';
import type { Clock } from '../clock.js';
import {
  ATOMIC_FAULT_POINTS,
  fsyncDir,
  ioError,
  mkdirPrivate,
  writeFileAtomic,
  writeFileExclusive,
  type FaultHook,
} from './atomic.js';
import { ChangeFeed } from './change-feed.js';
import { LockDir } from './fs-lock.js';
import { LiveFolderWatcher } from './fs-watch.js';
import {
  checkLineageName,
  isValidLineageName,
  type AccountRecord,
  type CertBundle,
  type CertStore,
  type Lineage,
  type LineageMeta,
  type LineageState,
  type LockOptions,
  type PutVersionOptions,
  type ServingLineage,
  type StoreHealth,
  type Unlock,
  KeyedSerializer,
  lockLost,
} from './store.js';

/**
 * Every point where FsStore calls its `faults` hook, in the order putVersion
 * reaches them. The atomic:* points fire inside every writeFileAtomic call
 * made for data (in putVersion: the renewal/NAME.json write, after the switch).
 */
export const FS_STORE_FAULT_POINTS = [
  /** cert.pem and chain.pem are in the staging folder, fullchain/privkey/meta are not. */
  'putVersion:after-stage-partial',
  /** The staging folder is complete and fsynced, but has no version number yet. */
  'putVersion:after-stage',
  /** The staging folder was renamed to archive/NAME/vN; live/NAME still points at the old version. */
  'putVersion:after-archive',
  /** The temp symlink live/.NAME.tmp-* exists; it has not replaced live/NAME yet. */
  'putVersion:before-switch',
  /** live/NAME now points at vN (live/ not fsynced yet); renewal/NAME.json is still the old meta. */
  'putVersion:after-switch',
  ...ATOMIC_FAULT_POINTS,
  /** renewal/NAME.json describes vN; putVersion is about to resolve. */
  'putVersion:after-meta',
] as const;

export type FsStoreFaultPoint = (typeof FS_STORE_FAULT_POINTS)[number];

export interface FsStoreOptions {
  /** The config dir (`/etc/padlock`). Resolved to an absolute path. */
  dir: string;
  /** Test hook called at each FS_STORE_FAULT_POINTS point; may throw or kill the process. */
  faults?: FaultHook;
  /** Stamps lock files. Defaults to the system clock. */
  clock?: Clock;
  /** See `LockDirOptions.staleMs` in fs-lock.ts. Default 60 s. */
  lockStaleMs?: number;
}

const PEM_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;
const VERSION_DIR = /^v(\d+)$/;
/** State updates hold their lock for milliseconds; waiting longer than this means something is wrong. */
const STATE_LOCK_WAIT_MS = 30_000;

const LIVE_README = `This folder contains your keys and certificates, managed by padlock.

\`[cert name]/privkey.pem\`  : the private key for your certificate.
\`[cert name]/fullchain.pem\`: the certificate file used in most server software.
\`[cert name]/chain.pem\`    : the intermediate certificates (OCSP stapling in nginx).
\`[cert name]/cert.pem\`     : the leaf certificate alone; most servers need fullchain.pem.

Each [cert name] is a symlink to ../archive/[cert name]/vN, switched atomically
on renewal. Point your server at these paths, not at archive/.

WARNING: DO NOT MOVE OR RENAME THESE FILES! padlock expects them to stay here.
`;

/**
 * Opens the store at `dir`, creating its layout. Checks first that the folder
 * can be created and written, and rejects with `CONFIG_DIR_UNUSABLE` before
 * anything else happens if not. An existing `dir` keeps its mode; folders
 * padlock creates are 0700.
 */
export async function openFsStore(dir: string, opts: Omit<FsStoreOptions, 'dir'> = {}): Promise<FsStore> {
  const root = resolve(dir);
  try {
    const st = await stat(root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (st === null) await mkdirPrivate(root);
    else if (!st.isDirectory()) throw new Error('it exists and is not a folder');
    for (const sub of ['archive', 'live', 'renewal', 'state', 'accounts', 'locks']) await mkdirPrivate(join(root, sub));
    const probe = join(root, `.padlock-write-test-${process.pid}`);
    await writeFileAtomic(probe, 'ok\n', { mode: 0o600 });
    await unlink(probe);
    const readme = join(root, 'live', 'README');
    if (!(await exists(readme))) await writeFileAtomic(readme, LIVE_README, { mode: 0o644 });
  } catch (err) {
    throw new PadlockError('CONFIG_DIR_UNUSABLE', `${root} is not writable: ${errorMessage(err)}; run as root or pass --config-dir`, {
      cause: err,
      details: { dir: root },
    });
  }
  return new FsStore({ ...opts, dir: root });
}

/**
 * CertStore on a local filesystem. Construct it with `openFsStore` to get the
 * writability check; the constructor itself does no I/O and methods create
 * the folders they need.
 *
 * Callers are expected to hold `lock(name)` around `putVersion`,
 * `writeMeta` and `deleteLineage` for that name (the certificate manager
 * does). Without it, two concurrent putVersion calls still never tear a
 * version: one of them may fail with STORE_IO instead.
 */
export class FsStore implements CertStore {
  readonly location: string;
  private readonly faults: FaultHook | undefined;
  private readonly locks: LockDir;
  /** Separate from `locks` so a caller holding the lineage lock can still update the state. */
  private readonly stateLocks: LockDir;
  private readonly stateQueue = new KeyedSerializer();
  /** The live/ watcher runs only while someone listens. */
  private readonly changes: ChangeFeed;
  private readonly openedAt = new Date();

  constructor(opts: FsStoreOptions) {
    this.location = resolve(opts.dir);
    this.faults = opts.faults;
    const lockOptions = { clock: opts.clock, staleMs: opts.lockStaleMs };
    this.locks = new LockDir(join(this.location, 'locks'), lockOptions);
    this.stateLocks = new LockDir(join(this.location, 'locks', 'state'), lockOptions);
    const live = new LiveFolderWatcher(this.liveDir(), (name) => this.changes.changed(name));
    this.changes = new ChangeFeed({ onFirstListener: () => live.start(), onLastListener: () => live.stop() });
  }

  async listLineages(): Promise<string[]> {
    const names: string[] = [];
    for (const entry of await this.liveEntries()) {
      if (await exists(join(this.liveDir(), entry, 'fullchain.pem'))) names.push(entry);
    }
    return names;
  }

  async readLineage(name: string): Promise<Lineage | null> {
    checkLineageName(name);
    const version = await this.currentVersion(name);
    if (version === null) return null;
    // Read the four files from the resolved version folder, not through
    // live/NAME: a switch between two reads must not hand back a mix.
    const versionDir = this.versionDir(name, version);
    const bundle = {} as CertBundle;
    for (const f of PEM_FILES) {
      const p = join(versionDir, `${f}.pem`);
      try {
        bundle[f] = await readFile(p, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw corrupt(`${join(this.liveDir(), name)} points at version ${version} but ${p} is missing`, err);
        }
        throw ioError(`could not read ${p}`, err, 'check the file permissions');
      }
    }
    const meta = await this.metaFor(name, version);
    if (meta === null) throw corrupt(`${join(this.liveDir(), name)} has no metadata: neither ${this.renewalPath(name)} nor ${join(versionDir, 'meta.json')} exist`);
    const dir = join(this.liveDir(), name);
    return {
      meta,
      version,
      bundle,
      paths: {
        dir,
        cert: join(dir, 'cert.pem'),
        chain: join(dir, 'chain.pem'),
        fullchain: join(dir, 'fullchain.pem'),
        privkey: join(dir, 'privkey.pem'),
      },
    };
  }

  /**
   * One readlink of `live/NAME`, then `fullchain.pem`, `privkey.pem` and the
   * meta read in parallel from the version folder it points at (not through
   * the link, so a switch in between cannot mix versions). A missing file is
   * STORE_CORRUPT with the same words as readLineage.
   */
  async readServing(name: string): Promise<ServingLineage | null> {
    checkLineageName(name);
    const version = await this.linkedVersion(name);
    if (version === null) return null;
    const versionDir = this.versionDir(name, version);
    const read = async (f: 'fullchain' | 'privkey'): Promise<string> => {
      const p = join(versionDir, `${f}.pem`);
      try {
        return await readFile(p, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`could not read ${p}`, err, 'check the file permissions');
        // Only on this error path: the precise complaint about a link to a folder that does not exist.
        await this.currentVersion(name);
        throw corrupt(`${join(this.liveDir(), name)} points at version ${version} but ${p} is missing`, err);
      }
    };
    const [fullchain, privkey, meta] = await Promise.all([read('fullchain'), read('privkey'), this.metaFor(name, version)]);
    if (meta === null) throw corrupt(`${join(this.liveDir(), name)} has no metadata: neither ${this.renewalPath(name)} nor ${join(versionDir, 'meta.json')} exist`);
    return { meta, version, bundle: { fullchain, privkey } };
  }

  /**
   * Order, and why: (1) the four PEMs and the meta snapshot are written into
   * a private staging folder and fsynced; (2) the folder is renamed to the
   * next free `vN`, so a `vN` folder is always complete; (3) `live/NAME` is
   * switched with one rename of a fresh symlink; (4) `renewal/NAME.json` is
   * rewritten.
   *
   * Meta goes neither plainly before nor plainly after the switch: either
   * order leaves a crash window where renewal/NAME.json describes names the
   * current certificate lacks (before: new names, old cert; after: old names
   * after a name was dropped). Instead the meta travels inside the version
   * folder and so switches atomically with the PEMs; renewal/NAME.json
   * records which version it was written for, and a reader that finds it
   * stale (a crash between (3) and (4)) uses the version's own meta.json.
   *
   * Version numbers are never reused: the next N is one above every `vN`
   * folder present, so debris from a crash can never be mistaken for, or
   * written into, a version some reader may be using.
   *
   * With `options.lock`, the lock file `locks/NAME.lock` must still carry
   * that lock's token: checked once before anything is written and again
   * right before the switch (3); when it does not, the new version folder
   * is removed again and putVersion rejects with STORE_LOCK_LOST. The second
   * check and the rename are two system calls, not one atomic step. That is
   * acceptable here: a lock is only taken over after its holder's heartbeat
   * stopped for `lockStaleMs` (60 s by default) or its pid died, so a holder
   * that is running this very code is not what a reclaim targets, and the
   * window is microseconds wide. If it ever happens, the next holder, which
   * re-reads the store after taking the lock, finds this version current:
   * the cost is at most one certificate ordered twice, never a torn version.
   */
  async putVersion(name: string, bundle: CertBundle, meta: LineageMeta, options: PutVersionOptions = {}): Promise<number> {
    checkLineageName(name);
    await this.checkFence(name, options.lock);
    const lineageDir = join(this.location, 'archive', name);
    const liveDir = this.liveDir();
    await mkdirPrivate(lineageDir);
    await mkdirPrivate(liveDir);
    await this.removeDebris(name);

    const staging = join(lineageDir, `.staging-${process.pid}-${randomBytes(6).toString('hex')}`);
    let version = 0;
    const tempLink = join(liveDir, `.${name}.tmp-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(staging, { mode: 0o700 });
      await chmod(staging, 0o700);
      await writeFileExclusive(join(staging, 'cert.pem'), bundle.cert, 0o644);
      await writeFileExclusive(join(staging, 'chain.pem'), bundle.chain, 0o644);
      await this.fault('putVersion:after-stage-partial');
      await writeFileExclusive(join(staging, 'fullchain.pem'), bundle.fullchain, 0o644);
      await writeFileExclusive(join(staging, 'privkey.pem'), bundle.privkey, 0o600);
      await writeFileExclusive(join(staging, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o600);
      await fsyncDir(staging);
      await this.fault('putVersion:after-stage');

      version = Math.max(await this.maxArchivedVersion(name), (await this.currentVersion(name).catch(() => null)) ?? 0) + 1;
      for (;;) {
        try {
          await rename(staging, this.versionDir(name, version));
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw err;
          version += 1; // someone (not holding the lock) took this number meanwhile
        }
      }
      await fsyncDir(lineageDir);
      await this.fault('putVersion:after-archive');

      await symlink(`../archive/${name}/v${version}`, tempLink);
      await this.fault('putVersion:before-switch');
      await this.checkFence(name, options.lock).catch(async (err: unknown) => {
        await rm(this.versionDir(name, version), { recursive: true, force: true }).catch(() => undefined);
        throw err;
      });
      await rename(tempLink, join(liveDir, name));
      await this.fault('putVersion:after-switch');
      await fsyncDir(liveDir);
    } catch (err) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      await unlink(tempLink).catch(() => undefined);
      if (err instanceof PadlockError && err.code === 'STORE_LOCK_LOST') throw err;
      throw ioError(`could not store a new version of ${name} in ${lineageDir}`, err, 'check that the config dir is writable and the disk is not full');
    }

    // Our own switch is reported directly as well, so this process hears of
    // it even while the live/ watcher is down; the two reports coalesce.
    this.changes.changed(name);
    await this.writeRenewal(name, meta, version);
    await this.fault('putVersion:after-meta');
    return version;
  }

  async deleteLineage(name: string): Promise<void> {
    checkLineageName(name);
    // The link goes first: from then on the lineage reads as absent, and a
    // crash part-way leaves debris that a repeated delete removes.
    const targets = [
      join(this.liveDir(), name),
      this.renewalPath(name),
      this.statePath(name),
      join(this.location, 'archive', name),
    ];
    try {
      for (const t of targets) await rm(t, { recursive: true, force: true });
      for (const d of ['live', 'renewal', 'state', 'archive']) await fsyncDir(join(this.location, d)).catch(ignoreEnoent);
    } catch (err) {
      throw ioError(`could not delete certificate ${name} from ${this.location}`, err, 'check the folder permissions');
    }
    this.changes.changed(name);
  }

  async readMeta(name: string): Promise<LineageMeta | null> {
    checkLineageName(name);
    return this.metaFor(name, await this.currentVersion(name));
  }

  async writeMeta(name: string, meta: LineageMeta): Promise<void> {
    checkLineageName(name);
    await this.writeRenewal(name, meta, (await this.currentVersion(name)) ?? 0);
  }

  async readState(name: string): Promise<LineageState | null> {
    checkLineageName(name);
    const state = await readJson(this.statePath(name));
    if (state === null) return null;
    if (typeof state !== 'object' || Array.isArray(state)) throw corrupt(`${this.statePath(name)} does not hold a JSON object`);
    return state as LineageState;
  }

  async writeState(name: string, state: LineageState): Promise<void> {
    checkLineageName(name);
    await mkdirPrivate(join(this.location, 'state'));
    await writeFileAtomic(this.statePath(name), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600, faults: this.faults });
  }

  /**
   * In this process, a queue per name; across processes, `locks/state/NAME.lock`
   * (the same lock-file protocol as `lock()`, in its own folder so a caller
   * holding the lineage lock can still update the state).
   */
  async updateState(name: string, change: (current: LineageState | null) => LineageState): Promise<LineageState> {
    checkLineageName(name);
    return this.stateQueue.run(name, async () => {
      const unlock = await this.stateLocks.acquire(name, { waitMs: STATE_LOCK_WAIT_MS });
      try {
        const next = change(await this.readState(name));
        await this.writeState(name, next);
        return next;
      } finally {
        await unlock();
      }
    });
  }

  /** Every `accounts/<hash>/account.json`; one that does not parse is STORE_CORRUPT naming it. */
  async listAccounts(): Promise<AccountRecord[]> {
    const dir = join(this.location, 'accounts');
    const out: AccountRecord[] = [];
    for (const entry of (await readdir(dir).catch(() => [] as string[])).sort()) {
      const path = join(dir, entry, 'account.json');
      const record = (await readJson(path)) as AccountRecord | null;
      if (record === null) continue;
      if (typeof record !== 'object' || typeof record.directoryUrl !== 'string' || typeof record.keyPem !== 'string') throw corrupt(`${path} does not hold an account`);
      out.push(record);
    }
    return out.sort((a, b) => a.directoryUrl.localeCompare(b.directoryUrl));
  }

  /** The names of `state/NAME.json` (temp files and other names are left out). */
  async listStates(): Promise<string[]> {
    const entries = await readdir(join(this.location, 'state')).catch(() => [] as string[]);
    return entries.filter((e) => e.endsWith('.json')).map((e) => e.slice(0, -'.json'.length)).filter((n) => isValidLineageName(n)).sort();
  }

  async readAccount(directoryUrl: string): Promise<AccountRecord | null> {
    const path = this.accountPath(directoryUrl);
    const record = (await readJson(path)) as AccountRecord | null;
    if (record === null) return null;
    if (typeof record !== 'object' || record.directoryUrl !== directoryUrl) {
      throw corrupt(`${path} does not hold the account for ${directoryUrl}`);
    }
    return record;
  }

  async writeAccount(record: AccountRecord): Promise<void> {
    const path = this.accountPath(record.directoryUrl);
    await mkdirPrivate(join(path, '..'));
    await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600, faults: this.faults });
  }

  /**
   * `locks/NAME.lock`, with the lock-file protocol of fs-lock.ts: created
   * complete with link(), kept fresh by a heartbeat while held, reclaimed
   * when its holder is gone (dead pid on this host, earlier boot, or no
   * heartbeat for `lockStaleMs`). Waiting polls every ~50-100 ms; an abort
   * rejects with `signal.reason` at once.
   */
  async lock(name: string, options: LockOptions = {}): Promise<Unlock> {
    checkLineageName(name);
    return this.locks.acquire(name, options);
  }

  /** See CertStore.currentVersions; entries the store cannot resolve are left out (readLineage names the problem). */
  async currentVersions(): Promise<Map<string, number>> {
    const found = await Promise.all(
      (await this.liveEntries()).map(async (name) => {
        const version = await this.currentVersion(name).catch((err: unknown) => {
          if (err instanceof PadlockError && err.code === 'STORE_CORRUPT') return null;
          throw err;
        });
        return [name, version] as const;
      }),
    );
    return new Map(found.flatMap(([name, version]) => (version === null ? [] : [[name, version] as const])));
  }

  /**
   * See CertStore.watch. Changes are seen by watching `live/` (fs-watch.ts
   * says how, and how it recovers from watcher errors and a removed folder),
   * so switches made by any process on this host are reported; this
   * process's own putVersion and deleteLineage are also reported directly.
   * Reports of one name within 50 ms coalesce into one call.
   */
  watch(listener: (name: string) => void): () => void {
    return this.changes.subscribe(listener);
  }

  /** Always reachable: a failing disk shows up as STORE_IO on the call that hit it. */
  health(): StoreHealth {
    return { reachable: true, since: new Date(this.openedAt) };
  }

  /** Nothing to release: watchers go with their last listener, lock heartbeats with their Unlock. */
  async close(): Promise<void> {}

  // ---- internals ----

  /** Rejects with STORE_LOCK_LOST unless `lock` (when given) still holds `locks/NAME.lock`. */
  private async checkFence(name: string, lock: Unlock | undefined): Promise<void> {
    if (lock === undefined) return;
    if (lock.fence === undefined || !(await this.locks.holds(name, lock.fence))) throw lockLost(name, this.location);
  }

  /** Entries of live/ that can be lineage names (not README or .NAME.tmp-* leftovers), sorted. */
  private async liveEntries(): Promise<string[]> {
    const live = this.liveDir();
    const entries = await readdir(live).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw ioError(`could not list ${live}`, err, 'check that the folder is readable');
    });
    return entries.filter(isValidLineageName).sort();
  }

  private async fault(point: FsStoreFaultPoint): Promise<void> {
    await this.faults?.(point);
  }

  private liveDir(): string {
    return join(this.location, 'live');
  }
  private versionDir(name: string, version: number): string {
    return join(this.location, 'archive', name, `v${version}`);
  }
  private renewalPath(name: string): string {
    return join(this.location, 'renewal', `${name}.json`);
  }
  private statePath(name: string): string {
    return join(this.location, 'state', `${name}.json`);
  }
  private accountPath(directoryUrl: string): string {
    const id = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16);
    return join(this.location, 'accounts', id, 'account.json');
  }

  /** The version live/NAME points at, null when there is no live/NAME, STORE_CORRUPT when it is not ours or dangles. */
  private async currentVersion(name: string): Promise<number | null> {
    const version = await this.linkedVersion(name);
    if (version !== null && !(await exists(this.versionDir(name, version)))) {
      throw corrupt(`${join(this.liveDir(), name)} points at ../archive/${name}/v${version}, which does not exist`);
    }
    return version;
  }

  /** The version live/NAME names (one readlink; whether that folder exists is not checked), null when there is no live/NAME. */
  private async linkedVersion(name: string): Promise<number | null> {
    const live = join(this.liveDir(), name);
    let target: string;
    try {
      target = await readlink(live);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'EINVAL') throw corrupt(`${live} is not a symlink to ../archive/${name}/vN (a certbot-style folder?); padlock cannot switch it atomically`, err);
      throw ioError(`could not read ${live}`, err, 'check the folder permissions');
    }
    const m = /^\.\.\/archive\/([^/]+)\/v(\d+)$/.exec(target);
    if (!m || m[1] !== name) throw corrupt(`${live} points at ${target}, not at ../archive/${name}/vN`);
    return Number(m[2]);
  }

  private async maxArchivedVersion(name: string): Promise<number> {
    const entries = await readdir(join(this.location, 'archive', name)).catch(() => [] as string[]);
    let max = 0;
    for (const e of entries) {
      const m = VERSION_DIR.exec(e);
      if (m) max = Math.max(max, Number(m[1]));
    }
    return max;
  }

  /** The meta that describes `version`; see putVersion for why renewal/NAME.json may be stale. */
  private async metaFor(name: string, version: number | null): Promise<LineageMeta | null> {
    const renewal = (await readJson(this.renewalPath(name))) as (LineageMeta & { storedForVersion?: number }) | null;
    if (renewal !== null && (typeof renewal !== 'object' || Array.isArray(renewal))) throw corrupt(`${this.renewalPath(name)} does not hold a JSON object`);
    if (version === null || (renewal !== null && renewal.storedForVersion === version)) return renewal && stripVersion(renewal);
    const snapshot = (await readJson(join(this.versionDir(name, version), 'meta.json'))) as LineageMeta | null;
    return snapshot ?? (renewal && stripVersion(renewal));
  }

  private async writeRenewal(name: string, meta: LineageMeta, version: number): Promise<void> {
    await mkdirPrivate(join(this.location, 'renewal'));
    const body = { ...meta, storedForVersion: version };
    await writeFileAtomic(this.renewalPath(name), `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, faults: this.faults });
  }

  /** Staging folders and temp links left by a crashed putVersion of this name (callers hold the lock). */
  private async removeDebris(name: string): Promise<void> {
    const lineageDir = join(this.location, 'archive', name);
    for (const e of await readdir(lineageDir).catch(() => [] as string[])) {
      if (e.startsWith('.staging-')) await rm(join(lineageDir, e), { recursive: true, force: true }).catch(() => undefined);
    }
    for (const e of await readdir(this.liveDir()).catch(() => [] as string[])) {
      if (e.startsWith(`.${name}.tmp-`)) await unlink(join(this.liveDir(), e)).catch(() => undefined);
    }
  }
}

function stripVersion(meta: LineageMeta & { storedForVersion?: number }): LineageMeta {
  const { storedForVersion: _ignored, ...rest } = meta;
  return rest;
}

function corrupt(message: string, cause?: unknown): PadlockError<'STORE_CORRUPT'> {
  return new PadlockError('STORE_CORRUPT', `${message}; repair or remove it`, cause === undefined ? {} : { cause });
}

function ignoreEnoent(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Parsed JSON, or null when the file does not exist. */
async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(`could not read ${path}`, err, 'check the file permissions');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw corrupt(`${path} is not valid JSON`, err);
  }
}
