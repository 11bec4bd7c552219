import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideRenewal, renewalTime, nextAttemptAfterFailure, blockedUntil, nextFailureRecord } from '../../src/certificates/policy.js';
import { AcmeProblemError, PadlockError } from '../../src/errors.js';

const DAY = 86_400_000;
const t0 = new Date('2026-01-01T00:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

describe('renewal policy without ARI', () => {
  const cases = [
    { desc: 'a 90-day certificate is not due at day 59', days: 90, nowMs: 59 * DAY, due: false, reason: 'not-due' },
    { desc: 'a 90-day certificate is due at day 60 (a third left)', days: 90, nowMs: 60 * DAY, due: true, reason: 'lifetime-share' },
    { desc: 'a 45-day certificate is due at day 30, not at a fixed 30 days left', days: 45, nowMs: 30 * DAY, due: true, reason: 'lifetime-share' },
    { desc: 'a 45-day certificate is not due at day 29', days: 45, nowMs: 29 * DAY, due: false, reason: 'not-due' },
    { desc: 'a 6-day certificate renews at half its lifetime (day 3)', days: 6, nowMs: 3 * DAY, due: true, reason: 'lifetime-share' },
    { desc: 'a 6-day certificate is not due at day 2.9', days: 6, nowMs: 2.9 * DAY, due: false, reason: 'not-due' },
    { desc: 'an expired certificate is due as expired', days: 90, nowMs: 91 * DAY, due: true, reason: 'expired' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const d = decideRenewal({ notBefore: t0, notAfter: at(c.days * DAY) }, at(c.nowMs));
      assert.equal(d.due, c.due);
      assert.equal(d.reason, c.reason);
    });
  }

  it('places the renewal time two thirds into a 90-day lifetime', () => {
    assert.equal(renewalTime({ notBefore: t0, notAfter: at(90 * DAY) }).toISOString(), at(60 * DAY).toISOString());
  });

  it('does not renew a certificate obtained moments ago whose dates already say due (clock skew), until a third of its lifetime passed', () => {
    // The CA's clock is 70 days behind ours: by its dates the fresh certificate is already in its renewal window.
    const v = { notBefore: t0, notAfter: at(90 * DAY) };
    const obtainedAt = at(70 * DAY);
    assert.equal(decideRenewal(v, at(70 * DAY + 60_000), { obtainedAt }).due, false);
    assert.equal(decideRenewal(v, at(70 * DAY + 60_000), { obtainedAt }).dueAt.toISOString(), at(100 * DAY).toISOString(), 'a third of the lifetime after it was obtained');
    assert.equal(decideRenewal(v, at(91 * DAY), { obtainedAt }).reason, 'expired', 'expiry still wins');
    assert.equal(decideRenewal(v, at(61 * DAY), { obtainedAt: at(0) }).reason, 'lifetime-share', 'normal renewals are unaffected');
  });

  it('renews a revoked certificate at once, and a forced one even when fresh', () => {
    const v = { notBefore: t0, notAfter: at(90 * DAY) };
    assert.equal(decideRenewal(v, at(DAY), { revoked: true }).reason, 'revoked');
    assert.equal(decideRenewal(v, at(DAY), { forced: true }).reason, 'forced');
  });
});

describe('backoff after failures', () => {
  const noJitter = () => 0;
  const cases = [
    { desc: 'waits 1 minute after the first failure', failures: 1, ms: 60_000 },
    { desc: 'waits 10 minutes after the second', failures: 2, ms: 600_000 },
    { desc: 'waits 100 minutes after the third', failures: 3, ms: 6_000_000 },
    { desc: 'waits a day after the fourth and later', failures: 7, ms: DAY },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.equal(nextAttemptAfterFailure(c.failures, t0, { random: noJitter }).getTime() - t0.getTime(), c.ms);
    });
  }

  it('adds at most 10 % jitter', () => {
    const d = nextAttemptAfterFailure(1, t0, { random: () => 0.999 }).getTime() - t0.getTime();
    assert.ok(d > 60_000 && d < 66_000, `got ${d}`);
  });

  it("honours the CA's Retry-After when it is later than the backoff", () => {
    const retryAfter = at(3 * 3600_000);
    assert.equal(nextAttemptAfterFailure(1, t0, { retryAfter, random: noJitter }).toISOString(), retryAfter.toISOString());
  });

  it('blocks until the next attempt time, and lets a forced renewal through unless rate limited', () => {
    const record = { failures: 2, nextAttemptAt: at(600_000).toISOString() };
    assert.equal(blockedUntil(record, at(1000))?.toISOString(), at(600_000).toISOString());
    assert.equal(blockedUntil(record, at(700_000)), undefined);
    assert.equal(blockedUntil(record, at(1000), { forced: true }), undefined);
    const limited = { ...record, rateLimited: true };
    assert.ok(blockedUntil(limited, at(1000), { forced: true }));
    assert.equal(blockedUntil(limited, at(1000), { forced: true, ignoreRateLimit: true }), undefined);
  });
});

describe('what a failure record makes padlock wait for', () => {
  const noJitter = () => 0;
  const now = at(0);
  const unavailable = new AcmeProblemError(
    { type: 'urn:ietf:params:acme:error:serverInternal', detail: 'down for maintenance' },
    { httpStatus: 503, retryAfter: at(600_000), action: 'creating an order for a.example.com' },
  );
  const cases: Array<{ desc: string; err: unknown; wantNext: number; caWait: boolean; rateLimited: boolean; code: string }> = [
    { desc: "a 503 with Retry-After: the CA's time, kept as a CA wait", err: unavailable, wantNext: 600_000, caWait: true, rateLimited: false, code: 'ACME_CA_UNAVAILABLE' },
    {
      desc: 'a 429 rateLimited: the CA\'s time, as a rate limit',
      err: new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'slow down' }, { httpStatus: 429, retryAfter: at(3600_000) }),
      wantNext: 3600_000, caWait: true, rateLimited: true, code: 'ACME_RATE_LIMITED',
    },
    { desc: 'an unreachable CA: padlock\'s own first backoff step (1 min)', err: new PadlockError('ACME_UNREACHABLE', 'down'), wantNext: 60_000, caWait: false, rateLimited: false, code: 'ACME_UNREACHABLE' },
    { desc: 'a foreign error: reported as UNEXPECTED, with the backoff', err: new TypeError('x is undefined'), wantNext: 60_000, caWait: false, rateLimited: false, code: 'UNEXPECTED' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const r = nextFailureRecord(undefined, c.err, now, noJitter);
      assert.equal(r.nextAttemptAt, at(c.wantNext).toISOString());
      assert.equal(r.caWait ?? false, c.caWait);
      assert.equal(r.rateLimited, c.rateLimited);
      assert.equal(r.lastError?.code, c.code);
      assert.equal(r.failures, 1);
    });
  }

  it('keeps a wait the CA asked for even against --force-renewal; only --ignore-rate-limit skips it', () => {
    const record = nextFailureRecord(undefined, unavailable, now, noJitter);
    assert.equal(blockedUntil(record, at(1000), { forced: true })?.toISOString(), at(600_000).toISOString());
    assert.equal(blockedUntil(record, at(1000), { forced: true, ignoreRateLimit: true }), undefined);
    assert.equal(blockedUntil(record, at(1000), { ignoreRateLimit: true }), undefined);
  });

  it('never blocks on a record whose time does not parse', () => {
    assert.equal(blockedUntil({ failures: 1, nextAttemptAt: 'not a date' }, now), undefined);
  });
});
