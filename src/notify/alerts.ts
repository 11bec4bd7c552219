/**
 * From certificate events to notifications: the glue between the engine's
 * events (src/events.ts: the daemon's and `padlock renew`'s alike) and the
 * Notifier. Deciding *whether* to tell someone lives in notify/policy.ts;
 * sending, dedupe and retries in notify/notifier.ts. Nothing here can fail a
 * renewal.
 */
import type { Notifier } from './notifier.js';
import { failureEvent, dueExpiryThreshold } from './policy.js';
import type { CertStore } from '../store/store.js';
import type { FailureRecord } from '../certificates/policy.js';
import { describeCertificate } from '../tls/inspect.js';
import type { Clock } from '../clock.js';
import type { PadlockError } from '../errors.js';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';
import type { CheckedCertificate, EngineEventBus } from '../events.js';

export interface AlertContext {
  notifier: Notifier;
  store: CertStore;
  clock: Clock;
  logger: Logger;
}

/** After a failed attempt: alert when the failure is in its alert window (or is a rate limit or a bad chain). */
export async function alertFailure(ctx: AlertContext, name: string, error: PadlockError, email?: string): Promise<void> {
  const state = await ctx.store.readState(name);
  const f = state?.['failure'];
  const record = f && typeof f === 'object' ? (f as FailureRecord) : undefined;
  if (!record) return;
  const lineage = await ctx.store.readLineage(name);
  const cert = lineage ? describeCertificate(lineage.bundle.cert) : undefined;
  const event = failureEvent({
    name,
    names: lineage?.meta.domains ?? [name],
    ...(email ? { email } : {}),
    error,
    record,
    ...(cert ? { cert: { notBefore: cert.notBefore, notAfter: cert.notAfter } } : {}),
    now: ctx.clock.now(),
  });
  if (event) ctx.notifier.notify(event);
}

/** After a success: a "recovered" message, which the notifier sends only if a failure alert went out. */
export function alertSuccess(ctx: AlertContext, name: string, names: string[], notAfter: Date, failures: number, email?: string): void {
  ctx.notifier.notify({ kind: 'recovered', name, names, notAfter, failures, ...(email ? { email } : {}) });
}

/** Expiry warnings at 14, 7, 3 and 1 days (scaled for short-lived certificates); the notifier dedupes. */
export function alertExpiry(ctx: AlertContext, certs: readonly CheckedCertificate[]): void {
  const now = ctx.clock.now();
  for (const c of certs) {
    const thresholdDays = dueExpiryThreshold(c.notAfter, c.notAfter.getTime() - c.notBefore.getTime(), now, []);
    if (thresholdDays === undefined) continue;
    ctx.notifier.notify({ kind: 'expiring', name: c.name, names: c.names.length ? c.names : [c.name], notAfter: c.notAfter, thresholdDays, ...(c.email ? { email: c.email } : {}) });
  }
}

/** Subscribes the notifier to the certificate events (the daemon's scheduler, or `padlock renew`). */
export function attachAlerts(ctx: AlertContext, events: EngineEventBus): void {
  // Returned, so EngineEventBus.drain() can wait for it before a one-shot command flushes its notifier.
  events.on('cert_failed', ({ name, error, email }) =>
    alertFailure(ctx, name, error, email).catch((e: unknown) => ctx.logger.warn('could not prepare a failure alert', { name, error: errorMessage(e) })));
  // The failure count comes from the stored record, so a recovery after a restart is still announced.
  const recovered = ({ name, names, notAfter, previousFailures, email }: { name: string; names: string[]; notAfter: Date; previousFailures: number; email?: string }) => {
    if (previousFailures > 0) alertSuccess(ctx, name, names, notAfter, previousFailures, email);
  };
  events.on('cert_obtained', recovered);
  events.on('cert_renewed', recovered);
  events.on('cert_checked', (certs) => alertExpiry(ctx, certs));
}
