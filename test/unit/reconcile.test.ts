import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { planCertificates, type StoredCertificate } from '../../src/state/reconcile.js';
import type { SiteSpec } from '../../src/state/desired-state.js';

const DAY = 86_400_000;
const now = new Date('2026-11-26T12:00:00Z');
const ago = (days: number) => new Date(now.getTime() - days * DAY);
const site = (host: string, extra: Partial<SiteSpec> = {}): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:8080' }], https: true, redirect: true, issuer: 'acme', ...extra });
type CertExtra = Partial<NonNullable<StoredCertificate['cert']>> & Omit<StoredCertificate, 'name' | 'cert'>;
const cert = (name: string, { failure, revoked, ...c }: CertExtra = {}): StoredCertificate => ({
  name,
  cert: { domains: [name], issuer: 'acme', notBefore: ago(10), notAfter: new Date(ago(10).getTime() + 90 * DAY), ...c },
  ...(failure ? { failure } : {}),
  ...(revoked ? { revoked } : {}),
});

describe('planCertificates', () => {
  const cases: Array<{ desc: string; sites: SiteSpec[]; stored: StoredCertificate[]; expect: Record<string, string> }> = [
    { desc: 'obtains a certificate for a new HTTPS host', sites: [site('a.example.com')], stored: [], expect: { 'a.example.com': 'obtain:new' } },
    { desc: 'keeps a certificate that is not due', sites: [site('a.example.com')], stored: [cert('a.example.com')], expect: { 'a.example.com': 'keep' } },
    { desc: 'renews a certificate with a third of its lifetime left', sites: [site('a.example.com')], stored: [cert('a.example.com', { notBefore: ago(61), notAfter: new Date(ago(61).getTime() + 90 * DAY) })], expect: { 'a.example.com': 'renew:lifetime-share' } },
    { desc: 'renews a revoked certificate', sites: [site('a.example.com')], stored: [cert('a.example.com', { revoked: true })], expect: { 'a.example.com': 'renew:revoked' } },
    { desc: 'retires a stored certificate nothing routes any more, without renewing it', sites: [], stored: [cert('old.example.com', { notBefore: ago(89), notAfter: new Date(ago(89).getTime() + 90 * DAY) })], expect: { 'old.example.com': 'retire' } },
    { desc: 'asks for nothing for a plain-HTTP site', sites: [site('plain.example.com', { https: false })], stored: [], expect: {} },
    { desc: 'waits out a failure backoff instead of ordering', sites: [site('a.example.com')], stored: [cert('a.example.com', { failure: { failures: 2, nextAttemptAt: new Date(now.getTime() + 600_000).toISOString() } })], expect: { 'a.example.com': 'wait' } },
    { desc: 'waits out a backoff even when there is no certificate yet', sites: [site('b.example.com')], stored: [{ name: 'b.example.com', failure: { failures: 1, nextAttemptAt: new Date(now.getTime() + 60_000).toISOString() } }], expect: { 'b.example.com': 'wait' } },
    { desc: 'obtains once an earlier failure backoff has ended', sites: [site('b.example.com')], stored: [{ name: 'b.example.com', failure: { failures: 1, nextAttemptAt: ago(1).toISOString() } }], expect: { 'b.example.com': 'obtain:new' } },
    { desc: 'does not retire a name that never got a certificate', sites: [], stored: [{ name: 'gone.example.com', failure: { failures: 1 } }], expect: {} },
    { desc: 'orders again when the stored certificate does not cover the host', sites: [site('a.example.com')], stored: [cert('a.example.com', { domains: ['b.example.com'] })], expect: { 'a.example.com': 'obtain:names-changed' } },
    { desc: 'keeps a stored certificate that covers the host and more names (made by padlock issue)', sites: [site('a.example.com')], stored: [cert('a.example.com', { domains: ['a.example.com', 'www.a.example.com'] })], expect: { 'a.example.com': 'keep' } },
    { desc: 'orders again when a name moves to the local CA', sites: [site('a.localhost', { issuer: 'local' })], stored: [cert('a.localhost')], expect: { 'a.localhost': 'obtain:issuer-changed' } },
    { desc: 'keeps a wildcard in its own lineage, wildcard_.BASE', sites: [site('*.example.com', { challenge: 'dns-01' })], stored: [], expect: { 'wildcard_.example.com': 'obtain:new' } },
    { desc: 'orders nothing for names one label under a wanted wildcard: they share its certificate', sites: [site('*.example.com', { challenge: 'dns-01' }), site('a.example.com'), site('b.example.com')], stored: [], expect: { 'wildcard_.example.com': 'obtain:new' } },
    { desc: 'still orders a name two labels under the wildcard (RFC 6125: one label only) and the apex', sites: [site('*.example.com', { challenge: 'dns-01' }), site('x.y.example.com'), site('example.com')], stored: [], expect: { 'wildcard_.example.com': 'obtain:new', 'x.y.example.com': 'obtain:new', 'example.com': 'obtain:new' } },
    { desc: 'retires the own certificate of a name once a wildcard covers it', sites: [site('*.example.com', { challenge: 'dns-01' }), site('a.example.com')], stored: [cert('a.example.com'), cert('wildcard_.example.com', { domains: ['*.example.com'] })], expect: { 'wildcard_.example.com': 'keep', 'a.example.com': 'retire' } },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const plan = planCertificates(c.sites, c.stored, now);
      const got = Object.fromEntries(plan.actions.map((a) => [a.name, a.kind + ('reason' in a ? `:${a.reason}` : '')]));
      assert.deepEqual(got, c.expect);
    });
  }

  it('orders a wildcard for its host, over DNS-01', () => {
    const [a] = planCertificates([site('*.example.com', { challenge: 'dns-01' })], [], now).actions;
    assert.deepEqual(a, { kind: 'obtain', name: 'wildcard_.example.com', domains: ['*.example.com'], issuer: 'acme', reason: 'new', challenge: 'dns-01' });
  });

  it('wakes at the earliest renewal time or backoff end', () => {
    const soon = new Date(now.getTime() + 60_000);
    const plan = planCertificates(
      [site('a.example.com'), site('b.example.com')],
      [cert('a.example.com'), cert('b.example.com', { failure: { failures: 1, nextAttemptAt: soon.toISOString() } })],
      now,
    );
    assert.equal(plan.nextCheck?.toISOString(), soon.toISOString());
  });

  it('renews such a certificate with all its names, not only the host', () => {
    const plan = planCertificates([site('a.example.com')], [cert('a.example.com', { domains: ['a.example.com', 'www.a.example.com'], notBefore: ago(61), notAfter: new Date(ago(61).getTime() + 90 * DAY) })], now);
    const renew = plan.actions.find((a) => a.kind === 'renew');
    assert.deepEqual(renew && 'domains' in renew ? renew.domains : [], ['a.example.com', 'www.a.example.com']);
  });
});
