import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { RequestHold, type HoldOutcome } from '../../src/proxy/hold.js';
import { RouteTable, UpstreamHealth, type UpstreamTarget } from '../../src/proxy/routes.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import type { Clock } from '../../src/clock.js';

const site = (host: string, ports: number[], over: Partial<SiteSpec> = {}): SiteSpec => ({
  host, upstreams: ports.map((p) => ({ url: `http://127.0.0.1:${p}` })), https: true, redirect: true, issuer: 'acme', ...over,
});
const grace = (host: string): SiteSpec => site(host, [], { graceUntil: '2099-01-01T00:00:00Z' });

/** A hold over a table the test swaps; probes answer what `probeAnswer` says. */
function setup(opts: { maxHeld?: number; maxHeldPerHost?: number; waitMs?: number; downMs?: number; clock?: Clock } = {}) {
  const health = new UpstreamHealth(opts.downMs ?? 60_000, opts.clock);
  let table = new RouteTable([], health);
  const probed: string[] = [];
  const settled: Array<[string, HoldOutcome]> = [];
  const world = { probeAnswer: false };
  const hold = new RequestHold({
    routes: () => table,
    health,
    probe: async (t: UpstreamTarget) => {
      probed.push(t.key);
      return world.probeAnswer;
    },
    defaultWaitMs: opts.waitMs ?? 5_000,
    maxHeld: opts.maxHeld ?? 100,
    ...(opts.maxHeldPerHost !== undefined ? { maxHeldPerHost: opts.maxHeldPerHost } : {}),
    probeEveryMs: 10,
    onSettled: (host, outcome) => settled.push([host, outcome]),
  });
  const setSites = (sites: SiteSpec[]) => {
    table = new RouteTable(sites, health);
    hold.routesChanged();
  };
  return { hold, health, setSites, probed, settled, world, table: () => table };
}

const client = () => new EventEmitter();

describe('RequestHold', () => {
  it('releases a held request when the route table gains an upstream for its name (discovery saw the new container)', async () => {
    const { hold, setSites, settled } = setup();
    setSites([grace('a.example.com')]);
    const waiting = hold.wait('a.example.com', 5_000, client());
    assert.equal(hold.held(), 1);
    setSites([site('a.example.com', [8080])]);
    assert.equal(await waiting, 'released');
    assert.equal(hold.held(), 0);
    assert.deepEqual(settled, [['a.example.com', 'released']]);
  });

  it('answers unavailable when the wait runs out with no upstream', async () => {
    const { hold, setSites } = setup();
    setSites([grace('a.example.com')]);
    const started = Date.now();
    assert.equal(await hold.wait('a.example.com', 40, client()), 'unavailable');
    assert.ok(Date.now() - started >= 35);
    assert.equal(hold.held(), 0);
  });

  it('probes a down upstream while requests wait, and releases them when it connects', async () => {
    const { hold, setSites, probed, world, table } = setup();
    setSites([site('a.example.com', [8080])]);
    const route = table().lookup('a.example.com')!;
    route.markDown(route.upstreams[0]!);
    const waiting = hold.wait('a.example.com', 5_000, client());
    await new Promise((r) => setTimeout(r, 40));
    assert.ok(probed.length >= 1, 'probed while it stayed down');
    assert.equal(hold.held(), 1);
    world.probeAnswer = true;
    assert.equal(await waiting, 'released');
    assert.equal(route.available(), true, 'the probe cleared the down mark');
  });

  it('keeps requests held while probes keep failing, even past the down window of the first failure', async () => {
    // Down marks run on a clock the test moves: 20 ms pass during each failed probe, so the first
    // 30 ms mark lapses by the second probe whatever the event loop's lag; only renewed marks keep the request held.
    let nowMs = Date.parse('2026-01-01T00:00:00Z');
    const { hold, setSites, probed, table } = setup({ downMs: 30, clock: { now: () => new Date(nowMs) } });
    setSites([site('a.example.com', [8080])]);
    const route = table().lookup('a.example.com')!;
    route.markDown(route.upstreams[0]!);
    let outcome: HoldOutcome | undefined;
    const waiting = hold.wait('a.example.com', 5_000, client()).then((o) => (outcome = o));
    const firstMarkEnds = nowMs + 30;
    while (probed.length < 5 && outcome === undefined) {
      await new Promise((r) => setTimeout(r, 5));
      if (probed.length > 0 && nowMs < Date.parse('2026-01-01T00:00:00Z') + 20 * probed.length) nowMs += 20;
    }
    assert.ok(nowMs > firstMarkEnds, 'the first down mark has lapsed on the clock');
    assert.equal(outcome, undefined, 'not released to a dead upstream when its first down mark lapsed');
    hold.close();
    assert.equal(await waiting, 'closed');
  });

  it('does not probe an upstream that fails its health check (the checker brings it back), and poke() releases', async () => {
    const { hold, setSites, probed, health, table } = setup();
    setSites([{ ...site('a.example.com', [8080]), upstreams: [{ url: 'http://127.0.0.1:8080', containerId: 'c1', healthcheck: { path: '/h', intervalMs: 1000 } }] }]);
    const waiting = hold.wait('a.example.com', 5_000, client());
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(probed, []);
    health.setReady(table().lookup('a.example.com')!.upstreams[0]!.checkKey!, true);
    hold.poke();
    assert.equal(await waiting, 'released');
  });

  it('bounds held requests per name and in all: over a limit a request is not held', async () => {
    const { hold, setSites, settled } = setup({ maxHeld: 3, maxHeldPerHost: 2 });
    setSites([grace('a.example.com'), grace('b.example.com'), grace('c.example.com')]);
    const a1 = hold.wait('a.example.com', 5_000, client());
    const a2 = hold.wait('a.example.com', 5_000, client());
    assert.equal(await hold.wait('a.example.com', 5_000, client()), 'full', 'a third for one name');
    const b1 = hold.wait('b.example.com', 5_000, client());
    assert.equal(hold.held(), 3);
    assert.equal(await hold.wait('c.example.com', 5_000, client()), 'full', 'the process limit');
    assert.deepEqual(settled.map(([, o]) => o), ['full', 'full']);
    hold.close();
    assert.deepEqual(await Promise.all([a1, a2, b1]), ['closed', 'closed', 'closed']);
    assert.equal(hold.held(), 0);
  });

  it('defaults the per-name limit to half of the total', () => {
    assert.equal(setup({ maxHeld: 1000 }).hold.maxHeldPerHost, 500);
    assert.equal(setup({ maxHeld: 2 }).hold.maxHeldPerHost, 1);
  });

  it('forgets a request whose client goes away', async () => {
    const { hold, setSites } = setup();
    setSites([grace('a.example.com')]);
    const end = client();
    const waiting = hold.wait('a.example.com', 5_000, end);
    end.emit('close');
    assert.equal(await waiting, 'gone');
    assert.equal(hold.held(), 0);
    assert.equal(end.listenerCount('close'), 0);
  });

  it('answers unavailable at once when the name goes away while its requests wait (grace period over)', async () => {
    const { hold, setSites } = setup();
    setSites([grace('a.example.com')]);
    const waiting = hold.wait('a.example.com', 5_000, client());
    setSites([]);
    assert.equal(await waiting, 'unavailable');
  });

  it('holds nothing with a wait of 0, and after close()', async () => {
    const { hold, setSites } = setup();
    setSites([grace('a.example.com')]);
    assert.equal(await hold.wait('a.example.com', 0, client()), 'unavailable');
    hold.close();
    assert.equal(await hold.wait('a.example.com', 5_000, client()), 'closed');
  });

  it('uses the site\'s own upstream wait over the default', () => {
    const { hold, setSites, table } = setup({ waitMs: 5_000 });
    setSites([site('a.example.com', [1], { upstreamWait: 0.25 }), site('b.example.com', [2])]);
    assert.equal(hold.waitMsFor(table().lookup('a.example.com')!), 250);
    assert.equal(hold.waitMsFor(table().lookup('b.example.com')!), 5_000);
  });
});
