/**
 * The listener side of `CertStore.watch`, shared by every store
 * implementation: the subscriptions, per-name coalescing of change reports,
 * and containment of listener failures. Each store feeds it raw reports
 * (`changed(name)`) from wherever it learns of changes (its own writes, a
 * file watcher, a pub/sub message) and starts and stops that source through
 * the first/last-listener hooks.
 */

/** Receives the name of a lineage whose current version changed or that was deleted. */
export type ChangeListener = (name: string) => void;

/** How long a store coalesces reports of one name by default: one putVersion is one call, not a storm. */
export const DEFAULT_COALESCE_MS = 50;

export interface ChangeFeedOptions {
  /** Reports of one name within this window (from its first report) reach listeners as one call. */
  coalesceMs?: number;
  /** Called when the first listener subscribes: start the change source. */
  onFirstListener?: () => void;
  /** Called after the last listener unsubscribed: stop the change source and release what it holds. */
  onLastListener?: () => void;
}

interface Subscription {
  readonly listener: ChangeListener;
}

/**
 * Subscriptions to lineage changes. A report is delivered once per name per
 * window, on a timer (never synchronously inside `changed` or `subscribe`).
 * Timers are unref'd: a subscription never keeps the process alive.
 */
export class ChangeFeed {
  private readonly coalesceMs: number;
  private readonly onFirstListener: (() => void) | undefined;
  private readonly onLastListener: (() => void) | undefined;
  private readonly subscriptions = new Set<Subscription>();
  /** name -> the timer that will deliver it. */
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(options: ChangeFeedOptions = {}) {
    this.coalesceMs = options.coalesceMs ?? DEFAULT_COALESCE_MS;
    this.onFirstListener = options.onFirstListener;
    this.onLastListener = options.onLastListener;
  }

  /** True while at least one listener is subscribed. */
  get active(): boolean {
    return this.subscriptions.size > 0;
  }

  /**
   * Adds `listener` (the same function twice is two subscriptions) and
   * returns its unsubscribe function: once that returned, the listener is
   * never called again. Calling it twice is harmless.
   */
  subscribe(listener: ChangeListener): () => void {
    const subscription: Subscription = { listener };
    this.subscriptions.add(subscription);
    if (this.subscriptions.size === 1) this.onFirstListener?.();
    return () => {
      if (!this.subscriptions.delete(subscription) || this.subscriptions.size > 0) return;
      for (const timer of this.pending.values()) clearTimeout(timer);
      this.pending.clear();
      this.onLastListener?.();
    };
  }

  /** Reports that `name` changed. Ignored while nobody listens. */
  changed(name: string): void {
    if (!this.active || this.pending.has(name)) return;
    const timer = setTimeout(() => {
      this.pending.delete(name);
      this.deliver(name);
    }, this.coalesceMs);
    timer.unref();
    this.pending.set(name, timer);
  }

  private deliver(name: string): void {
    for (const subscription of [...this.subscriptions]) {
      // A listener may unsubscribe another one while we iterate.
      if (!this.subscriptions.has(subscription)) continue;
      try {
        const result: unknown = subscription.listener(name);
        // An async listener's rejection would otherwise be an unhandled
        // rejection, which ends the process: contained like a throw.
        if (isThenable(result)) result.then(undefined, () => undefined);
      } catch {
        // Dropped on purpose (the store has no logger, see CertStore.watch):
        // one failing listener must not starve the others or break the store.
      }
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
