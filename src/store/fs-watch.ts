/**
 * Watches the filesystem store's `live/` folder and reports which lineage
 * names changed there, for `FsStore.watch`.
 *
 * Why `live/` alone is enough: a new version becomes current with one rename
 * of a temp symlink (`live/.NAME.tmp-*`) onto `live/NAME`, and a delete
 * removes `live/NAME` first, so every change `watch` promises to report is an
 * entry event in that one folder, whichever process made it. inotify (which
 * `fs.watch` uses on Linux) reports it in every process watching the folder.
 * Events for `README`, temp links and anything else that is not a valid
 * lineage name are ignored.
 *
 * What can go wrong, and what happens then (nothing is logged: the store has
 * no logger; callers that must not miss a change also poll):
 * - `fs.watch` throws (ENOENT: `live/` is missing; ENOSPC: the inotify watch
 *   limit `fs.inotify.max_user_watches` is reached; EMFILE) or the watcher
 *   emits `error`: the watcher is closed and arming is retried after a
 *   backoff that doubles from 100 ms up to 5 s, reset by a successful arm.
 * - `live/` is removed (and perhaps created again): inotify then reports an
 *   event named after the folder itself and goes silent. On such an event the
 *   folder's inode and birth time (an inode number can be reused at once)
 *   are compared with the watched one's; when the folder is gone or another
 *   one, the watcher re-arms as above. (The same event name also comes
 *   from a chmod of the folder and from an entry called like the folder, a
 *   lineage named `live`: that lineage is reported while its entry exists,
 *   so its deletion by another process is the one change that goes
 *   unreported.)
 * - After any re-arm, changes made during the gap are unknown, so every name
 *   then present in `live/` is reported once (spurious calls, by design). A
 *   lineage deleted during the gap is not reported.
 * - On filesystems where inotify sees no other host's writes (NFS, CIFS),
 *   only this host's changes are reported.
 */
import { statSync, watch as fsWatch, type BigIntStats, type FSWatcher, type WatchListener } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { isValidLineageName } from './store.js';

/** The one call of `fs.watch` this module makes; tests replace it to simulate failures. */
export type WatchFolder = (dir: string, options: { persistent: false }, listener: WatchListener<string>) => FSWatcher;

export interface LiveFolderWatcherOptions {
  /** Defaults to `fs.watch`. */
  watch?: WatchFolder;
  /** First re-arm delay after a failure; doubles per failure. Default 100 ms. */
  minBackoffMs?: number;
  /** Longest re-arm delay. Default 5 s. */
  maxBackoffMs?: number;
}

const DEFAULT_MIN_BACKOFF_MS = 100;
const DEFAULT_MAX_BACKOFF_MS = 5_000;

/**
 * Reports lineage names whose `live/` entry changed, from `start()` until
 * `stop()`. Holds at most one `fs.watch` watcher (not persistent) and one
 * unref'd timer, so it never keeps the process alive; after `stop()` it holds
 * nothing. `start()` arms synchronously, so a change made after it returned
 * is seen (unless arming failed, see the file header).
 */
export class LiveFolderWatcher {
  private readonly watchFolder: WatchFolder;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private watcher: FSWatcher | null = null;
  /** Identity (inode and birth time) of the folder the current watcher watches. */
  private watchedFolder = '';
  private rearmTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  private running = false;
  /** Bumped on every arm and stop, so late callbacks of an older watcher do nothing. */
  private generation = 0;

  constructor(
    private readonly dir: string,
    private readonly onName: (name: string) => void,
    options: LiveFolderWatcherOptions = {},
  ) {
    this.watchFolder = options.watch ?? fsWatch;
    this.minBackoffMs = options.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.backoffMs = this.minBackoffMs;
  }

  /** Starts watching; harmless when already started. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(false);
  }

  /** Stops watching and releases the watcher and any pending re-arm timer. */
  stop(): void {
    this.running = false;
    this.generation += 1;
    this.closeWatcher();
    if (this.rearmTimer) clearTimeout(this.rearmTimer);
    this.rearmTimer = null;
    this.backoffMs = this.minBackoffMs;
  }

  private arm(afterGap: boolean): void {
    const generation = ++this.generation;
    let watcher: FSWatcher;
    try {
      // The identity is read before the watch starts: if the folder is
      // replaced in between, the next folder event finds a different one and
      // re-arms once too many, never once too few.
      this.watchedFolder = folderIdentity(statSync(this.dir, { bigint: true }));
      watcher = this.watchFolder(this.dir, { persistent: false }, (_event, filename) => {
        if (generation === this.generation) this.onEvent(filename, generation);
      });
    } catch {
      this.scheduleRearm();
      return;
    }
    watcher.on('error', () => {
      if (generation === this.generation) this.rearmSoon();
    });
    this.watcher = watcher;
    this.backoffMs = this.minBackoffMs;
    if (afterGap) void this.reportAll(generation);
  }

  private onEvent(filename: string | null, generation: number): void {
    if (filename === null) {
      // Some platforms do not say which entry changed: everything may have.
      void this.reportAll(generation);
      return;
    }
    if (filename === basename(this.dir)) {
      void this.checkFolder(filename, generation);
      return;
    }
    if (isValidLineageName(filename)) this.onName(filename);
  }

  /**
   * inotify names events on the folder itself after the folder, as 'rename'
   * even for a chmod (putVersion chmods live/ every time), so such an event
   * may be the folder going away, its own mode, or an entry of that name.
   */
  private async checkFolder(filename: string, generation: number): Promise<void> {
    const identity = await stat(this.dir, { bigint: true }).then(folderIdentity, () => null);
    if (generation !== this.generation) return;
    if (identity !== this.watchedFolder) {
      this.rearmSoon();
      return;
    }
    const entry = await lstat(join(this.dir, filename)).then(() => true, () => false);
    if (generation === this.generation && entry && isValidLineageName(filename)) this.onName(filename);
  }

  private async reportAll(generation: number): Promise<void> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    if (generation !== this.generation) return;
    for (const entry of entries) if (isValidLineageName(entry)) this.onName(entry);
  }

  private rearmSoon(): void {
    this.generation += 1;
    this.closeWatcher();
    this.scheduleRearm();
  }

  private scheduleRearm(): void {
    if (!this.running || this.rearmTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
    this.rearmTimer = setTimeout(() => {
      this.rearmTimer = null;
      if (this.running) this.arm(true);
    }, wait);
    this.rearmTimer.unref();
  }

  private closeWatcher(): void {
    const watcher = this.watcher;
    this.watcher = null;
    // Its 'error' listener stays attached (and ignores it by generation), so a late error cannot go uncaught.
    watcher?.close();
  }
}

/** Tells a folder from one created later under the same path, even when the inode number was reused. */
function folderIdentity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.birthtimeNs}`;
}
