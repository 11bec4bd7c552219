import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readRetryAfter, clampNote, RETRY_AFTER_MAX_MS } from '../../src/acme/retry-after.js';
import { AcmeProblemError } from '../../src/errors.js';

const now = new Date('2026-12-03T12:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe("a CA's Retry-After, bounded", () => {
  const cases: Array<{ desc: string; value: string | undefined; kind: 'unavailable' | 'rateLimited' | 'other'; waitMs?: number; clamped?: boolean }> = [
    { desc: 'seconds', value: '120', kind: 'other', waitMs: 120_000 },
    { desc: 'an HTTP date', value: 'Thu, 03 Dec 2026 13:00:00 GMT', kind: 'other', waitMs: HOUR },
    { desc: 'absent', value: undefined, kind: 'other' },
    { desc: 'unparsable text', value: 'soon', kind: 'other' },
    { desc: 'empty', value: '  ', kind: 'other' },
    { desc: 'negative seconds mean now', value: '-5', kind: 'unavailable', waitMs: 0 },
    { desc: 'a date in the past means now', value: 'Mon, 01 Jan 2024 00:00:00 GMT', kind: 'unavailable', waitMs: 0 },
    { desc: 'a huge number on a 503 is capped at 24 h', value: '99999999999999999999999999', kind: 'unavailable', waitMs: DAY, clamped: true },
    { desc: 'a 400-digit number does not overflow to an invalid date', value: '9'.repeat(400), kind: 'rateLimited', waitMs: 7 * DAY, clamped: true },
    { desc: 'a date far in the future on a 429 is capped at 7 days', value: 'Fri, 31 Dec 9999 23:59:59 GMT', kind: 'rateLimited', waitMs: 7 * DAY, clamped: true },
    { desc: '8 days on a 429 is capped at 7', value: String(8 * 86_400), kind: 'rateLimited', waitMs: 7 * DAY, clamped: true },
    { desc: '6 days on a 429 is kept', value: String(6 * 86_400), kind: 'rateLimited', waitMs: 6 * DAY },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const r = readRetryAfter(c.value, now, c.kind);
      if (c.waitMs === undefined) return assert.equal(r, undefined);
      assert.ok(r, 'parsed');
      assert.ok(!Number.isNaN(r.at.getTime()), 'a valid date');
      assert.equal(r.at.getTime() - now.getTime(), c.waitMs);
      assert.equal(r.clamped !== undefined, c.clamped ?? false);
      assert.doesNotThrow(() => r.at.toISOString());
    });
  }

  it('documents its limits as constants: 24 h for an outage, 7 days for a rate limit', () => {
    assert.equal(RETRY_AFTER_MAX_MS.unavailable, DAY);
    assert.equal(RETRY_AFTER_MAX_MS.rateLimited, 7 * DAY);
  });

  it('says in the message what the CA asked and what padlock honours', () => {
    const r = readRetryAfter('99999999', now, 'unavailable');
    assert.equal(clampNote(r), ' (the CA asked for 99999999 s; padlock waits at most 24 h)');
    const err = new AcmeProblemError({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'down' }, { httpStatus: 503, retryAfter: r!.at, retryAfterNote: clampNote(r), action: 'creating an order for a.example.com' });
    assert.equal(err.code, 'ACME_CA_UNAVAILABLE');
    assert.match(err.message, /^creating an order for a\.example\.com: the CA is unavailable \(HTTP 503, serverInternal\): down\. The CA asks to retry after 2026-12-04T12:00:00\.000Z \(the CA asked for 99999999 s; padlock waits at most 24 h\)\.$/);
    assert.doesNotMatch(err.message, /refused/);
  });
});
