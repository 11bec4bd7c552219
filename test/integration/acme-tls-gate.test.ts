/**
 * The `acme-tls/1` gate on :443, in process: a real ProxyServer (HTTP/2 and
 * HTTP/1.1) with one routed site and TLS-ALPN-01 challenges set in its map.
 * What a CA, a browser and a hostile client each see while a challenge is
 * pending, and that nothing is read when none is.
 *
 * Everything runs on 127.0.0.1 with port 0; clients name the server with
 * `servername`, never through DNS.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { TokenMap } from '../../src/acme/http01.js';
import { AcmeTlsChallenges } from '../../src/acme/tls-alpn01.js';
import { createChallengeCertificate, ID_PE_ACME_IDENTIFIER } from '../../src/acme/tls-alpn-cert.js';
import { DEFAULT_PEEK_TIMEOUT_MS, peekClientHello } from '../../src/proxy/acme-tls-gate.js';
import { silentLogger } from '../../src/log.js';
import { ProxyServer } from '../../src/proxy/server.js';
import { CertificateRegistry } from '../../src/tls/contexts.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { httpsClient } from '../support/https-client.js';
import { seededRandom } from '../support/seeded.js';

const NAME = 'app.example.com';
const KEY_AUTHORIZATION = 'token-1.thumbprint';
/** The normal server's handshake timeout here; a connection is held at most the gate's peek timeout plus this. */
const HANDSHAKE_TIMEOUT_MS = 1_500;

/** One `acme-tls/1` handshake as a CA makes it: the negotiated protocol, the certificate, and whether the server closed the connection by itself. */
function acmeHandshake(port: number, servername: string, alpn = ['acme-tls/1']): Promise<{ alpn: string | false; cert: x509.X509Certificate; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, rejectUnauthorized: false }, () => {
      const result = { alpn: s.alpnProtocol ?? false, cert: new x509.X509Certificate(s.getPeerX509Certificate()!.raw) };
      // RFC 8737 section 3: the client sends nothing; the server must not either, and padlock closes.
      const timer = setTimeout(() => {
        s.destroy();
        resolve({ ...result, closedByServer: false });
      }, 2_000);
      s.on('data', () => reject(new Error('the server sent application data on an acme-tls/1 connection')));
      s.on('end', () => {
        clearTimeout(timer);
        s.destroy();
        resolve({ ...result, closedByServer: true });
      });
    });
    s.on('error', reject);
  });
}

/** A handshake that must fail: resolves with the error code. */
function failedHandshake(port: number, servername: string, alpn: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ALPNProtocols: alpn, rejectUnauthorized: false }, () => {
      s.destroy();
      reject(new Error(`the handshake succeeded with ${String(s.alpnProtocol)}`));
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on('close', () => resolve('closed'));
  });
}

/** Connects, writes `bytes`, and resolves when the server closes the connection (or rejects after `ms`). */
function sendAndWaitForClose(port: number, bytes: Buffer, ms = DEFAULT_PEEK_TIMEOUT_MS + HANDSHAKE_TIMEOUT_MS + 1_500): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the server kept a connection open ${ms} ms after ${bytes.length} hostile bytes`));
    }, ms);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('acme-tls/1 on :443 (TLS-ALPN-01)', () => {
  let pki: TestPki;
  let root: TestCert;
  let leaf: TestCert;
  let upstream: http.Server;
  let proxy: ProxyServer;
  let port: number;
  const challenges = new AcmeTlsChallenges();
  const h2 = httpsClient('h2', () => root.cert);
  const h1 = httpsClient('http/1.1', () => root.cert);
  const leafFingerprint = () => new x509.X509Certificate(leaf.cert).getThumbprint('SHA-256').then((t) => Buffer.from(t).toString('hex'));
  const fingerprintOf = (colonHex: string | undefined) => (colonHex ?? '').replace(/:/g, '').toLowerCase();

  before(async () => {
    pki = await TestPki.create();
    const now = Date.now();
    root = await pki.issue({ cn: 'ALPN Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
    leaf = await pki.issue({ cn: NAME, names: [NAME], issuer: root, kind: 'leaf', notBefore: new Date(now - DAY), notAfter: new Date(now + 10 * DAY) });
    const registry = new CertificateRegistry();
    registry.replace(new Map([[NAME, { certPem: leaf.cert, keyPem: leaf.key, version: '1' }]]));
    upstream = http.createServer((req, res) => res.end(`app ${req.httpVersion}`));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), acmeTls: challenges, certificates: registry, logger: silentLogger, http2: {},
      timeouts: { handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS } });
    port = (await proxy.listen()).httpsPort;
    proxy.setSites([{ host: NAME, upstreams: [{ url: `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}` }], https: true, redirect: true, issuer: 'acme' }]);
  });

  after(async () => {
    await proxy?.close({ drainMs: 0 });
    upstream?.closeAllConnections();
    await new Promise<void>((r) => upstream?.close(() => r()));
    await pki?.cleanup();
  });

  const pending = async () => challenges.set(NAME, { ...(await createChallengeCertificate(NAME, KEY_AUTHORIZATION)), token: 'token-1' });

  it('with no challenge pending, an acme-tls/1 handshake reaches the normal server, which does not speak acme-tls/1', async () => {
    assert.equal(challenges.size, 0);
    const code = await failedHandshake(port, NAME, ['acme-tls/1']);
    assert.match(code, /ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL|closed/);
  });

  it('answers the CA: acme-tls/1 negotiated, the challenge certificate with the digest, the connection closed after the handshake', async () => {
    await pending();
    const r = await acmeHandshake(port, NAME);
    assert.equal(r.alpn, 'acme-tls/1');
    const ext = r.cert.getExtension(ID_PE_ACME_IDENTIFIER);
    assert.ok(ext?.critical);
    assert.deepEqual(Buffer.from(ext.value).subarray(2), createHash('sha256').update(KEY_AUTHORIZATION).digest());
    assert.equal(r.cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items[0]?.value, NAME);
    assert.equal(r.closedByServer, true);
  });

  it('an SNI name with a trailing dot or in capitals finds the challenge too', async () => {
    await pending();
    assert.equal((await acmeHandshake(port, 'APP.example.com.')).alpn, 'acme-tls/1');
  });

  it('refuses an acme-tls/1 handshake for a name with no pending challenge, and never shows the site certificate on it', async () => {
    await pending();
    const code = await failedHandshake(port, 'other.example.com', ['acme-tls/1']);
    assert.match(code, /ERR_SSL|ECONNRESET|closed/);
  });

  it('while a challenge is pending, HTTP/2 and HTTP/1.1 clients get the site, with its real certificate', async () => {
    await pending();
    const want = await leafFingerprint();
    for (const client of [h2, h1]) {
      for (let i = 0; i < 5; i++) {
        const reply = await client.request(port, { host: NAME });
        assert.equal(reply.status, 200, client.protocol);
        assert.equal(reply.body, `app 1.1`);
        assert.equal(fingerprintOf(reply.fingerprint), want, `${client.protocol} saw the site certificate`);
      }
    }
    // A browser that offers acme-tls/1 among others is a CA only if it offers it: h2 wins here as usual.
    const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername: NAME, ca: root.cert, ALPNProtocols: ['h2', 'http/1.1'] }, () => resolve(c));
      c.on('error', reject);
    });
    assert.equal(s.alpnProtocol, 'h2');
    s.destroy();
  });

  it('after cleanup (the token no longer matches nothing is removed; the right one is), :443 reads no ClientHello again', async () => {
    await pending();
    challenges.delete(NAME, 'another-token');
    assert.equal(challenges.size, 1, 'a cleanup for another token keeps the pending certificate');
    challenges.delete(NAME, 'token-1');
    assert.equal(challenges.size, 0);
    assert.match(await failedHandshake(port, NAME, ['acme-tls/1']), /ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL|closed/);
  });

  it('hostile first bytes while a challenge is pending: each connection ends within the peek and handshake timeouts, nothing crashes, and the site keeps answering', async () => {
    await pending();
    const rand = seededRandom(443);
    const hostile: Buffer[] = [
      Buffer.from('GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n'),
      Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01]), // a record longer than TLS allows
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x01, 0xff, 0xff, 0xff]), // a ClientHello that claims 16 MiB
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x30, 0x01, 0x00, 0x00, 0x2c]), Buffer.alloc(0x2c, 0xff)]), // lengths that lie
      ...Array.from({ length: 20 }, () => Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)))),
    ];
    await Promise.all(hostile.map((bytes) => sendAndWaitForClose(port, bytes)));
    const reply = await h2.request(port, { host: NAME });
    assert.equal(reply.status, 200);
    assert.equal((await acmeHandshake(port, NAME)).alpn, 'acme-tls/1');
  });

  it('a client that sends half a ClientHello and stalls holds only its own connection', async () => {
    await pending();
    const stalled = net.connect(port, '127.0.0.1', () => stalled.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    stalled.on('error', () => undefined);
    try {
      const started = Date.now();
      const reply = await h1.request(port, { host: NAME });
      assert.equal(reply.status, 200);
      assert.ok(Date.now() - started < 2_000, 'the stalled connection did not delay another client');
    } finally {
      stalled.destroy();
    }
  });
});

describe('peekClientHello: the bytes it read are put back', () => {
  const pair = async (): Promise<{ server: net.Socket; client: net.Socket; close: () => void }> => {
    const listener = net.createServer();
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => listener.once('connection', r));
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    const server = await accepted;
    return { server, client, close: () => { client.destroy(); server.destroy(); listener.close(); } };
  };

  it('gives up after its timeout with a reason, and the partial bytes are still there to read', async () => {
    const { server, client, close } = await pair();
    try {
      client.write(Buffer.from([0x16, 0x03, 0x01]));
      const verdict = await new Promise<unknown>((resolve) => peekClientHello(server, 150, resolve));
      assert.deepEqual(verdict, { kind: 'other', reason: 'no ClientHello within 150 ms' });
      assert.deepEqual(server.read(), Buffer.from([0x16, 0x03, 0x01]));
    } finally {
      close();
    }
  });

  it('a connection that ends before its hello is destroyed, with no verdict', async () => {
    const { server, client, close } = await pair();
    try {
      let called = false;
      peekClientHello(server, 5_000, () => (called = true));
      client.end(Buffer.from([0x16, 0x03]));
      await new Promise<void>((r) => server.once('close', () => r()));
      assert.equal(called, false);
      assert.equal(server.destroyed, true);
    } finally {
      close();
    }
  });
});
