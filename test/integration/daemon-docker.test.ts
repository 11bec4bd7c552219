/**
 * `padlock run` against a real private dockerd and a real Pebble: label a
 * container, get HTTPS. Pebble issues 10-second certificates here, so the
 * daemon renews every few seconds while the tests run: every request below
 * also crosses certificate reloads.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket, type ClientOptions } from 'ws';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { startDockerd, type Dockerd, type TestContainer } from '../support/dockerd.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, loopbackResolverEnv, waitFor, stopRunTest, type RunningDaemon } from '../support/daemon.js';

const VALIDITY_S = 10;
/** A name that resolves to 127.0.0.1 only when padlock connects (see loopbackResolverEnv). */
const ALIAS = 'admin-alias.test';

let pebble: Pebble;
let dockerd: Dockerd;
let cfg: { dir: string; cleanup: () => Promise<void> };
let daemon: RunningDaemon;
const containers: TestContainer[] = [];

async function run(name: string, opts: { labels?: Record<string, string>; env?: Record<string, string> }): Promise<{ c: TestContainer; port: number }> {
  const port = await freePort();
  const c = await dockerd.runContainer({ name, port, ...opts });
  containers.push(c);
  return { c, port };
}

const get = (name: string) => httpsGet(daemon.httpsPort, name, pebble.rootPem);
const served = (name: string, text: string) => waitFor(`${name} to serve "${text}"`, async () => {
  const r = await get(name).catch(() => undefined);
  return r && r.status === 200 && r.body.includes(text) ? r : undefined;
}, 30_000);

before(async () => {
  [pebble, dockerd, cfg] = await Promise.all([startPebble({ validitySeconds: VALIDITY_S }), startDockerd(), tempConfigDir()]);
  daemon = await startPadlockRun([
    '--docker-host', dockerd.dockerHost, '--config-dir', join(cfg.dir, 'store'),
    ...pebbleRunFlags(pebble),
    // ALIAS resolves to 127.0.0.1 inside the daemon only (a test preload; no DNS anywhere).
  ], { httpPort: pebble.httpPort, env: loopbackResolverEnv([ALIAS]) });
});
after(() => stopRunTest({ daemon, containers, dockerd, pebble, cfg }));

describe('padlock run with Docker', () => {
  it('serves HTTPS for a labelled container within seconds, with a certificate trusted through the CA root only', async () => {
    const name = uniqueName('web');
    const started = Date.now();
    await run('web-1', { labels: { 'padlock.host': name } });
    const r = await served(name, 'web-1');
    assert.match(String(r.peer.issuer.CN), /Pebble/);
    assert.ok(Date.now() - started < 30_000);
  });

  it('spreads requests over two containers with the same name', async () => {
    const name = uniqueName('pair');
    await run('pair-a', { labels: { 'padlock.host': name } });
    await run('pair-b', { labels: { 'padlock.host': name } });
    await served(name, 'pair-');
    const seen = new Set<string>();
    await waitFor('both containers to answer', async () => {
      const r = await get(name).catch(() => undefined);
      if (r?.body.includes('pair-a')) seen.add('a');
      if (r?.body.includes('pair-b')) seen.add('b');
      return seen.size === 2;
    }, 20_000, 20);
  });

  // A stopped container keeps its name for the grace period (redeploy.test.ts); a removed one loses it at once.
  it('removes the route of a removed container', async () => {
    const name = uniqueName('stop');
    const { c } = await run('stopme', { labels: { 'padlock.host': name } });
    await served(name, 'stopme');
    await c.remove();
    await waitFor('the route to disappear', async () => {
      const s = await daemon.status();
      return !s['routes'].some((r: { host: string }) => r.host === name);
    });
    const after = await get(name).then((r) => r.status, (e: Error) => e.message);
    assert.notEqual(after, 200);
  });

  it('reports a container with bad labels and leaves the others working', async () => {
    const good = uniqueName('good');
    await run('bad-port', { labels: { 'padlock.host': uniqueName('bad'), 'padlock.port': 'eighty' } });
    await run('good-1', { labels: { 'padlock.host': good } });
    await served(good, 'good-1');
    const status = await waitFor('the problem to show', async () => {
      const s = await daemon.status();
      return s['problems'].some((p: { containerName?: string }) => p.containerName === 'bad-port') ? s : undefined;
    });
    const problem = status['problems'].find((p: { containerName?: string }) => p.containerName === 'bad-port');
    assert.equal(problem.code, 'LABEL_INVALID_PORT');
    assert.match(problem.message, /padlock\.port on container bad-port: "eighty" is not a port/);
    assert.match(daemon.output(), /route disabled/);
  });

  it('honours nginx-proxy environment variables', async () => {
    const name = uniqueName('vhost');
    const port = await freePort();
    const c = await dockerd.runContainer({ name: 'nginx-proxy-app', port, env: { VIRTUAL_HOST: name, VIRTUAL_PORT: String(port), LETSENCRYPT_HOST: name, LETSENCRYPT_EMAIL: 'app@example.com' } });
    containers.push(c);
    await served(name, 'nginx-proxy-app');
  });

  it('keeps a WebSocket open across certificate renewals and a route change for another name', async () => {
    // The WebSocket upstream is a Node server on loopback, routed by a container's padlock.upstream label.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (s) => s.on('message', (m) => s.send(`echo:${m}`)));
    after(() => new Promise((r) => wss.close(() => r(undefined))));
    const wsName = uniqueName('ws');
    await run('ws-router', { labels: { 'padlock.host': wsName, 'padlock.upstream': `http://127.0.0.1:${(wss.address() as AddressInfo).port}` } });
    const first = await waitFor('the WebSocket site certificate', () => get(wsName).then((r) => r.peer, () => undefined));

    // Connect to 127.0.0.1 with the name as SNI and Host: no DNS.
    const ws = new WebSocket(`wss://127.0.0.1:${daemon.httpsPort}/`, { ca: pebble.rootPem, servername: wsName, headers: { host: wsName } } as ClientOptions);
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    let closed = false;
    ws.on('close', () => (closed = true));
    const echo = (msg: string) => new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(String(d)));
      setTimeout(() => reject(new Error('no echo')), 5000);
      ws.send(msg);
    });
    assert.equal(await echo('one'), 'echo:one');

    // A route change for another name, then a renewal of this name's certificate (10 s lifetime).
    const other = uniqueName('other');
    await run('other-1', { labels: { 'padlock.host': other } });
    await served(other, 'other-1');
    await waitFor('a renewed certificate for the WebSocket name', async () => {
      const r = await get(wsName).catch(() => undefined);
      return r && r.peer.serialNumber !== first.serialNumber;
    }, 30_000, 250);
    assert.equal(await echo('two'), 'echo:two');
    assert.equal(closed, false, 'the WebSocket stayed open');
    ws.close();
  });

  it('keeps serving while dockerd restarts, reconnects, and routes a container started after', async () => {
    const name = uniqueName('steady');
    await run('steady-1', { labels: { 'padlock.host': name } });
    await served(name, 'steady-1');
    const failures: string[] = [];
    let ok = 0;
    let loop = true;
    const load = (async () => {
      const until = Date.now() + 60_000; // bounded
      while (loop && Date.now() < until) {
        const r = await get(name).catch((e: NodeJS.ErrnoException) => e.code ?? e.message);
        if (typeof r !== 'string' && r.status === 200) ok += 1;
        else failures.push(typeof r === 'string' ? r : String(r.status));
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    await dockerd.restart();
    const late = uniqueName('late');
    await waitFor('docker to be connected again', async () => (await daemon.status())['docker']?.connected === true, 30_000);
    await run('late-1', { labels: { 'padlock.host': late } });
    await served(late, 'late-1');
    loop = false;
    await load;
    assert.ok(ok > 10, `requests during the restart: ${ok}`);
    assert.deepEqual(failures, [], 'no request to a still-valid route failed during the restart');
  });
});

type Problem = { code: string; message: string; containerName?: string };

/** The problems /api/status lists for one container, once there are at least `n`. */
const problemsOf = (container: string, n = 1) => waitFor(`${container}'s problems in /api/status`, async () => {
  const mine = ((await daemon.status())['problems'] as Problem[]).filter((p) => p.containerName === container);
  return mine.length >= n ? mine : undefined;
});

/** A container that routes nothing by itself (busybox sleep, host network), with labels and env. */
async function labelled(name: string, labels: Record<string, string>, env: Record<string, string> = {}): Promise<TestContainer> {
  const c = await dockerd.runContainer({ name, labels, env });
  containers.push(c);
  return c;
}

/** The error code of a TLS handshake to 127.0.0.1 with this SNI name, or 'completed'. */
const handshake = (port: number, servername: string) => new Promise<string>((resolve) => {
  const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
  s.once('secureConnect', () => {
    s.destroy();
    resolve('completed');
  });
  s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
});

/** A plain-HTTP GET to 127.0.0.1:port with this Host. */
const httpGet = (port: number, host: string, path = '/') => new Promise<{ status: number; body: string }>((resolve, reject) => {
  http.get({ host: '127.0.0.1', port, path, headers: { host }, timeout: 5000 }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
  }).on('error', reject);
});

describe('padlock run refuses hostile labels (the attack from the issue)', () => {
  it('padlock.host=localhost + padlock.upstream to the admin port: a route problem in /api/status, and SNI localhost is refused in the handshake', async () => {
    await labelled('attack-localhost', { 'padlock.host': 'localhost', 'padlock.upstream': `http://127.0.0.1:${daemon.adminPort}` });
    const problems = await problemsOf('attack-localhost', 2);
    assert.deepEqual(problems.map((p) => p.code).sort(), ['LABEL_INVALID_HOST', 'LABEL_UPSTREAM_FORBIDDEN']);
    assert.match(problems.find((p) => p.code === 'LABEL_INVALID_HOST')!.message, /"localhost" is not a usable host name: localhost is this machine's own name.*such as app\.localhost/);
    assert.match(problems.find((p) => p.code === 'LABEL_UPSTREAM_FORBIDDEN')!.message, new RegExp(`goes to padlock's own listener \\(127\\.0\\.0\\.1 port ${daemon.adminPort}\\)`));
    assert.ok(!((await daemon.status())['routes'] as Array<{ host: string }>).some((r) => r.host === 'localhost'), 'no route for localhost');
    assert.equal(await handshake(daemon.httpsPort, 'localhost'), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    assert.equal((await httpGet(daemon.httpPort, 'localhost', '/api/status')).status, 404, ':80 routes nothing for localhost either');
  });

  it('padlock.host=evil.localhost + padlock.upstream to the admin port is refused, and SNI evil.localhost too', async () => {
    await labelled('attack-evil', { 'padlock.host': 'evil.localhost', 'padlock.upstream': `http://127.0.0.1:${daemon.adminPort}` });
    const [problem] = await problemsOf('attack-evil');
    assert.equal(problem!.code, 'LABEL_UPSTREAM_FORBIDDEN');
    assert.ok(!((await daemon.status())['routes'] as Array<{ host: string }>).some((r) => r.host === 'evil.localhost'));
    assert.equal(await handshake(daemon.httpsPort, 'evil.localhost'), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
  });

  it('padlock.upstream=http://169.254.169.254/ is LABEL_UPSTREAM_FORBIDDEN, naming --allow-upstream (no traffic is sent to it)', async () => {
    await labelled('metadata', { 'padlock.enable': 'true', 'padlock.host': 'metadata.localhost', 'padlock.upstream': 'http://169.254.169.254/' });
    const [problem] = await problemsOf('metadata');
    assert.equal(problem!.code, 'LABEL_UPSTREAM_FORBIDDEN');
    assert.match(problem!.message, /169\.254\.169\.254, a cloud metadata service address; padlock refuses it unless --allow-upstream covers it \(--allow-upstream 169\.254\.169\.254\/32\)/);
  });

  it('with --allow-upstream 169.254.169.254/32 the metadata route is accepted (checked in /api/status only, never requested)', async () => {
    // A second daemon on the same dockerd that sees only padlock.enable=true containers: the metadata one above.
    const store = await tempConfigDir();
    const allowed = await startPadlockRun([
      '--docker-host', dockerd.dockerHost, '--config-dir', store.dir, '--exposed-by-default', 'false',
      '--allow-upstream', '169.254.169.254/32', ...pebbleRunFlags(pebble),
    ]);
    try {
      await waitFor('the metadata container to be listed', async () => (await daemon.status())['problems'].some((p: Problem) => p.containerName === 'metadata'));
      const route = await waitFor('the metadata route', async () =>
        ((await allowed.status())['routes'] as Array<{ host: string; upstreams: Array<{ url: string }> }>).find((r) => r.host === 'metadata.localhost'));
      assert.deepEqual(route.upstreams.map((u) => u.url), ['http://169.254.169.254:80']);
      assert.ok(!((await allowed.status())['problems'] as Problem[]).some((p) => p.containerName === 'metadata'));
    } finally {
      await allowed.stop();
      await store.cleanup();
    }
  });

  it('a route whose upstream name resolves to the admin port at connect time answers 502, never the status document', async () => {
    // VIRTUAL_HOST without LETSENCRYPT_HOST is served over plain HTTP; a *.localhost Host is one the token-less admin API would serve.
    await labelled('alias-probe', { 'padlock.upstream': `http://${ALIAS}:${daemon.adminPort}` }, { VIRTUAL_HOST: 'alias-probe.localhost' });
    await waitFor('the alias route', async () => ((await daemon.status())['routes'] as Array<{ host: string }>).some((r) => r.host === 'alias-probe.localhost'));
    const r = await httpGet(daemon.httpPort, 'alias-probe.localhost', '/api/status');
    assert.equal(r.status, 502);
    assert.doesNotMatch(r.body, /"routes"|"problems"/);
    assert.match(daemon.output(), new RegExp(`upstream refused: padlock does not forward there.*"rule":"own-listener".*upstream ${ALIAS.replace('.', '\\.')}:${daemon.adminPort}`));
  });

  it("replaces a client's X-Forwarded-For and friends, and sends the listener port and Via", async () => {
    const app = await startUpstream('echo-headers');
    after(() => app.close());
    const name = uniqueName('headers');
    await labelled('echo-router', { 'padlock.host': name, 'padlock.upstream': app.url });
    await served(name, 'echo-headers');
    const seen = await new Promise<Record<string, string>>((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1', port: daemon.httpsPort, servername: name, ca: pebble.rootPem, agent: false,
        headers: { host: name, 'x-forwarded-for': '203.0.113.9', 'x-real-ip': '203.0.113.9', 'x-forwarded-proto': 'http', 'x-forwarded-port': '1', forwarded: 'for=203.0.113.9' },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(JSON.parse(body).headers));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-real-ip'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https');
    assert.equal(seen['x-forwarded-port'], String(daemon.httpsPort));
    assert.equal(seen['forwarded'], `for=127.0.0.1;host=${name};proto=https`);
    assert.equal(seen['via'], '1.1 padlock');
  });
});
