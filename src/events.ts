/**
 * The certificate engine's events, in one module.
 *
 * The engine (certificates/engine.ts) and the daemon's scheduler
 * (certificates/manager.ts) emit these; notifications, metrics, the status
 * API, companion mode and logs subscribe. Subscribers depend on this module
 * only, never on the engine's or the manager's classes, so either side can
 * change without the other.
 *
 * Events are plain values: they carry what a subscriber needs (names, dates,
 * the typed error) and never a key, token or password.
 *
 * A listener that throws is isolated: the error is logged (through
 * `onListenerError`) and the other listeners still run. Emitting never
 * fails a renewal.
 */
import { EventEmitter } from 'node:events';
import type { PadlockError } from './errors.js';

/** What every certificate event names. */
export interface CertificateRef {
  /** The lineage (certificate) name. */
  name: string;
  /** Every DNS name on the certificate (or wanted on it); the first is the CN. */
  names: string[];
  /** A per-certificate contact (label `padlock.email`, `LETSENCRYPT_EMAIL`, `--email`), for alerts. */
  email?: string;
}

/** A new certificate was verified and made current. */
export interface CertObtainedEvent extends CertificateRef {
  /** The issuer's id: an ACME directory URL, or `padlock:local`. */
  issuer: string;
  version: number;
  notBefore: Date;
  notAfter: Date;
  /** True when it replaced a current certificate (a renewal). */
  renewal: boolean;
  /** Why it was obtained: `new`, `lifetime-share`, `ari-window`, `forced`, ... */
  reason: string;
  /** Consecutive failures before this success (from the stored record, so it survives a restart). */
  previousFailures: number;
}

/** An attempt failed; the current certificate (if any) keeps serving. */
export interface CertFailedEvent extends CertificateRef {
  error: PadlockError;
  /** The stored failure record after this failure, when one was written. */
  failures?: number;
  /** When padlock tries again, when known. */
  nextAttemptAt?: Date;
  /** The current certificate's expiry, when there is one. */
  notAfter?: Date;
}

/** A certificate as a full check saw it (for expiry alerts). */
export interface CheckedCertificate extends CertificateRef {
  notBefore: Date;
  notAfter: Date;
}

/** A newer current version appeared in the store, written by another process (cron, `padlock issue`, `import`, another replica). */
export interface CertChangedEvent extends CertificateRef {
  version: number;
  notAfter: Date;
}

export interface EngineEvents {
  /** The first certificate for a name. */
  cert_obtained: [CertObtainedEvent];
  /** A renewal: a new certificate replaced the current one. */
  cert_renewed: [CertObtainedEvent];
  cert_failed: [CertFailedEvent];
  /** After each full check (start, the periodic tick, `padlock renew`): every certificate in use. */
  cert_checked: [CheckedCertificate[]];
  cert_changed: [CertChangedEvent];
}

export type EngineEventName = keyof EngineEvents;

/** One certificate's status, as the daemon reports it to the status API and metrics. */
export interface CertificateStatus {
  name: string;
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  /** The last failure was a rate limit (the CA's, or padlock's own governor). */
  rateLimited?: boolean;
  state: 'valid' | 'obtaining' | 'renewing' | 'waiting' | 'missing' | 'retired';
  renewAt?: string;
  /** Why `renewAt` is what it is: a RenewalReason (`lifetime-share`, `ari-window`, ...). */
  renewReason?: string;
  lastError?: { code: string; message: string; acmeType?: string };
  nextAttemptAt?: string;
}

/** The bus the engine emits on. See the module comment for listener isolation. */
export class EngineEventBus extends EventEmitter<EngineEvents> {
  /** Promises returned by async listeners that have not settled yet (see `drain`). */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly onListenerError: (event: string, err: unknown) => void = () => {}) {
    super({ captureRejections: false });
  }

  /**
   * Resolves once every promise an async listener returned so far has
   * settled, so a one-shot command can let its alerts reach the notifier
   * before it flushes and exits. Never rejects.
   */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Emits to every listener; a throwing listener is reported and skipped, never rethrown. */
  override emit<K extends EngineEventName>(event: K, ...args: EngineEvents[K]): boolean {
    // rawListeners: `once` wrappers remove themselves when called.
    const listeners = this.rawListeners(event) as Array<(...a: EngineEvents[K]) => unknown>;
    for (const listener of listeners) {
      try {
        const r = listener(...args);
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          const p = (r as Promise<unknown>).catch((err: unknown) => this.onListenerError(event, err)).finally(() => this.pending.delete(p));
          this.pending.add(p);
        }
      } catch (err) {
        this.onListenerError(event, err);
      }
    }
    return listeners.length > 0;
  }
}
