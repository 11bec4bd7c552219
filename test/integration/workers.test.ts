/**
 * `padlock run --workers 2`: the data plane in two cluster workers, with a
 * local-CA site and an ACME site (HTTP-01 through the workers, against a
 * real Pebble issuing 10 s certificates, so padlock renews every few seconds
 * while the tests run).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, httpsGetOver, loopbackResolverEnv, sigtermDuringRequests, waitFor, CLIENT_PROTOCOLS, type RunningDaemon } from '../support/daemon.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let app: Awaited<ReturnType<typeof startUpstream>>;
let daemon: RunningDaemon;
const publicName = uniqueName('workers');
const localName = 'workers.localhost';

interface WorkerView { slot: number; pid: number; listening: boolean; requests: number; openConnections: number }

before(async () => {
  pebble = await startPebble({ validitySeconds: 10 });
  cfg = await tempConfigDir();
  app = await startUpstream('workers-app');
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, [
    'workers: 1',
    'sites:',
    `  - host: ${publicName}`,
    `    upstream: ${app.url}`,
    `  - host: ${localName}`,
    `    upstream: ${app.url}`,
  ].join('\n'));
  daemon = await startPadlockRun([
    '--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), '--workers', '2',
    ...pebbleRunFlags(pebble),
  ], { httpPort: pebble.httpPort });
});
after(async () => {
  await daemon?.stop();
  await app?.close();
  await pebble?.stop();
  await cfg?.cleanup();
});

const workers = async (): Promise<WorkerView[]> => (await daemon.status())['workers'] as WorkerView[];

describe('padlock run --workers 2', () => {
  it('runs two listening workers (the flag beats the config file)', async () => {
    const list = await workers();
    assert.equal(list.length, 2);
    assert.ok(list.every((w) => w.listening && w.pid > 0 && w.pid !== daemon.child.pid));
    assert.notEqual(list[0]!.pid, list[1]!.pid);
  });

  it('serves the local-CA site on many fresh connections, through both workers, over HTTP/1.1 and HTTP/2', async () => {
    const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')]);
    assert.equal(root.code, 0, root.stderr);
    await waitFor('HTTPS for the local name', () => httpsGet(daemon.httpsPort, localName, root.stdout).catch(() => undefined));
    const before = await workers();
    let made = 0;
    const fresh = async (n: number) => {
      for (let i = 0; i < n; i++, made++) {
        const protocol = CLIENT_PROTOCOLS[made % 2]!;
        const res = await httpsGetOver(protocol, daemon.httpsPort, localName, root.stdout);
        assert.equal(res.status, 200);
        assert.equal(res.protocol, protocol);
        assert.equal(JSON.parse(res.body).app, 'workers-app');
        assert.match(String(res.peer.issuer.CN), /padlock local CA/);
      }
    };
    await fresh(20);
    // The kernel spreads connections over the workers (SO_REUSEPORT hash), not in turn: keep connecting until both served 5.
    await waitFor('both workers counted requests', async () => {
      const after = await workers();
      if (after.every((w) => w.requests >= (before.find((b) => b.slot === w.slot)?.requests ?? 0) + 5)) return true;
      await fresh(4);
      return false;
    }, 15_000);
  });

  it('resumes a TLS session on whichever worker a reconnect lands', async () => {
    const root = (await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')])).stdout;
    const connect = (session?: Buffer) => new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: daemon.httpsPort, servername: localName, ca: root, ...(session ? { session } : {}), timeout: 5000 });
      let got: Buffer | undefined;
      socket.on('session', (s: Buffer) => (got = s));
      socket.once('secureConnect', () => {
        socket.write(`GET / HTTP/1.1\r\nhost: ${localName}\r\nconnection: close\r\n\r\n`);
      });
      socket.on('data', () => {});
      socket.once('end', () => resolve({ reused: socket.isSessionReused(), session: got }));
      socket.once('timeout', () => socket.destroy(new Error('timeout')));
      socket.once('error', reject);
    });
    const first = await connect();
    assert.ok(first.session, 'the server sent a session ticket');
    const reused: boolean[] = [];
    for (let i = 0; i < 8; i++) reused.push((await connect(first.session)).reused);
    assert.deepEqual(reused, Array(8).fill(true));
    // A client that uses each ticket once (browsers, wrk): every worker renews the ticket it accepts.
    let ticket: Buffer | undefined = first.session;
    const once: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      const next = await connect(ticket);
      once.push(next.reused);
      ticket = next.session;
    }
    assert.deepEqual(once, Array(8).fill(true), 'each resumed connection handed out a fresh ticket');
  });

  it('obtains the ACME certificate over HTTP-01 answered by the workers', async () => {
    const res = await waitFor('HTTPS for the public name', () => httpsGet(daemon.httpsPort, publicName, pebble.rootPem).catch(() => undefined), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- padlock output (last 4000 characters) ---\n${daemon.output().slice(-4000)}`);
    });
    assert.equal(res.status, 200);
    assert.match(String(res.peer.issuer.CN), /Pebble/);
    const overH2 = await httpsGetOver('h2', daemon.httpsPort, publicName, pebble.rootPem);
    assert.equal(overH2.status, 200);
    assert.equal(overH2.protocol, 'h2');
    assert.match(String(overH2.peer.issuer.CN), /Pebble/);
  });

  it('gets every renewal to every worker (new serial on all fresh connections), with no failed validation', async () => {
    const first = (await httpsGet(daemon.httpsPort, publicName, pebble.rootPem)).peer.serialNumber;
    // 16 fresh connections in a row (HTTP/1.1 and HTTP/2 in turn) reach both workers (the kernel spreads them; all 16 on
    // one worker has odds of 1 in 32,768); all of them must show one newer certificate.
    await waitFor('a renewed certificate on every worker', async () => {
      const serials: string[] = [];
      for (let i = 0; i < 16; i++) serials.push((await httpsGetOver(CLIENT_PROTOCOLS[i % 2]!, daemon.httpsPort, publicName, pebble.rootPem)).peer.serialNumber);
      return serials.every((s) => s === serials[0]) && serials[0] !== first;
    }, 40_000, 200);
    // Several orders have gone through the workers by now (one every ~5 s); none may have failed.
    const metrics = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: daemon.adminPort, path: '/metrics' }, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
      }).on('error', reject);
    });
    const successes = Number(/padlock_certificate_renewal_attempts_total\{outcome="success"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    assert.ok(successes >= 3, `at least 3 orders (local and ACME) succeeded, got ${successes}`);
    assert.doesNotMatch(metrics, /padlock_certificate_renewal_attempts_total\{outcome="failure"\} [1-9]/);
    // Request metrics observed in the workers reach the primary's /metrics.
    const proxied = Number(new RegExp(`padlock_proxy_requests_total\\{host="${localName.replace(/\./g, '\\.')}",status="200"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    assert.ok(proxied >= 20, `the workers' requests are in /metrics, got ${proxied}`);
  });

  it('aggregates the proxy counters of both workers in /api/status', async () => {
    const status = await waitFor('counters reported', async () => {
      const s = await daemon.status();
      return s['proxy']['requestsByStatus']['200'] >= 30 ? s : undefined;
    }, 10_000);
    const proxy = status['proxy'];
    const total = Object.values(proxy['requestsByStatus'] as Record<string, number>).reduce((a, b) => a + b, 0);
    const perWorker = (status['workers'] as WorkerView[]).reduce((a, w) => a + w.requests, 0);
    assert.equal(total, perWorker);
    assert.ok((status['workers'] as WorkerView[]).every((w) => w.requests > 0));
    assert.equal(proxy['routes'], 2);
    assert.equal(proxy['certificates']['names'], 2);
    assert.ok(proxy['upstreamConnectionsOpened'] >= 2, 'each worker opened its own upstream connection');
  });

  it('redirects plain HTTP with a 308 from the workers', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: daemon.httpPort, path: '/x', headers: { host: publicName } }, (r) => resolve(r.resume())).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://${publicName}:${daemon.httpsPort}/x`);
  });

  it('drains on SIGTERM (GOAWAY to HTTP/2 clients, requests in flight on both protocols answered), stops the workers and exits 0', async () => {
    const pids = (await workers()).map((w) => w.pid);
    const out = await sigtermDuringRequests(daemon, publicName, pebble.rootPem, app.hits);
    // Exit 0; both slow requests answered; GOAWAY (NO_ERROR) before the answer in flight; nothing listens after the exit.
    assert.deepEqual(out, { code: 0, statuses: { 'http/1.1': 200, h2: 200 }, goaway: http2.constants.NGHTTP2_NO_ERROR, goawayFirst: true, afterExit: 'refused' }, daemon.output());
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor('worker processes gone', async () => pids.every((p) => !alive(p)), 5_000);
  });
});

describe('padlock run --workers 2: the upstream rules and the header policy reach the workers', () => {
  const ALIAS = 'admin-alias.test';
  let store: { dir: string; cleanup: () => Promise<void> };
  let echo: Awaited<ReturnType<typeof startUpstream>>;
  let guarded: RunningDaemon;

  before(async () => {
    store = await tempConfigDir();
    echo = await startUpstream('echo');
    const adminPort = await freePort();
    const file = join(store.dir, 'padlock.yaml');
    // Plain-HTTP sites only: no certificate, no CA. ALIAS resolves to 127.0.0.1 inside padlock (a test preload; no DNS).
    await writeFile(file, [
      'sites:',
      '  - host: alias-probe.localhost',
      `    upstream: http://${ALIAS}:${adminPort}`,
      '    https: false',
      '  - host: headers.localhost',
      `    upstream: ${echo.url}`,
      '    https: false',
    ].join('\n'));
    guarded = await startPadlockRun([
      '--config', file, '--docker', 'false', '--config-dir', join(store.dir, 'store'), '--workers', '2',
      '--trusted-proxies', '127.0.0.1/32', ...pebbleRunFlags(pebble),
    ], { adminPort, env: loopbackResolverEnv([ALIAS]) });
  });
  after(async () => {
    await guarded?.stop();
    await echo?.close();
    await store?.cleanup();
  });

  const plainGet = (host: string, headers: Record<string, string> = {}) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    // agent false: a fresh connection each time, so both workers get some.
    http.get({ host: '127.0.0.1', port: guarded.httpPort, path: '/api/status', headers: { host, ...headers }, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: r.statusCode ?? 0, body }));
    }).on('error', reject);
  });

  it("every worker answers 502 to a route whose name resolves to the admin port, never the status document, and logs the rule", async () => {
    const workersThatRefused = () => new Set(guarded.output().split('\n')
      .filter((l) => l.includes('upstream refused: padlock does not forward there') && l.includes('"rule":"own-listener"'))
      .map((l) => JSON.parse(l).worker as number));
    // The kernel spreads fresh connections over the workers by a hash, not in turn: keep asking until both logged a refusal.
    for (let i = 0; i < 64 && workersThatRefused().size < 2; i++) {
      const r = await plainGet('alias-probe.localhost');
      assert.equal(r.status, 502);
      assert.doesNotMatch(r.body, /"routes"|"problems"/);
      if (i >= 5) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(workersThatRefused(), new Set([1, 2]), 'both workers refused it');
  });

  it("the workers keep a trusted proxy's X-Forwarded-For (appended to), add Via and send the listener port", async () => {
    const r = await plainGet('headers.localhost', { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'https', 'kept from the trusted proxy');
    assert.equal(seen['x-forwarded-port'], String(guarded.httpPort));
    assert.equal(seen['via'], '1.1 padlock');
  });
});
