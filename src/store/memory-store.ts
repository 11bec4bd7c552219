/**
 * An in-memory CertStore for `--dry-run` and tests. Same contract as the
 * filesystem store, within one process: every read and write deep-copies, so
 * no caller can change stored state by mutating an object it passed or got.
 */
import { randomBytes } from 'node:crypto';
import { PadlockError } from '../errors.js';
import { ChangeFeed } from './change-feed.js';
import {
  checkLineageName,
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
  lockLost,
} from './store.js';

interface StoredLineage {
  /** Every version ever stored; index = version - 1. */
  versions: CertBundle[];
  current: number;
}

/** CertStore that lives and dies with the process. Locks are exclusive within the process. */
export class MemoryStore implements CertStore {
  readonly location = 'memory';
  private readonly lineages = new Map<string, StoredLineage>();
  private readonly metas = new Map<string, LineageMeta>();
  private readonly states = new Map<string, LineageState>();
  private readonly accounts = new Map<string, AccountRecord>();
  /** name -> the token (fence) of the holder. */
  private readonly locks = new Map<string, string>();
  /** Wakes every waiter for a name when its lock is released. */
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Only this process writes a memory store, so its own writes are the whole change source. */
  private readonly changes = new ChangeFeed();
  private readonly openedAt = new Date();

  async listLineages(): Promise<string[]> {
    return [...this.lineages.keys()].sort();
  }

  async readLineage(name: string): Promise<Lineage | null> {
    checkLineageName(name);
    const l = this.lineages.get(name);
    const meta = this.metas.get(name);
    if (!l) return null;
    const bundle = l.versions[l.current - 1];
    if (!bundle || !meta) throw new PadlockError('STORE_CORRUPT', `memory store: lineage ${name} has no current version or metadata`);
    return { meta: structuredClone(meta), version: l.current, bundle: structuredClone(bundle) };
  }

  async readServing(name: string): Promise<ServingLineage | null> {
    const lineage = await this.readLineage(name);
    return lineage && { meta: lineage.meta, version: lineage.version, bundle: { fullchain: lineage.bundle.fullchain, privkey: lineage.bundle.privkey } };
  }

  /** With `options.lock`, the fence is checked and the version stored with no await in between: exact. */
  async putVersion(name: string, bundle: CertBundle, meta: LineageMeta, options: PutVersionOptions = {}): Promise<number> {
    checkLineageName(name);
    const { lock } = options;
    if (lock !== undefined && (lock.fence === undefined || this.locks.get(name) !== lock.fence)) throw lockLost(name, this.location);
    const l = this.lineages.get(name) ?? { versions: [], current: 0 };
    // Copy both before touching state, so a bad value (e.g. not cloneable) changes nothing.
    const b = structuredClone(bundle);
    const m = structuredClone(meta);
    l.versions.push(b);
    l.current = l.versions.length;
    this.lineages.set(name, l);
    this.metas.set(name, m);
    this.changes.changed(name);
    return l.current;
  }

  async deleteLineage(name: string): Promise<void> {
    checkLineageName(name);
    const existed = this.lineages.delete(name);
    this.metas.delete(name);
    this.states.delete(name);
    if (existed) this.changes.changed(name);
  }

  async currentVersions(): Promise<Map<string, number>> {
    return new Map([...this.lineages.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, l]) => [name, l.current]));
  }

  /** Reports this store's own putVersion and deleteLineage, on a timer after the write resolved. */
  watch(listener: (name: string) => void): () => void {
    return this.changes.subscribe(listener);
  }

  async readMeta(name: string): Promise<LineageMeta | null> {
    checkLineageName(name);
    const m = this.metas.get(name);
    return m ? structuredClone(m) : null;
  }

  async writeMeta(name: string, meta: LineageMeta): Promise<void> {
    checkLineageName(name);
    this.metas.set(name, structuredClone(meta));
  }

  async readState(name: string): Promise<LineageState | null> {
    checkLineageName(name);
    const s = this.states.get(name);
    return s ? structuredClone(s) : null;
  }

  async writeState(name: string, state: LineageState): Promise<void> {
    checkLineageName(name);
    this.states.set(name, structuredClone(state));
  }

  async updateState(name: string, change: (current: LineageState | null) => LineageState): Promise<LineageState> {
    checkLineageName(name);
    // Read, change and write with no await in between: nothing else can interleave.
    const current = this.states.get(name);
    const next = structuredClone(change(current ? structuredClone(current) : null));
    this.states.set(name, next);
    return structuredClone(next);
  }

  async readAccount(directoryUrl: string): Promise<AccountRecord | null> {
    const a = this.accounts.get(directoryUrl);
    return a ? structuredClone(a) : null;
  }

  async listAccounts(): Promise<AccountRecord[]> {
    return [...this.accounts.values()].map((a) => structuredClone(a)).sort((a, b) => a.directoryUrl.localeCompare(b.directoryUrl));
  }

  async listStates(): Promise<string[]> {
    return [...this.states.keys()].sort();
  }

  async writeAccount(record: AccountRecord): Promise<void> {
    this.accounts.set(record.directoryUrl, structuredClone(record));
  }

  /** Exclusive within this process; waiters wake on release rather than poll. Abort rejects with `signal.reason`. */
  async lock(name: string, options: LockOptions = {}): Promise<Unlock> {
    checkLineageName(name);
    const { waitMs = 0, signal } = options;
    signal?.throwIfAborted();
    const deadline = Date.now() + waitMs;
    while (this.locks.has(name)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new PadlockError('STORE_LOCKED', `certificate ${name} is being worked on in this process (memory store); wait and try again`, {
          retryable: true,
          details: { name },
        });
      }
      await this.waitForRelease(name, left, signal);
    }
    const token = randomBytes(12).toString('hex');
    this.locks.set(name, token);
    let released = false;
    const unlock = async (): Promise<void> => {
      if (released) return;
      released = true;
      if (this.locks.get(name) !== token) return;
      this.locks.delete(name);
      for (const wake of this.waiters.get(name) ?? []) wake();
    };
    return Object.assign(unlock, { fence: token });
  }

  /** Always reachable. */
  health(): StoreHealth {
    return { reachable: true, since: new Date(this.openedAt) };
  }

  /** Nothing to release. */
  async close(): Promise<void> {}

  private waitForRelease(name: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      let set = this.waiters.get(name);
      if (!set) this.waiters.set(name, (set = new Set()));
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(wake);
        if (waiters.size === 0) this.waiters.delete(name);
        signal?.removeEventListener('abort', onAbort);
      };
      const wake = (): void => {
        done();
        resolve();
      };
      const onAbort = (): void => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(wake, ms);
      waiters.add(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
