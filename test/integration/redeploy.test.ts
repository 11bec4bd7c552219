/**
 * Redeploys without errors (issue 14), end to end: `padlock run` against a
 * real private dockerd (started WITHOUT --live-restore, Docker's default, so
 * a daemon stop stops the containers) and a real Pebble. Clients send
 * requests without pause to 127.0.0.1 with the name as SNI and Host, trusting
 * only Pebble's root: every 503 below came with a valid certificate.
 *
 * The containers' app stops gracefully, as a real one does on SIGTERM
 * (test/support/dockerd.ts): it finishes the requests it is answering. An
 * answer an app cuts short when it stops cannot be saved by any proxy; that
 * case is test/integration/proxy.test.ts, "an upstream that cuts its own
 * answer short".
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { startDockerd, type Dockerd, type RunContainerOptions, type TestContainer } from '../support/dockerd.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, httpsGet, getJson, waitFor, stopRunTest, type RunningDaemon } from '../support/daemon.js';

const GRACE_S = 20;
const WAIT_S = 6;
const GAP_MS = 2_000;
/** Small enough for the flood below to pass the per-name limit (half: 200). */
const HELD_MAX = 400;

let pebble: Pebble;
let dockerd: Dockerd;
let cfg: { dir: string; cleanup: () => Promise<void> };
let daemon: RunningDaemon;
const containers: TestContainer[] = [];

async function run(opts: RunContainerOptions): Promise<TestContainer> {
  const c = await dockerd.runContainer(opts);
  containers.push(c);
  return c;
}

const get = (name: string) => httpsGet(daemon.httpsPort, name, pebble.rootPem);
const served = (name: string, text: string) => waitFor(`${name} to serve "${text}"`, async () => {
  const r = await get(name).catch(() => undefined);
  return r && r.status === 200 && r.body.includes(text) ? r : undefined;
}, 30_000);
const routeOf = async (name: string) => ((await daemon.status())['routes'] as Array<{ host: string; grace?: { until: string; remainingSeconds: number } }>).find((r) => r.host === name);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The outcome of one request: `200`, `503`, or the client's error code (a TLS failure, a reset...). */
type Outcome = string;

/**
 * `workers` clients, each sending requests one after another without pause
 * over its own keep-alive connection (a new TLS handshake whenever padlock
 * or the client closes it), verifying padlock's certificate against Pebble's
 * root. `stop()` ends the loops and returns every outcome with the body of
 * the first 503.
 */
function load(name: string, workers = 4) {
  const outcomes: Outcome[] = [];
  const bodies: string[] = [];
  const retryAfter = new Set<string>();
  let running = true;
  const one = (agent: https.Agent) => new Promise<void>((resolve) => {
    const req = https.request({ host: '127.0.0.1', port: daemon.httpsPort, servername: name, headers: { host: name }, ca: pebble.rootPem, agent, timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        outcomes.push(String(res.statusCode));
        if (res.statusCode !== 200) bodies.push(body);
        if (res.statusCode === 503) retryAfter.add(String(res.headers['retry-after']));
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => {
      outcomes.push(e.code ?? e.message);
      resolve();
    });
    req.end();
  });
  const loops = Array.from({ length: workers }, async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const deadline = Date.now() + 90_000; // bounded, whatever happens
    while (running && Date.now() < deadline) await one(agent);
    agent.destroy();
  });
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { outcomes, bodies, retryAfter };
    },
  };
}

const count = (outcomes: Outcome[]) => outcomes.reduce<Record<string, number>>((m, o) => ((m[o] = (m[o] ?? 0) + 1), m), {});
const TLS_FAILURE = /^ERR_SSL|^ERR_TLS|CERT|UNABLE_TO|ECONNRESET|EPIPE/;

/** The error code of a fresh TLS handshake for `servername` (trusting Pebble), or 'completed'. */
const handshake = (servername: string) => new Promise<string>((resolve) => {
  const s = tls.connect({ host: '127.0.0.1', port: daemon.httpsPort, servername, ca: pebble.rootPem });
  s.once('secureConnect', () => {
    s.destroy();
    resolve('completed');
  });
  s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
});

/** The admin API's /metrics (plain HTTP on loopback). */
const metricsText = () => new Promise<string>((resolve, reject) => {
  http.get({ host: '127.0.0.1', port: daemon.adminPort, path: '/metrics', headers: { host: `127.0.0.1:${daemon.adminPort}` } }, (res) => {
    let t = '';
    res.setEncoding('utf8').on('data', (d: string) => (t += d)).on('end', () => resolve(t));
  }).on('error', reject);
});

/** padlock's resident memory, from /proc (bytes). */
const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'))![1]) * 1024;

before(async () => {
  [pebble, dockerd, cfg] = await Promise.all([startPebble(), startDockerd({ liveRestore: false }), tempConfigDir()]);
  daemon = await startPadlockRun([
    '--docker-host', dockerd.dockerHost, '--config-dir', join(cfg.dir, 'store'),
    '--route-grace', String(GRACE_S), '--upstream-wait', String(WAIT_S), '--held-requests-max', String(HELD_MAX),
    ...pebbleRunFlags(pebble),
  ], { httpPort: pebble.httpPort });
});
after(() => stopRunTest({ daemon, containers, dockerd, pebble, cfg }));

describe('redeploys under load (real dockerd without --live-restore, real Pebble)', () => {
  it('replacing the container with a 2 s gap fails no request when --upstream-wait covers the gap', async (t) => {
    const name = uniqueName('redeploy');
    const port = await freePort();
    const labels = { 'padlock.host': name };
    const old = await run({ name: 'redeploy-1', port, labels });
    await served(name, 'redeploy-1');
    const l = load(name);
    await sleep(500);
    await old.stop();
    await sleep(GAP_MS);
    await run({ name: 'redeploy-2', port, labels });
    await served(name, 'redeploy-2');
    await sleep(500);
    const { outcomes } = await l.stop();
    t.diagnostic(`outcomes: ${JSON.stringify(count(outcomes))}`);
    assert.ok(outcomes.length > 20, `requests sent: ${outcomes.length}`);
    assert.deepEqual(count(outcomes), { '200': outcomes.length }, 'every request answered 200');
  });

  it('with a gap longer than the wait, clients get 503 with Retry-After on a valid certificate, and never a TLS failure', async (t) => {
    const name = uniqueName('shortwait');
    const port = await freePort();
    const labels = { 'padlock.host': name, 'padlock.upstream-wait': '500ms' };
    const old = await run({ name: 'shortwait-1', port, labels });
    await served(name, 'shortwait-1');
    const l = load(name);
    await sleep(300);
    await old.stop();
    await sleep(GAP_MS + 500);
    await run({ name: 'shortwait-2', port, labels });
    await served(name, 'shortwait-2');
    const { outcomes, bodies, retryAfter } = await l.stop();
    const seen = count(outcomes);
    t.diagnostic(`outcomes: ${JSON.stringify(seen)}`);
    assert.ok((seen['503'] ?? 0) > 0, `some 503s: ${JSON.stringify(seen)}`);
    assert.deepEqual(Object.keys(seen).filter((o) => o !== '200' && o !== '503'), [], `only 200 and 503: ${JSON.stringify(seen)}`);
    assert.equal(outcomes.filter((o) => TLS_FAILURE.test(o)).length, 0);
    assert.deepEqual([...retryAfter], ['5']);
    for (const leak of ['127.0.0.1', String(port), 'shortwait', 'container']) assert.ok(!bodies.some((b) => b.includes(leak)), `a 503 page names ${leak}`);
  });

  it('a Docker daemon stop and start without --live-restore (containers with a restart policy come back) never fails a TLS handshake', async (t) => {
    const name = uniqueName('dstop');
    const port = await freePort();
    await run({ name: 'dstop-1', port, labels: { 'padlock.host': name }, restartPolicy: 'always' });
    await served(name, 'dstop-1');
    const l = load(name);
    await sleep(300);
    await dockerd.restart();
    await waitFor('docker to be connected again', async () => (await daemon.status())['docker']?.connected === true, 30_000);
    await served(name, 'dstop-1');
    await sleep(300);
    const { outcomes } = await l.stop();
    const seen = count(outcomes);
    t.diagnostic(`outcomes: ${JSON.stringify(seen)}`);
    assert.ok((seen['200'] ?? 0) > 20, JSON.stringify(seen));
    assert.deepEqual(Object.keys(seen).filter((o) => o !== '200' && o !== '503'), [], `only 200 and 503 (no TLS failure, no reset): ${JSON.stringify(seen)}`);
  });

  it('a stopped container keeps its name for the grace period (503 on a valid certificate), then the name is refused as unknown', async () => {
    const name = uniqueName('ends');
    const c = await run({ name: 'ends-1', port: await freePort(), labels: { 'padlock.host': name, 'padlock.upstream-wait': '0' } });
    await served(name, 'ends-1');
    await c.stop();
    const route = await waitFor('the route to enter its grace period', async () => (await routeOf(name))?.grace);
    assert.ok(route.remainingSeconds > 0 && route.remainingSeconds <= GRACE_S, JSON.stringify(route));
    assert.equal(await handshake(name), 'completed', 'the certificate is still presented');
    const during = await get(name);
    assert.equal(during.status, 503);
    assert.equal(during.headers['retry-after'], '5');
    await waitFor('the grace period to end', async () => (await routeOf(name)) === undefined, (GRACE_S + 10) * 1000, 250);
    assert.ok(Date.now() >= Date.parse(route.until) - 1_000, 'not before its end');
    assert.equal(await handshake(name), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
    assert.match(daemon.output(), new RegExp(`grace period over with no container back.*${name.replace(/\./g, '\\.')}`));
  });

  it('a container removed rather than stopped (docker rm -f) takes its name at once, with no grace period', async () => {
    const name = uniqueName('removed');
    const c = await run({ name: 'removed-1', port: await freePort(), labels: { 'padlock.host': name } });
    await served(name, 'removed-1');
    await c.remove();
    await waitFor('the route to go', async () => (await routeOf(name)) === undefined, 10_000);
    assert.equal(await handshake(name), 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME');
  });

  it('a flood of held requests stays within its bounds: memory bounded, held count capped per name, another name unaffected', async (t) => {
    const flood = uniqueName('flood');
    const calm = uniqueName('calm');
    const FLOOD = 400;
    // A long wait, so that every flooded request is still held (or refused) when the last one arrives.
    const f = await run({ name: 'flood-1', port: await freePort(), labels: { 'padlock.host': flood, 'padlock.upstream-wait': '10' } });
    await run({ name: 'calm-1', port: await freePort(), labels: { 'padlock.host': calm } });
    await served(flood, 'flood-1');
    await served(calm, 'calm-1');
    await f.stop();
    await waitFor('the flood name to enter its grace period', async () => (await routeOf(flood))?.grace);
    const before = rss();
    // Each request on its own connection; half are POSTs with a 256 KiB body padlock must not buffer.
    const body = Buffer.alloc(256 * 1024, 'x');
    const agent = new https.Agent({ keepAlive: false, maxSockets: Infinity });
    let answered = 0;
    const sent = Array.from({ length: FLOOD }, (_, i) => new Promise<string>((resolve) => {
      const req = https.request({ host: '127.0.0.1', port: daemon.httpsPort, servername: flood, headers: { host: flood }, ca: pebble.rootPem, agent, method: i % 2 ? 'POST' : 'GET', timeout: 30_000 }, (res) => {
        res.resume().on('end', () => {
          answered++;
          resolve(String(res.statusCode));
        });
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        answered++;
        resolve(e.code ?? e.message);
      });
      req.end(i % 2 ? body : undefined);
    }));
    // Until every flooded request is either held or answered (all handshakes done), then the other name, three times.
    let held = 0;
    let maxRss = 0;
    await waitFor('every flooded request to be held or answered', async () => {
      held = Number(/^padlock_proxy_held_requests (\d+)$/m.exec(await metricsText())?.[1] ?? 0);
      maxRss = Math.max(maxRss, rss());
      return held + answered >= FLOOD;
    }, 30_000, 200);
    const calmTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await get(calm);
      calmTimes.push(performance.now() - t0);
      assert.equal(r.status, 200);
    }
    maxRss = Math.max(maxRss, rss());
    const refusedAtOnce = answered;
    const outcomes = await Promise.all(sent);
    agent.destroy();
    const seen = count(outcomes);
    t.diagnostic(`outcomes ${JSON.stringify(seen)}; ${held} held and ${refusedAtOnce} refused at once; RSS +${Math.round((maxRss - before) / 1048576)} MiB; other name ${calmTimes.map((x) => Math.round(x)).join('/')} ms`);
    assert.deepEqual(seen, { '503': FLOOD }, 'every flooded request answered 503 (held, or over the limit)');
    assert.equal(held, HELD_MAX / 2, 'held exactly half of --held-requests-max');
    assert.equal(refusedAtOnce, FLOOD - HELD_MAX / 2, 'the rest were answered at once');
    assert.match(await metricsText(), new RegExp(`^padlock_proxy_unavailable_total\\{host="${flood.replace(/\./g, '\\.')}",reason="hold-full"\\} ${FLOOD - HELD_MAX / 2}$`, 'm'));
    assert.ok(maxRss - before < 64 * 1024 * 1024, `memory grew by ${Math.round((maxRss - before) / 1048576)} MiB`);
    assert.ok(Math.max(...calmTimes) < 1_000, `the other name answered within ${Math.round(Math.max(...calmTimes))} ms`);
    const status = await getJson(daemon.adminPort, '/api/status');
    assert.equal(status['proxy']?.held, 0, 'nothing held once the flood is answered');
  });
});
