/**
 * The certificate store: the single source of truth for lineages, their
 * metadata and ACME accounts.
 *
 * A *lineage* is one certificate identity, named like certbot's `--cert-name`
 * (by default the first domain). Each successful issuance adds a new
 * *version* of the lineage; exactly one version is current.
 *
 * Contract (every implementation must pass test/contract/store.contract.ts):
 * - Missing items: `readLineage`, `readServing`, `readMeta`, `readAccount`
 *   and `readState` resolve `null` for a name or URL that was never written
 *   or was deleted. They never throw for "not found".
 * - Atomicity: `putVersion` makes all four PEMs of the new version current
 *   at once or not at all. A reader (or a process that crashed mid-write and
 *   restarted) sees either the complete old version or the complete new one,
 *   never a mix. Every other write replaces its item whole.
 * - Durability: a write that resolved survives a crash of the process.
 * - Locking: `lock(name)` is exclusive per lineage name across every process
 *   sharing the store. It waits up to `waitMs` (default 0: fail at once) and
 *   then rejects with `STORE_LOCKED`. A lock whose holder died is reclaimed.
 *   An aborted `signal` rejects the wait promptly. `updateState` is
 *   serialised per name too, independently of `lock(name)`.
 * - Fencing: a lock can be lost while its taker still works (its heartbeat
 *   stopped long enough for the lock to be judged stale, or it expired in
 *   Redis), so `putVersion(name, ..., { lock })` writes only while that lock
 *   is still held by its taker, and otherwise rejects with `STORE_LOCK_LOST`
 *   and changes nothing. See `PutVersionOptions.lock` for each store's
 *   guarantee.
 * - Health and lifetime: `health()` is the store's own synchronous view of
 *   whether it can reach its storage; `close()` releases its connections.
 * - Secrets: private keys are written readable by the owner only (fs), or
 *   encrypted with the store key before they leave the process (Redis).
 * - Names are validated lineage names (see `isValidLineageName`); any other
 *   string (or a non-string) rejects with `NAME_INVALID` before touching
 *   storage: it is a problem with the input, not with the store, so retrying
 *   cannot help. (`STORE_IO` means the storage itself failed.)
 * - Change notification: `watch` tells readers (the daemon) that a lineage's
 *   current version changed, whichever process changed it; best effort, so
 *   `currentVersions` is there to poll and compare. See both methods.
 */
import { PadlockError } from '../errors.js';
import type { DnsChallengeSettings } from '../dns/settings.js';

/** The four PEM files of one lineage version, as certbot names them. */
export interface CertBundle {
  /** The leaf certificate only. */
  cert: string;
  /** The intermediates, leaf excluded, in the order the CA sent them. */
  chain: string;
  /** cert + chain. */
  fullchain: string;
  /** The private key (PKCS#8 PEM). Never logged. */
  privkey: string;
}

/** What padlock needs to renew a lineage the way it was issued. Stored beside the lineage. */
export interface LineageMeta {
  /** The lineage (cert) name. */
  name: string;
  /** Every DNS name on the certificate, normalised, first one is the CN. */
  domains: string[];
  /** The ACME directory URL the lineage was issued from. */
  server: string;
  keyType: 'ecdsa' | 'rsa';
  /** Curve for ECDSA (`P-256`, `P-384`), ignored for RSA. */
  ellipticCurve?: string;
  /** Modulus bits for RSA, ignored for ECDSA. */
  rsaKeySize?: number;
  reuseKey?: boolean;
  challenge:
    | { type: 'standalone'; port: number; address?: string }
    | { type: 'webroot'; webroot: string }
    | DnsChallengeSettings
    /** TLS-ALPN-01 (RFC 8737): padlock's own TLS server on `port` (`padlock issue`), or the daemon's :443. */
    | { type: 'tls-alpn-01'; port: number; address?: string };
  email?: string;
  deployHook?: string;
  /** Extra trust anchors (file path) used to verify this lineage's chains. */
  trustedRoots?: string;
  /** PEM file (path) trusted for the ACME server's own HTTPS, for a private CA. */
  serverCa?: string;
  /** The account URL that ordered the current version (a CA accepts ARI `replaces` only from it). */
  accountUrl?: string;
  /** ACME profile to ask for when the CA offers it (draft-ietf-acme-profiles); falls back to the CA default. */
  profile?: string;
  /** ACME profile that must be used; the order fails when the CA does not offer it. */
  requiredProfile?: string;
  /** ISO time of the last successful issuance. */
  updatedAt: string;
  /**
   * What the current version's leaf says, recorded when it was stored, so a
   * reader that loads thousands of lineages parses no certificate. Trusted
   * only for the exact `fullchain` text it names (tls/leaf-facts.ts); absent
   * in stores written before it existed, and then the certificate is parsed.
   */
  leaf?: LeafFacts;
}

/** Facts about one version's leaf certificate, kept in its LineageMeta (see `LineageMeta.leaf`). */
export interface LeafFacts {
  /** Hex SHA-256 of the `fullchain` text these facts describe: facts stored beside other bytes are ignored. */
  fullchainSha256: string;
  /** ISO time. */
  notBefore: string;
  /** ISO time. */
  notAfter: string;
  /** Uppercase hex, as node:crypto's X509Certificate prints it. */
  serialNumber: string;
  /** SHA-256 fingerprint (colon hex) of the trust anchor the chain was verified to when it was stored, when it was verified. */
  anchorFingerprint256?: string;
}

/** A lineage as read from the store: its metadata and its current version. */
export interface Lineage {
  meta: LineageMeta;
  /** The current version number (1, 2, ...). */
  version: number;
  bundle: CertBundle;
  /** Where each PEM can be read by other programs, when the store is on disk. */
  paths?: { cert: string; chain: string; fullchain: string; privkey: string; dir: string };
}

/**
 * What serving a lineage needs, as `readServing` returns it: the metadata,
 * the current version number, and that version's fullchain and private key
 * (one version, never a mix of two).
 */
export interface ServingLineage {
  meta: LineageMeta;
  version: number;
  bundle: Pick<CertBundle, 'fullchain' | 'privkey'>;
}

/** An ACME account, stored per CA directory URL. */
export interface AccountRecord {
  directoryUrl: string;
  /** The account URL (`kid`) the CA returned, if registered. */
  accountUrl?: string;
  /** PKCS#8 PEM account key. Never logged. */
  keyPem: string;
  email?: string;
  createdAt: string;
}

/** Per-lineage operational state (failures, backoff, chosen renewal time). Free-form JSON owned by certificates/. */
export type LineageState = Record<string, unknown>;

/**
 * Releases a lock. Calling it twice is harmless. `fence` is an opaque token
 * that identifies this taking of the lock (no two takings share one); pass
 * the Unlock itself to `putVersion`'s `lock` option to fence the write. A
 * wrapper around an Unlock must carry `fence` over
 * (`Object.assign(wrapper, { fence: unlock.fence })`), or fenced writes with
 * it reject.
 */
export type Unlock = (() => Promise<void>) & { readonly fence?: string };

/** Options of `CertStore.putVersion`. */
export interface PutVersionOptions {
  /**
   * An Unlock from `lock(name)` on this same store (for this same name).
   * The write takes effect only if that lock is still held by that taking
   * at the moment of the write; otherwise (released, reclaimed as stale,
   * expired, taken by someone else since, or an Unlock without a `fence`)
   * putVersion rejects with `STORE_LOCK_LOST` and changes nothing. How exact
   * "at the moment" is depends on the store: memory and Redis check and
   * write atomically; the filesystem store checks the lock file right before
   * its one-rename switch (see FsStore.putVersion).
   */
  lock?: Unlock;
}

/** A store's own view of whether it can reach its storage (`CertStore.health`). Never holds a credential. */
export interface StoreHealth {
  /** False while the storage is known to be unreachable (Redis: connection down, or the last command failed to reach it). */
  reachable: boolean;
  /** When `reachable` last changed (or when the store was opened). */
  since: Date;
  /** Why it is unreachable (the last connection or command error), without credentials. Absent while reachable. */
  error?: string;
}

export interface LockOptions {
  /** How long to wait for a lock held by someone else. Default 0 (fail at once). */
  waitMs?: number;
  /** Aborting rejects the wait at once with `signal.reason`, without taking the lock; an already aborted signal rejects before trying. */
  signal?: AbortSignal;
}

export interface CertStore {
  /** Where the store lives, for messages (`/etc/padlock`, `memory`). */
  readonly location: string;

  /** Names of every lineage that has a current version, sorted. */
  listLineages(): Promise<string[]>;
  /** The lineage's metadata and current version, or null. */
  readLineage(name: string): Promise<Lineage | null>;
  /**
   * What serving the lineage needs (its metadata, current version number,
   * fullchain and private key), or null when it has no current version.
   * The same version and metadata `readLineage` would return, and the same
   * errors (`STORE_CORRUPT`, `STORE_IO`, `NAME_INVALID`), but it reads less:
   * no `cert.pem` and `chain.pem` (fs: one symlink read and three file reads;
   * Redis: one script that sends back only these fields). The daemon calls
   * it for every stored certificate at start.
   */
  readServing(name: string): Promise<ServingLineage | null>;
  /**
   * Stores a new version and makes it current atomically, together with its
   * metadata. Earlier versions stay available (certbot's `archive/`).
   * Resolves with the new version number. With `options.lock`, a fenced
   * write: rejects with `STORE_LOCK_LOST`, writing nothing, unless that lock
   * is still held (see PutVersionOptions).
   */
  putVersion(name: string, bundle: CertBundle, meta: LineageMeta, options?: PutVersionOptions): Promise<number>;
  /** Removes the lineage, all its versions, metadata and state. Missing is not an error. */
  deleteLineage(name: string): Promise<void>;

  readMeta(name: string): Promise<LineageMeta | null>;
  /** Replaces the lineage's metadata whole. */
  writeMeta(name: string, meta: LineageMeta): Promise<void>;

  readState(name: string): Promise<LineageState | null>;
  /** Replaces the lineage's operational state whole. Works before the first version exists. */
  writeState(name: string, state: LineageState): Promise<void>;
  /**
   * Read-modify-write of the lineage's state: `change` gets the current state
   * (null when none) and returns the next one, which is written whole.
   * Serialised with every other `updateState` for that name, in every process
   * sharing the store, so that writers of different keys (failures, ARI,
   * notifications, revocation) never lose each other's updates. Independent
   * of `lock(name)`, which the caller may hold. Resolves with the state written.
   *
   * `change` may be called more than once for one update (a store that
   * serialises with optimistic compare-and-set calls it again with the newer
   * state when another writer came first), so it must be a pure function of
   * its argument: only the call whose result was written counts.
   */
  updateState(name: string, change: (current: LineageState | null) => LineageState): Promise<LineageState>;

  readAccount(directoryUrl: string): Promise<AccountRecord | null>;
  /** Every stored account (keys decrypted), sorted by directory URL: for `padlock store copy`. */
  listAccounts(): Promise<AccountRecord[]>;
  /**
   * Every name that has a state, sorted: lineages, and padlock's own states
   * that belong to no lineage (the rate-limit ledger `padlock-governor`).
   * For `padlock store copy`.
   */
  listStates(): Promise<string[]>;
  /** Replaces the account for this directory URL whole. */
  writeAccount(record: AccountRecord): Promise<void>;

  /** Takes the exclusive lock for a lineage name. See the contract above. */
  lock(name: string, options?: LockOptions): Promise<Unlock>;

  /**
   * Every lineage that has a current version, mapped to that version
   * number, in name order. Cheap enough to poll every few seconds: it reads
   * no certificate and no metadata (fs: one readdir of `live/`, then one
   * readlink and one stat per entry). A periodic full re-read compares it
   * with what it last loaded, to catch any change `watch` missed.
   *
   * An entry that does not resolve to a complete version of this store (fs:
   * a dangling `live/NAME`, a certbot-style folder, a link that points
   * anywhere but `../archive/NAME/vN`) is left out, not thrown: one damaged
   * lineage must not hide the others. `readLineage(name)` still rejects
   * with `STORE_CORRUPT` for it. Rejects with `STORE_IO` only when the store
   * cannot be listed at all.
   */
  currentVersions(): Promise<Map<string, number>>;

  /**
   * Calls `listener(name)` soon (fs: within ~50 ms) after lineage `name`'s
   * current version changed (`putVersion`) or the lineage was deleted,
   * whether by this process or by another process sharing the store. By
   * the time the listener runs, `readLineage(name)` sees the change. Other
   * writes (`writeMeta`, `writeState`, `updateState`, accounts) are not
   * reported.
   *
   * Best effort: a call may be spurious (nothing changed, or one change
   * reported twice); several changes of one name may coalesce into one call;
   * and under extreme conditions (the watch mechanism failing or being
   * re-established, a lost connection, a change made before the
   * subscription was in place) a change may be missed. A caller that must
   * not miss a change calls `currentVersions()` after subscribing and then
   * periodically, and compares.
   *
   * Calls never happen synchronously inside `watch` or inside the store
   * method that made the change. A listener that throws, or returns a
   * promise that rejects, stays subscribed and affects neither the store nor
   * the other listeners: its error is dropped (the store has no logger), so
   * a listener that must report failures catches them itself.
   *
   * Returns the unsubscribe function: once it returned, that listener is
   * never called again; calling it twice is harmless. A subscription never
   * keeps the process alive (one exception: Redis Sentinel and Cluster, see
   * RedisStore.watch), and once the last one is gone the store holds no
   * watching resource (watcher, timer, connection) any more.
   */
  watch(listener: (name: string) => void): () => void;

  /**
   * The store's own view of whether it can reach its storage, synchronously
   * and without I/O: fs and memory are always reachable; Redis reports its
   * connection state and the last command's failure. Never contains a
   * password or key.
   */
  health(): StoreHealth;

  /**
   * Releases what the store holds open (Redis: its connections and its
   * subscription; fs and memory: nothing). Idempotent. Locks still held are
   * not released by it (Redis: they expire by their TTL). After close, every
   * method except `health`, `close` and unsubscribing rejects or does nothing.
   */
  close(): Promise<void>;
}

/**
 * The STORE_LOCK_LOST error every store throws for a fenced write whose lock
 * is no longer held: the same words everywhere, naming the certificate and
 * the store (`location` never holds credentials).
 */
export function lockLost(name: string, location: string): PadlockError<'STORE_LOCK_LOST'> {
  return new PadlockError(
    'STORE_LOCK_LOST',
    `certificate ${name} was not stored in ${location}: this process no longer holds its lock (it was released, judged stale or expired), so another process may hold it now; nothing was written`,
    { retryable: true, details: { name, store: location } },
  );
}

const LINEAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,252}$/;

/** Runs async sections one at a time per key, in call order, within this process. */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, section: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(section, section);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/**
 * Lineage names become folder names, so they are restricted to what a DNS
 * name (or certbot cert name) can hold: lowercase letters, digits, `.`, `-`
 * and `_`, starting with a letter or digit, with no `..`.
 */
export function isValidLineageName(name: string): boolean {
  return LINEAGE_NAME.test(name) && !name.includes('..') && !name.includes('/');
}

/**
 * Throws `NAME_INVALID` unless `name` is a valid lineage name. Stores call it
 * first in every name-taking method, so a bad name never reaches storage.
 */
export function checkLineageName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !isValidLineageName(name)) {
    throw new PadlockError(
      'NAME_INVALID',
      `${JSON.stringify(name)} is not a valid certificate name: use lowercase letters, digits, ".", "-" and "_", starting with a letter or digit, at most 253 characters`,
      { details: { name } },
    );
  }
}
