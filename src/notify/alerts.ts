/**
 * From certificate outcomes to notifications: the glue between the
 * certificate side (the daemon's manager, `padlock renew`) and the Notifier.
 * Deciding *whether* to tell someone lives in notify/policy.ts; sending,
 * dedupe and retries in notify/notifier.ts. Nothing here can fail a renewal.
 */
import type { CertificateManager, CheckedCertificate } from '../certificates/manager.js';
import { failureOf } from '../certificates/obtain.js';
import type { Notifier } from './notifier.js';
import { failureEvent, dueExpiryThreshold } from './policy.js';
import type { CertStore } from '../store/store.js';
import { describeCertificate } from '../tls/inspect.js';
import type { Clock } from '../clock.js';
import type { PadlockError } from '../errors.js';
import type { Logger } from '../log.js';
import { errorMessage } from '../errors.js';

export interface AlertContext {
  notifier: Notifier;
  store: CertStore;
  clock: Clock;
  logger: Logger;
}

/** After a failed attempt: alert when the failure is in its alert window (or is a rate limit or a bad chain). */
export async function alertFailure(ctx: AlertContext, name: string, error: PadlockError, email?: string): Promise<void> {
  const state = await ctx.store.readState(name);
  const record = failureOf(state);
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
    ctx.notifier.notify({ kind: 'expiring', name: c.name, names: [c.name], notAfter: c.notAfter, thresholdDays, ...(c.email ? { email: c.email } : {}) });
  }
}

/** Subscribes the notifier to the daemon's certificate manager. `emailFor` gives a site's contact address. */
export function attachAlerts(ctx: AlertContext, manager: CertificateManager, emailFor: (name: string) => string | undefined): void {
  manager.on('cert_failed', ({ name, error }) => {
    alertFailure(ctx, name, error, emailFor(name)).catch((e: unknown) => ctx.logger.warn('could not prepare a failure alert', { name, error: errorMessage(e) }));
  });
  // The failure count comes from the stored record, so a recovery after a restart is still announced.
  manager.on('cert_obtained', ({ name, notAfter, previousFailures }) => {
    if (previousFailures > 0) alertSuccess(ctx, name, [name], notAfter, previousFailures, emailFor(name));
  });
  manager.on('checked', (certs) => alertExpiry(ctx, certs));
}
