/**
 * The Notifier: takes events from the rest of padlock, drops repeats, and
 * delivers the rest through every channel, retrying with backoff.
 *
 * Contract:
 * - `notify` never throws and never waits: the event is queued and the
 *   caller (a renewal, the manager) carries on. A notification that cannot
 *   be delivered is logged, never reported back, and never changes a
 *   certificate's state.
 * - Events for one lineage are handled one after another, in order; events
 *   for different lineages run concurrently.
 * - Deduplication follows policy.ts `nextNotification`. The decision state is
 *   kept in memory and, with a store, under the lineage state key `notify`
 *   (the other keys are kept as they are), so a restart does not send again.
 *   The state is recorded only once at least one channel accepted the
 *   message: a problem nobody heard of is tried again on the next event.
 * - Each channel is tried `retry.attempts` times, waiting `initialMs`,
 *   doubling up to `maxMs` in between (through the injected `timers`).
 * - `close` abandons pending backoff waits, waits for sends in flight, and
 *   closes the channels; later `notify` calls are dropped with a warning.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import type { Clock } from '../clock.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { isValidLineageName, type CertStore } from '../store/store.js';
import { DeliveryError, type Channel, type Delivery, type NotifyEvent } from './events.js';
import { renderMessage } from './messages.js';
import { nextNotification, notifyStateOf, type NotifyState } from './policy.js';

/** How a failed delivery is retried. */
export interface RetryPolicy {
  /** Tries per channel, first one included (at least 1). */
  attempts: number;
  /** Wait before the second try, ms; doubles each time. */
  initialMs: number;
  /** Longest wait between tries, ms. */
  maxMs: number;
}

/** Waiting, injectable so tests need not sleep. `sleep` resolves after `ms`, or early (without throwing) when `signal` aborts. */
export interface NotifierTimers {
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export interface NotifierOptions {
  channels: Channel[];
  /** Where dedupe state is persisted (lineage state key `notify`); memory only without it. */
  store?: CertStore;
  clock: Clock;
  logger: Logger;
  /** Default: 5 attempts, 30 s, doubling up to 10 min. */
  retry?: RetryPolicy;
  timers?: NotifierTimers;
}

/** One channel's answer to `padlock notify test`. */
export interface ChannelTestResult {
  channel: string;
  target: string;
  ok: boolean;
  error?: string;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, initialMs: 30_000, maxMs: 600_000 };

/** The lineage state key the Notifier owns. */
export const NOTIFY_STATE_KEY = 'notify';

const realTimers: NotifierTimers = {
  sleep: (ms, signal) => sleepMs(ms, undefined, { signal }).catch(() => undefined),
};

export class Notifier {
  private readonly channels: readonly Channel[];
  private readonly log: Logger;
  private readonly retry: RetryPolicy;
  private readonly timers: NotifierTimers;
  private readonly states = new Map<string, NotifyState>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly opts: NotifierOptions) {
    this.channels = [...opts.channels];
    this.log = opts.logger.child({ component: 'notify' });
    const r = opts.retry ?? DEFAULT_RETRY;
    this.retry = { attempts: Math.max(1, Math.floor(r.attempts)), initialMs: Math.max(0, r.initialMs), maxMs: Math.max(0, r.maxMs) };
    this.timers = opts.timers ?? realTimers;
  }

  /** The configured channels' names and targets (for startup logs and status). */
  describe(): Array<{ channel: string; target: string }> {
    return this.channels.map((c) => ({ channel: c.name, target: c.target }));
  }

  /** Queues `event`. Never throws, never blocks. See the module contract. */
  notify(event: NotifyEvent): void {
    try {
      if (this.closed) {
        this.log.warn('notification dropped: the notifier is closed', { event: event.kind, name: event.name });
        return;
      }
      if (this.channels.length === 0) {
        this.log.debug('no notification channel configured', { event: event.kind, name: event.name });
        return;
      }
      const key = event.name;
      const job = (this.chains.get(key) ?? Promise.resolve())
        .then(() => this.handle(event))
        .catch((err: unknown) => this.log.error('notification failed', { event: event.kind, name: event.name, error: errorMessage(err) }));
      this.chains.set(key, job);
      this.pending.add(job);
      void job.finally(() => {
        this.pending.delete(job);
        if (this.chains.get(key) === job) this.chains.delete(key);
      });
    } catch (err) {
      // notify must never throw into a renewal; this is a last resort.
      try {
        this.log.error('notification could not be queued', { error: errorMessage(err) });
      } catch {
        /* nothing left to do */
      }
    }
  }

  /** Resolves when every queued notification has been delivered or given up on (including ones queued meanwhile). */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /**
   * Sends a `test` message through every channel once (no retry, no dedupe)
   * and reports each result. An empty array means no channel is configured.
   */
  async test(): Promise<ChannelTestResult[]> {
    const now = this.opts.clock.now();
    const event: NotifyEvent = { kind: 'test', name: 'padlock', names: [] };
    const delivery: Delivery = { event, message: renderMessage(event, now), reminder: false, sentAt: now };
    return Promise.all(
      this.channels.map(async (ch): Promise<ChannelTestResult> => {
        try {
          await ch.send(delivery);
          this.log.info('test notification sent', { channel: ch.name, target: ch.target });
          return { channel: ch.name, target: ch.target, ok: true };
        } catch (err) {
          this.log.warn('test notification failed', { channel: ch.name, target: ch.target, ...errorFields(err) });
          return { channel: ch.name, target: ch.target, ok: false, error: errorMessage(err) };
        }
      }),
    );
  }

  /** Stops retrying, waits for sends in flight, closes the channels. Idempotent. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.abort.abort();
    }
    await this.flush();
    for (const ch of this.channels) {
      try {
        await ch.close?.();
      } catch (err) {
        this.log.debug('closing a channel failed', { channel: ch.name, error: errorMessage(err) });
      }
    }
  }

  private async handle(event: NotifyEvent): Promise<void> {
    const now = this.opts.clock.now();
    const before = await this.loadState(event.name);
    const decision = nextNotification(before, event, now);
    const log = this.log.child({ name: event.name, event: event.kind });
    if (!decision.send) {
      log.debug('notification skipped', { reason: decision.reason });
      await this.saveState(event.name, before, decision.state);
      return;
    }
    const delivery: Delivery = { event, message: renderMessage(event, now, { reminder: decision.reminder }), reminder: decision.reminder, sentAt: now };
    const results = await Promise.all(this.channels.map((ch) => this.deliver(ch, delivery, log)));
    if (results.some(Boolean)) {
      log.info('notification sent', { reminder: decision.reminder, channels: this.channels.filter((_, i) => results[i]).map((c) => c.name) });
      await this.saveState(event.name, before, decision.state);
    } else {
      log.error('notification not delivered on any channel; it is tried again on the next event', { channels: this.channels.map((c) => c.name) });
    }
  }

  /** Tries one channel with backoff. Resolves true when delivered, false when given up. */
  private async deliver(ch: Channel, delivery: Delivery, log: Logger): Promise<boolean> {
    const { attempts, initialMs, maxMs } = this.retry;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        await ch.send(delivery);
        return true;
      } catch (err) {
        const last = attempt === attempts || this.abort.signal.aborted;
        const waitMs = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
        const fields = { channel: ch.name, target: ch.target, attempt, attempts, ...errorFields(err), ...(last ? {} : { retryInMs: waitMs }) };
        if (last) {
          log.error(`notification via ${ch.name} failed ${attempt === 1 ? 'once' : `${attempt} times`}; giving up`, fields);
          return false;
        }
        log.warn(`notification via ${ch.name} failed; retrying`, fields);
        await this.timers.sleep(waitMs, this.abort.signal);
      }
    }
    return false;
  }

  private async loadState(name: string): Promise<NotifyState> {
    const cached = this.states.get(name);
    if (cached) return cached;
    let state: NotifyState = {};
    if (this.opts.store && isValidLineageName(name)) {
      try {
        state = notifyStateOf(await this.opts.store.readState(name));
      } catch (err) {
        this.log.warn('could not read the notification state; assuming nothing was sent', { name, error: errorMessage(err) });
      }
    }
    this.states.set(name, state);
    return state;
  }

  private async saveState(name: string, before: NotifyState, after: NotifyState): Promise<void> {
    this.states.set(name, after);
    if (!this.opts.store || !isValidLineageName(name) || JSON.stringify(before) === JSON.stringify(after)) return;
    try {
      // updateState, not the lineage lock: a renewal starting at this moment must not give up
      // (it does not wait for the lineage lock), and neither write may lose the other's keys.
      await this.opts.store.updateState(name, (whole) => ({ ...whole, [NOTIFY_STATE_KEY]: after }));
    } catch (err) {
      this.log.warn('could not persist the notification state; a restart may send this again', { name, error: errorMessage(err) });
    }
  }
}

/** What a log line says about a delivery failure: the message, the transport code and the SMTP/HTTP response code. */
function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof DeliveryError) {
    return { error: err.message, ...(err.code ? { code: err.code } : {}), ...(err.responseCode !== undefined ? { responseCode: err.responseCode } : {}) };
  }
  return { error: errorMessage(err) };
}
