/**
 * Keeps a DesiredState in step with a Docker daemon, level-triggered.
 *
 * Like Traefik's Docker provider: subscribe to events, list everything, build
 * the whole state; on every relevant event wait a moment (so a burst of
 * events costs one listing) and list everything again. An unchanged state is
 * dropped. When the stream drops or the daemon restarts, nothing is emitted
 * (consumers keep serving the last good state), and the watcher reconnects
 * with backoff, resubscribes from the last event's second and lists again:
 * a reconnect is just one more listing.
 */
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from '../clock.js';
import { errorMessage } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { sameDesiredState, type DesiredState } from '../state/desired-state.js';
import type { ContainerInfo } from './container.js';
import type { DockerEvent, DockerSource } from './client.js';
import { buildDesiredState, type DiscoveryOptions } from './labels.js';

/** Timers the watcher uses; tests may pass fakes. */
export interface WatcherTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface DockerWatcherOptions {
  source: DockerSource;
  discovery: DiscoveryOptions;
  logger?: Logger;
  /** Wait after the first event of a burst before listing again (default 200 ms). */
  debounceMs?: number;
  /** First reconnect delay, doubled on each failure (default 250 ms). */
  backoffInitialMs?: number;
  /** Longest reconnect delay (default 5 000 ms). */
  backoffMaxMs?: number;
  timers?: WatcherTimers;
  /** For `lastListedAt` on the status (default the system clock). */
  clock?: Clock;
  /** Build function, for tests that want to see exactly what was listed (default buildDesiredState). */
  build?: (containers: ContainerInfo[], options: DiscoveryOptions) => DesiredState;
}

/** Events a DockerWatcher emits. */
export interface DockerWatcherEvents {
  /** A complete new state: on the first listing, then whenever it differs from the last one emitted. */
  state: [state: DesiredState];
  /** Subscribed and listed (at start, and after every reconnect). */
  connected: [];
  /** The daemon could not be reached or the stream dropped; the last state still stands. Repeats per failed attempt. */
  disconnected: [error: Error, info: { attempt: number; retryInMs: number }];
}

/** For the status page. */
export interface DockerWatcherStatus {
  connected: boolean;
  lastError?: string;
  /** Time (daemon seconds) of the last event seen. */
  lastEventTime?: number;
  /** When the last state was built, ISO 8601. */
  lastListedAt?: string;
}

const CONTAINER_ACTIONS = new Set(['start', 'die', 'stop', 'destroy', 'rename', 'kill', 'pause', 'unpause']);
const NETWORK_ACTIONS = new Set(['connect', 'disconnect']);

/** True for the events that can change what padlock routes. */
export function isRelevantEvent(e: DockerEvent): boolean {
  if (e.type === 'container') return CONTAINER_ACTIONS.has(e.action) || e.action.startsWith('health_status');
  if (e.type === 'network') return NETWORK_ACTIONS.has(e.action);
  return false;
}

const realTimers: WatcherTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/**
 * Watches one daemon and emits the whole DesiredState. `start()` returns at
 * once; states and status arrive as events. `stop()` cancels the stream, any
 * pending listing wait and backoff timer, and resolves once nothing is left
 * running. Not restartable after stop().
 */
export class DockerWatcher extends EventEmitter<DockerWatcherEvents> {
  private readonly source: DockerSource;
  private readonly discovery: DiscoveryOptions;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly timers: WatcherTimers;
  private readonly clock: Clock;
  private readonly build: NonNullable<DockerWatcherOptions['build']>;

  private running = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private stopCtl = new AbortController();
  private last: DesiredState | undefined;
  private st: DockerWatcherStatus = { connected: false };
  /** Keys of events at `lastEventTime`, so the replay after `since` is not counted twice. */
  private seenAtLast = new Set<string>();
  private debounceTimer: unknown;
  private sleepTimer: unknown;
  private sleepWake: (() => void) | undefined;
  /** Aborts with the current connection, so a listing never outlives it (or stop()). */
  private connSignal: AbortSignal = AbortSignal.abort();

  constructor(options: DockerWatcherOptions) {
    super();
    this.source = options.source;
    this.discovery = options.discovery;
    this.log = (options.logger ?? silentLogger).child({ component: 'docker' });
    this.debounceMs = options.debounceMs ?? 200;
    this.backoffInitialMs = options.backoffInitialMs ?? 250;
    this.backoffMaxMs = options.backoffMaxMs ?? 5_000;
    this.timers = options.timers ?? realTimers;
    this.clock = options.clock ?? systemClock;
    this.build = options.build ?? buildDesiredState;
  }

  /** The last state emitted, if any. */
  get current(): DesiredState | undefined {
    return this.last;
  }

  status(): DockerWatcherStatus {
    return { ...this.st };
  }

  /** Starts watching; idempotent. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.loop = this.run().catch((e: unknown) => {
      // run() handles its own errors; this is a bug guard, never a silent death.
      this.log.error('docker watcher stopped unexpectedly', { error: errorMessage(e) });
    });
  }

  /** Stops watching and waits until the stream, timers and listing are gone. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCtl.abort();
    this.clearDebounce();
    if (this.sleepTimer !== undefined) this.timers.clearTimeout(this.sleepTimer);
    this.sleepTimer = undefined;
    this.sleepWake?.();
    await this.loop;
    await this.refreshing?.catch(() => {});
    this.running = false;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const conn = new AbortController();
      this.connSignal = conn.signal;
      const onStop = (): void => conn.abort();
      this.stopCtl.signal.addEventListener('abort', onStop, { once: true });
      let failConn!: (e: Error) => void;
      const failed = new Promise<never>((_, rej) => (failConn = rej));
      failed.catch(() => {}); // observed through the race below
      try {
        let opened!: () => void;
        const open = new Promise<void>((r) => (opened = r));
        const since = this.st.lastEventTime;
        const ended = this.source.events(
          { ...(since !== undefined ? { since } : {}), signal: conn.signal, onOpen: () => opened() },
          (e) => this.onEvent(e, failConn),
        );
        ended.catch(() => {});
        const endedEarly = ended.then(() => {
          throw new Error('the Docker event stream ended');
        });
        endedEarly.catch(() => {});
        await Promise.race([open, endedEarly, failed]);
        if (this.stopped) break;
        // Subscribed first, listed second: an event between the two triggers one more listing, never a miss.
        await Promise.race([this.refresh(), failed]);
        if (this.stopped) break;
        attempt = 0;
        const { lastError: _cleared, ...rest } = this.st;
        this.st = { ...rest, connected: true };
        this.log.info('watching Docker events', { since });
        this.emit('connected');
        await Promise.race([endedEarly, failed]);
      } catch (e) {
        if (this.stopped) break;
        const err = e instanceof Error ? e : new Error(String(e));
        const retryInMs = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(attempt, 30));
        attempt++;
        this.st = { ...this.st, connected: false, lastError: err.message };
        this.log.warn('Docker unreachable; keeping the last routes and retrying', { error: err.message, attempt, retryInMs });
        this.emit('disconnected', err, { attempt, retryInMs });
        conn.abort();
        this.clearDebounce();
        // Let an aborted listing settle, so the next connection does not join it and fail with it.
        await this.refreshing?.catch(() => {});
        await this.sleep(retryInMs);
      } finally {
        conn.abort();
        this.stopCtl.signal.removeEventListener('abort', onStop);
      }
    }
  }

  private onEvent(e: DockerEvent, failConn: (e: Error) => void): void {
    const key = `${e.timeNano}|${e.type}|${e.action}|${e.id}`;
    const lastTime = this.st.lastEventTime;
    if (lastTime !== undefined && e.time < lastTime) return; // replayed from before `since`'s second
    if (lastTime !== undefined && e.time === lastTime && this.seenAtLast.has(key)) return; // seen before the reconnect
    if (lastTime === undefined || e.time > lastTime) {
      this.seenAtLast = new Set();
      this.st = { ...this.st, lastEventTime: e.time };
    }
    this.seenAtLast.add(key);
    if (!isRelevantEvent(e)) return;
    this.log.debug('docker event', { type: e.type, action: e.action, id: e.id.slice(0, 12), container: e.attributes.name });
    if (this.debounceTimer !== undefined || this.stopped) return;
    // Not reset by later events: a steady trickle must not postpone the listing forever.
    this.debounceTimer = this.timers.setTimeout(() => {
      this.debounceTimer = undefined;
      this.refresh().catch((err: unknown) => failConn(err instanceof Error ? err : new Error(String(err))));
    }, this.debounceMs);
  }

  private refreshing: Promise<void> | undefined;
  private again = false;

  /** Lists and emits; concurrent calls collapse into one more listing after the current one. */
  private async refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        const containers = await this.source.list(this.connSignal);
        if (this.stopped) return;
        const state = this.build(containers, this.discovery);
        this.st = { ...this.st, lastListedAt: this.clock.now().toISOString() };
        if (this.last && sameDesiredState(this.last, state)) continue;
        this.last = state;
        this.log.info('desired state changed', { sites: state.sites.length, problems: state.problems.length });
        for (const p of state.problems) this.log.warn(p.message, { code: p.code, container: p.containerName, host: p.host });
        this.emit('state', state);
      } while (this.again && !this.stopped);
    };
    this.refreshing = run().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private clearDebounce(): void {
    if (this.debounceTimer !== undefined) this.timers.clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.sleepWake = () => {
        this.sleepWake = undefined;
        resolve();
      };
      this.sleepTimer = this.timers.setTimeout(() => {
        this.sleepTimer = undefined;
        this.sleepWake?.();
      }, ms);
    });
  }
}
