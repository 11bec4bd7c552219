/**
 * The daemon's certificate manager and renewal information (ARI) at scale:
 * deciding whether thousands of certificates are due for a poll parses each
 * one's CertID, and that must not stop padlock from answering TLS handshakes.
 * The CA here is a stub renewal-information source that never answers, so
 * the poll pass stays pending while the test handshakes.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { CertificateManager } from '../../src/certificates/manager.js';
import { CertificateEngine } from '../../src/certificates/engine.js';
import { EngineEventBus } from '../../src/events.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { CertificateRegistry } from '../../src/tls/contexts.js';
import { ensureLocalRoot, issueLocalCertificate } from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';
import type { RenewalInfoSource } from '../../src/acme/ari.js';
import type { SiteSpec } from '../../src/state/desired-state.js';
import { FakeIssuer } from '../support/fake-issuer.js';

const CA = 'https://ca.test/directory';
const site = (host: string): SiteSpec => ({ host, upstreams: [{ url: 'http://127.0.0.1:1' }], https: true, redirect: true, issuer: 'acme' });

/** A CA that offers ARI and never answers a renewal-information request; counts them. */
class SilentAriIssuer extends FakeIssuer {
  requests = 0;
  override async renewalInfo(): Promise<RenewalInfoSource> {
    return {
      directory: async () => ({ renewalInfo: 'https://ca.test/renewal-info' }),
      get: () => {
        this.requests++;
        return new Promise(() => {});
      },
    };
  }
}

describe('certificate manager with many ACME certificates and renewal information', () => {
  it('keeps answering TLS handshakes while it loads 10,000 ACME certificates and works out their first renewal-information pass, which then hangs at the CA', async () => {
    const count = 10_000;
    const store = new MemoryStore();
    const root = await ensureLocalRoot(store, systemClock);
    // One leaf (it has an Authority Key Identifier, so a CertID) stored under every name: parsing is what costs.
    const names = Array.from({ length: count }, (_, i) => `n${i}.localhost`);
    const bundle = await issueLocalCertificate(root, [names[0]!], await generatePrivateKey({ keyType: 'ecdsa' }), systemClock, 90);
    for (const name of names) {
      await store.putVersion(name, bundle, { name, domains: [name], server: CA, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString() });
    }
    const issuer = new SilentAriIssuer(CA, systemClock);
    const engine = new CertificateEngine({ store, clock: systemClock, logger: silentLogger, events: new EngineEventBus(), issuerFor: () => issuer, solversFor: () => [], ariPoll: { deadlineMs: 120_000 } });
    const manager = new CertificateManager({
      engine, clock: systemClock, logger: silentLogger, server: CA, account: { agreeTos: true },
      challenge: { type: 'standalone', port: 80 }, concurrency: 4, renewCron: '0 0 1 1 *',
      onSnapshot: (snapshot, pending) => registry.replace(snapshot, pending),
    });
    const registry = new CertificateRegistry({ load: (name) => manager.certificateFor(name) });
    const server = tls.createServer({ SNICallback: registry.sniCallback }, (socket) => socket.end());
    server.on('tlsClientError', () => {});
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const handshake = (name: string) => new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      // Every name serves the same leaf (made for the first name): the chain is verified, the name is not.
      const s = tls.connect({ host: '127.0.0.1', port, servername: name, ca: root.certPem, checkServerIdentity: () => undefined });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(performance.now() - t0);
      });
      s.once('error', reject);
    });

    manager.setSites(names.map(site));
    // The main thread's CPU time between two ticks of a fast timer is how long the work held it without letting
    // anything else run. (CPU time, not wall time: on a busy machine the process may wait for a core, which is not padlock's doing.)
    let heldMs = 0;
    let lastCpu = process.threadCpuUsage();
    const ticker = setInterval(() => {
      const cpu = process.threadCpuUsage();
      heldMs = Math.max(heldMs, (cpu.user + cpu.system - lastCpu.user - lastCpu.system) / 1000);
      lastCpu = cpu;
    }, 2);
    await manager.load();
    manager.start();
    const latencies: number[] = [];
    const deadline = Date.now() + 60_000;
    // Handshakes one after another, through loading, planning and working out the poll pass, until the pass has
    // asked the CA (so every certificate's CertID was computed), and a little after.
    let askedAt: number | undefined;
    for (let i = 0; Date.now() < deadline && (askedAt === undefined || Date.now() - askedAt < 500); i++) {
      latencies.push(await handshake(names[i % count]!));
      if (askedAt === undefined && issuer.requests > 0) askedAt = Date.now();
      await new Promise((r) => setTimeout(r, 10));
    }
    clearInterval(ticker);
    await manager.stop(0);
    assert.ok(issuer.requests > 0, 'the renewal-information pass reached the CA, and hangs there');
    assert.ok(latencies.length >= 20, `${latencies.length} handshakes were answered meanwhile`);
    // One planning pass over 10,000 names is a pure function of about 50-100 ms here, not sliced; working out the
    // poll pass in one go took seconds.
    assert.ok(heldMs < 250, `the thread was held for up to ${Math.round(heldMs)} ms of CPU at a time`);
  });
});
