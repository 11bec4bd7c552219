import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RouteTable, UpstreamHealth, hostFromHeader } from '../../src/proxy/routes.js';
import { httpsLocation } from '../../src/proxy/http-server.js';
import type http from 'node:http';
import type { SiteSpec } from '../../src/state/desired-state.js';

function site(host: string, ...ports: number[]): SiteSpec {
  return {
    host,
    upstreams: ports.map((p) => ({ url: `http://127.0.0.1:${p}`, containerName: `c${p}` })),
    https: true,
    redirect: true,
    issuer: 'acme',
  };
}

/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => new Date(t), advance: (ms: number) => (t += ms) };
}

describe('hostFromHeader', () => {
  const cases: { desc: string; input: string | undefined; want: string | undefined }[] = [
    { desc: 'plain name', input: 'app.example.com', want: 'app.example.com' },
    { desc: 'uppercase is folded', input: 'App.Example.COM', want: 'app.example.com' },
    { desc: 'port is stripped', input: 'app.example.com:8443', want: 'app.example.com' },
    { desc: 'trailing dot is removed', input: 'app.example.com.', want: 'app.example.com' },
    { desc: 'trailing dot and port', input: 'app.example.com.:443', want: 'app.example.com' },
    { desc: 'IPv6 literal with port loses its brackets (as sites and local addresses write it)', input: '[::1]:443', want: '::1' },
    { desc: 'IPv6 literal without port', input: '[2001:DB8::10]', want: '2001:db8::10' },
    { desc: 'IPv6 literal in a non-canonical form becomes canonical (RFC 5952)', input: '[2001:db8:0:0:0:0:0:10]:8443', want: '2001:db8::10' },
    { desc: 'IPv4 literal with port', input: '203.0.113.10:8443', want: '203.0.113.10' },
    { desc: 'brackets around something other than IPv6 are malformed', input: '[app.example.com]:443', want: undefined },
    { desc: 'an IPv6 zone is malformed', input: '[fe80::1%25eth0]', want: undefined },
    { desc: 'an IPv6 address without brackets is malformed', input: '::1', want: undefined },
    { desc: 'non-numeric port is malformed', input: 'app.example.com:https', want: undefined },
    { desc: 'missing header', input: undefined, want: undefined },
    { desc: 'empty header', input: '', want: undefined },
    { desc: 'unclosed IPv6 bracket', input: '[::1', want: undefined },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(hostFromHeader(c.input), c.want));
  }
});

describe('httpsLocation (the :80 redirect)', () => {
  const cases = [
    { desc: 'a name, default port left out', host: 'app.example.com', port: 443, want: 'https://app.example.com/p?q=1' },
    { desc: 'an IPv4 address with another port', host: '203.0.113.10:80', port: 8443, want: 'https://203.0.113.10:8443/p?q=1' },
    { desc: 'an IPv6 address is bracketed in the URL', host: '[2001:db8::10]', port: 443, want: 'https://[2001:db8::10]/p?q=1' },
    { desc: 'an IPv6 address with a port', host: '[::1]:8080', port: 8443, want: 'https://[::1]:8443/p?q=1' },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(httpsLocation({ headers: { host: c.host }, url: '/p?q=1' } as http.IncomingMessage, c.port), c.want));
  }
});

describe('RouteTable.lookup', () => {
  const table = new RouteTable([site('app.example.com', 1), site('*.apps.example.com', 2), site('Other.Example.com.', 3), site('203.0.113.10', 4), site('2001:db8::10', 5), site('*.0.113.10', 6)]);
  const cases: { desc: string; host: string | undefined; want: string | undefined }[] = [
    { desc: 'exact host', host: 'app.example.com', want: 'app.example.com' },
    { desc: 'case and port in the Host header', host: 'APP.example.com:8443', want: 'app.example.com' },
    { desc: 'a site spec host is normalised too', host: 'other.example.com', want: 'other.example.com' },
    { desc: 'one-label wildcard site', host: 'x.apps.example.com', want: '*.apps.example.com' },
    { desc: 'wildcard does not match two labels', host: 'a.b.apps.example.com', want: undefined },
    { desc: 'wildcard does not match the bare parent', host: 'apps.example.com', want: undefined },
    { desc: 'unknown host', host: 'nope.example.com', want: undefined },
    { desc: 'no Host header', host: undefined, want: undefined },
    { desc: 'an IPv4 host with a port', host: '203.0.113.10:8443', want: '203.0.113.10' },
    { desc: 'an IPv6 host in brackets, written out in full', host: '[2001:db8:0:0:0:0:0:10]:443', want: '2001:db8::10' },
    { desc: 'an IPv4 address never falls to a wildcard', host: '204.0.113.10', want: undefined },
  ];
  for (const c of cases) {
    it(c.desc, () => assert.equal(table.lookup(c.host)?.site.host, c.want));
  }

  it('skips a site with no upstreams and keeps the first of duplicate hosts', () => {
    const t = new RouteTable([site('a.example.com'), site('b.example.com', 1), site('b.example.com', 2)]);
    assert.equal(t.lookup('a.example.com'), undefined);
    assert.equal(t.lookup('b.example.com')?.upstreams[0]?.url.port, '1');
    assert.deepEqual(t.hosts(), ['b.example.com']);
  });
});

describe('HostRoute.pick', () => {
  it('round robins over the upstreams', () => {
    const route = new RouteTable([site('a.example.com', 1, 2, 3)]).lookup('a.example.com')!;
    const ports = Array.from({ length: 6 }, () => route.pick()!.url.port);
    assert.deepEqual(ports, ['1', '2', '3', '1', '2', '3']);
  });

  it('skips an upstream marked down until its window ends', () => {
    const clock = manualClock();
    const health = new UpstreamHealth(5_000, clock);
    const route = new RouteTable([site('a.example.com', 1, 2)], health).lookup('a.example.com')!;
    route.markDown(route.upstreams[0]!);
    assert.deepEqual(Array.from({ length: 4 }, () => route.pick()!.url.port), ['2', '2', '2', '2']);
    clock.advance(5_001);
    const after = new Set(Array.from({ length: 4 }, () => route.pick()!.url.port));
    assert.deepEqual([...after].sort(), ['1', '2']);
  });

  it('still tries one upstream when all are down: the one that comes back first', () => {
    const clock = manualClock();
    const health = new UpstreamHealth(5_000, clock);
    const route = new RouteTable([site('a.example.com', 1, 2)], health).lookup('a.example.com')!;
    route.markDown(route.upstreams[1]!);
    clock.advance(100);
    route.markDown(route.upstreams[0]!);
    assert.equal(route.pick()?.url.port, '2');
  });

  it('excludes the upstream a retry moves away from, and answers undefined when none is left', () => {
    const route = new RouteTable([site('a.example.com', 1, 2)]).lookup('a.example.com')!;
    const first = route.pick()!;
    const other = route.pick(new Set([first.key]))!;
    assert.notEqual(other.key, first.key);
    const single = new RouteTable([site('s.example.com', 9)]).lookup('s.example.com')!;
    assert.equal(single.pick(new Set([single.upstreams[0]!.key])), undefined);
  });

  it('markUp clears a down mark at once', () => {
    const health = new UpstreamHealth(60_000);
    const route = new RouteTable([site('a.example.com', 1, 2)], health).lookup('a.example.com')!;
    route.markDown(route.upstreams[0]!);
    assert.equal(health.downCount(), 1);
    route.markUp(route.upstreams[0]!);
    assert.equal(health.downCount(), 0);
  });

  it('keeps down marks across a table swap through the shared health', () => {
    const health = new UpstreamHealth(60_000);
    const old = new RouteTable([site('a.example.com', 1, 2)], health);
    old.lookup('a.example.com')!.markDown(old.lookup('a.example.com')!.upstreams[0]!);
    const next = new RouteTable([site('a.example.com', 1, 2), site('b.example.com', 1)], health);
    assert.equal(next.lookup('b.example.com')!.pick()!.url.port, '1', 'all down: still tried');
    assert.deepEqual(Array.from({ length: 3 }, () => next.lookup('a.example.com')!.pick()!.url.port), ['2', '2', '2']);
  });

  it('the table is not changed by mutating the SiteSpec it was built from', () => {
    const spec = site('a.example.com', 1);
    const t = new RouteTable([spec]);
    spec.upstreams.push({ url: 'http://127.0.0.1:2' });
    spec.host = 'z.example.com';
    assert.equal(t.lookup('a.example.com')?.upstreams.length, 1);
  });
});

describe('routes in their grace period and upstreams with a health check', () => {
  const checked = (host: string, ...ids: string[]): SiteSpec => ({
    ...site(host),
    upstreams: ids.map((id, i) => ({ url: `http://127.0.0.1:${8080 + i}`, containerId: id, containerName: id, healthcheck: { path: '/healthz', intervalMs: 5_000 } })),
  });

  it('keeps a site in its grace period in the table with no upstream: known name, nothing to pick', () => {
    const t = new RouteTable([{ ...site('g.example.com'), graceUntil: '2026-01-01T00:05:00Z' }]);
    const route = t.lookup('g.example.com');
    assert.ok(route, 'the name stays routed');
    assert.equal(route.pick(), undefined);
    assert.equal(route.available(), false);
    assert.deepEqual(t.hosts(), ['g.example.com']);
  });

  it('never picks an upstream whose health check has not passed, not even as the last resort', () => {
    const health = new UpstreamHealth();
    const route = new RouteTable([checked('h.example.com', 'one', 'two')], health).lookup('h.example.com')!;
    assert.equal(route.pick(), undefined, 'no check has passed yet');
    assert.equal(route.available(), false);
    health.setReady(route.upstreams[1]!.checkKey!, true);
    assert.deepEqual(Array.from({ length: 3 }, () => route.pick()?.containerName), ['two', 'two', 'two']);
    assert.equal(route.available(), true);
    health.setReady(route.upstreams[1]!.checkKey!, false);
    assert.equal(route.pick(), undefined, 'a failing check takes it out again');
  });

  it('a new container on the address of the old one starts unchecked (results are kept per container)', () => {
    const health = new UpstreamHealth();
    const old = new RouteTable([checked('h.example.com', 'old')], health).lookup('h.example.com')!;
    health.setReady(old.upstreams[0]!.checkKey!, true);
    const next = new RouteTable([checked('h.example.com', 'new')], health).lookup('h.example.com')!;
    assert.equal(next.upstreams[0]!.key, old.upstreams[0]!.key, 'same address');
    assert.equal(next.pick(), undefined);
  });

  it('forgets check results of containers that left every route', () => {
    const health = new UpstreamHealth();
    const route = new RouteTable([checked('h.example.com', 'a')], health).lookup('h.example.com')!;
    health.setReady(route.upstreams[0]!.checkKey!, true);
    health.forgetChecksExcept(new Set());
    assert.equal(health.isReady(route.upstreams[0]!.checkKey!), false);
  });

  it('available() is false while every upstream is in its down window, true when one is not', () => {
    const health = new UpstreamHealth(60_000);
    const route = new RouteTable([site('a.example.com', 1, 2)], health).lookup('a.example.com')!;
    route.markDown(route.upstreams[0]!);
    assert.equal(route.available(), true);
    route.markDown(route.upstreams[1]!);
    assert.equal(route.available(), false);
  });
});
