import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderMessage, fixFor, esc, duration } from '../../src/notify/messages.js';
import type { NotifyEvent } from '../../src/notify/events.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const now = new Date('2026-03-01T12:00:00Z');
const at = (ms: number) => new Date(now.getTime() + ms);
const names = ['shop.example.com', 'www.shop.example.com'];

function failed(acmeType: string | undefined, detail = 'the CA said something', extra: Partial<NotifyEvent> = {}): NotifyEvent {
  return {
    kind: 'renewal_failed',
    name: 'shop.example.com',
    names,
    errorCode: 'ACME_CHALLENGE_FAILED',
    ...(acmeType ? { acmeType } : {}),
    detail,
    attempts: 3,
    firstFailureAt: at(-26 * HOUR),
    nextAttemptAt: at(100 * 60_000),
    notAfter: at(20 * DAY),
    ...extra,
  } as NotifyEvent;
}

describe('renewal failure message', () => {
  const detail = '203.0.113.7: Fetching http://shop.example.com/.well-known/acme-challenge/abc: Timeout during connect (likely firewall problem)';
  const m = renderMessage(failed('connection', detail), now);

  it('names the certificate and the ACME type in the subject', () => {
    assert.equal(m.subject, '[padlock] Certificate renewal failed for shop.example.com (connection)');
  });

  it('lists every name, the CA words, the ACME type and the error code', () => {
    for (const part of [m.text, m.html]) {
      assert.match(part, /shop\.example\.com, www\.shop\.example\.com/);
      assert.match(part, /ACME error type/);
      assert.match(part, /connection/);
      assert.match(part, /ACME_CHALLENGE_FAILED/);
    }
    assert.ok(m.text.includes(detail), 'the CA detail verbatim in the text');
    assert.ok(m.html.includes(esc(detail)), 'the CA detail escaped in the HTML');
  });

  it('says when the next attempt is and when the certificate expires', () => {
    assert.match(m.text, /Next attempt: +2026-03-01 13:40 UTC \(in 1\.7 hours\)/);
    assert.match(m.text, /Certificate expires: +2026-03-21 12:00 UTC \(in 20 days\)/);
    assert.match(m.text, /Failed attempts: +3, failing since 2026-02-28 10:00 UTC \(26 hours ago\)/);
  });

  it('says there is no certificate yet when there is none', () => {
    const first = renderMessage(failed('dns', 'NXDOMAIN', { notAfter: undefined } as Partial<NotifyEvent>), now);
    assert.match(first.subject, /issuance failed/);
    assert.match(first.text, /no certificate yet/);
  });

  it('marks a daily reminder in subject and body', () => {
    const r = renderMessage(failed('connection'), now, { reminder: true });
    assert.match(r.subject, /^\[padlock\] Still failing: /);
    assert.match(r.text, /^Reminder: this problem is still going on\./);
    assert.match(r.html, /Reminder: this problem is still going on\./);
  });
});

describe('likeliest fix per ACME error type', () => {
  const cases = [
    { desc: 'connection: DNS and port 80', acmeType: 'connection', want: [/DNS records \(A\/AAAA\) of shop\.example\.com/, /port 80 is open/] },
    { desc: 'dns: DNS and port 80', acmeType: 'dns', want: [/DNS records/, /port 80/] },
    { desc: 'caa: the CAA record', acmeType: 'caa', want: [/CAA record/, /letsencrypt\.org/] },
    { desc: 'unauthorized: a wrong answer, something in between', acmeType: 'unauthorized', want: [/wrong answer/, /proxy/] },
    { desc: 'incorrectResponse: a wrong answer, something in between', acmeType: 'incorrectResponse', want: [/wrong answer/, /redirect in between/] },
    { desc: 'rateLimited: wait until the next attempt', acmeType: 'rateLimited', want: [/Wait until 2026-03-01 13:40 UTC/] },
    { desc: 'no ACME type and an unreachable CA: outbound network', acmeType: undefined, errorCode: 'ACME_UNREACHABLE', want: [/could not reach the CA/] },
    { desc: 'unknown type: the log', acmeType: 'badCSR', want: [/padlock's log/] },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const ev = failed(c.acmeType, 'detail', c.errorCode ? ({ errorCode: c.errorCode } as Partial<NotifyEvent>) : {});
      const fix = fixFor(ev, names, now)!;
      for (const re of c.want) assert.match(fix, re);
      const m = renderMessage(ev, now);
      assert.ok(m.text.includes(`Likeliest fix: ${fix}`), 'the text carries the fix');
      assert.ok(m.html.includes(esc(fix)), 'the HTML carries the fix');
    });
  }
});

describe('other events', () => {
  const base = { name: 'shop.example.com', names };
  const cases: Array<{ desc: string; event: NotifyEvent; subject: RegExp; text: RegExp[] }> = [
    {
      desc: 'expiring: threshold, expiry and the last failure with its fix',
      event: { kind: 'expiring', ...base, notAfter: at(7 * DAY), thresholdDays: 7, lastFailure: { errorCode: 'ACME_CHALLENGE_FAILED', acmeType: 'caa', detail: 'CAA record for example.com prevents issuance' } },
      subject: /^\[padlock\] Certificate for shop\.example\.com expires in 7 days$/,
      text: [/expires 2026-03-08 12:00 UTC \(in 7 days\)/, /alert threshold: 7 days before expiry/, /CAA record for example\.com prevents issuance/, /ACME error type: +caa/, /Likeliest fix: A CAA record/],
    },
    {
      desc: 'expiring: a scaled threshold of a short-lived certificate in hours',
      event: { kind: 'expiring', ...base, notAfter: at(30 * HOUR), thresholdDays: 1.5 },
      subject: /expires in 30 hours$/,
      text: [/alert threshold: 36 hours before expiry/, /check that padlock is running/],
    },
    {
      desc: 'expiring: an expired certificate says so',
      event: { kind: 'expiring', ...base, notAfter: at(-HOUR), thresholdDays: 1 },
      subject: /has expired$/,
      text: [/expired 2026-03-01 11:00 UTC \(1 hour ago\)/],
    },
    {
      desc: 'chain invalid: the verify code, the reason and the fix',
      event: { kind: 'chain_invalid', ...base, verifyCode: 'CHAIN_UNTRUSTED', reason: 'the chain ends in a root that is not trusted', notAfter: at(60 * DAY) },
      subject: /chain for shop\.example\.com failed verification \(CHAIN_UNTRUSTED\)/,
      text: [/Verification error: +CHAIN_UNTRUSTED/, /root that is not trusted/, /--trusted-roots/],
    },
    {
      desc: 'chain invalid: a missing intermediate',
      event: { kind: 'chain_invalid', ...base, verifyCode: 'CHAIN_MISSING_INTERMEDIATE', reason: 'an intermediate certificate is missing' },
      subject: /CHAIN_MISSING_INTERMEDIATE/,
      text: [/lacks an intermediate/],
    },
    {
      desc: 'rate limited: the CA words and wait until the time it named',
      event: { kind: 'rate_limited', ...base, detail: 'too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s', retryAfter: at(3 * DAY), notAfter: at(10 * DAY) },
      subject: /Rate limited by the CA for shop\.example\.com until 2026-03-04 12:00 UTC/,
      text: [/too many certificates \(5\)/, /Next attempt: +2026-03-04 12:00 UTC \(in 3 days\)/, /Likeliest fix: Wait until 2026-03-04 12:00 UTC/, /ACME error type: +rateLimited/],
    },
    {
      desc: 'recovered: after how many failures, and the new expiry',
      event: { kind: 'recovered', ...base, notAfter: at(90 * DAY), failures: 4 },
      subject: /^\[padlock\] Certificate for shop\.example\.com is valid again$/,
      text: [/after 4 failed attempts/, /Certificate expires: +2026-05-30 12:00 UTC \(in 90 days\)/],
    },
    {
      desc: 'test: says it is a test',
      event: { kind: 'test', name: 'padlock', names: [] },
      subject: /^\[padlock\] Test notification$/,
      text: [/padlock notify test/],
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const m = renderMessage(c.event, now);
      assert.match(m.subject, c.subject);
      for (const re of c.text) assert.match(m.text, re);
      assert.match(m.html, /^<!doctype html>/);
    });
  }
});

describe('HTML escaping and secrets', () => {
  it('escapes a CA detail carrying markup, in the body and nowhere raw', () => {
    const evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)>';
    const m = renderMessage(failed('unauthorized', evil), now);
    assert.ok(!m.html.includes('<script>'), 'no raw script tag');
    assert.ok(!m.html.includes('<img'), 'no raw img tag');
    assert.ok(m.html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;'));
    assert.ok(m.text.includes(evil), 'the text part keeps the words as sent');
  });

  it('escapes names and reasons too', () => {
    const m = renderMessage({ kind: 'chain_invalid', name: 'a.example', names: ['a.example'], verifyCode: 'CHAIN_INVALID', reason: "<b>bold</b> 'quoted'" }, now);
    assert.ok(m.html.includes('&lt;b&gt;bold&lt;/b&gt; &#39;quoted&#39;'));
    assert.ok(!m.html.includes('<b>bold'));
  });

  it('clips an overlong CA detail', () => {
    const m = renderMessage(failed('connection', 'x'.repeat(5000)), now);
    assert.ok(!m.text.includes('x'.repeat(2001)));
    assert.ok(m.text.includes('x'.repeat(2000) + '…'));
  });

  it('carries only event fields: no key, password or token field exists to leak', () => {
    const m = renderMessage(failed('connection'), now);
    assert.doesNotMatch(m.text + m.html, /BEGIN [A-Z ]*PRIVATE KEY|password|token/i);
  });
});

describe('durations', () => {
  const cases = [
    { desc: 'whole days from two days on', ms: 14 * DAY, want: '14 days' },
    { desc: 'hours below two days', ms: 36 * HOUR, want: '36 hours' },
    { desc: 'one decimal for a fractional small value', ms: 2.6 * HOUR, want: '2.6 hours' },
    { desc: 'singular for one', ms: HOUR, want: '1 hour' },
    { desc: 'minutes below an hour', ms: 45 * 60_000, want: '45 minutes' },
    { desc: 'fractional hours above one', ms: 100 * 60_000, want: '1.7 hours' },
    { desc: 'seconds', ms: 5000, want: '5 seconds' },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(duration(c.ms), c.want));
});
