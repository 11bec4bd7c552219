/**
 * The words of every notification: subject, plain text and HTML. Pure: the
 * same event and time give the same message.
 *
 * Each message says which names, what failed (with the CA's own words and
 * the ACME error type), when the next attempt is, when the certificate
 * expires, and the likeliest fix. Everything that comes from outside (the
 * CA's detail, names) is HTML-escaped in the HTML part. Events carry no
 * secrets, and nothing else goes into a message.
 */
import type { FailureFacts, NotifyEvent, RenderedMessage } from './events.js';

const DAY_MS = 86_400_000;
/** The CA's detail is quoted up to this many characters. */
const MAX_DETAIL = 2000;

export interface RenderOptions {
  /** The daily reminder of a failure still going on. */
  reminder?: boolean;
}

interface Parts {
  subject: string;
  /** The opening sentence. */
  summary: string;
  /** Label/value rows, in order. */
  rows: Array<[string, string]>;
  /** The CA's (or padlock's) own words, quoted. */
  quote?: { label: string; text: string };
  fix?: string;
}

/** Subject, text and HTML for `event`, with times relative to `now`. */
export function renderMessage(event: NotifyEvent, now: Date, options: RenderOptions = {}): RenderedMessage {
  const p = parts(event, now);
  const subject = `[padlock] ${options.reminder ? 'Still failing: ' : ''}${p.subject}`;
  return { subject, text: toText(p, options), html: toHtml(p, subject, options) };
}

function parts(event: NotifyEvent, now: Date): Parts {
  const names = event.names.length ? event.names : [event.name];
  const who = nameList(names);
  const first = names[0]!;
  const namesRow: [string, string] = ['Names', names.join(', ')];
  const expiryRow = (notAfter: Date | undefined): [string, string] =>
    ['Certificate expires', notAfter ? when(notAfter, now) : 'no certificate yet (the names are not served over HTTPS)'];
  switch (event.kind) {
    case 'renewal_failed':
      return {
        subject: `Certificate ${event.notAfter ? 'renewal' : 'issuance'} failed for ${first}${event.acmeType ? ` (${event.acmeType})` : ''}`,
        summary: `padlock could not ${event.notAfter ? 'renew' : 'obtain'} the certificate for ${who} (${plural(event.attempts, 'attempt')} so far).`,
        rows: [
          namesRow,
          ['ACME error type', event.acmeType ?? 'none (no problem document from the CA)'],
          ['padlock error code', event.errorCode],
          ['Failed attempts', `${event.attempts}${event.firstFailureAt ? `, failing since ${when(event.firstFailureAt, now)}` : ''}`],
          ['Next attempt', event.nextAttemptAt ? when(event.nextAttemptAt, now) : 'at the next renewal check'],
          expiryRow(event.notAfter),
        ],
        quote: { label: event.acmeType ? 'The CA said' : 'Error', text: clip(event.detail) },
        fix: fixFor(event, names, now),
      };
    case 'expiring': {
      const rows: Array<[string, string]> = [namesRow, expiryRow(event.notAfter)];
      if (event.lastFailure) {
        rows.push(['ACME error type', event.lastFailure.acmeType ?? 'none'], ['padlock error code', event.lastFailure.errorCode]);
      }
      if (event.nextAttemptAt) rows.push(['Next attempt', when(event.nextAttemptAt, now)]);
      const left = event.notAfter.getTime() - now.getTime();
      return {
        subject: left > 0 ? `Certificate for ${first} expires in ${duration(left)}` : `Certificate for ${first} has expired`,
        summary: `The certificate for ${who} ${left > 0 ? `expires ${when(event.notAfter, now)}` : `expired ${when(event.notAfter, now)}`} and has not been renewed (alert threshold: ${duration(event.thresholdDays * DAY_MS)} before expiry).`,
        rows,
        ...(event.lastFailure ? { quote: { label: event.lastFailure.acmeType ? 'The CA said (last attempt)' : 'Last error', text: clip(event.lastFailure.detail) } } : {}),
        fix: fixFor(event, names, now),
      };
    }
    case 'chain_invalid':
      return {
        subject: `Certificate chain for ${first} failed verification (${event.verifyCode})`,
        summary: `The certificate chain for ${who} failed verification, so padlock does not trust it.`,
        rows: [namesRow, ['Verification error', event.verifyCode], expiryRow(event.notAfter)],
        quote: { label: 'Reason', text: clip(event.reason) },
        fix: fixFor(event, names, now),
      };
    case 'rate_limited':
      return {
        subject: `Rate limited by the CA for ${first}${event.retryAfter ? ` until ${isoMinute(event.retryAfter)}` : ''}`,
        summary: `The CA refused to issue a certificate for ${who} because a rate limit was hit.`,
        rows: [
          namesRow,
          ['ACME error type', 'rateLimited'],
          ['Next attempt', event.retryAfter ? `${when(event.retryAfter, now)} (not earlier: the CA said so)` : 'after the backoff'],
          expiryRow(event.notAfter),
        ],
        quote: { label: 'The CA said', text: clip(event.detail) },
        fix: fixFor(event, names, now),
      };
    case 'recovered':
      return {
        subject: `Certificate for ${first} is valid again`,
        summary: `padlock obtained a new certificate for ${who} after ${plural(event.failures, 'failed attempt')}. No action is needed.`,
        rows: [namesRow, ['Certificate expires', when(event.notAfter, now)]],
      };
    case 'store_unreachable':
      return {
        subject: `The certificate store ${event.location} is unreachable`,
        summary: `padlock cannot reach its certificate store ${event.location} (since ${when(event.since, now)}). Every certificate it holds keeps serving from memory, but nothing can be renewed or obtained, and other replicas do not see this one's changes, until the store is back.`,
        rows: [['Store', event.location], ['Unreachable since', when(event.since, now)]],
        ...(event.error ? { quote: { label: 'Last error', text: clip(event.error) } } : {}),
        fix: fixFor(event, [], now),
      };
    case 'store_reachable':
      return {
        subject: `The certificate store ${event.location} is reachable again`,
        summary: `padlock reaches its certificate store ${event.location} again, after an outage that began ${when(event.since, now)}. Renewals resume on their own.`,
        rows: [['Store', event.location]],
      };
    case 'test':
      return {
        subject: 'Test notification',
        summary: 'This is a test message from "padlock notify test". If you can read it, padlock can reach you here.',
        rows: [['Sent', isoMinute(now)]],
        fix: 'No action is needed.',
      };
  }
}

/**
 * The likeliest fix for an event, in a sentence or two, or undefined when
 * none applies (`recovered`). Chosen from the ACME error type first, then
 * padlock's error code.
 */
export function fixFor(event: NotifyEvent, names: string[] = event.names, now = new Date(0)): string | undefined {
  switch (event.kind) {
    case 'renewal_failed':
      return failureFix(event, names, event.nextAttemptAt, now);
    case 'expiring':
      return event.lastFailure
        ? failureFix(event.lastFailure, names, event.nextAttemptAt, now)
        : `padlock has not renewed it yet: check that padlock is running and look in its log for ${nameList(names)}.`;
    case 'rate_limited':
      return rateLimitFix(event.retryAfter, now);
    case 'chain_invalid':
      return chainFix(event.verifyCode, names);
    case 'store_unreachable':
      return `Check that the store (Redis) at ${event.location} is running and reachable from this host, with the password and TLS settings padlock has (--store, --store-ca); padlock reconnects by itself.`;
    case 'test':
      return 'No action is needed.';
    case 'recovered':
    case 'store_reachable':
      return undefined;
  }
}

function failureFix(f: FailureFacts, names: string[], retryAfter: Date | undefined, now: Date): string {
  const list = nameList(names);
  const url = `http://${names[0] ?? 'NAME'}/.well-known/acme-challenge/…`;
  switch (f.acmeType) {
    case 'connection':
    case 'dns':
      return `The CA could not fetch ${url}: check that the DNS records (A/AAAA) of ${list} point to this machine, and that port 80 is open to the internet (firewall, router, cloud security group).`;
    case 'caa':
      return `A CAA record on ${list} or a parent domain forbids this CA: add the CA's domain (for Let's Encrypt, letsencrypt.org) to the CAA record, or remove the record.`;
    case 'unauthorized':
    case 'incorrectResponse':
      return `The CA reached ${url} but got the wrong answer: check that requests for ${list} on port 80 reach padlock, with no other web server, proxy, CDN or redirect in between.`;
    case 'rateLimited':
      return rateLimitFix(retryAfter, now);
    case 'rejectedIdentifier':
      return `The CA will not issue for ${list}: check the names are public DNS names this CA accepts.`;
    case 'serverInternal':
    case 'badNonce':
      return 'The CA had a temporary problem; padlock retries by itself. Nothing to do unless it lasts.';
  }
  switch (f.errorCode) {
    case 'ACME_UNREACHABLE':
    case 'ACME_TIMEOUT':
      return 'padlock could not reach the CA: check this machine\'s outbound network (DNS, HTTPS to the CA) and the --server URL.';
    case 'ACME_TOS_NOT_AGREED':
      return 'The CA requires agreeing to its terms of service: start padlock with --agree-tos.';
    case 'ACME_ACCOUNT_MISSING':
      return 'The CA no longer knows padlock\'s ACME account; padlock registers a new one on the next attempt.';
  }
  return `Look in padlock's log for ${list} for the full error.`;
}

function rateLimitFix(retryAfter: Date | undefined, now: Date): string {
  const until = retryAfter ? `until ${when(retryAfter, now)}` : 'until the time the CA names';
  return `Wait ${until}: padlock retries by itself then. Do not force renewals or re-issue meanwhile, which only extends the limit (Let's Encrypt allows 5 duplicate certificates per 7 days and 5 failed validations per name per hour).`;
}

function chainFix(code: string, names: string[]): string {
  switch (code) {
    case 'CHAIN_UNTRUSTED':
      return 'The chain ends in a root this machine does not trust: for a private CA add its root with --trusted-roots; for a public CA update the system CA bundle (the ca-certificates package).';
    case 'CHAIN_MISSING_INTERMEDIATE':
      return 'The chain lacks an intermediate certificate: the CA sent an incomplete chain; padlock retries, and the CA\'s status page may say more.';
    case 'CERT_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'A certificate in the chain is outside its validity period: check this machine\'s clock (timedatectl), then the CA\'s chain.';
    case 'CERT_NAME_MISMATCH':
      return `The certificate does not cover ${nameList(names)}: check the names configured for this site.`;
    case 'CERT_KEY_MISMATCH':
      return 'The private key does not belong to the certificate: the stored files are inconsistent; padlock obtains a new certificate.';
    default:
      return `Run "padlock check ${names[0] ?? 'NAME'}" to see the chain the server sends and why it fails.`;
  }
}

function toText(p: Parts, options: RenderOptions): string {
  const width = Math.max(...p.rows.map(([k]) => k.length)) + 2;
  const lines = [
    ...(options.reminder ? ['Reminder: this problem is still going on.', ''] : []),
    p.summary,
    '',
    ...p.rows.map(([k, v]) => `${(k + ':').padEnd(width)}${v}`),
  ];
  if (p.quote) lines.push('', `${p.quote.label}:`, ...p.quote.text.split('\n').map((l) => `  ${l}`));
  if (p.fix) lines.push('', `Likeliest fix: ${p.fix}`);
  lines.push('', '-- ', 'padlock');
  return lines.join('\n') + '\n';
}

function toHtml(p: Parts, subject: string, options: RenderOptions): string {
  const rows = p.rows.map(([k, v]) => `<tr><th align="left" style="padding:2px 12px 2px 0">${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n');
  return [
    '<!doctype html>',
    `<html><head><meta charset="utf-8"><title>${esc(subject)}</title></head>`,
    '<body style="font-family:sans-serif;line-height:1.4">',
    ...(options.reminder ? ['<p><strong>Reminder: this problem is still going on.</strong></p>'] : []),
    `<p>${esc(p.summary)}</p>`,
    `<table>\n${rows}\n</table>`,
    ...(p.quote ? [`<p>${esc(p.quote.label)}:</p>`, `<blockquote><pre style="white-space:pre-wrap">${esc(p.quote.text)}</pre></blockquote>`] : []),
    ...(p.fix ? [`<p><strong>Likeliest fix:</strong> ${esc(p.fix)}</p>`] : []),
    '<p style="color:#666">padlock</p>',
    '</body></html>',
    '',
  ].join('\n');
}

/** Escapes text for HTML element content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function clip(s: string): string {
  return s.length > MAX_DETAIL ? s.slice(0, MAX_DETAIL) + '…' : s;
}

function nameList(names: string[]): string {
  if (names.length <= 3) return names.join(', ');
  return `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `2026-01-03 12:00 UTC`. */
export function isoMinute(d: Date): string {
  return d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

/** `2026-01-03 12:00 UTC (in 2 days)` or `(3 hours ago)`. */
export function when(d: Date, now: Date): string {
  const delta = d.getTime() - now.getTime();
  if (Math.abs(delta) < 60_000) return `${isoMinute(d)} (now)`;
  return `${isoMinute(d)} (${delta > 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`})`;
}

/** A duration for people: `3 days`, `5 hours`, `12 minutes`, `40 seconds`; one decimal below 10 of a unit when not whole. */
export function duration(ms: number): string {
  const units: Array<[number, string]> = [[DAY_MS, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1000, 'second']];
  for (const [size, name] of units) {
    if (ms >= size * (size === DAY_MS ? 2 : 1) || size === 1000) {
      const v = ms / size;
      const shown = v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : String(Math.round(v * 10) / 10);
      return `${shown} ${name}${shown === '1' ? '' : 's'}`;
    }
  }
  return `${Math.round(ms / 1000)} seconds`;
}
