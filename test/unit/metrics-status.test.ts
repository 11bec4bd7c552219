import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildStatusDocument, certificateView, type CertificateInput, type Health } from '../../src/observe/status.js';
import type { SiteSpec } from '../../src/state/desired-state.js';

const NOW = new Date('2026-11-26T12:00:00Z');

describe('certificate view: health, next renewal and why', () => {
  const cases: Array<{ desc: string; in: CertificateInput; health: Health; why?: RegExp; at?: string; rateLimitedUntil?: string; backoffUntil?: string; daysLeft?: number }> = [
    {
      desc: 'a valid certificate renews at its renewal time, a third of the lifetime before expiry',
      in: { name: 'a', state: 'valid', notBefore: '2026-11-01T00:00:00Z', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' },
      health: 'ok', at: '2026-12-31T00:00:00Z', why: /a third of the lifetime/, daysLeft: 64,
    },
    {
      desc: 'a short-lived certificate says half of the lifetime',
      in: { name: 'a', state: 'valid', notBefore: '2026-11-24T00:00:00Z', notAfter: '2026-11-30T00:00:00Z', renewAt: '2026-11-27T00:00:00Z' },
      health: 'warning', why: /half of the lifetime/, daysLeft: 3,
    },
    {
      desc: 'an ARI window is named as the reason when the manager reports it',
      in: { name: 'a', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2027-01-01T00:00:00Z', renewReason: 'ari-window' },
      health: 'ok', why: /ARI/,
    },
    {
      desc: 'a failed renewal with the old certificate still serving is an error, retried after the backoff',
      in: { name: 'a', state: 'valid', notAfter: '2027-01-30T00:00:00Z', nextAttemptAt: '2026-11-26T13:00:00Z', lastError: { code: 'ACME_CHALLENGE_FAILED', message: 'no', acmeType: 'unauthorized' } },
      health: 'error', at: '2026-11-26T13:00:00Z', why: /backoff/, backoffUntil: '2026-11-26T13:00:00Z',
    },
    {
      desc: 'a rate limit is told apart from a backoff',
      in: { name: 'a', state: 'waiting', nextAttemptAt: '2026-11-27T00:00:00Z', lastError: { code: 'ACME_RATE_LIMITED', message: 'slow down', acmeType: 'rateLimited' } },
      health: 'error', why: /rate limit/, rateLimitedUntil: '2026-11-27T00:00:00Z',
    },
    { desc: 'no certificate yet and nothing failed: error until obtained', in: { name: 'a', state: 'missing' }, health: 'error', why: /obtaining/ },
    { desc: 'an order in flight is pending', in: { name: 'a', state: 'obtaining' }, health: 'pending', why: /obtaining now/ },
    { desc: 'an expired certificate is an error', in: { name: 'a', state: 'renewing', notAfter: '2026-11-20T00:00:00Z' }, health: 'error', daysLeft: -7 },
    { desc: 'a retired certificate is neither ok nor a problem', in: { name: 'a', state: 'retired', notAfter: '2027-01-30T00:00:00Z' }, health: 'retired' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const v = certificateView(c.in, NOW);
      assert.equal(v.health, c.health);
      assert.deepEqual(v.names, ['a']);
      if (c.why) assert.match(v.nextRenewal?.why ?? '', c.why);
      if (c.at) assert.equal(v.nextRenewal?.at, c.at);
      assert.equal(v.rateLimitedUntil, c.rateLimitedUntil);
      assert.equal(v.backoffUntil, c.backoffUntil);
      if (c.daysLeft !== undefined) assert.equal(v.daysLeft, c.daysLeft);
    });
  }
});

const site = (host: string, upstreams: string[], extra: Partial<SiteSpec> = {}): SiteSpec => ({
  host, upstreams: upstreams.map((url, i) => ({ url, containerName: `${host.split('.')[0]}-${i + 1}` })), https: true, redirect: true, issuer: 'acme', ...extra,
});

describe('status document', () => {
  const doc = buildStatusDocument({
    now: NOW,
    ready: true,
    listeners: { http: 80, https: 443, admin: 9180 },
    docker: { connected: true, since: '2026-11-26T11:00:00Z' },
    sites: [
      site('a.example.com', ['http://10.0.0.1:80']),
      site('b.example.com', ['http://10.0.0.2:80', 'http://10.0.0.3:80']),
      site('c.example.com', ['http://10.0.0.4:80/']),
      site('plain.example.com', ['http://10.0.0.5:80'], { https: false }),
    ],
    problems: [{ code: 'LABEL_INVALID_PORT', message: 'padlock.port on container web-9: "eighty" is not a port', containerName: 'web-9', source: 'padlock.port' }],
    certificates: [
      { name: 'a.example.com', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' },
      { name: 'b.example.com', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' },
      { name: 'c.example.com', state: 'waiting', nextAttemptAt: '2026-11-26T13:00:00Z', lastError: { code: 'ACME_CHALLENGE_FAILED', message: 'the CA could not validate c.example.com (unauthorized): 404. Check port 80 reaches padlock.', acmeType: 'unauthorized' } },
    ],
    upstreams: [
      { host: 'a.example.com', upstreams: [{ url: 'http://10.0.0.1:80', healthy: true }] },
      { host: 'b.example.com', upstreams: [{ url: 'http://10.0.0.2:80', healthy: false, downUntil: '2026-11-26T12:00:10Z' }, { url: 'http://10.0.0.3:80', healthy: true }] },
    ],
  });

  it('lists problems first: failed certificates, then rejected containers, then upstreams down', () => {
    assert.deepEqual(doc.attention.map((a) => [a.severity, a.kind, a.subject]), [
      ['error', 'certificate', 'c.example.com'],
      ['error', 'container', 'web-9'],
      ['warning', 'upstream', 'b.example.com'],
    ]);
    assert.match(doc.attention[0]!.message, /Check port 80 reaches padlock/);
    assert.equal(doc.attention[0]!.acmeType, 'unauthorized');
    assert.equal(doc.summary.errors, 2);
    assert.equal(doc.summary.warnings, 1);
  });

  it('sorts routes worst first and joins each upstream with its passive health (URLs compared by origin)', () => {
    assert.deepEqual(doc.routes.map((r) => [r.host, r.health]), [
      ['c.example.com', 'error'],
      ['b.example.com', 'warning'],
      ['a.example.com', 'ok'],
      ['plain.example.com', 'ok'],
    ]);
    const b = doc.routes.find((r) => r.host === 'b.example.com')!;
    assert.deepEqual(b.upstreams.map((u) => [u.url, u.healthy, u.downUntil]), [['http://10.0.0.2:80', false, '2026-11-26T12:00:10Z'], ['http://10.0.0.3:80', true, undefined]]);
    assert.equal(doc.routes.find((r) => r.host === 'plain.example.com')!.certificate, null);
  });

  it('joins an IPv6 host with its certificate by lineage name (::1 lives in 0--1), and an IPv4 host by its address', () => {
    const d = buildStatusDocument({
      now: NOW, ready: true, listeners: { http: 80, https: 443, admin: 9180 }, docker: 'disabled', problems: [],
      sites: [site('::1', ['http://10.0.0.1:80']), site('203.0.113.10', ['http://10.0.0.1:80'])],
      certificates: [
        { name: '0--1', state: 'valid', notAfter: '2026-12-01T00:00:00Z', renewAt: '2026-11-29T00:00:00Z' },
        { name: '203.0.113.10', state: 'valid', notAfter: '2026-12-01T00:00:00Z', renewAt: '2026-11-29T00:00:00Z' },
      ],
    });
    assert.equal(d.routes.find((r) => r.host === '::1')?.certificate?.name, '0--1');
    assert.equal(d.routes.find((r) => r.host === '203.0.113.10')?.certificate?.name, '203.0.113.10');
  });

  it('joins a name one label under a wanted wildcard with the wildcard\'s certificate, which serves it; not a deeper name, nor a local one', () => {
    const d = buildStatusDocument({
      now: NOW, ready: true, listeners: { http: 80, https: 443, admin: 9180 }, docker: 'disabled', problems: [],
      sites: [
        site('*.apps.example.com', ['http://10.0.0.1:80'], { challenge: 'dns-01' }),
        site('api.apps.example.com', ['http://10.0.0.2:80']),
        site('x.y.apps.example.com', ['http://10.0.0.3:80']),
        site('api.apps.localhost', ['http://10.0.0.4:80'], { issuer: 'local' }),
      ],
      certificates: [{ name: 'wildcard_.apps.example.com', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' }],
    });
    const route = (host: string) => d.routes.find((r) => r.host === host)!;
    assert.equal(route('api.apps.example.com').certificate?.name, 'wildcard_.apps.example.com');
    assert.equal(route('api.apps.example.com').health, 'ok', 'served, not pending');
    assert.equal(route('*.apps.example.com').certificate?.name, 'wildcard_.apps.example.com');
    assert.equal(route('x.y.apps.example.com').certificate, null, 'two labels under: a certificate of its own (none yet)');
    assert.equal(route('api.apps.localhost').certificate, null);
  });

  it('keeps the original fields (ready, time, listeners, docker, problems, certificates, proxy)', () => {
    assert.equal(doc.ready, true);
    assert.equal(doc.time, NOW.toISOString());
    assert.deepEqual(doc.listeners, { http: 80, https: 443, admin: 9180 });
    assert.equal(doc.problems.length, 1);
    assert.equal(doc.certificates.length, 3);
    assert.equal(doc.proxy, null);
    assert.equal(doc.routes[0]!.certificate?.name, 'c.example.com');
  });

  it('passes extra sections through without letting them replace the core fields', () => {
    const d = buildStatusDocument({ now: NOW, ready: true, listeners: { http: 0, https: 0, admin: 0 }, docker: 'disabled', sites: [], problems: [], certificates: [], sections: { companion: { reloads: 2 }, ready: 'no' } });
    assert.deepEqual(d['companion'], { reloads: 2 });
    assert.equal(d.ready, true);
  });

  it('warns when Docker is unreachable', () => {
    const d = buildStatusDocument({ now: NOW, ready: true, listeners: { http: 0, https: 0, admin: 0 }, docker: { connected: false, error: 'connect ENOENT /var/run/docker.sock', since: null }, sites: [], problems: [], certificates: [] });
    assert.deepEqual(d.attention.map((a) => [a.kind, a.severity]), [['docker', 'warning']]);
    assert.match(d.attention[0]!.message, /ENOENT/);
  });
});

describe('status document: routes in their grace period and health checks', () => {
  const graced: SiteSpec = { ...site('gone.example.com', []), graceUntil: '2026-11-26T12:04:30.500Z' };
  const doc = buildStatusDocument({
    now: NOW, ready: true, listeners: { http: 80, https: 443, admin: 9180 }, docker: { connected: true, since: NOW.toISOString() },
    sites: [graced, site('checked.example.com', ['http://10.0.0.5:8080'])],
    problems: [],
    certificates: [
      { name: 'gone.example.com', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' },
      { name: 'checked.example.com', state: 'valid', notAfter: '2027-01-30T00:00:00Z', renewAt: '2026-12-31T00:00:00Z' },
    ],
    upstreams: [{ host: 'checked.example.com', upstreams: [{ url: 'http://10.0.0.5:8080', healthy: false, check: 'failing' }] }],
  });
  const route = (host: string) => doc.routes.find((r) => r.host === host)!;

  it('shows a route in its grace period with its end and the whole seconds left, as a warning', () => {
    assert.deepEqual(route('gone.example.com').grace, { until: '2026-11-26T12:04:30.500Z', remainingSeconds: 271 });
    assert.equal(route('gone.example.com').health, 'warning');
    assert.deepEqual(route('gone.example.com').upstreams, []);
  });

  it('lists the grace period under attention, saying what happens and when', () => {
    const item = doc.attention.find((a) => a.kind === 'grace');
    assert.equal(item?.subject, 'gone.example.com');
    assert.equal(item?.until, '2026-11-26T12:04:30.500Z');
    assert.match(item!.message, /answers 503 .* until 2026-11-26T12:04:30\.500Z; then the name is no longer served/);
  });

  it('shows an upstream failing its health check as down, with the check named', () => {
    assert.deepEqual(route('checked.example.com').upstreams.map((u) => [u.healthy, u.check]), [[false, 'failing']]);
    assert.match(doc.attention.find((a) => a.kind === 'upstream')!.message, /failed its health check/);
  });

  it('a route with no grace period has no grace field', () => {
    assert.equal('grace' in route('checked.example.com'), false);
  });
});
