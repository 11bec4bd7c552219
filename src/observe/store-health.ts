/**
 * Watches whether the certificate store is reachable (a shared Redis store
 * can go away; the filesystem store never does), for `/readyz`,
 * `/api/status` and an alert.
 *
 * padlock keeps serving every certificate it holds while the store is
 * unreachable, so this never makes the process unready: a load balancer
 * that took every replica out because Redis blinked would turn a store
 * outage into a site outage. It says so instead, and alerts once the outage
 * outlasts `alertAfterMs`, then again when the store is back.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import type { Notifier } from '../notify/notifier.js';

/** What a store says about itself (see CertStore.health). */
export interface StoreHealthSource {
  readonly location: string;
  health(): { reachable: boolean; since: Date; error?: string };
}

export interface StoreHealthView {
  location: string;
  reachable: boolean;
  since: string;
  error?: string;
  /** Set once the outage outlasted the grace time and an alert went out. */
  alerted?: boolean;
}

/** The notifier's dedupe key for store events: not a lineage name, so its state stays in memory (the store may be down). */
export const STORE_EVENT_NAME = '(store)';

export class StoreHealthWatch {
  private timer: NodeJS.Timeout | undefined;
  private alerted = false;
  private lastReachable = true;
  /** When the current (or last) outage began. */
  private downSince: Date | undefined;

  constructor(private readonly opts: {
    store: StoreHealthSource;
    clock: Clock;
    logger: Logger;
    notifier?: Notifier;
    /** Alert when unreachable this long (ms). */
    alertAfterMs: number;
    /** How often to look (ms); default 5 s. */
    everyMs?: number;
  }) {}

  start(): void {
    this.timer = setInterval(() => this.check(), this.opts.everyMs ?? 5_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The current view, for the status API and /readyz. */
  view(): StoreHealthView {
    const h = this.opts.store.health();
    return {
      location: this.opts.store.location,
      reachable: h.reachable,
      since: h.since.toISOString(),
      ...(h.error ? { error: h.error } : {}),
      ...(!h.reachable && this.alerted ? { alerted: true } : {}),
    };
  }

  /** One look: log changes, alert after the grace time, announce the recovery. Exported for tests. */
  check(): void {
    const { store, clock, logger, notifier } = this.opts;
    const h = store.health();
    if (h.reachable !== this.lastReachable) {
      this.lastReachable = h.reachable;
      if (h.reachable) logger.info('the certificate store is reachable again', { store: store.location });
      else logger.warn('the certificate store is unreachable; serving from memory, renewals wait', { store: store.location, ...(h.error ? { error: h.error } : {}) });
    }
    if (!h.reachable) this.downSince ??= h.since;
    const base = { name: STORE_EVENT_NAME, names: [] as string[], location: store.location, since: this.downSince ?? h.since };
    if (h.reachable && !this.alerted) this.downSince = undefined;
    if (!h.reachable && !this.alerted && clock.now().getTime() - h.since.getTime() >= this.opts.alertAfterMs) {
      this.alerted = true;
      notifier?.notify({ kind: 'store_unreachable', ...base, ...(h.error ? { error: h.error } : {}) });
    } else if (h.reachable && this.alerted) {
      this.alerted = false;
      this.downSince = undefined;
      notifier?.notify({ kind: 'store_reachable', ...base });
    }
  }
}
