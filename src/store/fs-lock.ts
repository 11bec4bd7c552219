/**
 * The filesystem store's cross-process lock: one lock file per name in a
 * folder, shared by every process (and every host or container) that mounts
 * the same config dir.
 *
 * A lock file holds `{ pid, hostname, createdAt, token, pidNamespace?, bootId? }`.
 * It is created complete (written to a temp file, then hard-linked into place
 * with link(), which fails atomically with EEXIST if the name exists; unlike
 * `open(O_EXCL)` + write, a reader can never see it empty or half-written).
 * The holder refreshes the file's mtime while it holds the lock (the
 * heartbeat). A lock is stale, and reclaimed, when that heartbeat stopped for
 * `staleMs`, or at once when the holder is on this host (same pid namespace)
 * and its pid is gone, or it is from an earlier boot.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, readlink, stat, unlink, utimes } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { PadlockError } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import { abortableDelay } from './abortable-delay.js';
import { ioError, mkdirPrivate, writeFileExclusive } from './atomic.js';
import type { LockOptions, Unlock } from './store.js';

/** A lock nobody refreshed for this long is stale, wherever its holder runs. */
export const DEFAULT_LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 50;
/** A reclaim guard is held for microseconds; one this old was left by a reclaimer that died. */
const RECLAIM_GUARD_STALE_MS = 10_000;

export interface LockDirOptions {
  /** Stamps `createdAt` in lock files (shown in STORE_LOCKED messages). Defaults to the system clock. */
  clock?: Clock;
  /**
   * A lock whose holder has not refreshed it (file mtime) for this long is
   * stale, wherever the holder runs. Holders refresh every sixth of it.
   * Real time, not `clock`: it is compared across processes. Default 60 s.
   */
  staleMs?: number;
}

/** What a lock file holds. `token` tells our lock from a later holder's. */
interface LockHolder {
  pid: number;
  hostname: string;
  createdAt: string;
  token: string;
  /** `/proc/self/ns/pid` of the holder: pids only mean something inside one pid namespace (containers). */
  pidNamespace?: string;
  /** `/proc/sys/kernel/random/boot_id`: a lock from an earlier boot is stale whatever its pid. */
  bootId?: string;
}

/**
 * A folder of lock files, `DIR/NAME.lock`: `acquire(name)` is exclusive per
 * name across every process using the folder. Names must already be safe file
 * names (the store validates lineage names before it gets here). The folder
 * is created (0700) on first use.
 */
export class LockDir {
  private readonly clock: Clock;
  private readonly staleMs: number;

  constructor(
    /** The folder holding the lock files. */
    readonly dir: string,
    options: LockDirOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.staleMs = options.staleMs ?? DEFAULT_LOCK_STALE_MS;
  }

  /**
   * Takes the lock for `name`, waiting up to `waitMs` (default 0: fail at
   * once) and then rejecting with `STORE_LOCKED`, which names the holder and
   * the lock file. A stale lock (see the file header) is reclaimed on the
   * way. Waiting polls every ~50-100 ms; an abort rejects with
   * `signal.reason` at once, without taking the lock. Rejects with `STORE_IO`
   * when the folder cannot be written.
   */
  async acquire(name: string, options: LockOptions = {}): Promise<Unlock> {
    const { waitMs = 0, signal } = options;
    signal?.throwIfAborted();
    await mkdirPrivate(this.dir);
    const path = join(this.dir, `${name}.lock`);
    const me: LockHolder = {
      pid: process.pid,
      hostname: osHostname(),
      createdAt: this.clock.now().toISOString(),
      token: randomBytes(12).toString('hex'),
      ...(await hostIdentity()),
    };
    const deadline = Date.now() + waitMs;
    for (;;) {
      signal?.throwIfAborted();
      if (await tryCreateLock(path, me)) break;
      const holder = await readHolder(path);
      if (holder === 'gone') continue;
      if (await isStale(holder, await ageOf(path), this.staleMs)) {
        if (!(await reclaimStale(path, holder, me))) await abortableDelay(5, signal);
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const h = holder === 'unreadable' ? null : holder;
        const who = h ? `process ${h.pid}${h.hostname === me.hostname ? '' : ` on ${h.hostname}`} since ${h.createdAt}` : 'another process';
        throw new PadlockError(
          'STORE_LOCKED',
          `certificate ${name} is being worked on by ${who}; wait or remove ${path} if that process is gone`,
          { retryable: true, details: { name, lockFile: path, ...(h ? { pid: h.pid, hostname: h.hostname, since: h.createdAt } : {}) } },
        );
      }
      await abortableDelay(Math.min(left, LOCK_POLL_MS + Math.floor(Math.random() * LOCK_POLL_MS)), signal);
    }
    // The heartbeat is what lets a waiter on another host (or in another
    // container) tell a live holder from a dead one: pids mean nothing there.
    const heartbeat = setInterval(() => {
      const now = new Date();
      utimes(path, now, now).catch(() => undefined);
    }, Math.max(10, Math.floor(this.staleMs / 6)));
    heartbeat.unref();
    let released = false;
    const unlock = async (): Promise<void> => {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      const holder = await readHolder(path);
      // Only remove the file if it is still ours: if it was reclaimed (we
      // were judged dead) it belongs to someone else now.
      if (typeof holder === 'object' && holder.token === me.token) await unlink(path).catch(ignoreEnoent);
    };
    return Object.assign(unlock, { fence: me.token });
  }

  /**
   * True when the lock file of `name` exists and carries `fence` (the token
   * of the taking whose Unlock carries it): that taking still holds it.
   * False when it is gone, unreadable or another taking's. Rejects with
   * `STORE_IO` only when the file cannot be read.
   */
  async holds(name: string, fence: string): Promise<boolean> {
    const holder = await readHolder(join(this.dir, `${name}.lock`));
    return typeof holder === 'object' && holder.token === fence;
  }
}

async function tryCreateLock(path: string, me: LockHolder): Promise<boolean> {
  const temp = `${path}.tmp-${me.token}-${randomBytes(4).toString('hex')}`;
  await writeFileExclusive(temp, `${JSON.stringify(me)}\n`, 0o600);
  try {
    await link(temp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw ioError(`could not create lock ${path}`, err, 'check that the locks folder is writable');
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

// The pid namespace and boot id never change while the process lives, so
// they are read once; this is a memo of facts, not state that changes.
let identity: Promise<Pick<LockHolder, 'pidNamespace' | 'bootId'>> | undefined;
function hostIdentity(): Promise<Pick<LockHolder, 'pidNamespace' | 'bootId'>> {
  identity ??= (async () => {
    const pidNamespace = await readlink('/proc/self/ns/pid').catch(() => undefined);
    const bootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((s) => s.trim(), () => undefined);
    return { ...(pidNamespace ? { pidNamespace } : {}), ...(bootId ? { bootId } : {}) };
  })();
  return identity;
}

async function readHolder(path: string): Promise<LockHolder | 'gone' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw ioError(`could not read lock ${path}`, err, 'check the folder permissions');
  }
  try {
    const h = JSON.parse(text) as LockHolder;
    if (typeof h.pid === 'number' && typeof h.hostname === 'string' && typeof h.token === 'string') return h;
  } catch {
    // fall through
  }
  return 'unreadable';
}

/**
 * A lock is stale when its holder certainly is not working any more: its
 * heartbeat (the file's mtime) is older than `staleMs`, it is unreadable
 * (only a power loss can leave that, since locks appear complete), it was
 * taken before this boot, or its pid is gone from our pid namespace on this
 * host. Pids are only compared on the same host and pid namespace; elsewhere
 * the heartbeat alone decides.
 */
async function isStale(holder: LockHolder | 'unreadable', ageMs: number, staleMs: number): Promise<boolean> {
  if (holder === 'unreadable' || ageMs > staleMs) return true;
  if (holder.hostname !== osHostname()) return false;
  const me = await hostIdentity();
  if (holder.bootId && me.bootId && holder.bootId !== me.bootId) return true;
  if (holder.pidNamespace && me.pidNamespace && holder.pidNamespace !== me.pidNamespace) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Milliseconds since the file was last modified (0 when it cannot be stat'ed: treat as fresh). */
async function ageOf(path: string): Promise<number> {
  return stat(path).then((st) => Date.now() - st.mtimeMs, () => 0);
}

/**
 * Removes a stale lock without removing a fresh one by mistake. Two waiters
 * may judge the same lock stale; if both simply unlinked it, the slower one
 * would delete the lock the faster one had just taken. So reclaiming happens
 * under a short-lived guard file (`NAME.lock.reclaim`, created atomically):
 * the guard holder re-reads the lock and removes it only if it is still the
 * holder that was judged stale. Only reclaimers remove other processes'
 * locks, and they are serialised, so the re-read cannot go stale before the
 * unlink. A guard is held for microseconds; one left by a reclaimer that
 * died is itself removed once its pid is gone or it is older than 10 s.
 * Resolves false when the guard was busy (the caller should retry soon).
 */
async function reclaimStale(path: string, judged: LockHolder | 'unreadable', me: LockHolder): Promise<boolean> {
  const guard = `${path}.reclaim`;
  const temp = `${guard}.tmp-${me.token}-${randomBytes(4).toString('hex')}`;
  await writeFileExclusive(temp, `${JSON.stringify(me)}\n`, 0o600);
  try {
    await link(temp, guard);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`could not reclaim stale lock ${path}`, err, 'check that the locks folder is writable');
    const other = await readHolder(guard);
    if (other !== 'gone' && (await isStale(other, await ageOf(guard), RECLAIM_GUARD_STALE_MS))) await unlink(guard).catch(() => undefined);
    return false;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  try {
    const current = await readHolder(path);
    const same = judged === 'unreadable' ? current === 'unreadable' : typeof current === 'object' && current.token === judged.token;
    if (same) await unlink(path).catch(ignoreEnoent);
  } catch (err) {
    throw ioError(`could not remove stale lock ${path}`, err, 'check that the locks folder is writable');
  } finally {
    await unlink(guard).catch(() => undefined);
  }
  return true;
}

function ignoreEnoent(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
