/**
 * The daemon's certificate manager against a real Pebble: how many orders
 * run at once, what happens while the CA is down, and how a rate limit and a
 * restart are honoured. Time moves through an injected clock; the manager is
 * asked to check with checkNow(), as its cron tick would.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { startPebble, type Pebble } from '../support/pebble.js';
import { startTcpSwitch } from '../support/tcp-switch.js';
import { startRateLimitCa } from '../support/rate-limit-ca.js';
import { startFakeAcme } from '../support/fake-acme.js';
import { CertificateManager, type CertificateSnapshot } from '../../src/certificates/manager.js';
import { CertificateEngine } from '../../src/certificates/engine.js';
import { IssuerSet } from '../../src/certificates/issuers.js';
import { AriSources } from '../../src/certificates/ari-poller.js';
import { EngineEventBus } from '../../src/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Http01Solver, TokenMap, TokenMapResponder, handleChallengeRequest } from '../../src/acme/http01.js';
import { loadTrustAnchors } from '../../src/tls/roots.js';
import { silentLogger } from '../../src/log.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import type { CertStore, Unlock } from '../../src/store/store.js';
import type { Clock } from '../../src/clock.js';
import { Notifier } from '../../src/notify/notifier.js';
import { attachAlerts } from '../../src/notify/alerts.js';

const DAY = 86_400_000;
let pebble: Pebble;
let tokens: TokenMap;
let challengeServer: http.Server;

before(async () => {
  pebble = await startPebble();
  tokens = new TokenMap();
  // The daemon's :80 in miniature: answers HTTP-01 from the shared token map.
  challengeServer = http.createServer((req, res) => {
    if (!handleChallengeRequest(tokens, req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((r) => challengeServer.listen(pebble.httpPort, '127.0.0.1', r));
});
after(async () => {
  challengeServer?.closeAllConnections();
  await new Promise((r) => challengeServer?.close(r));
  await pebble?.stop();
});

const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'acme' });

/** A clock the test moves. */
function movableClock(): Clock & { advance(ms: number): void } {
  let offset = 0;
  return { now: () => new Date(Date.now() + offset), advance: (ms: number) => { offset += ms; } };
}

async function makeManager(opts: { store: CertStore; server: string; clock: Clock; concurrency?: number; snapshots?: CertificateSnapshot[]; ariPoll?: { deadlineMs: number }; refreshMs?: number }) {
  const serverCa = await readFile(pebble.serverCaFile, 'utf8');
  const roots = await loadTrustAnchors({ extraFiles: [pebble.rootsFile] });
  const issuers = new IssuerSet({ clock: opts.clock, logger: silentLogger, ari: new AriSources(), serverCa: async () => serverCa, roots: async () => roots });
  after(() => issuers.close());
  const solver = new Http01Solver(new TokenMapResponder(tokens, `the test's HTTP-01 server on port ${pebble.httpPort}`));
  const engine = new CertificateEngine({
    store: opts.store, clock: opts.clock, logger: silentLogger, events: new EngineEventBus(),
    issuerFor: (spec) => issuers.for(spec), solversFor: () => [solver],
    ...(opts.ariPoll ? { ariPoll: opts.ariPoll } : {}),
  });
  const manager = new CertificateManager({
    engine,
    clock: opts.clock,
    logger: silentLogger,
    server: opts.server,
    account: { agreeTos: true, email: 'ops@example.com' },
    challenge: { type: 'standalone', port: pebble.httpPort },
    concurrency: opts.concurrency ?? 4,
    // Never fires during a test: time moves by checkNow().
    renewCron: '0 0 1 1 *',
    onSnapshot: (s) => opts.snapshots?.push(s),
    ...(opts.refreshMs ? { refreshMs: opts.refreshMs } : {}),
  });
  await manager.load();
  return manager;
}

/** A memory store that counts how many lineage locks are held at once: one per order in flight. */
class CountingStore extends MemoryStore {
  held = 0;
  maxHeld = 0;
  override async lock(name: string, options?: Parameters<MemoryStore['lock']>[1]): Promise<Unlock> {
    const unlock = await super.lock(name, options);
    // padlock's own locks (account registration, rate-limit ledger) are not orders.
    if (name.startsWith('padlock-')) return unlock;
    this.held += 1;
    this.maxHeld = Math.max(this.maxHeld, this.held);
    let released = false;
    // Keep the fence: the engine's write is fenced by this very lock.
    return Object.assign(async () => {
      if (!released) {
        released = true;
        this.held -= 1;
      }
      await unlock();
    }, { fence: unlock.fence });
  }
}

describe('certificate manager', () => {
  it('gets 50 new names certificates with never more than 5 orders in flight', async () => {
    const store = new CountingStore();
    const snapshots: CertificateSnapshot[] = [];
    const manager = await makeManager({ store, server: pebble.directoryUrl, clock: movableClock(), concurrency: 5, snapshots });
    const names = Array.from({ length: 50 }, (_, i) => `n${i}-${process.pid}.example.com`);
    manager.start();
    manager.setSites(names.map(site));
    await manager.idle();
    await manager.stop();
    assert.equal(store.maxHeld, 5, 'five at a time, and no more');
    assert.equal(snapshots.at(-1)?.size, 50, 'every name is served');
    assert.deepEqual((await store.listLineages()).sort(), [...names].sort());
  });

  it('orders nothing before start(), so no challenge is offered before padlock answers on :80', async () => {
    const store = new CountingStore();
    const manager = await makeManager({ store, server: pebble.directoryUrl, clock: movableClock() });
    const name = `early-${process.pid}.example.com`;
    manager.setSites([site(name)]);
    await manager.checkNow();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(store.maxHeld, 0, 'no order was started');
    assert.deepEqual(manager.status().map((s) => s.state), [], 'not even planned');
    manager.start();
    await manager.idle();
    await manager.stop();
    assert.deepEqual(await store.listLineages(), [name], 'start() obtains it');
  });

  it('keeps the current certificate while the CA is down, backs off, remembers it across a restart, alerts after the third failure, and recovers with a recovery alert', async () => {
    const ca = await startTcpSwitch(new URL(pebble.directoryUrl).port ? Number(new URL(pebble.directoryUrl).port) : 443);
    after(() => ca.close());
    const server = pebble.directoryUrl.replace(/:\d+\//, `:${ca.port}/`);
    const store = new MemoryStore();
    const clock = movableClock();
    const snapshots: CertificateSnapshot[] = [];
    const name = `down-${process.pid}.example.com`;
    const failed: string[] = [];
    const manager = await makeManager({ store, server, clock, snapshots });
    manager.events.on('cert_failed', (e) => failed.push(e.error.code));
    manager.start();
    manager.setSites([site(name)]);
    await manager.idle();
    const first = snapshots.at(-1)?.get(name)?.version;
    assert.ok(first, 'issued while the CA was up');

    // Pebble's certificates last 5 years: 3.5 years on, this one is due; the CA is down.
    ca.down();
    clock.advance(3.5 * 365 * DAY);
    await manager.checkNow();
    await manager.idle();
    assert.deepEqual(failed, ['ACME_UNREACHABLE']);
    assert.equal(snapshots.at(-1)?.get(name)?.version, first, 'the current certificate keeps serving');
    const status = manager.status().find((c) => c.name === name);
    assert.equal(status?.state, 'valid');
    assert.equal(status?.lastError?.code, 'ACME_UNREACHABLE');
    assert.ok(status?.nextAttemptAt && Date.parse(status.nextAttemptAt) > clock.now().getTime(), 'a backoff is set');

    // Within the backoff nothing is attempted, however often padlock checks.
    await manager.checkNow();
    await manager.checkNow();
    await manager.idle();
    assert.equal(failed.length, 1);
    await manager.stop();

    // A restarted manager on the same store honours the same backoff.
    const restarted = await makeManager({ store, server, clock, snapshots });
    restarted.events.on('cert_failed', (e) => failed.push(e.error.code));
    restarted.start();
    restarted.setSites([site(name)]);
    await restarted.checkNow();
    await restarted.idle();
    assert.equal(failed.length, 1, 'no attempt right after the restart');

    // Alerts go out through the real notifier (an in-memory channel here; SMTP is tested in notify.test.ts).
    const sent: string[] = [];
    const notifier = new Notifier({ channels: [{ name: 'capture', target: 'memory', send: async (d) => void sent.push(d.event.kind) }], store, clock, logger: silentLogger });
    attachAlerts({ notifier, store, clock, logger: silentLogger }, restarted.events);

    // Two more failures after their backoffs (1 min, then 10 min): the third is in the alert window.
    for (const wait of [2 * 60_000, 11 * 60_000]) {
      clock.advance(wait);
      await restarted.checkNow();
      await restarted.idle();
    }
    await notifier.flush();
    assert.equal(failed.length, 3);
    assert.deepEqual(sent.filter((k) => k === 'renewal_failed'), ['renewal_failed'], 'one failure alert, after the third attempt');

    // The CA comes back and the backoff ends: the renewal goes through, and the recovery is announced.
    ca.up();
    clock.advance(2 * 60 * 60_000); // past the third backoff: 100 minutes plus up to 10 % jitter
    const recovered = new Promise<boolean>((r, reject) => {
      restarted.events.once('cert_renewed', (e) => r(e.renewal));
      setTimeout(() => reject(new Error('no renewal after the backoff ended')), 30_000).unref();
    });
    await restarted.checkNow();
    await restarted.idle();
    assert.equal(await recovered, true);
    assert.notEqual(snapshots.at(-1)?.get(name)?.version, first);
    assert.equal(restarted.status().find((c) => c.name === name)?.lastError, undefined);
    await notifier.flush();
    assert.ok(sent.includes('recovered'), `sent: ${sent.join(', ')}`);
    await restarted.stop();
    await notifier.close();
  });

  it('waits 30 s, instead of spinning, when another process holds a certificate lock', async () => {
    let attempts = 0;
    class Counting extends MemoryStore {
      override async lock(name: string, options?: Parameters<MemoryStore['lock']>[1]): Promise<Unlock> {
        if (name === busy) attempts += 1;
        return super.lock(name, options);
      }
    }
    const store = new Counting();
    const busy = `busy-${process.pid}.example.com`;
    const release = await store.lock(busy); // "another padlock renew" holds it
    const manager = await makeManager({ store, server: pebble.directoryUrl, clock: movableClock() });
    manager.start();
    manager.setSites([site(busy)]);
    await new Promise((r) => setTimeout(r, 1000));
    await manager.checkNow();
    await manager.idle();
    assert.equal(attempts, 2, 'the test lock and one attempt by the manager in a second');
    await manager.stop();
    await release();
  });

  it('cancels an order in flight on stop, without counting it as a failure', async () => {
    // A "CA" that accepts connections and never answers: the order hangs until padlock stops.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    after(() => {
      for (const sock of sockets) sock.destroy();
      silent.close();
    });
    const store = new MemoryStore();
    const manager = await makeManager({ store, server: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/dir`, clock: movableClock() });
    const name = `hang-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(name)]);
    while (manager.inFlight === 0) await new Promise((r) => setTimeout(r, 10));
    const started = Date.now();
    await manager.stop(20_000);
    assert.ok(Date.now() - started < 5_000, `stopped in ${Date.now() - started} ms, not after the 30 s request timeout`);
    assert.equal(manager.inFlight, 0);
    assert.equal((await store.readState(name))?.['failure'] ?? null, null, 'no failure recorded, so no backoff after the restart');
  });

  it('reschedules after a 429 with Retry-After and does not ask again early', async () => {
    const fake = await startRateLimitCa(pebble, 3600);
    after(() => fake.close());
    const clock = movableClock();
    const manager = await makeManager({ store: new MemoryStore(), server: fake.directoryUrl, clock });
    const name = `limited-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(name)]);
    await manager.idle();
    assert.equal(fake.newOrderRequests(), 1);
    const status = manager.status().find((c) => c.name === name);
    assert.equal(status?.lastError?.acmeType, 'rateLimited');
    assert.ok(Math.abs(Date.parse(status!.nextAttemptAt!) - (clock.now().getTime() + 3600_000)) < 5_000, 'next attempt at the CA Retry-After');

    clock.advance(59 * 60_000);
    await manager.checkNow();
    await manager.idle();
    assert.equal(fake.newOrderRequests(), 1, 'not before the Retry-After');

    clock.advance(2 * 60_000);
    await manager.checkNow();
    await manager.idle();
    assert.equal(fake.newOrderRequests(), 2, 'asked again once the Retry-After passed');
    await manager.stop();
  });
  it('keeps planning while the CA hangs on renewal information: another name is obtained at once, and the poll pass ends at its deadline', async () => {
    const f = await startFakeAcme(pebble, { renewalInfo: 'hang' });
    after(() => f.close());
    const snapshots: CertificateSnapshot[] = [];
    const manager = await makeManager({ store: new MemoryStore(), server: f.directoryUrl, clock: movableClock(), snapshots, ariPoll: { deadlineMs: 3_000 } });
    const first = `ari-hang-a-${process.pid}.example.com`;
    const second = `ari-hang-b-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(first)]);
    const until = Date.now() + 20_000;
    while (!snapshots.at(-1)?.has(first) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok(snapshots.at(-1)?.has(first), 'the first name is served');
    while (f.renewalInfoRequests.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(f.renewalInfoRequests.length, 1, 'its renewal information was asked for, and the CA does not answer');

    const added = Date.now();
    manager.setSites([site(first), site(second)]);
    while (!snapshots.at(-1)?.has(second) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.ok(snapshots.at(-1)?.has(second), 'the second name is served');
    assert.ok(Date.now() - added < 5_000, `obtained ${Date.now() - added} ms after it was added, while the poll hangs`);
    await manager.idle();
    assert.ok(Date.now() - added < 10_000, 'the poll pass gave up at its deadline');
    await manager.stop();
  });
  it('does not wake the planner again and again while a renewal-information poll it cannot finish is due', async () => {
    const f = await startFakeAcme(pebble, { ari: { mode: 'future', retryAfter: 60 } });
    after(() => f.close());
    const clock = movableClock();
    const snapshots: CertificateSnapshot[] = [];
    const manager = await makeManager({ store: new MemoryStore(), server: f.directoryUrl, clock, snapshots, ariPoll: { deadlineMs: 20_000 } });
    const name = `ari-spin-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(name)]);
    await manager.idle();
    assert.equal(f.renewalInfoRequests.length, 1, 'the first window was fetched');
    // The next poll falls due, and the CA stops answering it.
    f.setAri('hang');
    clock.advance(2 * 60_000);
    await manager.checkNow();
    while (f.renewalInfoRequests.length < 2) await new Promise((r) => setTimeout(r, 20));
    const before = manager.planningPasses;
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(manager.planningPasses - before <= 1, `${manager.planningPasses - before} planning passes in 1.5 s while the poll hangs`);
    await manager.stop();
  });

  it('obtains a new certificate at once when another process deletes the current one (padlock delete), and stops serving the deleted one', async () => {
    const store = new MemoryStore();
    const snapshots: CertificateSnapshot[] = [];
    const manager = await makeManager({ store, server: pebble.directoryUrl, clock: movableClock(), snapshots });
    const name = `deleted-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(name)]);
    await manager.idle();
    const first = snapshots.at(-1)?.get(name)?.version;
    assert.ok(first);
    await store.deleteLineage(name);
    const until = Date.now() + 15_000;
    while (snapshots.at(-1)?.get(name)?.version === first && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    await manager.idle();
    const again = snapshots.at(-1)?.get(name)?.version;
    assert.ok(again && again !== first, `served ${again} after the delete, was ${first}`);
    assert.equal((await store.readLineage(name))?.version, 1, 'a fresh lineage, obtained without waiting for the periodic check');
    await manager.stop();
  });

  it('serves a version another process wrote even when no change notification arrives, through the periodic comparison', async () => {
    class Deaf extends MemoryStore {
      override watch(): () => void {
        return () => {};
      }
    }
    const store = new Deaf();
    const snapshots: CertificateSnapshot[] = [];
    const manager = await makeManager({ store, server: pebble.directoryUrl, clock: movableClock(), snapshots, refreshMs: 300 });
    const name = `deaf-${process.pid}.example.com`;
    manager.start();
    manager.setSites([site(name)]);
    await manager.idle();
    const lineage = (await store.readLineage(name))!;
    const changed = new Promise<number>((r) => manager.events.once('cert_changed', (e) => r(e.version)));
    await store.putVersion(name, lineage.bundle, { ...lineage.meta, updatedAt: new Date().toISOString() });
    assert.equal(await changed, 2);
    assert.match(snapshots.at(-1)?.get(name)?.version ?? '', new RegExp(`^${name.replace(/\./g, '\\.')}#2#`));
    await manager.stop();
  });
});
