/**
 * `padlock run --workers 2`: the data plane in two cluster workers, with a
 * local-CA site and an ACME site (HTTP-01 through the workers, against a
 * real Pebble issuing 10 s certificates, so padlock renews every few seconds
 * while the tests run).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { tempConfigDir, uniqueName, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';

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

  it('serves the local-CA site on many fresh connections, through both workers', async () => {
    const root = await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')]);
    assert.equal(root.code, 0, root.stderr);
    await waitFor('HTTPS for the local name', () => httpsGet(daemon.httpsPort, localName, root.stdout).catch(() => undefined));
    const before = await workers();
    for (let i = 0; i < 20; i++) {
      const res = await httpsGet(daemon.httpsPort, localName, root.stdout);
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).app, 'workers-app');
      assert.match(String(res.peer.issuer.CN), /padlock local CA/);
    }
    await waitFor('both workers counted requests', async () => {
      const after = await workers();
      return after.every((w) => w.requests >= (before.find((b) => b.slot === w.slot)?.requests ?? 0) + 5);
    }, 10_000);
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
  });

  it('obtains the ACME certificate over HTTP-01 answered by the workers', async () => {
    const res = await waitFor('HTTPS for the public name', () => httpsGet(daemon.httpsPort, publicName, pebble.rootPem).catch(() => undefined), 30_000).catch((err: Error) => {
      throw new Error(`${err.message}\n--- padlock output (last 4000 characters) ---\n${daemon.output().slice(-4000)}`);
    });
    assert.equal(res.status, 200);
    assert.match(String(res.peer.issuer.CN), /Pebble/);
  });

  it('gets every renewal to every worker (new serial on all fresh connections), with no failed validation', async () => {
    const first = (await httpsGet(daemon.httpsPort, publicName, pebble.rootPem)).peer.serialNumber;
    // 8 fresh connections in a row cover both workers (round robin); all of them must show one newer certificate.
    await waitFor('a renewed certificate on every worker', async () => {
      const serials: string[] = [];
      for (let i = 0; i < 8; i++) serials.push((await httpsGet(daemon.httpsPort, publicName, pebble.rootPem)).peer.serialNumber);
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

  it('drains, stops the workers and exits 0 on SIGTERM', async () => {
    const pids = (await workers()).map((w) => w.pid);
    const code = await daemon.stop();
    assert.equal(code, 0, daemon.output());
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
