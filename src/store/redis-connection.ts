/**
 * One connection to a Redis deployment (a server, a Sentinel-managed master,
 * or a Cluster) through `@redis/client` (node-redis), as the Redis store
 * needs it: commands and Lua scripts that never hang, a health view, and
 * pub/sub subscriptions on connections of their own.
 *
 * Bounds, and why:
 * - Every command (and every Lua script) rejects with `STORE_IO`
 *   (retryable) when it has no answer within `commandTimeoutMs` (default
 *   5 s), counting the time spent waiting for a connection. The client's own
 *   offline queue is off (`disableOfflineQueue`): while the connection is
 *   down a command waits here, for the same deadline, not in an unbounded
 *   queue, and is never sent after its caller gave up. A command already
 *   sent when the server stalls (SIGSTOP, a network partition) may still run
 *   on the server after the caller got STORE_IO, as with any network store;
 *   the store's writes are fenced or idempotent for that reason.
 * - At most 10,000 commands wait for replies on one connection; beyond that
 *   a command rejects at once (a stalled server must not eat the memory).
 * - Reconnecting never gives up; attempts are 50 ms apart at first, doubling
 *   up to 2 s, plus up to 100 ms of jitter. A connect attempt times out after
 *   `commandTimeoutMs`.
 * - Replies use RESP2, which every Redis (and Valkey) speaks, so scripts'
 *   replies have one shape everywhere.
 *
 * Nothing here logs; errors and `health().error` are scrubbed of the
 * password and name the store by its `location` (no credentials).
 */
import { isIP } from '../ip.js';
import { createHash } from 'node:crypto';
import { createClient, createCluster, createSentinel, ErrorReply } from '@redis/client';
import { PadlockError, errorMessage } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import type { StoreHealth } from './store.js';
import type { RedisNodeAddress, RedisTarget } from './redis-url.js';

/** Default for `commandTimeoutMs`. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;
/** Default for `probeIntervalMs`. */
export const DEFAULT_PROBE_INTERVAL_MS = 5_000;
const MAX_QUEUED_COMMANDS = 10_000;
const READY_POLL_MS = 20;
const RESUBSCRIBE_SETTLE_MS = 100;

export interface RedisConnectionOptions {
  target: RedisTarget;
  /** PEM of the CA(s) to trust for TLS instead of Node's default roots (`--store-ca`). */
  ca?: string | undefined;
  /** See the file header. Default 5 s. */
  commandTimeoutMs?: number | undefined;
  /** How often a PING checks the connection while nothing else does, for `health()`. Default 5 s. */
  probeIntervalMs?: number | undefined;
  /** Stamps `health().since`. */
  clock?: Clock | undefined;
}

/** A Lua script, sent by SHA1 (EVALSHA) and by text only when the server does not have it yet. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

/** A script from its source. */
export function luaScript(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/** A subscription on a connection of its own; `close()` ends it and that connection. */
export interface Subscription {
  close(): Promise<void>;
}

/** What the store needs of a node-redis client, cluster or sentinel object. */
interface Backend {
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  send(firstKey: string | undefined, args: string[]): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/**
 * The connection. Construct, then `start()`; `close()` ends everything.
 * Health starts unreachable ("not connected yet") until the first success.
 */
export class RedisConnection {
  readonly location: string;
  private readonly target: RedisTarget;
  private readonly ca: string | undefined;
  private readonly commandTimeoutMs: number;
  private readonly probeIntervalMs: number;
  private readonly clock: Clock;
  private readonly backend: Backend;
  private readonly subscriptions = new Set<Subscription>();
  private readonly recoveryListeners = new Set<() => void>();
  private state: StoreHealth;
  private probe: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: RedisConnectionOptions) {
    this.target = options.target;
    this.location = options.target.location;
    this.ca = options.ca;
    this.commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.clock = options.clock ?? systemClock;
    this.state = { reachable: false, since: this.clock.now(), error: 'not connected yet' };
    this.backend = this.createBackend(false);
    this.backend.on('error', (err) => this.markDown(err));
    this.backend.on('ready', () => this.markUp());
  }

  /**
   * Starts connecting (and keeps reconnecting until `close()`), and resolves
   * once connected or after `commandTimeoutMs`, whichever comes first: a
   * store on an unreachable Redis still opens, reports itself unreachable,
   * and rejects commands with STORE_IO until Redis answers.
   */
  async start(): Promise<void> {
    void this.connectLoop(this.backend);
    this.probe = setInterval(() => void this.send(undefined, ['PING']).catch(() => undefined), this.probeIntervalMs);
    this.probe.unref();
    const deadline = Date.now() + this.commandTimeoutMs;
    while (!this.backend.isReady && Date.now() < deadline && !this.closing) await sleep(READY_POLL_MS);
    if (this.backend.isReady) this.markUp();
  }

  /** The connection's health (see CertStore.health). */
  health(): StoreHealth {
    return { ...this.state, since: new Date(this.state.since) };
  }

  /** Calls `listener` each time the connection is reachable again after it was not. */
  onRecovered(listener: () => void): () => void {
    this.recoveryListeners.add(listener);
    return () => this.recoveryListeners.delete(listener);
  }

  /**
   * Sends one command (routed by `firstKey` on a Cluster). Rejects with
   * STORE_IO when Redis cannot be reached or does not answer in time, or
   * refuses the command; with STORE_CORRUPT for WRONGTYPE (a key of
   * padlock's holds something padlock did not write).
   */
  async send<T = unknown>(firstKey: string | undefined, args: string[]): Promise<T> {
    try {
      return (await this.exec(firstKey, args)) as T;
    } catch (err) {
      throw this.translate(err);
    }
  }

  /** Runs a Lua script (EVALSHA, then EVAL when the server lacks it); errors as `send`. */
  async evalScript<T = unknown>(script: LuaScript, keys: string[], args: string[]): Promise<T> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      try {
        return (await this.exec(keys[0], ['EVALSHA', script.sha, ...tail])) as T;
      } catch (err) {
        if (!(err instanceof ErrorReply) || !err.message.startsWith('NOSCRIPT')) throw err;
        return (await this.exec(keys[0], ['EVAL', script.source, ...tail])) as T;
      }
    } catch (err) {
      throw this.translate(err);
    }
  }

  /**
   * Subscribes to `channel` on a connection of its own (so a subscription
   * never blocks commands), re-subscribing by itself after that connection
   * drops. `onResync` is called after the subscription was (or may have
   * been) interrupted and is back, since messages published meanwhile are
   * lost. The connection does not keep the process alive on a single
   * server; on Sentinel and Cluster it does until closed (node-redis has no
   * way to unref their connections).
   */
  subscribe(channel: string, onMessage: (message: string) => void, onResync: () => void): Subscription {
    const backend = this.createBackend(true);
    let interrupted = false;
    let closed = false;
    const resync = (): void => {
      if (closed) return;
      setTimeout(() => {
        if (!closed) onResync();
      }, RESUBSCRIBE_SETTLE_MS).unref();
    };
    backend.on('error', () => {
      interrupted = true;
    });
    backend.on('ready', () => {
      if (!interrupted) return;
      interrupted = false;
      resync();
    });
    const stopRecovery = this.onRecovered(resync);
    const subscribed = (async () => {
      await this.connectLoop(backend, () => closed);
      while (!closed) {
        try {
          await backend.subscribe(channel, (message) => onMessage(message));
          return;
        } catch {
          await sleep(500, false);
        }
      }
    })();
    const subscription: Subscription = {
      close: async () => {
        if (closed) return;
        closed = true;
        stopRecovery();
        this.subscriptions.delete(subscription);
        await closeBackend(backend, this.commandTimeoutMs);
        await subscribed.catch(() => undefined);
      },
    };
    this.subscriptions.add(subscription);
    return subscription;
  }

  /** Ends the subscriptions and the connection; commands then reject with STORE_IO. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.probe);
      for (const s of [...this.subscriptions]) await s.close();
      await closeBackend(this.backend, this.commandTimeoutMs);
    })();
    return this.closing;
  }

  // ---- internals ----

  private async exec(firstKey: string | undefined, args: string[]): Promise<unknown> {
    if (this.closing) throw this.storeIo('is closed (the store was closed in this process)', false);
    const deadline = Date.now() + this.commandTimeoutMs;
    while (!this.backend.isReady) {
      if (this.closing) throw this.storeIo('is closed (the store was closed in this process)', false);
      if (Date.now() >= deadline) {
        const why = this.state.error ? `: ${this.state.error}` : '';
        const err = this.storeIo(`cannot be reached (no connection within ${seconds(this.commandTimeoutMs)})${why}`, true);
        this.markDown(err);
        throw err;
      }
      await sleep(READY_POLL_MS);
    }
    const pending = this.backend.send(firstKey, args);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // The command may still be answered (or run) later; its outcome is
        // dropped, but an answer (an error reply too) proves Redis reachable again.
        pending.then(() => this.markUp(), (late: unknown) => {
          if (late instanceof ErrorReply) this.markUp();
        });
        const err = this.storeIo(`did not answer within ${seconds(this.commandTimeoutMs)}`, true);
        this.markDown(err);
        reject(err);
      }, Math.max(1, deadline - Date.now()));
    });
    try {
      const reply = await Promise.race([pending, timeout]);
      this.markUp();
      return reply;
    } finally {
      clearTimeout(timer);
    }
  }

  private translate(err: unknown): PadlockError {
    if (err instanceof PadlockError) return err;
    if (err instanceof ErrorReply) {
      const text = this.scrub(err.message);
      if (text.startsWith('WRONGTYPE')) {
        return new PadlockError('STORE_CORRUPT', `the Redis store ${this.location} holds a key of the wrong type where padlock keeps its data (${text}); remove it, or choose another --store-prefix`, { cause: err });
      }
      if (/^(WRONGPASS|NOAUTH|NOPERM)/.test(text)) {
        const e = this.storeIo(`refused padlock: ${text}; check the user and password in the store URL, and the user's ACL`, false, err);
        this.markDown(e);
        return e;
      }
      const busy = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM|MOVED|ASK)/.test(text);
      if (busy) this.markDown(err);
      return this.storeIo(`refused a command: ${text}`, busy, err);
    }
    const e = this.storeIo(`cannot be reached: ${this.scrub(errorMessage(err))}`, true, err);
    this.markDown(e);
    return e;
  }

  private storeIo(what: string, retryable: boolean, cause?: unknown): PadlockError<'STORE_IO'> {
    return new PadlockError('STORE_IO', `the Redis store ${this.location} ${what}`, {
      retryable,
      details: { store: this.location },
      ...(cause === undefined ? {} : { cause }),
    });
  }

  private markUp(): void {
    if (this.state.reachable || this.closing) return;
    this.state = { reachable: true, since: this.clock.now() };
    for (const listener of [...this.recoveryListeners]) {
      try {
        listener();
      } catch {
        // A recovery listener's failure must not break the connection.
      }
    }
  }

  private markDown(err: unknown): void {
    const error = this.scrub(err instanceof PadlockError ? err.message : errorMessage(err)) || 'connection error';
    if (this.state.reachable) this.state = { reachable: false, since: this.clock.now(), error };
    else this.state = { ...this.state, error };
  }

  /** Removes the password (and user name) from text that came from the client or the server. */
  private scrub(text: string): string {
    let out = text;
    for (const secret of [this.target.password, this.target.username]) {
      if (secret && secret.length >= 3) out = out.split(secret).join('…');
    }
    return out;
  }

  /** Connects `backend`, retrying (with backoff) when the attempt rejects, until connected or `stop()`. */
  private async connectLoop(backend: Backend, stop: () => boolean = () => this.closing !== undefined): Promise<void> {
    for (let attempt = 0; !stop(); attempt++) {
      try {
        await backend.connect();
        return;
      } catch (err) {
        if (backend === this.backend) this.markDown(err);
        await sleep(reconnectDelay(attempt), false);
      }
    }
  }

  private createBackend(forSubscription: boolean): Backend {
    const t = this.target;
    const credentials = { ...(t.username ? { username: t.username } : {}), ...(t.password ? { password: t.password } : {}) };
    const common = { RESP: 2 as const, disableOfflineQueue: true, commandsQueueMaxLength: MAX_QUEUED_COMMANDS };
    if (t.kind === 'single') {
      const client = createClient({ ...common, ...credentials, database: t.db, socket: this.socketOptions(t.node) });
      if (forSubscription) client.unref();
      return {
        get isReady() {
          return client.isReady;
        },
        connect: () => client.connect(),
        send: (_key, args) => client.sendCommand(args),
        subscribe: (channel, listener) => client.subscribe(channel, listener),
        close: () => client.close(),
        destroy: () => client.destroy(),
        on: (event, listener) => client.on(event, listener),
      };
    }
    if (t.kind === 'sentinel') {
      const node = { ...common, ...credentials, database: t.db, socket: this.socketOptions(undefined) };
      const sentinel = createSentinel({
        name: t.masterName,
        sentinelRootNodes: t.sentinels,
        RESP: 2,
        nodeClientOptions: node,
        sentinelClientOptions: { socket: this.socketOptions(undefined) },
      });
      return {
        get isReady() {
          return sentinel.isReady;
        },
        connect: () => sentinel.connect(),
        send: (_key, args) => sentinel.sendCommand(false, args),
        subscribe: (channel, listener) => sentinel.subscribe(channel, listener),
        close: () => sentinel.close(),
        destroy: () => sentinel.destroy(),
        on: (event, listener) => sentinel.on(event, listener),
      };
    }
    const cluster = createCluster({
      RESP: 2,
      rootNodes: t.nodes.map((n) => ({ socket: this.socketOptions(n) })),
      defaults: { ...common, ...credentials, socket: this.socketOptions(undefined) },
      ...(forSubscription ? { minimizeConnections: true } : {}),
    });
    return {
      get isReady() {
        return cluster.isReady;
      },
      connect: () => cluster.connect(),
      send: (key, args) => cluster.sendCommand(key, false, args),
      subscribe: (channel, listener) => cluster.subscribe(channel, listener),
      close: () => cluster.close(),
      destroy: () => cluster.destroy(),
      on: (event, listener) => cluster.on(event, listener),
    };
  }

  /** Socket options for one node (or, with `node` undefined, for nodes the client discovers). */
  private socketOptions(node: RedisNodeAddress | undefined) {
    const base = {
      ...(node ? { host: node.host, port: node.port } : {}),
      connectTimeout: this.commandTimeoutMs,
      reconnectStrategy: (retries: number) => reconnectDelay(retries),
    };
    if (!this.target.tls) return base;
    // A name is verified against the certificate; an IP literal against its IP SANs (Node refuses an IP as SNI).
    const servername = node && isIP(node.host) === 0 ? { servername: node.host } : {};
    return { ...base, tls: true as const, rejectUnauthorized: true, ...(this.ca ? { ca: this.ca } : {}), ...servername };
  }
}

function reconnectDelay(retries: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), 2_000) + Math.floor(Math.random() * 100);
}

async function closeBackend(backend: Backend, timeoutMs: number): Promise<void> {
  if (backend.isReady) {
    // The timer is cleared once close() settles: a pending one would keep a CLI process alive for timeoutMs.
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const graceful = await Promise.race([backend.close().then(() => true, () => false), expired]);
    clearTimeout(timer);
    if (graceful) return;
  }
  try {
    await backend.destroy();
  } catch {
    // Already closed, or never connected: nothing left to end.
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Resolves after `ms`. `keepAlive: false` for background loops, which must
 * not keep the process alive; a wait some caller awaits keeps it.
 */
function sleep(ms: number, keepAlive = true): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!keepAlive) timer.unref();
  });
}
