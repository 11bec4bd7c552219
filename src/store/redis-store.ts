/**
 * CertStore on Redis: one set of certificates shared by several padlock
 * replicas (and by one-off commands on other hosts). The keys and scripts
 * are in redis-scripts.ts, the connection (timeouts, reconnects, health,
 * pub/sub) in redis-connection.ts.
 *
 * How each part of the contract holds here:
 * - putVersion is one Lua script (atomic in Redis): it checks the fence,
 *   records version N, makes it current in `P lineages`, replaces the meta
 *   and publishes the name. A reader's one-script read sees all of it or
 *   none of it.
 * - Durability is Redis's own: a write is acknowledged once it is in
 *   memory; run Redis with AOF (`appendonly yes`) or replicas (Sentinel)
 *   if a Redis crash must not lose the last writes.
 * - Locks: `P lock:NAME` with a TTL (`lockTtlMs`, default 60 s), renewed
 *   every sixth of it while held; released only by its holder (token
 *   compared in Lua). A holder that dies loses the lock when the TTL runs
 *   out. Waiting polls every 50-100 ms.
 * - updateState: optimistic compare-and-set on a revision, in Lua, retried
 *   with fresh state when another writer came first (in this process the
 *   updates of one name also queue, so they do not race each other).
 * - Secrets: lineage private keys and account keys are sealed with
 *   AES-256-GCM under the store key (store-cipher.ts); a value that does not
 *   open is STORE_CORRUPT naming its key, never a crash.
 * - watch: pub/sub on `P changes` on a connection of its own; after that
 *   connection (or the store's) comes back from an outage, every lineage
 *   is reported once, since messages published meanwhile are lost.
 */
import { randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { PadlockError } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import { abortableDelay } from './abortable-delay.js';
import { ChangeFeed } from './change-feed.js';
import { RedisConnection, type Subscription } from './redis-connection.js';
import {
  DELETE_LINEAGE,
  PUT_VERSION,
  READ_LINEAGE,
  READ_SERVING,
  RELEASE_LOCK,
  RENEW_LOCK,
  TAKE_LOCK,
  WRITE_STATE,
  RedisKeys,
  accountId,
} from './redis-scripts.js';
import { StoreCipher } from './store-cipher.js';
export { DEFAULT_STORE_PREFIX, effectivePrefix } from './redis-prefix.js';
import {
  KeyedSerializer,
  checkLineageName,
  isValidLineageName,
  lockLost,
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
} from './store.js';

/** Default lock TTL: a holder that stopped renewing loses the lock after this. */
export const DEFAULT_LOCK_TTL_MS = 60_000;
/** How often putVersion retries when another writer took its version number (only writers without the lock race). */
const PUT_ATTEMPTS = 10;
/** How often updateState retries its compare-and-set before giving up with STORE_LOCKED. */
const STATE_ATTEMPTS = 50;
const LOCK_POLL_MS = 50;

export interface RedisStoreOptions {
  /** The open connection (see openRedisStore in open-store.ts). */
  connection: RedisConnection;
  /** The 32-byte store key that seals private keys. */
  key: Buffer;
  /** Key prefix, already made Cluster-safe by `effectivePrefix`. */
  prefix: string;
  /** Stamps lock holders (`since`). */
  clock?: Clock | undefined;
  /** Lock TTL (default 60 s); the heartbeat renews every sixth of it. Tests shorten it. */
  lockTtlMs?: number | undefined;
}

interface LockHolder {
  token: string;
  pid: number;
  hostname: string;
  since: string;
}

interface StoredVersion {
  cert: string;
  chain: string;
  fullchain: string;
  privkey: string;
  meta: LineageMeta;
}

/** CertStore on Redis. Open it with `openStore` / `openRedisStore` (open-store.ts). */
export class RedisStore implements CertStore {
  readonly location: string;
  private readonly conn: RedisConnection;
  private readonly cipher: StoreCipher;
  private readonly keys: RedisKeys;
  private readonly clock: Clock;
  private readonly lockTtlMs: number;
  private readonly stateQueue = new KeyedSerializer();
  private readonly changes: ChangeFeed;
  private readonly heartbeats = new Set<NodeJS.Timeout>();
  private subscription: Subscription | undefined;
  private closed = false;

  constructor(options: RedisStoreOptions) {
    this.conn = options.connection;
    this.location = this.conn.location;
    this.cipher = new StoreCipher(options.key);
    this.keys = new RedisKeys(options.prefix);
    this.clock = options.clock ?? systemClock;
    this.lockTtlMs = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS;
    this.changes = new ChangeFeed({
      onFirstListener: () => this.startWatching(),
      onLastListener: () => this.stopWatching(),
    });
  }

  /** HKEYS of `P lineages`: one command, no certificate read. */
  async listLineages(): Promise<string[]> {
    const names = await this.conn.send<string[]>(this.keys.lineages, ['HKEYS', this.keys.lineages]);
    return names.filter(isValidLineageName).sort();
  }

  async readLineage(name: string): Promise<Lineage | null> {
    checkLineageName(name);
    const reply = await this.conn.evalScript<[string, string | null, string | null] | null>(
      READ_LINEAGE,
      [this.keys.lineages, this.keys.lineage(name), this.keys.meta(name)],
      [name],
    );
    if (reply === null) return null;
    const [versionText, recordText, metaText] = reply;
    return this.lineageFrom(name, versionText, recordText, metaText);
  }

  /** One script (READ_SERVING) that sends back the fullchain, the sealed key and the meta only. */
  async readServing(name: string): Promise<ServingLineage | null> {
    checkLineageName(name);
    const reply = await this.conn.evalScript<[string, string, string | null, string | null, string | null] | null>(
      READ_SERVING,
      [this.keys.lineages, this.keys.lineage(name), this.keys.meta(name)],
      [name],
    );
    if (reply === null) return null;
    const [versionText, mode, fullchain, sealed, metaText] = reply;
    if (mode !== 'p' || fullchain === null || sealed === null || metaText === null) {
      // A damaged or older record: readLineage's checks say what is wrong, or use the record's own meta.
      const lineage = this.lineageFrom(name, versionText, fullchain, metaText);
      return { meta: lineage.meta, version: lineage.version, bundle: { fullchain: lineage.bundle.fullchain, privkey: lineage.bundle.privkey } };
    }
    const version = this.versionOf(name, versionText);
    const privkey = this.openSecret(sealed, privkeyLabel(name, version), `the private key of ${name} version ${version} (${this.keys.lineage(name)} field v${versionText})`);
    const meta = this.parse(metaText, this.keys.meta(name)) as LineageMeta;
    if (typeof meta !== 'object' || meta === null) throw this.corrupt(`${name} has no metadata: ${this.keys.meta(name)} is missing`);
    return { meta, version, bundle: { fullchain, privkey } };
  }

  /** The version number a reply names; STORE_CORRUPT when it is not one. */
  private versionOf(name: string, versionText: string): number {
    const version = Number(versionText);
    if (!Number.isSafeInteger(version) || version < 1) throw this.corrupt(`${this.keys.lineages} holds ${JSON.stringify(versionText)} as the current version of ${name}, not a version number`);
    return version;
  }

  /** A lineage from READ_LINEAGE's pieces, each checked: a damaged one is STORE_CORRUPT naming its key. */
  private lineageFrom(name: string, versionText: string, recordText: string | null, metaText: string | null): Lineage {
    const version = this.versionOf(name, versionText);
    const where = `${this.keys.lineage(name)} field v${versionText}`;
    if (recordText === null) throw this.corrupt(`${this.keys.lineages} says version ${version} of ${name} is current, but ${where} is missing`);
    const record = this.parse(recordText, where) as Partial<StoredVersion>;
    if (typeof record !== 'object' || record === null || !(['cert', 'chain', 'fullchain', 'privkey'] as const).every((k) => typeof record[k] === 'string')) {
      throw this.corrupt(`${where} is not a stored certificate version`);
    }
    const privkey = this.openSecret(record.privkey!, privkeyLabel(name, version), `the private key of ${name} version ${version} (${where})`);
    const meta = metaText === null ? record.meta : (this.parse(metaText, this.keys.meta(name)) as LineageMeta);
    if (typeof meta !== 'object' || meta === null) throw this.corrupt(`${name} has no metadata: ${this.keys.meta(name)} is missing`);
    return { meta, version, bundle: { cert: record.cert!, chain: record.chain!, fullchain: record.fullchain!, privkey } };
  }

  /**
   * Two round trips: read the last version number, then one script that
   * checks the fence and the number and writes everything (the private key
   * is sealed for its version number, which must be known before the
   * script runs). See the file header.
   */
  async putVersion(name: string, bundle: CertBundle, meta: LineageMeta, options: PutVersionOptions = {}): Promise<number> {
    checkLineageName(name);
    const { lock } = options;
    if (lock !== undefined && lock.fence === undefined) throw lockLost(name, this.location);
    const fence = lock?.fence ?? '';
    const metaJson = JSON.stringify(meta);
    const lineageKey = this.keys.lineage(name);
    for (let attempt = 0; attempt < PUT_ATTEMPTS; attempt++) {
      const last = Number((await this.conn.send<string | null>(lineageKey, ['HGET', lineageKey, 'last'])) ?? 0);
      const version = (Number.isSafeInteger(last) && last > 0 ? last : 0) + 1;
      const record: StoredVersion = {
        cert: bundle.cert,
        chain: bundle.chain,
        fullchain: bundle.fullchain,
        privkey: this.cipher.seal(bundle.privkey, privkeyLabel(name, version)),
        meta: JSON.parse(metaJson) as LineageMeta,
      };
      const [outcome] = await this.conn.evalScript<[string, string?]>(
        PUT_VERSION,
        [this.keys.lineages, lineageKey, this.keys.meta(name), this.keys.lock(name)],
        [name, String(version), JSON.stringify(record), metaJson, fence, this.keys.channel],
      );
      if (outcome === 'lost') throw lockLost(name, this.location);
      if (outcome === 'ok') {
        // Reported directly too, so this process hears of it even while the subscription is down.
        this.changes.changed(name);
        return version;
      }
    }
    throw new PadlockError('STORE_LOCKED', `certificate ${name}: another writer stored a version at the same moment ${PUT_ATTEMPTS} times in a row in ${this.location}; hold lock(${name}) around putVersion`, {
      retryable: true,
      details: { name, store: this.location },
    });
  }

  async deleteLineage(name: string): Promise<void> {
    checkLineageName(name);
    const existed = await this.conn.evalScript<number>(
      DELETE_LINEAGE,
      [this.keys.lineages, this.keys.lineage(name), this.keys.meta(name), this.keys.state(name), this.keys.states],
      [name, this.keys.channel],
    );
    if (existed === 1) this.changes.changed(name);
  }

  async readMeta(name: string): Promise<LineageMeta | null> {
    checkLineageName(name);
    const text = await this.conn.send<string | null>(this.keys.meta(name), ['GET', this.keys.meta(name)]);
    return text === null ? null : (this.parseObject(text, this.keys.meta(name)) as unknown as LineageMeta);
  }

  async writeMeta(name: string, meta: LineageMeta): Promise<void> {
    checkLineageName(name);
    await this.conn.send(this.keys.meta(name), ['SET', this.keys.meta(name), JSON.stringify(meta)]);
  }

  async readState(name: string): Promise<LineageState | null> {
    checkLineageName(name);
    return (await this.readStateWithRevision(name)).state;
  }

  async writeState(name: string, state: LineageState): Promise<void> {
    checkLineageName(name);
    await this.conn.evalScript(WRITE_STATE, [this.keys.state(name), this.keys.states], ['', JSON.stringify(state), name]);
  }

  /**
   * Compare-and-set on `rev`: read state and revision, run `change`, write
   * only if the revision is unchanged, else run `change` again on the newer
   * state (up to 50 times, then STORE_LOCKED). Writers in this process
   * queue per name first, so they never make each other retry.
   */
  async updateState(name: string, change: (current: LineageState | null) => LineageState): Promise<LineageState> {
    checkLineageName(name);
    return this.stateQueue.run(name, async () => {
      for (let attempt = 0; attempt < STATE_ATTEMPTS; attempt++) {
        const { state, revision } = await this.readStateWithRevision(name);
        const body = JSON.stringify(change(state));
        const written = await this.conn.evalScript<number | null>(WRITE_STATE, [this.keys.state(name), this.keys.states], [revision, body, name]);
        if (written !== null) return JSON.parse(body) as LineageState;
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * (5 + attempt * 5))));
      }
      throw new PadlockError('STORE_LOCKED', `the state of ${name} in ${this.location} changed under padlock ${STATE_ATTEMPTS} times in a row; too many processes update it at once, try again`, {
        retryable: true,
        details: { name, store: this.location },
      });
    });
  }

  async readAccount(directoryUrl: string): Promise<AccountRecord | null> {
    const key = this.keys.account(directoryUrl);
    const text = await this.conn.send<string | null>(key, ['GET', key]);
    if (text === null) return null;
    const record = this.parseObject(text, key) as unknown as AccountRecord;
    if (record.directoryUrl !== directoryUrl || typeof record.keyPem !== 'string') throw this.corrupt(`${key} does not hold the account for ${directoryUrl}`);
    return { ...record, keyPem: this.openSecret(record.keyPem, accountLabel(directoryUrl), `the account key for ${directoryUrl} (${key})`) };
  }

  async writeAccount(record: AccountRecord): Promise<void> {
    const key = this.keys.account(record.directoryUrl);
    const sealed = { ...record, keyPem: this.cipher.seal(record.keyPem, accountLabel(record.directoryUrl)) };
    // The index first: a crash in between leaves an entry listAccounts skips, never an account it cannot list.
    await this.conn.send(this.keys.accounts, ['SADD', this.keys.accounts, record.directoryUrl]);
    await this.conn.send(key, ['SET', key, JSON.stringify(sealed)]);
  }

  async listAccounts(): Promise<AccountRecord[]> {
    const urls = (await this.conn.send<string[]>(this.keys.accounts, ['SMEMBERS', this.keys.accounts])).sort();
    const out: AccountRecord[] = [];
    for (const url of urls) {
      const record = await this.readAccount(url);
      if (record) out.push(record);
    }
    return out;
  }

  async listStates(): Promise<string[]> {
    const names = await this.conn.send<string[]>(this.keys.states, ['SMEMBERS', this.keys.states]);
    return names.filter((n) => isValidLineageName(n)).sort();
  }

  /**
   * `P lock:NAME` (see the file header). STORE_LOCKED names the holder
   * (pid, host, since when). The Unlock never rejects: when Redis cannot be
   * reached to release the lock, it expires by its TTL.
   */
  async lock(name: string, options: LockOptions = {}): Promise<Unlock> {
    checkLineageName(name);
    const { waitMs = 0, signal } = options;
    signal?.throwIfAborted();
    const key = this.keys.lock(name);
    const holder: LockHolder = { token: randomBytes(16).toString('hex'), pid: process.pid, hostname: osHostname(), since: this.clock.now().toISOString() };
    const ttl = String(this.lockTtlMs);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const [taken, heldBy, expiresInMs] = await this.conn.evalScript<[number, string?, number?]>(TAKE_LOCK, [key], [JSON.stringify(holder), ttl]);
      if (signal?.aborted) {
        if (taken === 1) await this.release(key, holder.token);
        throw signal.reason;
      }
      if (taken === 1) break;
      const left = deadline - Date.now();
      if (left <= 0) throw this.locked(name, key, heldBy, expiresInMs);
      await abortableDelay(Math.min(left, LOCK_POLL_MS + Math.floor(Math.random() * LOCK_POLL_MS)), signal);
    }
    const heartbeat = setInterval(() => {
      this.conn.evalScript<number>(RENEW_LOCK, [key], [holder.token, ttl]).then((held) => {
        // Lost (expired and perhaps taken by another): stop renewing; fenced writes with it now fail.
        if (held === 0) this.stopHeartbeat(heartbeat);
      }, () => undefined);
    }, Math.max(10, Math.floor(this.lockTtlMs / 6)));
    heartbeat.unref();
    this.heartbeats.add(heartbeat);
    let released = false;
    const unlock = async (): Promise<void> => {
      if (released) return;
      released = true;
      this.stopHeartbeat(heartbeat);
      await this.release(key, holder.token);
    };
    return Object.assign(unlock, { fence: holder.token });
  }

  /** HGETALL of `P lineages`: one round trip. Entries that are not a valid name and version number are left out. */
  async currentVersions(): Promise<Map<string, number>> {
    const flat = await this.conn.send<string[]>(this.keys.lineages, ['HGETALL', this.keys.lineages]);
    const entries: [string, number][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = flat[i]!;
      const version = Number(flat[i + 1]);
      if (isValidLineageName(name) && Number.isSafeInteger(version) && version > 0) entries.push([name, version]);
    }
    return new Map(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  /**
   * See CertStore.watch: pub/sub on `P changes`, on a connection opened
   * with the first listener and closed after the last. After that
   * connection (or the store's) was interrupted and is back, every
   * lineage is reported once (a deletion during the gap is not). This
   * process's own putVersion and deleteLineage are also reported directly.
   * On one server the subscription never keeps the process alive; on
   * Sentinel and Cluster its connection does, until the last listener
   * unsubscribed or `close()` (node-redis cannot unref those).
   */
  watch(listener: (name: string) => void): () => void {
    return this.changes.subscribe(listener);
  }

  health(): StoreHealth {
    return this.conn.health();
  }

  /** Stops lock heartbeats (held locks then expire by their TTL) and ends the connections. */
  async close(): Promise<void> {
    this.closed = true;
    for (const h of [...this.heartbeats]) this.stopHeartbeat(h);
    this.stopWatching();
    await this.conn.close();
  }

  // ---- internals ----

  private async readStateWithRevision(name: string): Promise<{ state: LineageState | null; revision: string }> {
    const key = this.keys.state(name);
    const [revision, body] = await this.conn.send<[string | null, string | null]>(key, ['HMGET', key, 'rev', 'body']);
    return { state: body === null ? null : this.parseObject(body, key), revision: revision ?? '0' };
  }

  private startWatching(): void {
    if (this.closed || this.subscription) return;
    this.subscription = this.conn.subscribe(
      this.keys.channel,
      (name) => {
        if (isValidLineageName(name)) this.changes.changed(name);
      },
      () => void this.reportAll(),
    );
  }

  private stopWatching(): void {
    const s = this.subscription;
    this.subscription = undefined;
    void s?.close();
  }

  /** Reports every current lineage once, after messages may have been missed. */
  private async reportAll(): Promise<void> {
    const versions = await this.currentVersions().catch(() => new Map<string, number>());
    for (const name of versions.keys()) this.changes.changed(name);
  }

  private stopHeartbeat(timer: NodeJS.Timeout): void {
    clearInterval(timer);
    this.heartbeats.delete(timer);
  }

  private async release(key: string, token: string): Promise<void> {
    await this.conn.evalScript(RELEASE_LOCK, [key], [token]).catch(() => undefined);
  }

  private locked(name: string, key: string, heldBy: string | undefined, expiresInMs: number | undefined): PadlockError<'STORE_LOCKED'> {
    let holder: Partial<LockHolder> = {};
    try {
      holder = heldBy ? (JSON.parse(heldBy) as Partial<LockHolder>) : {};
    } catch {
      // An unreadable holder is still a holder; it is named as "another process".
    }
    // The holder's own TTL, not ours: replicas may be configured differently.
    const expires = typeof expiresInMs === 'number' && expiresInMs > 0 ? `, which expires in ${(expiresInMs / 1000).toFixed(1)} s unless its holder renews it` : '';
    const who = typeof holder.pid === 'number' ? `process ${holder.pid} on ${holder.hostname ?? 'an unknown host'} since ${holder.since ?? 'an unknown time'}` : 'another process';
    return new PadlockError(
      'STORE_LOCKED',
      `certificate ${name} is being worked on by ${who} (lock ${key} in ${this.location}${expires}); wait and try again`,
      { retryable: true, details: { name, store: this.location, lockKey: key, ...(typeof holder.pid === 'number' ? { pid: holder.pid, hostname: holder.hostname, since: holder.since } : {}) } },
    );
  }

  private openSecret(sealed: string, label: string, what: string): string {
    const opened = this.cipher.open(sealed, label);
    if (opened.ok) return opened.value;
    const why = opened.why === 'unknown-format'
      ? 'is not sealed in a format this padlock knows (written in clear by something else, or by a newer padlock)'
      : 'does not decrypt with the store key: the key is not the one it was written with (--store-key-file, PADLOCK_STORE_KEY), or the value was changed';
    throw new PadlockError('STORE_CORRUPT', `${what} in ${this.location} ${why}`, { details: { store: this.location } });
  }

  private corrupt(message: string): PadlockError<'STORE_CORRUPT'> {
    return new PadlockError('STORE_CORRUPT', `${message} in ${this.location}; repair or remove it`, { details: { store: this.location } });
  }

  private parse(text: string, key: string): unknown {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new PadlockError('STORE_CORRUPT', `${key} in ${this.location} is not valid JSON; repair or remove it`, { cause: err, details: { store: this.location } });
    }
  }

  private parseObject(text: string, key: string): Record<string, unknown> {
    const value = this.parse(text, key);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.corrupt(`${key} does not hold a JSON object`);
    return value as Record<string, unknown>;
  }
}

/** The additional authenticated data of a lineage version's private key. */
function privkeyLabel(name: string, version: number): string {
  return `lineage:${name}:v${version}:privkey`;
}

/** The additional authenticated data of an account's key. */
function accountLabel(directoryUrl: string): string {
  return `account:${accountId(directoryUrl)}:keyPem`;
}
