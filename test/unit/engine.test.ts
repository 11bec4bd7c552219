/**
 * The certificate engine's waits, records and events, with a memory store,
 * an injected clock and a small fake issuer (test/support/fake-issuer.ts)
 * that signs with padlock's local CA under any CA id, Let's Encrypt's
 * included (which cannot be reached here).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CertificateEngine, isHeld, failureOf } from '../../src/certificates/engine.js';
import { Governor } from '../../src/certificates/governor.js';
import { EngineEventBus, type CertFailedEvent } from '../../src/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { silentLogger } from '../../src/log.js';
import { LETSENCRYPT_PRODUCTION } from '../../src/acme/directories.js';
import { AcmeProblemError, PadlockError } from '../../src/errors.js';
import { Notifier } from '../../src/notify/notifier.js';
import { attachAlerts } from '../../src/notify/alerts.js';
import type { LineageSpec } from '../../src/certificates/issuer.js';
import { FakeIssuer } from '../support/fake-issuer.js';
import { X509Certificate } from 'node:crypto';
import { recordedLeaf } from '../../src/tls/leaf-facts.js';


function setup(server: string) {
  const store = new MemoryStore();
  let t = Date.parse('2026-12-03T12:00:00Z');
  const clock = { now: () => new Date(t), advance: (ms: number) => void (t += ms) };
  const issuer = new FakeIssuer(server, clock);
  const events = new EngineEventBus();
  const engine = new CertificateEngine({ store, clock, logger: silentLogger, events, issuerFor: () => issuer, solversFor: () => [] });
  const spec = (name: string): LineageSpec => ({ name, domains: [name], server, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 } });
  return { store, clock, issuer, events, engine, spec };
}

describe('the engine and rate limits', () => {
  it("holds back a 6th certificate for the same names at Let's Encrypt, records it with the current certificate's expiry, and alerts", async () => {
    const { store, engine, issuer, events, spec, clock } = setup(LETSENCRYPT_PRODUCTION);
    const sent: string[] = [];
    const notifier = new Notifier({ channels: [{ name: 'capture', target: 'memory', send: async (d) => void sent.push(`${d.event.kind}: ${d.message.text}`) }], store, clock, logger: silentLogger });
    attachAlerts({ notifier, store, clock, logger: silentLogger }, events);
    const failed: CertFailedEvent[] = [];
    events.on('cert_failed', (e) => failed.push(e));
    const s = spec('dup.example.com');
    for (let i = 0; i < 5; i++) await engine.obtain(s, { reason: 'forced', forced: true });
    assert.equal(issuer.issued, 5);
    const current = await store.readLineage(s.name);
    await assert.rejects(engine.obtain(s, { reason: 'lifetime-share' }), (err: PadlockError) => {
      assert.equal(err.code, 'ACME_RATE_LIMITED');
      assert.match(err.message, /padlock holds back the order for dup\.example\.com: 5 certificates for exactly dup\.example\.com in the last 7 days/);
      assert.match(err.message, /the current certificate expires at \S+Z/);
      return true;
    });
    assert.equal(issuer.issued, 5, 'the CA was not asked');
    const record = failureOf(await store.readState(s.name));
    assert.equal(record?.rateLimited, true);
    assert.equal(record?.caWait, true, 'a forced renewal does not skip it either');
    assert.equal(failed.length, 1);
    assert.ok(current);
    await notifier.flush();
    assert.equal(sent.length, 1);
    assert.match(sent[0]!, /^rate_limited: /);
  });

  it('lets an ARI-suggested renewal through the same limit, as Let\'s Encrypt exempts it', async () => {
    const { engine, issuer, spec } = setup(LETSENCRYPT_PRODUCTION);
    const s = spec('ari.example.com');
    for (let i = 0; i < 5; i++) await engine.obtain(s, { reason: 'forced', forced: true });
    await engine.obtain(s, { reason: 'ari-window' });
    assert.equal(issuer.issued, 6);
  });

  it('imposes no limit of its own on another CA: a sixth and seventh certificate are issued', async () => {
    const { engine, issuer, spec } = setup('https://ca.internal/acme/directory');
    const s = spec('private.example.com');
    for (let i = 0; i < 7; i++) await engine.obtain(s, { reason: 'forced', forced: true });
    assert.equal(issuer.issued, 7);
  });
});

describe("the engine and a CA's waits", () => {
  it("keeps a 503's Retry-After for the CA: no order from any lineage, forced or not, until it passes; --ignore-rate-limit says what it overrides", async () => {
    const { store, engine, issuer, spec, clock } = setup('https://ca.example/dir');
    const retryAfter = new Date(clock.now().getTime() + 600_000);
    issuer.failures.push(new PadlockError('ACME_CA_UNAVAILABLE', 'creating an order for one.example.com: the CA at https://ca.example/dir is unavailable (HTTP 503)', {
      retryable: true, details: { status: 503, retryAfter: retryAfter.toISOString() },
    }));
    await assert.rejects(engine.obtain(spec('one.example.com'), { reason: 'new' }), { code: 'ACME_CA_UNAVAILABLE' });
    assert.equal((await new Governor(store, 'https://ca.example/dir', clock).hold())?.until.toISOString(), retryAfter.toISOString());
    for (const options of [{ reason: 'new' as const }, { reason: 'forced' as const, forced: true }]) {
      for (const name of ['one.example.com', 'two.example.com']) {
        await assert.rejects(engine.obtain(spec(name), options), (err: PadlockError) => {
          assert.ok(isHeld(err), `${name} is held`);
          assert.match(err.message, new RegExp(`padlock will not ask again before ${retryAfter.toISOString().replace(/\./g, '\\.')} \\(--ignore-rate-limit overrides it\\)`));
          return true;
        });
      }
    }
    assert.equal(issuer.issued, 0);
    assert.equal(failureOf(await store.readState('two.example.com')), undefined, 'a wait is not a failure of its own');
    const said: string[] = [];
    await engine.obtain(spec('two.example.com'), { reason: 'new', ignoreRateLimit: true, onProgress: (e) => said.push(e.message) });
    assert.equal(issuer.issued, 1);
    assert.ok(said.some((m) => /^--ignore-rate-limit: asking anyway, although two\.example\.com is asked by the fake CA "https:\/\/ca\.example\/dir" to wait \(HTTP 503: .*\) until \S+; the CA will likely refuse again$/.test(m)), said.join('\n'));
    clock.advance(601_000);
    await engine.obtain(spec('one.example.com'), { reason: 'new' });
    assert.equal(issuer.issued, 2, 'asked again once the wait passed');
  });

  it('records a rateLimited answer on the lineage, honoured by a forced attempt', async () => {
    const { store, engine, issuer, spec, clock } = setup('https://ca.example/dir');
    const s = spec('limited.example.com');
    issuer.failures.push(new AcmeProblemError({ type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many' }, { httpStatus: 429, retryAfter: new Date(clock.now().getTime() + 3600_000) }));
    await assert.rejects(engine.obtain(s, { reason: 'new' }), { code: 'ACME_RATE_LIMITED' });
    await assert.rejects(engine.obtain(s, { reason: 'forced', forced: true }), (err: PadlockError) => isHeld(err) && /limited\.example\.com is rate limited \(the CA refused \(rateLimited\): too many\./.test(err.message));
    assert.equal(failureOf(await store.readState(s.name))?.failures, 1, 'the wait was not counted as another failure');
  });
});

describe('the engine and other processes', () => {
  it('orders nothing when another process stored a new version after the decision (another replica, a cron renewal)', async () => {
    const { engine, issuer, spec } = setup('https://ca.example/dir');
    const s = spec('race.example.com');
    const first = await engine.obtain(s, { reason: 'new', expectVersion: null });
    assert.equal(first.version, 1);
    // This process decided on version 1; meanwhile "someone else" stored version 2.
    await engine.obtain(s, { reason: 'forced', forced: true });
    const r = await engine.obtain(s, { reason: 'lifetime-share', expectVersion: 1 });
    assert.equal(r.alreadyDone, true);
    assert.equal(r.version, 2);
    assert.equal(issuer.issued, 2, 'no third order');
    const fresh = await engine.obtain(spec('fresh.example.com'), { reason: 'new', expectVersion: null });
    assert.equal(fresh.alreadyDone, undefined);
  });
});

describe('the engine and deploy hooks', () => {
  it('stores the certificate but reports HOOK_FAILED, never skipping silently, when a stored hook meets a store with no live folder (Redis)', async () => {
    const store = new MemoryStore();
    const clock = { now: () => new Date('2026-12-03T12:00:00Z') };
    const issuer = new FakeIssuer('https://ca.example/dir', clock);
    const engine = new CertificateEngine({ store, clock, logger: silentLogger, events: new EngineEventBus(), issuerFor: () => issuer, solversFor: () => [], hooks: { timeoutMs: 5_000 } });
    const r = await engine.obtain({ name: 'hooked.example.com', domains: ['hooked.example.com'], server: 'https://ca.example/dir', keyType: 'ecdsa', challenge: { type: 'standalone', port: 80 }, deployHook: 'systemctl reload nginx' }, { reason: 'new' });
    assert.equal(r.version, 1, 'the certificate is stored');
    assert.equal(r.hookError?.code, 'HOOK_FAILED');
    assert.match(r.hookError?.message ?? '', /was not run: the store memory has no live folder/);
  });
});

describe('the engine and its listeners', () => {
  it("records the new leaf's dates, serial and trust anchor in the lineage meta, for the bytes stored, and none of the old version's", async () => {
    const { store, engine, spec } = setup('https://ca.example/dir');
    const s = spec('facts.example.com');
    await engine.obtain(s, { reason: 'new' });
    const first = await store.readLineage(s.name);
    await engine.obtain({ ...s, ...({ leaf: first!.meta.leaf } as object) }, { reason: 'forced', forced: true });
    const lineage = await store.readLineage(s.name);
    assert.ok(lineage?.meta.leaf);
    const leaf = new X509Certificate(lineage.bundle.cert);
    const anchor = new X509Certificate((await store.readLineage('padlock-local-ca'))!.bundle.cert);
    assert.deepEqual(recordedLeaf(lineage.meta, lineage.bundle.fullchain), {
      notBefore: leaf.validFromDate, notAfter: leaf.validToDate, serialNumber: leaf.serialNumber.toUpperCase(), anchorFingerprint256: anchor.fingerprint256,
    });
    assert.notEqual(lineage.meta.leaf.serialNumber, first!.meta.leaf!.serialNumber, 'the facts of the version stored, not of the one renewed');
  });

  it('stores and reports a certificate even when an event listener throws', async () => {
    const { engine, events, spec, store } = setup('https://ca.example/dir');
    const errors: string[] = [];
    const bus = new EngineEventBus((event, err) => errors.push(`${event}: ${(err as Error).message}`));
    const engine2 = new CertificateEngine({ store, clock: { now: () => new Date() }, logger: silentLogger, events: bus, issuerFor: () => new FakeIssuer('https://ca.example/dir', { now: () => new Date() }), solversFor: () => [] });
    bus.on('cert_obtained', () => {
      throw new Error('a broken subscriber');
    });
    let second = false;
    bus.on('cert_obtained', () => void (second = true));
    const r = await engine2.obtain(spec('listener.example.com'), { reason: 'new' });
    assert.equal(r.version, 1);
    assert.deepEqual(errors, ['cert_obtained: a broken subscriber']);
    assert.equal(second, true, 'the other listeners still ran');
    assert.ok(engine && events);
  });

  it('records and announces a failed issuance, but neither a busy lock nor a wait', async () => {
    const { store, engine, issuer, events, spec } = setup('https://ca.example/dir');
    const failed: string[] = [];
    events.on('cert_failed', (e) => failed.push(e.error.code));
    issuer.failures.push(new PadlockError('ACME_UNREACHABLE', 'down'));
    await assert.rejects(engine.obtain(spec('f.example.com'), { reason: 'new' }), { code: 'ACME_UNREACHABLE' });
    assert.deepEqual(failed, ['ACME_UNREACHABLE']);
    await assert.rejects(engine.obtain(spec('f.example.com'), { reason: 'new' }), (e: PadlockError) => e.code === 'RENEWAL_BACKOFF' && isHeld(e));
    const unlock = await store.lock('g.example.com');
    await assert.rejects(engine.obtain(spec('g.example.com'), { reason: 'new' }), { code: 'STORE_LOCKED' });
    await unlock();
    assert.deepEqual(failed, ['ACME_UNREACHABLE']);
    assert.equal(failureOf(await store.readState('g.example.com')), undefined);
  });

  it("records a CA's demand to agree to its terms, so it backs off and alerts instead of retrying unseen every 30 s", async () => {
    const { store, engine, issuer, events, spec } = setup('https://ca.example/dir');
    const failed: string[] = [];
    events.on('cert_failed', (e) => failed.push(e.error.code));
    issuer.failures.push(new PadlockError('ACME_TOS_NOT_AGREED', 'the CA at https://ca.example/dir requires agreeing to its terms of service; pass --agree-tos'));
    await assert.rejects(engine.obtain(spec('tos.example.com'), { reason: 'new' }), { code: 'ACME_TOS_NOT_AGREED' });
    assert.deepEqual(failed, ['ACME_TOS_NOT_AGREED']);
    assert.equal(failureOf(await store.readState('tos.example.com'))?.failures, 1);
  });

  it('turns a foreign error from an issuer into UNEXPECTED, keeping it as the cause', async () => {
    const { engine, issuer, spec } = setup('https://ca.example/dir');
    const bug = new TypeError("Cannot read properties of undefined (reading 'status')");
    issuer.failures.push(bug);
    await assert.rejects(engine.obtain(spec('bug.example.com'), { reason: 'new' }), (e: PadlockError) => e.code === 'UNEXPECTED' && e.cause === bug && /^obtaining bug\.example\.com: unexpected error/.test(e.message));
  });
});

