/**
 * IP address hosts on :443, in process: a real ProxyServer (HTTP/2 and
 * HTTP/1.1) serving a site whose host is an IP address next to a site with
 * a DNS name, on the same port and the same local address. Clients connect
 * to the IP with no SNI (Node, curl and http2 leave an IP out of SNI, as
 * RFC 6066 says) and must get the IP certificate and the IP site; the
 * named site must be unaffected; anything but the IP in Host gets 421.
 *
 * Everything runs on loopback (127.0.0.1, 127.0.0.2, ::1) with port 0.
 * The Pebble-issued, daemon-level version is test/integration/daemon-ip.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import tls from 'node:tls';
import { TokenMap } from '../../src/acme/http01.js';
import { silentLogger } from '../../src/log.js';
import { ProxyServer } from '../../src/proxy/server.js';
import { installIpHosts, connectionName, localIp } from '../../src/proxy/ip-hosts.js';
import { CertificateRegistry, type CertificateEntry } from '../../src/tls/contexts.js';
import { newTicketKeys } from '../../src/tls/session-tickets.js';
import { DAY, TestPki, type TestCert } from '../support/certs.js';
import { h2GetIp, type IpAnswer } from '../support/https-client.js';
import { requireProgram } from '../support/programs.js';

const NAME = 'app.example.com';

type Answer = IpAnswer;

/** GET over HTTP/1.1 to an IP literal: Node sends no SNI for it. `hostHeader` overrides Host. */
function h1Get(ip: string, port: number, ca: string, opts: { hostHeader?: string; session?: Buffer; onSession?: (s: Buffer) => void } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      // servername '': Node's agent would otherwise send the Host header as SNI.
      host: ip, port, path: '/', ca, agent: false, timeout: 5_000, servername: '',
      ...(opts.session ? { session: opts.session } : {}),
      ...(opts.hostHeader ? { headers: { host: opts.hostHeader } } : {}),
    }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({
        status: res.statusCode ?? 0, body, san: socket.getPeerCertificate().subjectaltname ?? '', protocol: socket.alpnProtocol || 'http/1.1', reused: socket.isSessionReused(),
      }));
    });
    req.on('socket', (s: tls.TLSSocket) => s.on('session', (session: Buffer) => opts.onSession?.(session)));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A TLS handshake only: the error code when it fails, else the SAN of the certificate. */
function handshake(host: string, port: number, servername?: string): Promise<{ san?: string; error?: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false, ...(servername ? { servername } : {}) }, () => {
      const san = s.getPeerCertificate().subjectaltname ?? '';
      s.destroy();
      resolve({ san });
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
  });
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // No proxy, no config file, no resolver: every target below is an IP literal.
    execFile('curl', ['-q', '--silent', '--show-error', '--noproxy', '*', '--max-time', '10', ...args], { timeout: 15_000, env: { PATH: process.env['PATH'] ?? '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('IP address hosts on :443 (no SNI)', () => {
  let pki: TestPki;
  let root: TestCert;
  let ipLeaf: TestCert;
  let ip6Leaf: TestCert;
  let ip2Leaf: TestCert;
  let nameLeaf: TestCert;
  let upstream: http.Server;
  let upstreamUrl: string;
  let proxy: ProxyServer;
  let proxy6: ProxyServer;
  let port: number;
  let port6: number;
  const loads: string[] = [];
  let registry: CertificateRegistry;
  const ticketKeys = newTicketKeys();
  let stored = new Map<string, CertificateEntry>();

  const entry = (c: TestCert, version = '1'): CertificateEntry => ({ certPem: c.cert + root.cert, keyPem: c.key, version });
  const site = (host: string) => ({ host, upstreams: [{ url: upstreamUrl }], https: true, redirect: true, issuer: 'acme' as const });

  before(async () => {
    requireProgram('curl', 'curl', 'an HTTPS client that sends no SNI for an IP');
    pki = await TestPki.create();
    const now = Date.now();
    const dates = { notBefore: new Date(now - DAY), notAfter: new Date(now + 6 * DAY) };
    root = await pki.issue({ cn: 'IP Hosts Test Root', kind: 'ca', ...dates });
    ipLeaf = await pki.issue({ cn: '127.0.0.1', names: ['127.0.0.1'], issuer: root, kind: 'leaf', ...dates });
    ip2Leaf = await pki.issue({ cn: '127.0.0.2', names: ['127.0.0.2'], issuer: root, kind: 'leaf', ...dates });
    ip6Leaf = await pki.issue({ cn: 'ipv6', names: ['::1'], issuer: root, kind: 'leaf', ...dates });
    nameLeaf = await pki.issue({ cn: NAME, names: [NAME], issuer: root, kind: 'leaf', ...dates });
    upstream = http.createServer((req, res) => res.end(JSON.stringify({ app: 'upstream', host: req.headers.host })));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
    stored = new Map([['127.0.0.1', entry(ipLeaf)], [NAME, entry(nameLeaf)], ['127.0.0.2', entry(ip2Leaf)], ['::1', entry(ip6Leaf)]]);
    // The IP's certificate is pending (not in memory) at first: the first connection reads it, as after a daemon start.
    registry = new CertificateRegistry({ load: async (name) => {
      loads.push(name);
      return stored.get(name);
    } });
    registry.replace(new Map([[NAME, entry(nameLeaf)], ['127.0.0.2', entry(ip2Leaf)]]), ['127.0.0.1']);
    proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger, http2: {}, ticketKeys });
    ({ httpsPort: port } = await proxy.listen());
    proxy.setSites([site(NAME), site('127.0.0.1'), site('127.0.0.2')]);
    const registry6 = new CertificateRegistry();
    registry6.replace(new Map([['::1', entry(ip6Leaf)], [NAME, entry(nameLeaf)]]));
    proxy6 = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '::1', tokens: new TokenMap(), certificates: registry6, logger: silentLogger, http2: {} });
    ({ httpsPort: port6 } = await proxy6.listen());
    proxy6.setSites([site(NAME), site('::1')]);
  });

  after(async () => {
    await proxy?.close({ drainMs: 0 });
    await proxy6?.close({ drainMs: 0 });
    upstream?.closeAllConnections();
    await new Promise<void>((r) => upstream?.close(() => r()));
    await pki?.cleanup();
  });

  it('a pending IP certificate is read on the first connection, and the client (Node https, no SNI) gets the IP certificate and the upstream', async () => {
    const r = await h1Get('127.0.0.1', port, root.cert);
    assert.deepEqual(loads, ['127.0.0.1']);
    assert.equal(r.status, 200);
    assert.equal(r.san, 'IP Address:127.0.0.1');
    assert.equal(r.protocol, 'http/1.1');
    assert.deepEqual(JSON.parse(r.body), { app: 'upstream', host: `127.0.0.1:${port}` });
  });

  it('curl to https://127.0.0.1:PORT/ with --cacert verifies the IP certificate and gets the upstream (HTTP/2 negotiated)', async () => {
    const file = await pki.file('root.pem', root.cert);
    const r = await curl(['--cacert', file, '-w', '\n%{http_code} %{http_version}', `https://127.0.0.1:${port}/`]);
    assert.equal(r.code, 0, r.stderr);
    const [body, tail] = r.stdout.split('\n');
    assert.equal(tail, '200 2');
    assert.equal(JSON.parse(body!).app, 'upstream');
  });

  it('HTTP/2 (http2.connect to the IP) gets the IP site', async () => {
    const r = await h2GetIp('127.0.0.1', port, root.cert);
    assert.equal(r.status, 200);
    assert.equal(r.protocol, 'h2');
    assert.equal(r.san, 'IP Address:127.0.0.1');
    assert.equal(JSON.parse(r.body).app, 'upstream');
  });

  for (const protocol of ['http/1.1', 'h2'] as const) {
    it(`a Host other than the IP on the IP connection gets 421, even a routed name (${protocol})`, async () => {
      for (const other of [NAME, '127.0.0.2', `127.0.0.2:${port}`, 'elsewhere.example']) {
        const r = protocol === 'h2' ? await h2GetIp('127.0.0.1', port, root.cert, other) : await h1Get('127.0.0.1', port, root.cert, { hostHeader: other });
        assert.equal(r.status, 421, `Host ${other}`);
      }
      const bare = protocol === 'h2' ? await h2GetIp('127.0.0.1', port, root.cert, '127.0.0.1') : await h1Get('127.0.0.1', port, root.cert, { hostHeader: '127.0.0.1' });
      assert.equal(bare.status, 200, 'the IP without a port is the IP too');
    });
  }

  it('an SNI connection for the named site on the same address is unaffected: its own certificate, its own site', async () => {
    const hs = await handshake('127.0.0.1', port, NAME);
    assert.equal(hs.san, `DNS:${NAME}`);
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, servername: NAME, headers: { host: NAME }, ca: root.cert, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.body).host, NAME);
  });

  it('an unknown SNI name on the IP address is still refused with unrecognized_name', async () => {
    const hs = await handshake('127.0.0.1', port, 'unknown.example.com');
    assert.equal(hs.error, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
  });

  it('the certificate follows the local address: a connection to 127.0.0.2 gets 127.0.0.2\'s certificate from the same registry', async () => {
    const other = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.2', tokens: new TokenMap(), certificates: registry, logger: silentLogger });
    const { httpsPort } = await other.listen();
    try {
      other.setSites([site('127.0.0.1'), site('127.0.0.2')]);
      assert.equal((await handshake('127.0.0.2', httpsPort)).san, 'IP Address:127.0.0.2');
      assert.equal((await h1Get('127.0.0.2', httpsPort, root.cert)).status, 200);
      assert.equal((await h1Get('127.0.0.2', httpsPort, root.cert, { hostHeader: '127.0.0.1' })).status, 421);
    } finally {
      await other.close({ drainMs: 0 });
    }
  });

  it('TLS session resumption works on IP connections (a ticket from the first connection resumes the second)', async () => {
    let ticket: Buffer | undefined;
    const first = await h1Get('127.0.0.1', port, root.cert, { onSession: (s) => (ticket = s) });
    assert.equal(first.reused, false);
    assert.ok(ticket, 'the server sent a session ticket');
    const second = await h1Get('127.0.0.1', port, root.cert, { session: ticket! });
    assert.equal(second.reused, true);
    assert.equal(second.status, 200);
  });

  it('a ticket from one process resumes on another with the same ticket keys and its own registry (as --workers do)', async () => {
    const own = new CertificateRegistry();
    own.replace(new Map([['127.0.0.1', entry(ipLeaf)]]));
    const twin = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: own, logger: silentLogger, ticketKeys });
    const { httpsPort } = await twin.listen();
    try {
      twin.setSites([site('127.0.0.1')]);
      let ticket: Buffer | undefined;
      await h1Get('127.0.0.1', port, root.cert, { onSession: (s) => (ticket = s) });
      assert.ok(ticket);
      const there = await h1Get('127.0.0.1', httpsPort, root.cert, { session: ticket!, hostHeader: `127.0.0.1:${httpsPort}` });
      assert.equal(there.reused, true, 'the IP context carries padlock\'s shared ticket keys, not its own random ones');
      assert.equal(there.status, 200);
    } finally {
      await twin.close({ drainMs: 0 });
    }
  });

  it('IPv6: https://[::1]:PORT/ gets the ::1 certificate and site over HTTP/1.1 and HTTP/2; Host [::1]:PORT routes, another Host gets 421', async () => {
    const h1 = await h1Get('::1', port6, root.cert);
    assert.equal(h1.status, 200);
    assert.equal(h1.san, 'IP Address:0:0:0:0:0:0:0:1');
    assert.equal(JSON.parse(h1.body).host, `[::1]:${port6}`);
    // Node's http2 client writes `:authority: ::1:PORT` without brackets (malformed, and itself an IPv6 address): say it as browsers and curl do.
    const h2 = await h2GetIp('::1', port6, root.cert, `[::1]:${port6}`);
    assert.equal(h2.status, 200);
    assert.equal(h2.protocol, 'h2');
    assert.equal((await h1Get('::1', port6, root.cert, { hostHeader: '[0:0:0:0:0:0:0:1]' })).status, 200);
    assert.equal((await h1Get('::1', port6, root.cert, { hostHeader: NAME })).status, 421);
    assert.equal((await h2GetIp('::1', port6, root.cert, '127.0.0.1')).status, 421);
  });

  it('with no IP host for the address, a client without SNI still gets handshake_failure (no default certificate)', async () => {
    // proxy6 has ::1 only; drop it and the same connection is refused again.
    proxy6.setSites([site(NAME)]);
    const registry = new CertificateRegistry();
    registry.replace(new Map([[NAME, entry(nameLeaf)]]));
    const bare = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), certificates: registry, logger: silentLogger });
    const { httpsPort } = await bare.listen();
    try {
      bare.setSites([site(NAME), site('127.0.0.1')]);
      const hs = await handshake('127.0.0.1', httpsPort);
      assert.match(hs.error ?? '', /ALERT_HANDSHAKE_FAILURE/);
    } finally {
      await bare.close({ drainMs: 0 });
    }
  });
});

describe('ip-hosts helpers', () => {
  it('localIp reads an IPv4-mapped local address as IPv4 and IPv6 in canonical text', () => {
    assert.equal(localIp({ localAddress: '::ffff:127.0.0.1' }), '127.0.0.1');
    assert.equal(localIp({ localAddress: '2001:DB8:0:0:0:0:0:10' }), '2001:db8::10');
    assert.equal(localIp({ localAddress: '203.0.113.10' }), '203.0.113.10');
    assert.equal(localIp({}), undefined);
  });
  it('connectionName is the SNI name when there is one, else the local address', () => {
    assert.equal(connectionName({ servername: 'App.Example.com.', localAddress: '127.0.0.1' }), 'app.example.com');
    assert.equal(connectionName({ servername: false, localAddress: '::ffff:203.0.113.10' }), '203.0.113.10');
  });
  it('refuses to start on a TLS server without the _sharedCreds context it swaps', () => {
    const server = tls.createServer({});
    delete (server as unknown as { _sharedCreds?: unknown })._sharedCreds;
    assert.throws(() => installIpHosts(server, { certificates: new CertificateRegistry(), ticketKeys: newTicketKeys, logger: silentLogger }), /_sharedCreds/);
  });
});
