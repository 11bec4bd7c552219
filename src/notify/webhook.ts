/**
 * The webhook channel: one JSON POST per notification (`--webhook-url`).
 *
 * The request has `Content-Type: application/json`, `User-Agent:
 * padlock/notify` and `X-Padlock-Event: <event>`; any 2xx answer counts as
 * delivered, anything else (or no answer within the timeout) is a failure
 * the Notifier retries with backoff. Redirects are followed. The URL may
 * carry a token, so only its origin ever appears in logs and messages.
 *
 * ### Payload (version 1)
 *
 * Flat JSON; times are ISO 8601 UTC strings. Fields not listed for an event
 * are absent (never null).
 *
 * | field | type | events | meaning |
 * |---|---|---|---|
 * | `version` | number | all | payload format, `1`; fields are only ever added within a version |
 * | `event` | string | all | `renewal_failed`, `expiring`, `chain_invalid`, `rate_limited`, `recovered` or `test` |
 * | `name` | string | all | the certificate (lineage) name |
 * | `names` | string[] | all | every DNS name on the certificate |
 * | `email` | string | all, when set | the per-certificate recipient (label `padlock.email` / `LETSENCRYPT_EMAIL`) |
 * | `reminder` | boolean | all | `true` for the daily reminder of a failure still going on |
 * | `sentAt` | string | all | when padlock sent this notification |
 * | `subject` | string | all | the email subject line |
 * | `text` | string | all | the full plain-text message (what failed, next attempt, expiry, likeliest fix) |
 * | `errorCode` | string | `renewal_failed`; `expiring` after failures | padlock's error code, e.g. `ACME_CHALLENGE_FAILED` |
 * | `acmeType` | string | `renewal_failed`, `rate_limited`; `expiring` after failures | short ACME error type, e.g. `connection`, `caa`, `rateLimited` (when the CA sent a problem) |
 * | `detail` | string | `renewal_failed`, `rate_limited`; `expiring` after failures | the CA's own words (problem `detail`) |
 * | `attempts` | number | `renewal_failed` | consecutive failed attempts |
 * | `firstFailureAt` | string | `renewal_failed`, when known | start of this run of failures |
 * | `nextAttemptAt` | string | `renewal_failed`, `expiring`, when scheduled | when padlock tries again |
 * | `notAfter` | string | all but `test`, when a certificate exists | when the current certificate expires |
 * | `thresholdDays` | number | `expiring` | the threshold crossed, in days (fractional for short-lived certificates) |
 * | `verifyCode` | string | `chain_invalid` | e.g. `CHAIN_UNTRUSTED`, `CHAIN_MISSING_INTERMEDIATE` |
 * | `reason` | string | `chain_invalid` | why verification failed |
 * | `retryAfter` | string | `rate_limited`, when known | no attempt before this time (the CA's `Retry-After`) |
 * | `failures` | number | `recovered` | failed attempts before the success |
 */
import { errorMessage } from '../errors.js';
import { DeliveryError, type Channel, type Delivery } from './events.js';

export const WEBHOOK_PAYLOAD_VERSION = 1;

export interface WebhookSettings {
  url: string;
  /** Per-request timeout, ms (default 10 s). */
  timeoutMs?: number;
  /** The fetch to use (tests); default the global one. */
  fetch?: typeof fetch;
}

/** The JSON body for one delivery (see the table above). */
export function webhookPayload(delivery: Delivery): Record<string, unknown> {
  const { event, message } = delivery;
  const out: Record<string, unknown> = {
    version: WEBHOOK_PAYLOAD_VERSION,
    event: event.kind,
    name: event.name,
    names: [...event.names],
    ...(event.email ? { email: event.email } : {}),
    reminder: delivery.reminder,
    sentAt: delivery.sentAt.toISOString(),
    subject: message.subject,
    text: message.text,
  };
  const iso = (d: Date | undefined) => (d ? d.toISOString() : undefined);
  const put = (k: string, v: unknown) => {
    if (v !== undefined) out[k] = v;
  };
  switch (event.kind) {
    case 'renewal_failed':
      put('errorCode', event.errorCode);
      put('acmeType', event.acmeType);
      put('detail', event.detail);
      put('attempts', event.attempts);
      put('firstFailureAt', iso(event.firstFailureAt));
      put('nextAttemptAt', iso(event.nextAttemptAt));
      put('notAfter', iso(event.notAfter));
      break;
    case 'expiring':
      put('errorCode', event.lastFailure?.errorCode);
      put('acmeType', event.lastFailure?.acmeType);
      put('detail', event.lastFailure?.detail);
      put('nextAttemptAt', iso(event.nextAttemptAt));
      put('notAfter', iso(event.notAfter));
      put('thresholdDays', event.thresholdDays);
      break;
    case 'chain_invalid':
      put('verifyCode', event.verifyCode);
      put('reason', event.reason);
      put('notAfter', iso(event.notAfter));
      break;
    case 'rate_limited':
      put('acmeType', 'rateLimited');
      put('detail', event.detail);
      put('retryAfter', iso(event.retryAfter));
      put('notAfter', iso(event.notAfter));
      break;
    case 'store_unreachable':
      put('location', event.location);
      put('since', iso(event.since));
      put('error', event.error);
      break;
    case 'store_reachable':
      put('location', event.location);
      put('since', iso(event.since));
      break;
    case 'recovered':
      put('notAfter', iso(event.notAfter));
      put('failures', event.failures);
      break;
    case 'test':
      break;
  }
  return out;
}

/** Builds the webhook channel. `url` must be http(s) (the config schema checks it). */
export function createWebhookChannel(settings: WebhookSettings): Channel {
  const origin = new URL(settings.url).origin;
  const doFetch = settings.fetch ?? fetch;
  const timeoutMs = settings.timeoutMs ?? 10_000;
  return {
    name: 'webhook',
    target: `POST ${origin}/…`,
    async send(delivery: Delivery): Promise<void> {
      let res: Response;
      try {
        res = await doFetch(settings.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'padlock/notify', 'x-padlock-event': delivery.event.kind },
          body: JSON.stringify(webhookPayload(delivery)),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: unknown } }).cause;
        const timedOut = (err as { name?: string }).name === 'TimeoutError';
        const code = timedOut ? 'ETIMEDOUT' : typeof cause?.code === 'string' ? cause.code : 'EFETCH';
        // fetch's messages can contain the full URL; name the origin only.
        throw new DeliveryError('webhook', `POST to ${origin} failed: ${timedOut ? `no answer within ${timeoutMs} ms` : code === 'EFETCH' ? scrubUrl(errorMessage(err), settings.url, origin) : code}`, { code });
      }
      // Drain the body so the connection can be reused or closed.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new DeliveryError('webhook', `POST to ${origin} answered HTTP ${res.status}`, { code: `HTTP_${res.status}`, responseCode: res.status });
    },
  };
}

function scrubUrl(text: string, url: string, origin: string): string {
  return text.split(url).join(`${origin}/…`);
}
