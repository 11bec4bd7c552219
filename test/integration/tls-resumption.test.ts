/**
 * TLS session resumption at :443 (tls/session-tickets.ts): a client that
 * uses each ticket once, as browsers and wrk do, resumes on every reconnect;
 * keys rotate without breaking the tickets of the previous key; proxies that
 * share keys (the `--workers` processes) resume each other's tickets.
 * Loopback only, `servername` set, no DNS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { TokenMap } from '../../src/acme/http01.js';
import { silentLogger } from '../../src/log.js';
import { ProxyServer } from '../../src/proxy/server.js';
import { CertificateRegistry } from '../../src/tls/contexts.js';
import { newTicketKeys, rotateTicketKeys, type TicketKeys } from '../../src/tls/session-tickets.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';

describe('TLS session resumption at :443', () => {
  let pki: TestPki;
  let root: TestCert;
  let registry: CertificateRegistry;
  const proxies: ProxyServer[] = [];

  const start = async (options: { ticketKeys?: TicketKeys; http2?: false } = {}) => {
    const proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger, ...options });
    proxies.push(proxy);
    return { proxy, port: (await proxy.listen()).httpsPort };
  };

  /** One TLS 1.3 connection offering `ticket`: whether it resumed, and the last ticket it was given (if any). */
  const connect = (port: number, ticket?: Buffer) => new Promise<{ reused: boolean; ticket: Buffer | undefined }>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'app.example.com', ca: root.cert, ALPNProtocols: ['http/1.1'], ...(ticket ? { session: ticket } : {}) });
    let last: Buffer | undefined;
    socket.on('session', (s: Buffer) => (last = s));
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.1\r\nhost: app.example.com\r\nconnection: close\r\n\r\n'));
    socket.on('data', () => undefined);
    socket.once('end', () => resolve({ reused: socket.isSessionReused(), ticket: last }));
    socket.once('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
  });

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'Resumption Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    const leaf = await pki.issue({ cn: 'app.example.com', issuer: root, kind: 'leaf', names: ['app.example.com'], notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
    registry = new CertificateRegistry();
    registry.replace(new Map([['app.example.com', { certPem: leaf.cert, keyPem: leaf.key, version: '1' }]]));
  });

  after(async () => {
    for (const p of proxies) await p.close({ drainMs: 0 });
    await pki?.cleanup();
  });

  for (const http2 of [true, false]) {
    it(`a client that uses each ticket once resumes on every reconnect (HTTP/2 ${http2 ? 'on' : 'off'})`, async () => {
      const { port } = await start(http2 ? {} : { http2: false });
      let { ticket } = await connect(port);
      const reused: boolean[] = [];
      for (let i = 0; i < 10; i++) {
        const next = await connect(port, ticket);
        reused.push(next.reused);
        // The ticket just used is spent: only a new one from this connection may be offered next.
        ticket = next.ticket;
      }
      assert.deepEqual(reused, Array(10).fill(true), 'each resumed connection got a fresh ticket for the next');
    });
  }

  it("after a key rotation the previous key's tickets still resume; after two they do not", async () => {
    const keys = newTicketKeys();
    const { proxy, port } = await start({ ticketKeys: keys });
    const old = (await connect(port)).ticket;
    const rotated = rotateTicketKeys(keys);
    proxy.setTicketKeys(rotated);
    const once = await connect(port, old);
    assert.equal(once.reused, true, 'a ticket of the previous key resumes');
    proxy.setTicketKeys(rotateTicketKeys(rotated));
    assert.equal((await connect(port, old)).reused, false, 'a ticket two keys old is refused (full handshake)');
    assert.equal((await connect(port, once.ticket)).reused, true, 'the ticket renewed with the previous key resumes');
  });

  it('proxies sharing keys resume each other\'s tickets, and proxies with their own keys do not', async () => {
    const shared = newTicketKeys();
    const a = await start({ ticketKeys: shared });
    const b = await start({ ticketKeys: shared });
    const c = await start();
    const fromA = (await connect(a.port)).ticket;
    assert.equal((await connect(b.port, fromA)).reused, true);
    assert.equal((await connect(c.port, fromA)).reused, false);
  });
});
