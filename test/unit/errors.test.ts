import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AcmeProblemError, PadlockError, isRateLimited, asPadlockError, caRetryAfter } from '../../src/errors.js';
import { parseRetryAfter } from '../../src/acme/client.js';

describe('ACME problem errors', () => {
  const rateLimited = {
    type: 'urn:ietf:params:acme:error:rateLimited',
    detail: 'too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s',
  };

  it('keep a rateLimited problem recognisable, with the Retry-After time, through a cause chain', () => {
    const retryAfter = new Date('2026-12-01T10:00:00Z');
    const inner = new AcmeProblemError(rateLimited, { httpStatus: 429, url: 'https://ca/new-order', retryAfter, action: 'creating an order' });
    const outer = new PadlockError('ACME_ORDER_FAILED', 'renewal failed', { cause: inner });
    assert.equal(inner.code, 'ACME_RATE_LIMITED');
    assert.equal(inner.acmeType, 'rateLimited');
    assert.equal(inner.retryable, true);
    assert.ok(isRateLimited(outer));
    assert.match(inner.message, /creating an order: the CA refused \(rateLimited\): too many certificates/);
    assert.match(inner.message, /retry after 2026-12-01T10:00:00\.000Z/);
    assert.deepEqual(inner.toJSON()['problem'], rateLimited);
  });

  it('keep subproblems as the CA sent them', () => {
    const problem = {
      type: 'urn:ietf:params:acme:error:rejectedIdentifier',
      detail: 'Some identifiers were rejected',
      subproblems: [{ type: 'urn:ietf:params:acme:error:rejectedIdentifier', detail: 'blocked', identifier: { type: 'dns', value: 'bad.example' } }],
    };
    const err = new AcmeProblemError(problem, { httpStatus: 400 });
    assert.equal(err.code, 'ACME_PROBLEM');
    assert.equal(err.retryable, false);
    assert.deepEqual(err.problem.subproblems?.[0]?.identifier, { type: 'dns', value: 'bad.example' });
  });

  it('give accountDoesNotExist its own code', () => {
    assert.equal(new AcmeProblemError({ type: 'urn:ietf:params:acme:error:accountDoesNotExist' }, {}).code, 'ACME_ACCOUNT_MISSING');
  });
});

describe('Retry-After parsing', () => {
  const now = new Date('2026-11-26T12:00:00Z');
  it('reads seconds', () => assert.equal(parseRetryAfter('120', now)?.toISOString(), '2026-11-26T12:02:00.000Z'));
  it('reads an HTTP date', () => assert.equal(parseRetryAfter('Thu, 26 Nov 2026 13:00:00 GMT', now)?.toISOString(), '2026-11-26T13:00:00.000Z'));
  it('ignores garbage and absence', () => {
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('codes stay true', () => {
  it('a foreign error keeps its own identity: UNEXPECTED with the cause, never an ACME, config or store code', () => {
    const cause = Object.assign(new Error('EACCES: permission denied, open /x'), { code: 'EACCES' });
    const e = asPadlockError(cause, 'renewing a.example.com');
    assert.equal(e.code, 'UNEXPECTED');
    assert.equal(e.cause, cause);
    assert.match(e.message, /^renewing a\.example\.com: unexpected error: EACCES: permission denied, open \/x \(EACCES\)$/);
    assert.equal(e.details['errno'], 'EACCES');
  });
  it('a PadlockError passes through unchanged', () => {
    const e = new PadlockError('STORE_CORRUPT', 'bad');
    assert.equal(asPadlockError(e, 'anything'), e);
  });
  it("a 5xx problem is the CA failing, not the CA refusing", () => {
    const e = new AcmeProblemError({ type: 'urn:ietf:params:acme:error:serverInternal', detail: 'oops' }, { httpStatus: 500 });
    assert.equal(e.code, 'ACME_PROBLEM');
    assert.match(e.message, /the CA failed \(HTTP 500, serverInternal\): oops/);
  });
  it('finds the CA\'s Retry-After anywhere in a cause chain', () => {
    const inner = new PadlockError('ACME_CA_UNAVAILABLE', 'down', { details: { retryAfter: '2026-12-03T13:00:00.000Z' } });
    assert.equal(caRetryAfter(new PadlockError('ACME_ORDER_FAILED', 'outer', { cause: inner }))?.toISOString(), '2026-12-03T13:00:00.000Z');
    assert.equal(caRetryAfter(new PadlockError('ACME_UNREACHABLE', 'x')), undefined);
  });
});
