/**
 * Several padlock hosts sharing one Redis store: three `padlock run`
 * replicas on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with the same ports, a real
 * Redis (Debian `redis-server`, with a password and append-only persistence
 * so it can be stopped and started again), and a real Pebble whose DNS
 * (pebble-challtestsrv) sends each validation to a chosen replica.
 *
 * Orders are counted at the CA from Pebble's own log ("Added order").
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startPadlockRun, httpsGet, getJson, waitFor, type RunningDaemon } from '../support/daemon.js';
import { runCli } from '../support/cli.js';
import { startBalancer, type Balancer } from '../support/tcp-balancer.js';
import { pebbleRunFlags, pebbleFlags, uniqueName } from '../support/padlock.js';

const REPLICAS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'] as const;
/**
 * A layer-4 balancer in front of the replicas' HTTP ports, as a fleet has:
 * names resolved here reach whichever replica listens, so an order made by a
 * replica that started first never waits on one that is still starting.
 */
const BALANCER = '127.0.0.4';
// Certificates live 60 s: due after 30 s, so renewals happen while the tests run.
const VALIDITY_S = 60;

let pebble: Pebble;
let redis: RedisServer;
let dir: string;
let keyFile: string;
let ports: { https: number; admin: number };
let balancer: Balancer;
const running: RunningDaemon[] = [];

before(async () => {
  pebble = await startPebble({ validitySeconds: VALIDITY_S });
  redis = await startRedis({ config: ['appendonly yes', 'appendfsync always'] });
  dir = await mkdtemp(join(tmpdir(), 'padlock-fleet-'));
  keyFile = join(dir, 'store.key');
  await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  ports = { https: await freePort(), admin: await freePort() };
  balancer = await startBalancer(BALANCER, pebble.httpPort, REPLICAS);
});
after(async () => {
  for (const d of running) await d.stop(5_000).catch(() => undefined);
  await balancer?.close();
  await redis?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ordersAtCa = () => (pebble.logs().match(/Added order/g) ?? []).length;
const storeFlags = (server: RedisServer = redis) => ['--store', server.url, '--store-key-file', keyFile, ...(server.caFile ? ['--store-ca', server.caFile] : [])];

/** Sends Pebble's validation of `name` to this loopback address (challtestsrv's mock DNS). */
async function resolveAt(name: string, ip: string): Promise<void> {
  // add-a adds to what the name resolves to; clear it first so the CA asks only `ip`.
  await fetch(`${pebble.challtestsrvUrl}/clear-a`, { method: 'POST', body: JSON.stringify({ host: `${name}.` }) });
  const res = await fetch(`${pebble.challtestsrvUrl}/add-a`, { method: 'POST', body: JSON.stringify({ host: `${name}.`, addresses: [ip] }) });
  assert.equal(res.status, 200);
}

async function config(names: string[]): Promise<string> {
  const file = join(dir, `sites-${names.join('_')}.yaml`);
  await writeFile(file, names.length ? ['sites:', ...names.map((n) => `  - host: ${n}\n    upstream: http://127.0.0.1:9`)].join('\n') + '\n' : 'sites: []\n');
  return file;
}

async function replica(ip: string, file: string, extra: string[] = [], server: RedisServer = redis): Promise<RunningDaemon> {
  const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(dir, `cfg-${ip}`), '--log-format', 'json', '--store-lock-ttl', '5',
    ...storeFlags(server), ...pebbleRunFlags(pebble), ...extra], { bind: ip, httpPort: pebble.httpPort, httpsPort: ports.https, adminPort: ports.admin });
  running.push(d);
  return d;
}

async function stopAll(): Promise<void> {
  for (const d of running.splice(0)) assert.equal(await d.stop(), 0, d.output());
}

/** Runs a test body, and stops every replica it started even when it fails (they hold the shared ports). */
async function withReplicas(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    for (const d of running.splice(0)) await d.stop(5_000).catch(() => undefined);
  }
}

const serial = (ip: string, name: string) => httpsGet(ports.https, name, pebble.rootPem, '/', false, ip).then((r) => String(r.peer.serialNumber), () => undefined);

/** Three replicas want one new name at the same moment: one order, the same certificate on all three within 5 s. */
async function orderOnceServeEverywhere(server: RedisServer): Promise<void> {
  const name = uniqueName('fleet');
  await resolveAt(name, BALANCER);
  const file = await config([name]);
  const before = ordersAtCa();
  await Promise.all(REPLICAS.map((ip) => replica(ip, file, [], server)));
  const served = new Map<string, number>();
  await waitFor('every replica serving the name', async () => {
    for (const ip of REPLICAS) if (!served.has(ip) && (await serial(ip, name))) served.set(ip, Date.now());
    return served.size === REPLICAS.length || undefined;
  }, 30_000, 50);
  const times = [...served.values()];
  assert.ok(Math.max(...times) - Math.min(...times) <= 5_000, `served by all three within ${Math.max(...times) - Math.min(...times)} ms`);
  const serials = new Set(await Promise.all(REPLICAS.map((ip) => serial(ip, name))));
  assert.equal(serials.size, 1, 'the same certificate everywhere');
  assert.equal(ordersAtCa() - before, 1, 'one order at the CA');
  const stored = running.map((d) => d.output()).filter((o) => new RegExp(`"msg":"certificate stored"[^\\n]*"name":"${name.replace(/\./g, '\\.')}"`).test(o));
  assert.equal(stored.length, 1, 'exactly one replica stored it');
  await stopAll();
}

describe('padlock replicas sharing a Redis store', () => {
  it('order a name once while three replicas want it at the same moment, and all three serve it within 5 s', () => withReplicas(() => orderOnceServeEverywhere(redis)));

  it('do the same on a Redis over TLS, verified against --store-ca', () => withReplicas(async () => {
    const tlsRedis = await startRedis({ tls: true });
    try {
      assert.match(tlsRedis.url, /^rediss:/);
      await orderOnceServeEverywhere(tlsRedis);
    } finally {
      await tlsRedis.stop();
    }
  }));

  it('answer the CA from any replica: padlock issue on "a laptop" lands its certificate while the validation reaches replica B', async () => {
    // Replica B serves nothing for this name and never saw its token: it answers statelessly.
    const b = await replica('127.0.0.2', await config([]));
    const name = uniqueName('laptop');
    await resolveAt(name, '127.0.0.2');
    const port = await freePort();
    const flags = pebbleFlags(pebble);
    flags[flags.indexOf('--http-01-port') + 1] = String(port); // the laptop's own challenge server is never asked
    const r = await runCli(['issue', '-d', name, ...flags, ...storeFlags(), '--config-dir', join(dir, 'laptop')]);
    assert.equal(r.code, 0, r.stderr);
    const list = await runCli(['certificates', '--json', ...storeFlags(), '--config-dir', join(dir, 'laptop')]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(JSON.parse(list.stdout).certificates.some((c: { name: string }) => c.name === name), 'every host sees it in the shared store');
    assert.equal(await b.stop(), 0, b.output());
    running.splice(running.indexOf(b), 1);
  });
});

describe('a replica that dies holding an order', () => {
  it('is replaced once its lock expires: another replica completes the order, and the store holds one complete version', () => withReplicas(async () => {
    const name = uniqueName('killed');
    // The CA's validation goes to a "host" that accepts and never answers, so the first order hangs.
    const sockets: net.Socket[] = [];
    const tarpit = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => tarpit.listen(pebble.httpPort, '127.0.0.9', r));
    after(() => {
      for (const s of sockets) s.destroy();
      tarpit.close();
    });
    await resolveAt(name, '127.0.0.9');
    const file = await config([name]);
    const fleet = await Promise.all(REPLICAS.map((ip) => replica(ip, file)));
    const lockKey = `padlock:lock:${name}`;
    const holder = await waitFor('the lineage lock', async () => {
      const raw = (await redis.cli(['GET', lockKey])).trim();
      return raw ? (JSON.parse(raw) as { pid: number }) : undefined;
    }, 20_000, 50);
    const victim = fleet.find((d) => d.child.pid === holder.pid);
    assert.ok(victim, `the lock holder ${holder.pid} is one of the replicas`);
    victim.child.kill('SIGKILL');
    running.splice(running.indexOf(victim), 1);
    const survivors = fleet.filter((d) => d !== victim);
    // The CA can reach a live replica now.
    const liveIp = REPLICAS[fleet.indexOf(survivors[0]!)]!;
    await resolveAt(name, liveIp);
    await waitFor('a surviving replica to finish the order', async () => {
      const s = await Promise.all(survivors.map((d) => serial(REPLICAS[fleet.indexOf(d)]!, name)));
      return s.every(Boolean) || undefined;
    }, 90_000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\n${survivors.map((d) => d.output().split('\n').filter((l) => l.includes(name) || /"level":"(warn|error)"/.test(l)).join('\n')).join('\n---\n')}`);
    });
    const list = JSON.parse((await runCli(['certificates', '--json', '--cert-name', name, ...storeFlags(), '--config-dir', join(dir, 'check')])).stdout);
    const c = list.certificates[0];
    assert.equal(c.version, 1, 'one complete current version');
    await stopAll();
  }));
});

describe('a Redis outage', () => {
  it('costs no request on any replica for 30 s, and renewals resume and reach every replica after it returns', () => withReplicas(async () => {
    const name = uniqueName('outage');
    await resolveAt(name, BALANCER);
    const file = await config([name]);
    await Promise.all(REPLICAS.map((ip) => replica(ip, file)));
    const first = await waitFor('the first certificate everywhere', async () => {
      const s = await Promise.all(REPLICAS.map((ip) => serial(ip, name)));
      return s.every(Boolean) && new Set(s).size === 1 ? s[0] : undefined;
    }, 30_000, 100);

    const ordersBefore = ordersAtCa();
    await redis.kill();
    const started = Date.now();
    let ok = 0;
    const failures: string[] = [];
    while (Date.now() - started < 30_000) {
      await Promise.all(REPLICAS.map(async (ip) => {
        try {
          const r = await httpsGet(ports.https, name, pebble.rootPem, '/', false, ip);
          if (r.status === 502) ok += 1; // the upstream is a dead port on purpose: 502 is padlock answering
          else failures.push(`${ip}: HTTP ${r.status}`);
        } catch (err) {
          failures.push(`${ip}: ${(err as Error).message}`);
        }
      }));
    }
    assert.deepEqual(failures, [], `${ok} requests answered while Redis was down`);
    const status = await running[0]!.status();
    assert.equal(status['store'].reachable, false, '/api/status says the store is unreachable');
    assert.equal(status['ready'], true, 'and padlock stays ready: it serves from memory');
    const readyz = await getJson(ports.admin, '/readyz', REPLICAS[1]);
    assert.equal(readyz['ready'], true, '/readyz stays ready');
    assert.equal(readyz['store'].reachable, false, '/readyz says the store is unreachable');
    assert.match(String(readyz['store'].error), /redis|connect|ECONNREFUSED|answer/i, 'and why');

    await redis.restart();
    // 60-second certificates are due after 30 s: a renewal happens now that Redis is back, and reaches all three.
    await waitFor('a renewed certificate on every replica', async () => {
      const s = await Promise.all(REPLICAS.map((ip) => serial(ip, name)));
      return s.every((x) => x && x !== first) && new Set(s).size === 1 || undefined;
    }, 60_000, 200);
    assert.equal(ordersAtCa() - ordersBefore, 1, 'the renewal that came due during the outage was ordered once for the whole fleet');
    await stopAll();
  }));
});

describe('the keys in Redis', () => {
  it('are not readable as PEM: no value anywhere in the keyspace holds a PRIVATE KEY', async () => {
    const keys = (await redis.cli(['--scan'])).split('\n').filter(Boolean);
    assert.ok(keys.some((k) => k.startsWith('padlock:lineage:')), 'certificates are there');
    for (const key of keys) {
      const type = (await redis.cli(['TYPE', key])).trim();
      const dump = type === 'string' ? await redis.cli(['GET', key]) : type === 'hash' ? await redis.cli(['HGETALL', key]) : type === 'set' ? await redis.cli(['SMEMBERS', key]) : '';
      assert.doesNotMatch(dump, /PRIVATE KEY/, `${key} (${type})`);
    }
  });
});
