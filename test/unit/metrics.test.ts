import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, UNKNOWN_HOST, failureReason, labelValue } from '../../src/observe/metrics.js';
import type { CertificateInput } from '../../src/observe/status.js';
import type { ProxyStats } from '../../src/proxy/server.js';
import { AcmeProblemError, PadlockError } from '../../src/errors.js';

const NOW = new Date('2026-11-26T12:00:00Z');
const sec = (iso: string) => Date.parse(iso) / 1000;

const CERTS: CertificateInput[] = [
  { name: 'app.example.com', state: 'valid', issuer: 'acme', notAfter: '2027-01-20T00:00:00.000Z', renewAt: '2026-12-31T00:00:00.000Z' },
  {
    name: 'broken.example.com', state: 'waiting', issuer: 'acme', notAfter: '2026-12-01T00:00:00.000Z',
    lastError: { code: 'ACME_RATE_LIMITED', message: 'the CA refused (rateLimited): too many certificates', acmeType: 'rateLimited' },
    nextAttemptAt: '2026-11-27T00:00:00.000Z',
  },
  {
    name: 'old-failure.example.com', state: 'valid', issuer: 'acme', notAfter: '2027-02-01T00:00:00.000Z', renewAt: '2027-01-01T00:00:00.000Z',
    lastError: { code: 'ACME_CHALLENGE_FAILED', message: 'x', acmeType: 'unauthorized' },
    nextAttemptAt: '2026-11-01T00:00:00.000Z',
  },
  { name: 'new.example.com', state: 'missing' },
];

const PROXY: ProxyStats = {
  openConnections: 7, websockets: 2, inFlight: 3, requestsByStatus: { '200': 10 }, upstreamConnectionsOpened: 5, upstreamRetries: 1,
  routes: 3, upstreamsDown: 1, certificates: { names: 2, cachedContexts: 2, builtContexts: 2 },
};

/** The value of one sample line, `name{labels} value`, or undefined. Labels match in any order. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

function metrics(): Metrics {
  return new Metrics({ source: { certificates: () => CERTS, proxy: () => PROXY, now: () => NOW } });
}

describe('metrics exposition', () => {
  it('exposes each certificate\'s not-after and next renewal (its renewal time, or the end of a backoff still running)', async () => {
    const text = await metrics().exposition();
    assert.equal(sample(text, 'padlock_certificate_not_after_timestamp_seconds', { name: 'app.example.com' }), sec('2027-01-20T00:00:00.000Z'));
    assert.equal(sample(text, 'padlock_certificate_next_renewal_timestamp_seconds', { name: 'app.example.com' }), sec('2026-12-31T00:00:00.000Z'));
    assert.equal(sample(text, 'padlock_certificate_next_renewal_timestamp_seconds', { name: 'broken.example.com' }), sec('2026-11-27T00:00:00.000Z'));
    assert.equal(sample(text, 'padlock_certificate_next_renewal_timestamp_seconds', { name: 'old-failure.example.com' }), sec('2027-01-01T00:00:00.000Z'),
      'a backoff that already ended does not hide the renewal time');
    assert.equal(sample(text, 'padlock_certificate_not_after_timestamp_seconds', { name: 'new.example.com' }), undefined, 'no certificate, no sample');
  });

  it('reports rate-limited-until only for names the CA is rate limiting now', async () => {
    const text = await metrics().exposition();
    assert.equal(sample(text, 'padlock_certificate_rate_limited_until_timestamp_seconds', { name: 'broken.example.com' }), sec('2026-11-27T00:00:00.000Z'));
    assert.equal(sample(text, 'padlock_certificate_rate_limited_until_timestamp_seconds', { name: 'app.example.com' }), undefined);
    assert.equal(sample(text, 'padlock_certificate_rate_limited_until_timestamp_seconds', { name: 'old-failure.example.com' }), undefined);
  });

  it('marks each certificate\'s current state and whether its last attempt failed', async () => {
    const text = await metrics().exposition();
    assert.equal(sample(text, 'padlock_certificate_state', { name: 'broken.example.com', state: 'waiting' }), 1);
    assert.equal(sample(text, 'padlock_certificate_state', { name: 'broken.example.com', state: 'valid' }), 0);
    assert.equal(sample(text, 'padlock_certificate_state', { name: 'new.example.com', state: 'missing' }), 1);
    assert.equal(sample(text, 'padlock_certificate_failing', { name: 'broken.example.com' }), 1);
    assert.equal(sample(text, 'padlock_certificate_failing', { name: 'app.example.com' }), 0);
  });

  it('reads scrape-time gauges fresh on every scrape (a retired name disappears)', async () => {
    let certs = CERTS;
    const m = new Metrics({ source: { certificates: () => certs, now: () => NOW } });
    assert.ok(sample(await m.exposition(), 'padlock_certificate_not_after_timestamp_seconds', { name: 'app.example.com' }));
    certs = [];
    assert.equal(sample(await m.exposition(), 'padlock_certificate_not_after_timestamp_seconds', { name: 'app.example.com' }), undefined);
  });

  it('counts renewal attempts by outcome and failures by reason', async () => {
    const m = metrics();
    m.renewal('success');
    m.renewal('success');
    m.renewal('failure', failureReason(new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many' }, {})));
    m.renewal('failure', failureReason(new PadlockError('ACME_UNREACHABLE', 'down')));
    m.renewal('failure', failureReason(new PadlockError('ACME_UNREACHABLE', 'down again')));
    const text = await m.exposition();
    assert.equal(sample(text, 'padlock_certificate_renewal_attempts_total', { outcome: 'success' }), 2);
    assert.equal(sample(text, 'padlock_certificate_renewal_attempts_total', { outcome: 'failure' }), 3);
    assert.equal(sample(text, 'padlock_certificate_renewal_failures_total', { reason: 'rateLimited' }), 1);
    assert.equal(sample(text, 'padlock_certificate_renewal_failures_total', { reason: 'ACME_UNREACHABLE' }), 2);
  });

  it('observes ACME request latency in seconds, by status', async () => {
    const m = metrics();
    m.acmeRequest(40, 200);
    m.acmeRequest(300, 201);
    m.acmeRequest(2_000, 429);
    const text = await m.exposition();
    assert.equal(sample(text, 'padlock_acme_request_duration_seconds_count', { status: '200' }), 1);
    assert.equal(sample(text, 'padlock_acme_request_duration_seconds_bucket', { status: '200', le: '0.05' }), 1);
    assert.equal(sample(text, 'padlock_acme_request_duration_seconds_bucket', { status: '201', le: '0.25' }), 0);
    assert.equal(sample(text, 'padlock_acme_request_duration_seconds_bucket', { status: '201', le: '0.5' }), 1);
    assert.equal(sample(text, 'padlock_acme_request_duration_seconds_sum', { status: '429' }), 2);
  });

  it('counts proxy requests by routed host and status, unknown hosts as _unknown, with a duration histogram', async () => {
    const m = metrics();
    m.proxyObserver.request('app.example.com', 200, 0.004);
    m.proxyObserver.request('app.example.com', 200, 0.2);
    m.proxyObserver.request('app.example.com', 502, 0.001);
    m.proxyObserver.request(undefined, 404, 0.001);
    m.proxyObserver.request(undefined, 421, 0.001);
    m.proxyObserver.upstreamError('app.example.com', 'ECONNREFUSED');
    m.proxyObserver.upstreamError('app.example.com', 'weird error text with spaces');
    const text = await m.exposition();
    assert.equal(sample(text, 'padlock_proxy_requests_total', { host: 'app.example.com', status: '200' }), 2);
    assert.equal(sample(text, 'padlock_proxy_requests_total', { host: 'app.example.com', status: '502' }), 1);
    assert.equal(sample(text, 'padlock_proxy_requests_total', { host: UNKNOWN_HOST, status: '404' }), 1);
    assert.equal(sample(text, 'padlock_proxy_request_duration_seconds_count', { host: 'app.example.com' }), 3);
    assert.equal(sample(text, 'padlock_proxy_request_duration_seconds_bucket', { host: 'app.example.com', le: '0.005' }), 2);
    assert.equal(sample(text, 'padlock_proxy_request_duration_seconds_count', { host: UNKNOWN_HOST }), 2);
    assert.equal(sample(text, 'padlock_proxy_upstream_errors_total', { host: 'app.example.com', error: 'ECONNREFUSED' }), 1);
    assert.equal(sample(text, 'padlock_proxy_upstream_errors_total', { host: 'app.example.com', error: 'other' }), 1);
  });

  it('drops the per-host series of a host that is no longer routed, and keeps the others', async () => {
    const m = metrics();
    m.proxyObserver.request('gone.example.com', 200, 0.01);
    m.proxyObserver.request('gone.example.com', 502, 0.01);
    m.proxyObserver.upstreamError('gone.example.com', 'ECONNREFUSED');
    m.proxyObserver.request('kept.example.com', 200, 0.01);
    m.proxyObserver.request(undefined, 404, 0.01);
    m.forgetHostsExcept(['kept.example.com']);
    const text = await m.exposition();
    assert.doesNotMatch(text, /gone\.example\.com/);
    assert.equal(sample(text, 'padlock_proxy_requests_total', { host: 'kept.example.com', status: '200' }), 1);
    assert.equal(sample(text, 'padlock_proxy_requests_total', { host: UNKNOWN_HOST, status: '404' }), 1);
    m.proxyObserver.request('gone.example.com', 200, 0.01);
    assert.equal(sample(await m.exposition(), 'padlock_proxy_requests_total', { host: 'gone.example.com', status: '200' }), 1, 'counting starts again if it comes back');
  });

  it('reads open connections, WebSockets and the proxy\'s own counters at scrape time', async () => {
    const text = await metrics().exposition();
    assert.equal(sample(text, 'padlock_proxy_open_connections'), 7);
    assert.equal(sample(text, 'padlock_proxy_websockets'), 2);
    assert.equal(sample(text, 'padlock_proxy_requests_in_flight'), 3);
    assert.equal(sample(text, 'padlock_proxy_upstreams_down'), 1);
    assert.equal(sample(text, 'padlock_proxy_upstream_connections_opened_total'), 5);
    assert.equal(sample(text, 'padlock_proxy_upstream_retries_total'), 1);
    assert.match(text, /# TYPE padlock_proxy_upstream_retries_total counter/);
  });

  it('keeps each daemon\'s metrics in its own registry', async () => {
    const a = metrics();
    const b = metrics();
    a.renewal('success');
    assert.equal(sample(await b.exposition(), 'padlock_certificate_renewal_attempts_total', { outcome: 'success' }), undefined);
    assert.equal(sample(await a.exposition(), 'padlock_certificate_renewal_attempts_total', { outcome: 'success' }), 1);
  });

  it('survives a source that throws (the scrape still answers)', async () => {
    const m = new Metrics({ source: { certificates: () => { throw new Error('boom'); }, proxy: () => { throw new Error('boom'); } } });
    const text = await m.exposition();
    assert.match(text, /# TYPE padlock_certificate_not_after_timestamp_seconds gauge/);
  });
});

describe('label values stay bounded', () => {
  const cases: Array<{ desc: string; in: string | undefined; out: string }> = [
    { desc: 'an error code passes', in: 'ECONNREFUSED', out: 'ECONNREFUSED' },
    { desc: 'an ACME short type passes', in: 'rateLimited', out: 'rateLimited' },
    { desc: 'free text folds into other', in: 'the CA said no', out: 'other' },
    { desc: 'a very long value folds into other', in: 'x'.repeat(49), out: 'other' },
    { desc: 'empty falls back', in: '', out: 'other' },
    { desc: 'undefined falls back', in: undefined, out: 'other' },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(labelValue(c.in), c.out));

  it('a non-ACME problem URN is reported by padlock\'s error code', () => {
    const err = new AcmeProblemError({ type: 'urn:example:custom', detail: 'x' }, {});
    assert.equal(failureReason(err), 'ACME_PROBLEM');
  });
});

describe('metrics for held requests and padlock\'s own 503s', () => {
  it('counts held requests by host and outcome, their hold time by outcome, and 503s by reason', async () => {
    const m = metrics();
    m.proxyObserver.held!('app.example.com', 'released', 0.4);
    m.proxyObserver.held!('app.example.com', 'unavailable', 5);
    m.proxyObserver.held!('app.example.com', 'full', 0);
    m.proxyObserver.unavailable!('app.example.com', 'wait-elapsed');
    m.proxyObserver.unavailable!('app.example.com', 'hold-full');
    m.proxyObserver.unavailable!('app.example.com', 'hold-full');
    const text = await m.exposition();
    assert.equal(sample(text, 'padlock_proxy_held_requests_total', { host: 'app.example.com', outcome: 'released' }), 1);
    assert.equal(sample(text, 'padlock_proxy_held_requests_total', { host: 'app.example.com', outcome: 'unavailable' }), 1);
    assert.equal(sample(text, 'padlock_proxy_hold_duration_seconds_bucket', { outcome: 'released', le: '0.5' }), 1);
    assert.equal(sample(text, 'padlock_proxy_hold_duration_seconds_bucket', { outcome: 'unavailable', le: '3' }), 0);
    assert.equal(sample(text, 'padlock_proxy_hold_duration_seconds_sum', { outcome: 'unavailable' }), 5);
    assert.equal(sample(text, 'padlock_proxy_unavailable_total', { host: 'app.example.com', reason: 'hold-full' }), 2);
    assert.equal(sample(text, 'padlock_proxy_unavailable_total', { host: 'app.example.com', reason: 'wait-elapsed' }), 1);
  });

  it('reads the requests held now at scrape time, and drops a gone host\'s hold series', async () => {
    const m = new Metrics({ source: { certificates: () => [], proxy: () => ({ ...PROXY, held: 4 }) } });
    m.proxyObserver.held!('gone.example.com', 'released', 0.1);
    m.proxyObserver.unavailable!('gone.example.com', 'no-upstream');
    assert.equal(sample(await m.exposition(), 'padlock_proxy_held_requests'), 4);
    m.forgetHostsExcept([]);
    assert.doesNotMatch(await m.exposition(), /gone\.example\.com/);
  });
});
