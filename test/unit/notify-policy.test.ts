import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  dueExpiryThreshold,
  expiryThresholds,
  failureEvent,
  nextNotification,
  notifyStateOf,
  shouldAlertFailure,
  type AlertFailureRecord,
  type NotifyState,
} from '../../src/notify/policy.js';
import type { NotifyEvent } from '../../src/notify/events.js';
import { AcmeProblemError, PadlockError } from '../../src/errors.js';

const HOUR = 3_600_000;
const DAY = 86_400_000;
const t0 = new Date('2026-03-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const iso = (ms: number) => at(ms).toISOString();

describe('failure alert window', () => {
  // A 90-day certificate issued at t0 is due for renewal at day 60.
  const cert90 = { notBefore: t0, notAfter: at(90 * DAY) };
  const cases: Array<{ desc: string; record: AlertFailureRecord; cert?: typeof cert90; nowMs: number; alert: boolean }> = [
    { desc: 'stays quiet after 1 failure an hour old in the renewal window', record: { failures: 1, firstFailureAt: iso(60 * DAY) }, cert: cert90, nowMs: 60 * DAY + HOUR, alert: false },
    { desc: 'alerts at the 3rd failure even within the first day', record: { failures: 3, firstFailureAt: iso(60 * DAY) }, cert: cert90, nowMs: 60 * DAY + 2 * HOUR, alert: true },
    { desc: 'alerts after 24 h of failures even with only 2 attempts', record: { failures: 2, firstFailureAt: iso(60 * DAY) }, cert: cert90, nowMs: 61 * DAY, alert: true },
    { desc: 'does not alert 1 ms before 24 h with 2 attempts', record: { failures: 2, firstFailureAt: iso(60 * DAY) }, cert: cert90, nowMs: 61 * DAY - 1, alert: false },
    { desc: 'never alerts before the renewal window, even after many failures (a forced renewal)', record: { failures: 9, firstFailureAt: iso(DAY) }, cert: cert90, nowMs: 30 * DAY, alert: false },
    { desc: 'alerts for a missing certificate after 3 failures', record: { failures: 3 }, nowMs: HOUR, alert: true },
    { desc: 'stays quiet for a missing certificate after 2 failures within a day', record: { failures: 2, firstFailureAt: iso(0) }, nowMs: 2 * HOUR, alert: false },
    { desc: 'alerts for an expired certificate after 24 h of failures', record: { failures: 2, firstFailureAt: iso(89 * DAY) }, cert: cert90, nowMs: 91 * DAY, alert: true },
    { desc: 'uses lastAttemptAt as the start when a single failure has no firstFailureAt', record: { failures: 1, lastAttemptAt: iso(60 * DAY) }, cert: cert90, nowMs: 61 * DAY, alert: true },
    { desc: 'cannot date 2 failures without firstFailureAt, so only the count decides', record: { failures: 2, lastAttemptAt: iso(60 * DAY) }, cert: cert90, nowMs: 65 * DAY, alert: false },
    { desc: 'never alerts with no failures', record: { failures: 0 }, nowMs: 0, alert: false },
    { desc: 'a 6-day certificate alerts inside its renewal window (from day 3)', record: { failures: 3 }, cert: { notBefore: t0, notAfter: at(6 * DAY) }, nowMs: 3 * DAY, alert: true },
    { desc: 'a 6-day certificate stays quiet before day 3', record: { failures: 3 }, cert: { notBefore: t0, notAfter: at(6 * DAY) }, nowMs: 3 * DAY - 1, alert: false },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.equal(shouldAlertFailure(c.record, c.cert, at(c.nowMs)), c.alert);
    });
  }
});

describe('expiry thresholds', () => {
  const cases = [
    { desc: 'a 90-day certificate gets 14, 7, 3 and 1 days', lifetime: 90 * DAY, want: [14, 7, 3, 1] },
    { desc: 'a 64-day certificate still gets 14, 7, 3 and 1 days', lifetime: 64 * DAY, want: [14, 7, 3, 1] },
    { desc: 'a 56-day certificate is the last one unscaled', lifetime: 56 * DAY, want: [14, 7, 3, 1] },
    { desc: 'a 45-day certificate scales by 45/56', lifetime: 45 * DAY, want: [11.25, 5.625, 3 * 45 / 56, 45 / 56] },
    { desc: 'a 6-day certificate gets 36 h, 18 h and proportional smaller ones', lifetime: 6 * DAY, want: [1.5, 0.75, 18 / 56, 6 / 56] },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const got = expiryThresholds(c.lifetime);
      assert.equal(got.length, c.want.length);
      c.want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) < 1e-6, `threshold ${i}: got ${got[i]}, want ${w}`));
    });
  }

  it('keeps thresholds distinct, descending and below the lifetime, down to a one-minute certificate', () => {
    for (const lifetime of [90 * DAY, 45 * DAY, 10 * DAY, 6 * DAY, DAY, HOUR, 60_000]) {
      const got = expiryThresholds(lifetime);
      assert.equal(got.length, 4, `lifetime ${lifetime}`);
      for (let i = 0; i < got.length; i++) {
        assert.ok(got[i]! * DAY < lifetime, `below the lifetime: ${got[i]}`);
        if (i > 0) assert.ok(got[i]! < got[i - 1]!, 'strictly descending');
      }
    }
  });

  it('puts the first threshold after the renewal point for every lifetime', () => {
    for (const days of [90, 64, 45, 30, 10, 9, 6, 1]) {
      const lifetime = days * DAY;
      const leftAtRenewal = lifetime * (days < 10 ? 1 / 2 : 1 / 3);
      assert.ok(expiryThresholds(lifetime)[0]! * DAY < leftAtRenewal, `${days}-day certificate`);
    }
  });

  it('has no thresholds for a zero or negative lifetime', () => {
    assert.deepEqual(expiryThresholds(0), []);
    assert.deepEqual(expiryThresholds(-5), []);
  });

  const notAfter = at(90 * DAY);
  const due = [
    { desc: 'nothing is due 15 days before expiry', nowMs: 75 * DAY, sent: [], want: undefined },
    { desc: '14 days is due exactly 14 days before expiry', nowMs: 76 * DAY, sent: [], want: 14 },
    { desc: '14 days is not due again once sent', nowMs: 77 * DAY, sent: [14], want: undefined },
    { desc: '7 days is due after 14 was sent', nowMs: 83 * DAY, sent: [14], want: 7 },
    { desc: 'after downtime only the tightest crossed threshold is due', nowMs: 88 * DAY, sent: [], want: 3 },
    { desc: 'a looser threshold is never due after a tighter one was sent', nowMs: 88 * DAY, sent: [1], want: undefined },
    { desc: 'an expired certificate is due at the last threshold', nowMs: 95 * DAY, sent: [14, 7, 3], want: 1 },
  ];
  for (const c of due) {
    it(c.desc, () => {
      assert.equal(dueExpiryThreshold(notAfter, 90 * DAY, at(c.nowMs), c.sent), c.want);
    });
  }

  it('a 6-day certificate is due at 36 h left, not at 14 days', () => {
    const short = at(6 * DAY);
    assert.equal(dueExpiryThreshold(short, 6 * DAY, at(4.5 * DAY - 1), []), undefined);
    assert.equal(dueExpiryThreshold(short, 6 * DAY, at(4.5 * DAY), []), 1.5);
  });
});

describe('deduplication', () => {
  const base = { name: 'a.example', names: ['a.example', 'www.a.example'] };
  const failed: NotifyEvent = { kind: 'renewal_failed', ...base, errorCode: 'ACME_CHALLENGE_FAILED', acmeType: 'connection', detail: 'no route', attempts: 3 };
  const limited: NotifyEvent = { kind: 'rate_limited', ...base, detail: 'too many certificates' };
  const chain = (verifyCode: string): NotifyEvent => ({ kind: 'chain_invalid', ...base, verifyCode, reason: 'r' });
  const expiring = (thresholdDays: number, notAfterMs = 90 * DAY): NotifyEvent => ({ kind: 'expiring', ...base, notAfter: at(notAfterMs), thresholdDays });
  const recovered: NotifyEvent = { kind: 'recovered', ...base, notAfter: at(180 * DAY), failures: 4 };
  const test: NotifyEvent = { kind: 'test', ...base };

  /** Runs events through the policy, keeping the state as the notifier would after a successful send. */
  function run(steps: Array<{ event: NotifyEvent; atMs: number }>, start: NotifyState = {}): string[] {
    let state = start;
    return steps.map(({ event, atMs }) => {
      const d = nextNotification(state, event, at(atMs));
      state = d.state;
      return d.send ? (d.reminder ? 'remind' : 'send') : `skip:${d.reason}`;
    });
  }

  const cases: Array<{ desc: string; steps: Array<{ event: NotifyEvent; atMs: number }>; want: string[] }> = [
    { desc: 'the same failure twice sends one message', steps: [{ event: failed, atMs: 0 }, { event: failed, atMs: HOUR }], want: ['send', 'skip:duplicate'] },
    {
      desc: 'a failure that lasts gets a daily reminder, and nothing in between',
      steps: [{ event: failed, atMs: 0 }, { event: failed, atMs: 23 * HOUR }, { event: failed, atMs: 24 * HOUR }, { event: failed, atMs: 30 * HOUR }, { event: failed, atMs: 48 * HOUR }],
      want: ['send', 'skip:duplicate', 'remind', 'skip:duplicate', 'remind'],
    },
    { desc: 'a change from failing to rate limited is a new state', steps: [{ event: failed, atMs: 0 }, { event: limited, atMs: HOUR }, { event: limited, atMs: 2 * HOUR }], want: ['send', 'send', 'skip:duplicate'] },
    { desc: 'a different chain error is a new state', steps: [{ event: chain('CHAIN_UNTRUSTED'), atMs: 0 }, { event: chain('CHAIN_UNTRUSTED'), atMs: 1 }, { event: chain('CHAIN_MISSING_INTERMEDIATE'), atMs: 2 }], want: ['send', 'skip:duplicate', 'send'] },
    { desc: 'recovered is not sent when no alert went out', steps: [{ event: recovered, atMs: 0 }], want: ['skip:no-alert-sent'] },
    { desc: 'recovered is sent once after a failure alert', steps: [{ event: failed, atMs: 0 }, { event: recovered, atMs: HOUR }, { event: recovered, atMs: 2 * HOUR }], want: ['send', 'send', 'skip:no-alert-sent'] },
    { desc: 'a new failure after recovery is alerted again at once', steps: [{ event: failed, atMs: 0 }, { event: recovered, atMs: HOUR }, { event: failed, atMs: 2 * HOUR }], want: ['send', 'send', 'send'] },
    { desc: 'each expiry threshold is sent once', steps: [{ event: expiring(14), atMs: 0 }, { event: expiring(14), atMs: HOUR }, { event: expiring(7), atMs: 7 * DAY }], want: ['send', 'skip:threshold-already-sent', 'send'] },
    { desc: 'a looser threshold after a tighter one is dropped', steps: [{ event: expiring(3), atMs: 0 }, { event: expiring(7), atMs: HOUR }], want: ['send', 'skip:threshold-already-sent'] },
    { desc: 'a new certificate (other notAfter) starts its thresholds afresh', steps: [{ event: expiring(14), atMs: 0 }, { event: expiring(14, 180 * DAY), atMs: 90 * DAY }], want: ['send', 'send'] },
    { desc: 'an expiry warning makes a later recovery worth sending', steps: [{ event: expiring(14), atMs: 0 }, { event: recovered, atMs: DAY }], want: ['send', 'send'] },
    { desc: 'test messages are always sent and change nothing', steps: [{ event: test, atMs: 0 }, { event: test, atMs: 1 }, { event: recovered, atMs: 2 }], want: ['send', 'send', 'skip:no-alert-sent'] },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.deepEqual(run(c.steps), c.want);
    });
  }

  it('keeps working from a state read back from JSON (after a restart)', () => {
    const d = nextNotification({}, failed, at(0));
    const restored = notifyStateOf({ failure: { failures: 3 }, notify: JSON.parse(JSON.stringify(d.state)) });
    assert.equal(nextNotification(restored, failed, at(HOUR)).send, false);
    assert.equal(nextNotification(restored, failed, at(25 * HOUR)).send, true);
  });

  it('treats a junk notify record as empty', () => {
    assert.deepEqual(notifyStateOf({ notify: 'junk' }), {});
    assert.deepEqual(notifyStateOf(null), {});
    assert.deepEqual(notifyStateOf({ notify: { open: { key: 5 }, expiry: { notAfter: 1 } } }), {});
  });
});

describe('failure events from a failed attempt', () => {
  const cert = { notBefore: t0, notAfter: at(90 * DAY) };
  const challengeError = () =>
    new PadlockError('ACME_CHALLENGE_FAILED', 'the CA could not validate a.example (connection): Timeout during connect', {
      cause: new AcmeProblemError({ type: 'urn:ietf:params:acme:error:connection', detail: '1.2.3.4: Timeout during connect (likely firewall problem)' }, {}),
    });

  it('reports a failure inside the alert window with the CA words and ACME type', () => {
    const ev = failureEvent({ name: 'a.example', names: ['a.example'], email: 'o@a.example', error: challengeError(), record: { failures: 3, nextAttemptAt: iso(62 * DAY) }, cert, now: at(61 * DAY) });
    assert.ok(ev && ev.kind === 'renewal_failed');
    assert.equal(ev.acmeType, 'connection');
    assert.equal(ev.detail, '1.2.3.4: Timeout during connect (likely firewall problem)');
    assert.equal(ev.errorCode, 'ACME_CHALLENGE_FAILED');
    assert.equal(ev.attempts, 3);
    assert.equal(ev.email, 'o@a.example');
    assert.equal(ev.nextAttemptAt?.toISOString(), iso(62 * DAY));
    assert.equal(ev.notAfter?.toISOString(), cert.notAfter.toISOString());
  });

  it('says nothing for a failure outside the alert window', () => {
    assert.equal(failureEvent({ name: 'a.example', names: ['a.example'], error: challengeError(), record: { failures: 1, lastAttemptAt: iso(61 * DAY) }, cert, now: at(61 * DAY) }), undefined);
  });

  it('reports a rate limit at once, with the Retry-After', () => {
    const retryAfter = at(5 * DAY);
    const error = new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates already issued' }, { retryAfter });
    const ev = failureEvent({ name: 'a.example', names: ['a.example'], error, record: { failures: 1 }, cert, now: at(DAY) });
    assert.ok(ev && ev.kind === 'rate_limited');
    assert.equal(ev.retryAfter?.toISOString(), retryAfter.toISOString());
    assert.equal(ev.detail, 'too many certificates already issued');
  });

  it('reports a chain failure at once with its verify code', () => {
    const ev = failureEvent({ name: 'a.example', names: ['a.example'], error: new PadlockError('CHAIN_UNTRUSTED', 'the chain ends in an untrusted root'), record: { failures: 1 }, now: at(0) });
    assert.ok(ev && ev.kind === 'chain_invalid');
    assert.equal(ev.verifyCode, 'CHAIN_UNTRUSTED');
  });
});
