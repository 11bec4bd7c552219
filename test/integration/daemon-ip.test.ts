/**
 * `padlock run` with an IP address host in the config file's `sites:`: an
 * IP certificate from a real Pebble over HTTP-01 (Pebble's VA connects to
 * 127.0.0.1 or [::1] on its httpPort), served at :443 to clients that
 * connect to the address with no SNI, next to a DNS-named site on the same
 * port; with one process, with --workers 2, and over IPv6.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { h2GetIp, type IpAnswer } from '../support/https-client.js';
import { runCli } from '../support/cli.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';
import { requireProgram } from '../support/programs.js';

type Answer = Omit<IpAnswer, 'reused'>;

/** HTTP/1.1 GET to an IP literal with no SNI (Node leaves an IP out; servername '' keeps a Host override out too). */
function ipGet(ip: string, port: number, ca: string, hostHeader?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: ip, port, path: '/', ca, agent: false, timeout: 5_000, servername: '', ...(hostHeader ? { headers: { host: hostHeader } } : {}) }, (res) => {
      const socket = res.socket as tls.TLSSocket;
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, san: socket.getPeerCertificate().subjectaltname ?? '', protocol: socket.alpnProtocol || 'http/1.1' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-q', '--silent', '--show-error', '--noproxy', '*', '--max-time', '10', ...args], { timeout: 15_000, env: { PATH: process.env['PATH'] ?? '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function redirectOf(port: number, host: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    http.get({ host: host.startsWith('[') ? host.slice(1, -1) : '127.0.0.1', port, path: '/a?b=1', headers: { host } }, (r) => {
      r.resume();
      resolve({ status: r.statusCode ?? 0, location: r.headers.location });
    }).on('error', reject);
  });
}

let pebble: Pebble;
let app: Awaited<ReturnType<typeof startUpstream>>;

before(async () => {
  requireProgram('curl', 'curl', 'an HTTPS client that sends no SNI for an IP');
  pebble = await startPebble();
  app = await startUpstream('ip-app');
});
after(async () => {
  await app?.close();
  await pebble?.stop();
});

/** Runs the same checks against one daemon configuration. */
function daemonSuite(title: string, extraArgs: string[]) {
  describe(title, () => {
    let cfg: { dir: string; cleanup: () => Promise<void> };
    let daemon: RunningDaemon;
    const name = uniqueName('ipnext');

    before(async () => {
      cfg = await tempConfigDir();
      const file = join(cfg.dir, 'padlock.yaml');
      await writeFile(file, ['sites:', '  - host: 127.0.0.1', `    upstream: ${app.url}`, `  - host: ${name}`, `    upstream: ${app.url}`].join('\n'));
      daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble), ...extraArgs], { httpPort: pebble.httpPort });
    });
    after(async () => {
      await daemon?.stop();
      await cfg?.cleanup();
    });

    it('obtains an IP certificate from Pebble (IP Address:127.0.0.1) and stores it in live/127.0.0.1/', async () => {
      await waitFor('the IP certificate', async () => {
        const s = await daemon.status();
        return s['certificates'].find((c: { name: string; state: string }) => c.name === '127.0.0.1' && c.state === 'valid');
      }, 30_000);
      const cert = new X509Certificate(await readFile(join(cfg.dir, 'store', 'live', '127.0.0.1', 'cert.pem'), 'utf8'));
      assert.equal(cert.subjectAltName, 'IP Address:127.0.0.1');
    });

    it('serves https://127.0.0.1:PORT/ to Node https (no SNI), trusted by the Pebble root only, with the upstream\'s answer', async () => {
      const r = await waitFor('HTTPS at the IP', () => ipGet('127.0.0.1', daemon.httpsPort, pebble.rootPem).catch(() => undefined));
      assert.equal(r.status, 200);
      assert.equal(r.san, 'IP Address:127.0.0.1');
      const seen = JSON.parse(r.body);
      assert.equal(seen.app, 'ip-app');
      assert.equal(seen.headers.host, `127.0.0.1:${daemon.httpsPort}`);
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
    });

    it('serves it to curl --cacert (HTTP/2) and to http2.connect', async () => {
      const root = join(cfg.dir, 'pebble-root.pem');
      await writeFile(root, pebble.rootPem);
      const c = await curl(['--cacert', root, '-w', '\n%{http_code} %{http_version}', `https://127.0.0.1:${daemon.httpsPort}/`]);
      assert.equal(c.code, 0, c.stderr);
      assert.equal(c.stdout.split('\n').at(-1), '200 2');
      const h2 = await h2GetIp('127.0.0.1', daemon.httpsPort, pebble.rootPem);
      assert.equal(h2.status, 200);
      assert.equal(h2.protocol, 'h2');
      assert.equal(JSON.parse(h2.body).app, 'ip-app');
    });

    it('keeps serving the DNS-named site on the same port (SNI connections unaffected)', async () => {
      const r = await waitFor('HTTPS for the name', () => httpsGet(daemon.httpsPort, name, pebble.rootPem).catch(() => undefined), 30_000);
      assert.equal(r.status, 200);
      assert.deepEqual(r.peer.subjectaltname, `DNS:${name}`);
    });

    it('answers 421 on the IP connection to a Host other than the IP (h1 and h2)', async () => {
      assert.equal((await ipGet('127.0.0.1', daemon.httpsPort, pebble.rootPem, name)).status, 421);
      assert.equal((await h2GetIp('127.0.0.1', daemon.httpsPort, pebble.rootPem, name)).status, 421);
    });

    it('redirects http://127.0.0.1/ to https://127.0.0.1:PORT/ with a 308', async () => {
      assert.deepEqual(await redirectOf(daemon.httpPort, '127.0.0.1'), { status: 308, location: `https://127.0.0.1:${daemon.httpsPort}/a?b=1` });
    });

    it('padlock certificates lists the IP certificate with its address', async () => {
      const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
      const ip = JSON.parse(list.stdout).certificates.find((c: { name: string }) => c.name === '127.0.0.1');
      assert.deepEqual(ip?.domains, ['127.0.0.1']);
    });
  });
}

daemonSuite('padlock run with a static IP host (one process)', []);
daemonSuite('padlock run with a static IP host (--workers 2)', ['--workers', '2']);

describe('padlock run with an IP host over TLS-ALPN-01 (--challenge tls-alpn-01)', () => {
  let cfg: { dir: string; cleanup: () => Promise<void> };
  let daemon: RunningDaemon;

  before(async () => {
    cfg = await tempConfigDir();
    const file = join(cfg.dir, 'padlock.yaml');
    await writeFile(file, ['sites:', '  - host: 127.0.0.1', `    upstream: ${app.url}`].join('\n'));
    // Pebble's VA connects to 127.0.0.1:tlsPort with SNI 1.0.0.127.in-addr.arpa and ALPN acme-tls/1 (RFC 8738 section 6).
    daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), '--challenge', 'tls-alpn-01', ...pebbleRunFlags(pebble)], { httpsPort: pebble.tlsPort });
  });
  after(async () => {
    await daemon?.stop();
    await cfg?.cleanup();
  });

  it('obtains the IP certificate through :443 and serves it there without SNI', async () => {
    const r = await waitFor('HTTPS at the IP', () => ipGet('127.0.0.1', daemon.httpsPort, pebble.rootPem).catch(() => undefined), 30_000);
    assert.equal(r.status, 200);
    assert.equal(r.san, 'IP Address:127.0.0.1');
    assert.match(daemon.output(), /answering an acme-tls\/1 handshake/);
  });
});

describe('padlock run with an IPv6 host ([::1], bound to ::1)', () => {
  let cfg: { dir: string; cleanup: () => Promise<void> };
  let daemon: RunningDaemon;

  before(async () => {
    cfg = await tempConfigDir();
    const file = join(cfg.dir, 'padlock.yaml');
    await writeFile(file, ['sites:', '  - host: "[::1]"', `    upstream: ${app.url}`].join('\n'));
    daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort, bind: '::1' });
  });
  after(async () => {
    await daemon?.stop();
    await cfg?.cleanup();
  });

  it('obtains a certificate for ::1 in the lineage 0--1 and serves https://[::1]:PORT/ over h1 and h2, 421 for another Host', async () => {
    const r = await waitFor('HTTPS at [::1]', () => ipGet('::1', daemon.httpsPort, pebble.rootPem).catch(() => undefined), 30_000);
    assert.equal(r.status, 200);
    assert.equal(r.san, 'IP Address:0:0:0:0:0:0:0:1');
    const cert = new X509Certificate(await readFile(join(cfg.dir, 'store', 'live', '0--1', 'cert.pem'), 'utf8'));
    assert.equal(cert.subjectAltName, 'IP Address:0:0:0:0:0:0:0:1');
    const h2 = await h2GetIp('::1', daemon.httpsPort, pebble.rootPem);
    assert.equal(h2.status, 200);
    assert.equal(h2.protocol, 'h2');
    assert.equal((await ipGet('::1', daemon.httpsPort, pebble.rootPem, '127.0.0.1')).status, 421);
    assert.deepEqual(await redirectOf(daemon.httpPort, '[::1]'), { status: 308, location: `https://[::1]:${daemon.httpsPort}/a?b=1` });
  });
});
