/**
 * Crash-safe file primitives for the filesystem store.
 *
 * A file written here is either absent, its complete old content or its
 * complete new content after a crash (process or power), never a torn mix:
 * data goes to a temp file in the same folder, is fsynced, renamed over the
 * target (rename is atomic within one filesystem) and the folder is fsynced so
 * the rename itself is durable.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PadlockError, errorMessage } from '../errors.js';

/** Called at named points so tests can kill the process there; see ATOMIC_FAULT_POINTS. */
export type FaultHook = (point: string) => void | Promise<void>;

/** The points inside `writeFileAtomic` where the fault hook is called, in order. */
export const ATOMIC_FAULT_POINTS = [
  /** The temp file is written and fsynced; the target is untouched. */
  'atomic:after-temp-write',
  /** The temp file has been renamed over the target; the folder is not fsynced yet. */
  'atomic:after-rename',
] as const;

export interface WriteFileAtomicOptions {
  /** File mode, applied exactly (not filtered by the umask). Default 0o644. */
  mode?: number;
  faults?: FaultHook;
}

/**
 * Replaces `path` whole with `data`. Resolves once the new content and the
 * rename are on disk. A concurrent reader sees the old or the new file, never
 * a partial one. On failure the target is left as it was, the temp file is
 * removed (best effort), and the promise rejects with `STORE_IO` naming the
 * path and keeping the cause.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: WriteFileAtomicOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o644;
  const dir = dirname(path);
  // Same folder as the target so rename() never crosses a filesystem; the
  // pid + random suffix keeps concurrent writers from sharing a temp file.
  const temp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  let created = false;
  try {
    const fh = await open(temp, 'wx', mode);
    created = true;
    try {
      await fh.chmod(mode); // open()'s mode is filtered by the umask; keys must be exactly 0600
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await options.faults?.('atomic:after-temp-write');
    await rename(temp, path);
    created = false;
    await options.faults?.('atomic:after-rename');
    await fsyncDir(dir);
  } catch (err) {
    if (created) await unlink(temp).catch(() => undefined);
    throw ioError(`could not write ${path}`, err, 'check that the folder exists, is writable and the disk is not full');
  }
}

/**
 * Creates `path` with exactly `mode`, failing if it exists, and fsyncs it.
 * For files inside a private staging folder that is renamed into place as a
 * whole, where a per-file temp + rename would only add work.
 */
export async function writeFileExclusive(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  try {
    const fh = await open(path, 'wx', mode);
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw ioError(`could not write ${path}`, err, 'check that the folder is writable and the disk is not full');
  }
}

/**
 * Makes a folder's entries (new, renamed or removed names) durable. Without
 * this a rename can be lost on power failure even though the file data was
 * fsynced.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `path` and any missing parents as 0700 folders, and sets `path`
 * itself to 0700 when it already existed: callers only pass folders padlock
 * owns (its layout under the config dir), never a user's folder. Parents that
 * already existed keep their mode. Rejects with `STORE_IO` on failure.
 */
export async function mkdirPrivate(path: string): Promise<void> {
  try {
    const first = await mkdir(path, { recursive: true, mode: 0o700 });
    // mkdir's mode goes through the umask; set it exactly on every folder we
    // created (first..path) and on path itself when it was already there.
    if (first !== undefined) {
      let cur = path;
      for (;;) {
        await chmod(cur, 0o700);
        if (cur === first) break;
        const up = dirname(cur);
        if (up === cur) break;
        cur = up;
      }
    } else {
      await chmod(path, 0o700);
    }
  } catch (err) {
    throw ioError(`could not create folder ${path}`, err, 'check that its parent is a writable folder, not a file');
  }
}

/** A STORE_IO error that names the path, says what to check, and keeps the cause. */
export function ioError(what: string, cause: unknown, check: string): PadlockError<'STORE_IO'> {
  if (cause instanceof PadlockError && cause.code === 'STORE_IO') return cause as PadlockError<'STORE_IO'>;
  return new PadlockError('STORE_IO', `${what}: ${errorMessage(cause)}; ${check}`, { cause });
}
