/**
 * IP address hosts from container labels, against a real private dockerd
 * and a real Pebble.
 *
 * A label may not claim a loopback address (docker/labels.ts), and the
 * network rules of this test bed allow no traffic to any other address, so
 * the IP here is 203.0.113.10 (TEST-NET-3, documentation only) and Pebble
 * runs with `PEBBLE_VA_ALWAYS_VALID=1`: it issues without connecting
 * anywhere. What this shows is the label side: the address is routed, gets
 * an IP certificate through the daemon's normal order, is redirected on :80,
 * and is served at :443 only to clients that connected to that very address
 * (a client at 127.0.0.1 without SNI is refused). Serving an address padlock
 * really listens on is test/integration/daemon-ip.test.ts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import http from 'node:http';
import tls from 'node:tls';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { startDockerd, type Dockerd, type TestContainer } from '../support/dockerd.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, httpsGet, waitFor, stopRunTest, type RunningDaemon } from '../support/daemon.js';

const IP = '203.0.113.10';

let pebble: Pebble;
let dockerd: Dockerd;
let cfg: { dir: string; cleanup: () => Promise<void> };
let daemon: RunningDaemon;
const containers: TestContainer[] = [];

async function run(name: string, labels: Record<string, string>): Promise<void> {
  containers.push(await dockerd.runContainer({ name, port: await freePort(), labels }));
}

interface Problem { code: string; message: string; containerName?: string; host?: string }

before(async () => {
  [pebble, dockerd, cfg] = await Promise.all([startPebble({ env: { PEBBLE_VA_ALWAYS_VALID: '1' } }), startDockerd(), tempConfigDir()]);
  daemon = await startPadlockRun(['--docker-host', dockerd.dockerHost, '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort });
});
after(() => stopRunTest({ daemon, containers, dockerd, pebble, cfg }));

describe('padlock run: IP address hosts from container labels', () => {
  it('routes padlock.host=203.0.113.10 and obtains an IP certificate for it (IP Address SAN, live/203.0.113.10/)', async () => {
    await run('ip-web', { 'padlock.host': IP });
    await waitFor('the IP certificate', async () => {
      const s = await daemon.status();
      return s['routes'].some((r: { host: string }) => r.host === IP) && s['certificates'].find((c: { name: string; state: string }) => c.name === IP && c.state === 'valid');
    }, 30_000);
    const cert = new X509Certificate(await readFile(join(cfg.dir, 'store', 'live', IP, 'cert.pem'), 'utf8'));
    assert.equal(cert.subjectAltName, `IP Address:${IP}`);
  });

  it('redirects http://203.0.113.10/ to https://203.0.113.10:PORT/ (the route is the label\'s)', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: daemon.httpPort, path: '/x', headers: { host: IP } }, (r) => resolve(r.resume())).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://${IP}:${daemon.httpsPort}/x`);
  });

  it('serves the IP certificate only to clients that connected to that address: a client at 127.0.0.1 without SNI is refused', async () => {
    const code = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: daemon.httpsPort, rejectUnauthorized: false }, () => {
        s.destroy();
        resolve(`served ${s.getPeerCertificate().subjectaltname}`);
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.match(code, /ALERT_HANDSHAKE_FAILURE/);
  });

  it('refuses an IP with padlock.challenge=dns-01 with its reason, and a loopback IP, while other routes keep working', async () => {
    const name = uniqueName('ipnext');
    await run('ip-dns', { 'padlock.host': '192.0.2.7', 'padlock.challenge': 'dns-01' });
    await run('ip-loop', { 'padlock.host': '127.0.0.1' });
    await run('named', { 'padlock.host': name });
    const problems = await waitFor('the two problems', async () => {
      const all = (await daemon.status())['problems'] as Problem[];
      const mine = all.filter((p) => p.containerName === 'ip-dns' || p.containerName === 'ip-loop');
      return mine.length === 2 ? mine : undefined;
    }, 30_000);
    const dns = problems.find((p) => p.containerName === 'ip-dns');
    assert.equal(dns?.code, 'LABEL_INVALID_VALUE');
    assert.match(dns?.message ?? '', /192\.0\.2\.7 is an IP address, which can only be validated over http-01 or tls-alpn-01 \(RFC 8738\), never dns-01/);
    const loop = problems.find((p) => p.containerName === 'ip-loop');
    assert.equal(loop?.code, 'LABEL_INVALID_HOST');
    assert.match(loop?.message ?? '', /loopback address/);
    const routes = ((await daemon.status())['routes'] as Array<{ host: string }>).map((r) => r.host);
    assert.ok(!routes.includes('192.0.2.7') && !routes.includes('127.0.0.1'));
    const r = await waitFor(`${name} over HTTPS`, async () => {
      const res = await httpsGet(daemon.httpsPort, name, pebble.rootPem).catch(() => undefined);
      return res?.status === 200 ? res : undefined;
    }, 30_000);
    assert.match(r.body, /named/);
    assert.ok(routes.includes(IP), 'the IP route stays');
  });
});
