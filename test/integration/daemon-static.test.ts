/**
 * `padlock run` with routes from a config file (no Docker): certificates
 * from a real Pebble and from the local CA, served through the proxy.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { writeFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, httpsGetOver, sigtermDuringRequests, waitFor, CLIENT_PROTOCOLS, type RunningDaemon } from '../support/daemon.js';

/** Tests that need no CA point at a dead loopback one, so nothing could ever reach Let's Encrypt. */
const NO_CA = ['--server', 'https://127.0.0.1:1/dir'];

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let app: Awaited<ReturnType<typeof startUpstream>>;
let daemon: RunningDaemon;
const publicName = uniqueName('daemon');
const localName = 'app.localhost';

before(async () => {
  pebble = await startPebble();
  cfg = await tempConfigDir();
  app = await startUpstream('static-app');
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, [
    'sites:',
    `  - host: ${publicName}`,
    `    upstream: ${app.url}`,
    '    hsts: true',
    `  - host: ${localName}`,
    `    upstream: ${app.url}`,
  ].join('\n'));
  daemon = await startPadlockRun([
    '--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'),
    ...pebbleRunFlags(pebble),
  ], { httpPort: pebble.httpPort });
});
after(async () => {
  await daemon?.stop();
  await app?.close();
  await pebble?.stop();
  await cfg?.cleanup();
});

describe('padlock run with static sites', () => {
  // Over both protocols: padlock run offers HTTP/2 by default, and HTTP/1.1 on the same port.
  for (const protocol of CLIENT_PROTOCOLS) {
    it(`obtains a certificate from the CA and serves the app over HTTPS, trusted by the CA root only (${protocol} client)`, async () => {
      const res = await waitFor('HTTPS for the public name', () => httpsGetOver(protocol, daemon.httpsPort, publicName, pebble.rootPem).catch(() => undefined));
      assert.equal(res.protocol, protocol);
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).app, 'static-app');
      assert.match(String(res.peer.issuer.CN), /Pebble/);
      assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
      const seen = JSON.parse(res.body).headers;
      assert.equal(seen['x-forwarded-proto'], 'https');
      assert.equal(seen['x-forwarded-host'], publicName);
      assert.equal(seen.host, publicName);
    });

    it(`serves a *.localhost name with a local-CA certificate that verifies against padlock trust (${protocol} client)`, async () => {
      const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')]);
      assert.equal(root.code, 0, root.stderr);
      const res = await waitFor('HTTPS for the local name', () => httpsGetOver(protocol, daemon.httpsPort, localName, root.stdout).catch(() => undefined));
      assert.equal(res.status, 200);
      assert.equal(res.protocol, protocol);
      assert.match(String(res.peer.issuer.CN), /padlock local CA/);
    });
  }

  it('reports both certificates and routes in the status API', async () => {
    const status = await waitFor('both certificates valid', async () => {
      const s = await daemon.status();
      return s['certificates'].filter((c: { state: string }) => c.state === 'valid').length === 2 ? s : undefined;
    });
    const hosts = status['routes'].map((r: { host: string }) => r.host).sort();
    assert.deepEqual(hosts, [localName, publicName].sort());
    const pub = status['certificates'].find((c: { name: string }) => c.name === publicName);
    assert.equal(pub.issuer, 'acme');
    assert.ok(Date.parse(pub.renewAt) > Date.now());
  });

  it('redirects plain HTTP to HTTPS with a 308', async () => {
    // Not fetch(): it drops a custom Host header.
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: daemon.httpPort, path: '/some/path?q=1', headers: { host: publicName } }, (r) => resolve(r.resume())).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://${publicName}:${daemon.httpsPort}/some/path?q=1`);
  });

  it('stores what it obtained where padlock certificates lists it', async () => {
    const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
    const names = JSON.parse(list.stdout).certificates.map((c: { name: string }) => c.name);
    assert.ok(names.includes(publicName));
    assert.ok(names.includes(localName));
  });

  it('shows the routes with padlock status, and exports certificate and ACME metrics', async () => {
    const table = await runCli(['status', '--admin-listen', `127.0.0.1:${daemon.adminPort}`]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^padlock: ready, 2 names/m);
    assert.match(table.stdout, new RegExp(publicName.replace(/\./g, '\\.')));
    const json = JSON.parse((await runCli(['status', '--json', '--admin-listen', `127.0.0.1:${daemon.adminPort}`])).stdout);
    assert.equal(json.ready, true);

    const metrics = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: daemon.adminPort, path: '/metrics' }, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
      }).on('error', reject);
    });
    assert.match(metrics, new RegExp(`padlock_certificate_not_after_timestamp_seconds\\{name="${publicName.replace(/\./g, '\\.')}"\\} \\d+`));
    const acme = /padlock_acme_request_duration_seconds_count\{status="200"\} (\d+)/.exec(metrics);
    assert.ok(acme && Number(acme[1]) > 0, 'ACME requests were timed');
    assert.match(metrics, /padlock_certificate_renewal_attempts_total\{outcome="success"\} [1-9]/);
  });

  it('drains on SIGTERM: a GOAWAY to HTTP/2 clients at once, requests in flight on both protocols answered, then exit 0', async () => {
    const out = await sigtermDuringRequests(daemon, publicName, pebble.rootPem, app.hits);
    // Exit 0; both slow requests answered; GOAWAY (NO_ERROR) before the answer in flight; nothing listens after the exit.
    assert.deepEqual(out, { code: 0, statuses: { 'http/1.1': 200, h2: 200 }, goaway: http2.constants.NGHTTP2_NO_ERROR, goawayFirst: true, afterExit: 'refused' }, daemon.output());
  });
});

describe('padlock run configuration errors', () => {
  it('reports every problem at once, with where each value came from, and exits 1 without listening', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'bad.yaml');
    await writeFile(file, 'concurrency: 0\nbogus: true\nsites:\n  - host: "*.example.com"\n    upstream: "ftp://x"\n');
    const r = await runCli(['run', '--config', file, '--https-port', 'eighty', '--docker', 'false', '--config-dir', dir.dir, ...NO_CA], { env: { PADLOCK_EMAIL: 'not-an-email' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--https-port: .*\(got "eighty"\)/);
    assert.match(r.stderr, /PADLOCK_EMAIL: email must be an email address/);
    assert.match(r.stderr, /config file .*bad\.yaml: concurrency: Too small/);
    assert.match(r.stderr, /unknown key\(s\) bogus/);
    assert.match(r.stderr, /\[CONFIG_INVALID\]/);
  });

  it('says which address it cannot listen on, with a stable code, when the HTTPS port is taken', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const blocker = http.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      const taken = (blocker.address() as { port: number }).port;
      const r = await runCli(['run', '--docker', 'false', '--config-dir', dir.dir, '--admin-listen', '127.0.0.1:0', '--http-port', '0', '--https-port', String(taken), '--bind', '127.0.0.1', ...NO_CA]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} \\(EADDRINUSE\\): another program already listens on 127\\.0\\.0\\.1:${taken}.*\\[LISTEN_FAILED\\]`));
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('reports bad static sites together', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'sites.yaml');
    await writeFile(file, 'sites:\n  - host: "*.example.com"\n    upstream: "http://127.0.0.1:1"\n  - host: ok.example.com\n    upstream: "ftp://x"\n');
    const r = await runCli(['run', '--config', file, '--docker', 'false', '--config-dir', dir.dir, '--admin-listen', '127.0.0.1:0', '--http-port', '0', '--https-port', '0', '--bind', '127.0.0.1', ...NO_CA]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /sites\.0\.host "\*\.example\.com": a wildcard needs the DNS-01 challenge, and no provider in dns\.providers covers example\.com/);
    assert.match(r.stderr, /sites\.1\.upstream: "ftp:\/\/x" is not an upstream URL \(the scheme ftp is not http, https or h2c\)/);
  });
});

describe('padlock run as a certificate companion', () => {
  it("writes each certificate into the companion folder in nginx-proxy's layout", async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'companion.yaml');
    await writeFile(file, `sites:\n  - host: shop.localhost\n    upstream: http://127.0.0.1:9\n`);
    const certs = join(dir.dir, 'nginx-certs');
    const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(dir.dir, 'store'), '--companion-dir', certs, ...NO_CA]);
    try {
      const crt = await waitFor('shop.localhost.crt', () => readFile(join(certs, 'shop.localhost.crt'), 'utf8').catch(() => undefined));
      const stored = await readFile(join(dir.dir, 'store', 'live', 'shop.localhost', 'fullchain.pem'), 'utf8');
      assert.equal(crt, stored);
      assert.equal((await stat(join(certs, 'shop.localhost.key'))).mode & 0o777, 0o600);
      const status = await d.status();
      assert.notEqual(status['companion'], 'disabled');
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });
});


describe('padlock run and certificates from elsewhere', () => {
  // A verified handshake only: these names route to a dead port on purpose, and a request would wait --upstream-wait for it.
  // With `alpn`, the handshake must also pick that protocol, as a browser's offering h2 would.
  const serial = (port: number, name: string, ca: string, alpn?: 'h2') => new Promise<string>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: name, ca, timeout: 5_000, ...(alpn ? { ALPNProtocols: [alpn] } : {}) }, () => {
      const peer = socket.getPeerCertificate();
      const protocol = socket.alpnProtocol;
      socket.end();
      if (alpn && protocol !== alpn) return reject(new Error(`ALPN ${String(protocol)}, not ${alpn}`));
      resolve(peer.serialNumber);
    });
    socket.on('timeout', () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
  const serialOverH2 = (port: number, name: string, ca: string) => serial(port, name, ca, 'h2');

  it('answers the very first handshake for a local name it has no certificate for yet, issuing it then, once, and issues the others in the background', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'local.yaml');
    const store = join(dir.dir, 'store');
    // Twenty local names: enough that the store's change notifications of this start's own writes arrive while it still issues.
    const names = ['first', ...Array.from({ length: 19 }, (_, i) => `n${i}`)].map((n) => `${n}.localhost`);
    await writeFile(file, ['sites:', ...names.map((n) => `  - host: ${n}\n    upstream: http://127.0.0.1:9`)].join('\n'));
    const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, '--log-format', 'json', ...NO_CA]);
    try {
      const root = (await runCli(['trust', '--pem', '--config-dir', store])).stdout;
      assert.ok(await serial(d.httpsPort, 'first.localhost', root), 'the very first handshake succeeds, verified against padlock trust');
      await waitFor('every local certificate', async () => {
        const versions = await Promise.all(names.map((n) => readFile(join(store, 'renewal', `${n}.json`), 'utf8').then((t) => (JSON.parse(t) as { storedForVersion: number }).storedForVersion, () => undefined)));
        return versions.every((v) => v !== undefined) ? versions : undefined;
      }).then((versions) => assert.deepEqual(versions, names.map(() => 1), 'each issued once, by the handshake or by the background, never both'));
      for (const n of names.slice(0, 3)) assert.ok(await serial(d.httpsPort, n, root), n);
      assert.ok(await serialOverH2(d.httpsPort, 'first.localhost', root), 'and to a client that offers HTTP/2');
      assert.doesNotMatch(d.output(), /a newer certificate appeared in the store/, "padlock's own certificates are not announced as another process's");
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  it('keeps at most --tls-context-cache TLS contexts, and still serves every name', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'cache.yaml');
    const store = join(dir.dir, 'store');
    const names = ['a', 'b', 'c', 'd'].map((n) => `${n}.localhost`);
    await writeFile(file, ['sites:', ...names.map((n) => `  - host: ${n}\n    upstream: http://127.0.0.1:9`)].join('\n'));
    const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, '--tls-context-cache', '2', ...NO_CA]);
    try {
      const root = (await runCli(['trust', '--pem', '--config-dir', store])).stdout;
      for (let round = 0; round < 2; round++) for (const n of names) assert.ok(await serial(d.httpsPort, n, root), `${n}, round ${round + 1}`);
      const certs = ((await d.status())['proxy'] as { certificates: { cachedContexts: number; builtContexts: number } }).certificates;
      assert.equal(certs.cachedContexts, 2, 'two contexts kept');
      assert.ok(certs.builtContexts >= 8, `${certs.builtContexts} contexts built for 8 handshakes that each found theirs evicted`);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });

  it('serves, within 5 s and without a restart, a newer certificate that padlock renew wrote from another process', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'local.yaml');
    const store = join(dir.dir, 'store');
    await writeFile(file, `sites:\n  - host: cron.localhost\n    upstream: http://127.0.0.1:9\n`);
    const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, ...NO_CA]);
    try {
      const root = (await runCli(['trust', '--pem', '--config-dir', store])).stdout;
      const before = await waitFor('the first certificate', () => serial(d.httpsPort, 'cron.localhost', root).catch(() => undefined));
      const r = await runCli(['renew', '--force-renewal', '--cert-name', 'cron.localhost', '--config-dir', store]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const renewedAt = Date.now();
      const written = await readFile(join(store, 'live', 'cron.localhost', 'cert.pem'), 'utf8');
      const after = await waitFor('the renewed certificate', async () => {
        const s = await serial(d.httpsPort, 'cron.localhost', root).catch(() => undefined);
        return s && s !== before ? s : undefined;
      }, 10_000, 100);
      assert.ok(Date.now() - renewedAt < 5_000, `served after ${Date.now() - renewedAt} ms`);
      assert.equal(after.toLowerCase(), new (await import('node:crypto')).X509Certificate(written).serialNumber.toLowerCase());
      assert.equal(await serialOverH2(d.httpsPort, 'cron.localhost', root), after, 'an HTTP/2 client gets the renewed certificate too');
      assert.match(d.output(), /a newer certificate appeared in the store/);
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });
});

describe('padlock run --http2', () => {
  /** What a client offering h2 and http/1.1 gets, and the SETTINGS an h2 client is sent. */
  const probe = async (port: number, root: string) => {
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'h2.localhost', ca: root, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(s.alpnProtocol ?? false);
        s.destroy();
      });
      s.on('error', reject);
    });
    return alpn;
  };

  it('offers h2 with the configured limits by default, and only HTTP/1.1 with --http2 false', async () => {
    const dir = await tempConfigDir();
    after(dir.cleanup);
    const file = join(dir.dir, 'h2.yaml');
    await writeFile(file, 'sites:\n  - host: h2.localhost\n    upstream: http://127.0.0.1:9\n');
    const store = join(dir.dir, 'store');
    const on = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, '--http2-max-concurrent-streams', '64', ...NO_CA], { env: { PADLOCK_HTTP2_MAX_HEADER_LIST_SIZE: '20000' } });
    try {
      const root = (await runCli(['trust', '--pem', '--config-dir', store])).stdout;
      assert.equal(await probe(on.httpsPort, root), 'h2');
      const session = http2.connect(`https://127.0.0.1:${on.httpsPort}`, { servername: 'h2.localhost', ca: root });
      session.on('error', () => undefined);
      const settings = await new Promise<http2.Settings>((resolve) => session.once('remoteSettings', resolve));
      session.close();
      assert.equal(settings.maxConcurrentStreams, 64, 'from the flag');
      assert.equal(settings.maxHeaderListSize, 20000, 'from the env var');
    } finally {
      assert.equal(await on.stop(), 0);
    }
    // --upstream-wait 0: the dead upstream answers 502 at once instead of holding the request.
    const off = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, '--http2', 'false', '--upstream-wait', '0', ...NO_CA]);
    try {
      const root = (await runCli(['trust', '--pem', '--config-dir', store])).stdout;
      assert.equal(await probe(off.httpsPort, root), 'http/1.1');
      assert.equal((await httpsGet(off.httpsPort, 'h2.localhost', root)).status, 502, 'HTTP/1.1 is served (the upstream is down)');
    } finally {
      assert.equal(await off.stop(), 0);
    }
  });
});
