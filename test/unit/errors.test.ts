import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AcmeProblemError, PadlockError, isRateLimited } from '../../src/errors.js';
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
