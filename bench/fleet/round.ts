/**
 * One round of the fleet bench: a fresh Pebble and an empty Redis, three
 * `padlock run` replicas on 127.0.0.1, .2 and .3 (same ports) started at the
 * same moment, all routing the same N names from one shared static `sites:`
 * file to one loopback upstream. The round's clock runs from their spawn
 * until every replica serves every name (a verified TLS handshake each,
 * serving.ts), or until the timeout, which fails the round with what was
 * missing.
 *
 * Then, clock stopped: the CA's counts from Pebble's log, each replica's
 * orders (its log), RSS, peak RSS and CPU, Redis's INFO memory, every
 * replica's /api/status summary, one HTTPS GET per replica, and the store
 * itself through `padlock certificates --json` (every name once, at
 * version 1). Everything listens on and talks to loopback only; the Redis
 * password goes to padlock through PADLOCK_STORE, never on a command line
 * or in the report.
 */
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { createWriteStream, type WriteStream } from 'node:fs';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import { join } from 'node:path';
import { startPebble, freePort, type Pebble } from '../../test/support/pebble.js';
import { startRedis, type RedisServer } from '../../test/support/redis.js';
import { getJson } from '../../test/support/daemon.js';
import { pebbleRunFlags } from '../../test/support/padlock.js';
import { forEachLimit } from '../../src/concurrency.js';
import { startDaemon, serverPids, type Daemon } from '../proxy/procs.js';
import { execFile } from 'node:child_process';
import { sleep } from '../startup/probes.js';
import { ReplicaLog, type ReplicaLogSummary } from './replica-log.js';
import { ServingTracker } from './serving.js';
import { CaLog, type CaCounts } from './ca-log.js';
import { startBalancer, type Balancer } from '../../test/support/tcp-balancer.js';
import { descendantsNamed, loadAverage, usageOf, type ProcessUse } from './machine.js';

export const REPLICAS = ['127.0.0.1', '127.0.0.2', '127.0.0.3'] as const;
export const UPSTREAM_BODY = 'hello from upstream\n';
const STORE_PREFIX = 'padlock-bench:';
/** Issue 10: every replica serves a new certificate within 5 s of the write. */
const SLOW_FOLLOW_MS = 5_000;

/**
 * Where Pebble's mock DNS sends the CA's HTTP-01 validation of each name:
 * `balancer`, every name to BALANCER_IP, a layer-4 round-robin balancer over
 * the three replicas' HTTP ports (balancer.ts); `spread`, name i straight to
 * replica i mod 3; `one`, every name to 127.0.0.1.
 */
export type DnsMode = 'balancer' | 'spread' | 'one';
export const DNS_MODES: readonly DnsMode[] = ['balancer', 'spread', 'one'];
const BALANCER_IP = '127.0.0.10';

export interface RoundOptions {
  round: number;
  names: readonly string[];
  dns: DnsMode;
  timeoutSeconds: number;
  /** `--concurrency` for padlock (orders in flight per replica); undefined: padlock's default. */
  concurrency?: number;
  padlockBin: string;
  repoRoot: string;
  workDir: string;
  upstreamPort: number;
  /** NODE_OPTIONS for the replicas (e.g. --cpu-prof). */
  nodeOptions?: string;
  /** With `--heapsnapshot-signal=SIGUSR2` in nodeOptions: ask the first replica for a heap snapshot once the clock stopped, written here. */
  heapSnapshotDir?: string;
  log: (line: string) => void;
}

export interface Distribution {
  count: number;
  minS: number;
  medianS: number;
  p90S: number;
  maxS: number;
}

export interface ReplicaResult {
  ip: string;
  /** Seconds from spawn until its /readyz said 200. */
  readyS?: number;
  /** Seconds from spawn until it served its last name. */
  allServedS?: number;
  servedNames: number;
  log: ReplicaLogSummary;
  /** At the end of the round, clock stopped. */
  usage?: ProcessUse;
  status?: { summary?: unknown; store?: unknown; certificateStates?: Record<string, number> };
  get?: { name: string; status: number; bodyOk: boolean; error?: string };
  exitedEarly?: boolean;
  outputTail?: string;
}

export interface StoreCheck {
  lineages: number;
  atVersion1: number;
  /** Names with a version above 1 (a second certificate was stored), at most 20. */
  laterVersions: string[];
  missing: number;
  error?: string;
}

export interface RoundResult {
  round: number;
  ok: boolean;
  error?: string;
  startedAt: string;
  loadBefore: number[];
  loadAfter?: number[];
  dns: DnsMode;
  names: number;
  /** Seconds from spawn until every replica served every name. */
  allServedS?: number;
  servedPairs: number;
  totalPairs: number;
  /** Per name: when the first replica served it (its certificate was issued and stored). */
  firstServed?: Distribution;
  /** Per name: when the last of the three replicas served it. */
  everywhere?: Distribution;
  /** Per name: seconds between the first and the last replica serving it. */
  spread?: Distribution;
  /** Names the last replica served more than SLOW_FOLLOW_MS after the first (issue 10: within 5 s): how many, and the first 20. */
  slowToFollow?: { count: number; names: { name: string; replica: string; afterS: number }[] };
  ca: CaCounts;
  replicas: ReplicaResult[];
  redis?: { usedMemoryMiB: number; usedMemoryPeakMiB: number; usedMemoryRssMiB: number; keys: number; process?: ProcessUse };
  pebbleProcess?: ProcessUse;
  challtestsrvProcess?: ProcessUse;
  store?: StoreCheck;
  probes: { probes: number; failed: number };
  /** `--dns balancer`: HTTP connections (the CA's validation requests) each replica answered, and those no replica took. */
  balancer?: { connections: Record<string, number>; dropped: number };
  missing?: string[];
}

/** The bench's names: `n00001.fleet.example.com` … (Pebble's mock DNS answers for any name). */
export function fleetName(i: number): string {
  return `n${String(i).padStart(5, '0')}.fleet.example.com`;
}

function distribution(ms: number[]): Distribution | undefined {
  if (!ms.length) return undefined;
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number): number => Math.round(x / 10) / 100;
  return { count: s.length, minS: r(s[0]!), medianS: r(at(0.5)), p90S: r(at(0.9)), maxS: r(s[s.length - 1]!) };
}

async function writeSites(file: string, names: readonly string[], upstreamPort: number): Promise<void> {
  const lines = ['sites:'];
  for (const n of names) lines.push(`  - host: ${n}`, `    upstream: http://127.0.0.1:${upstreamPort}`);
  await writeFile(file, `${lines.join('\n')}\n`);
}

/** Maps each name to the replica the CA's validation goes to (challtestsrv's mock DNS). */
async function mapDns(pebble: Pebble, names: readonly string[], mode: DnsMode): Promise<void> {
  await forEachLimit(names.map((n, i) => [n, i] as const), 16, async ([name, i]) => {
    const ip = mode === 'balancer' ? BALANCER_IP : mode === 'spread' ? REPLICAS[i % REPLICAS.length]! : REPLICAS[0];
    const res = await fetch(`${pebble.challtestsrvUrl}/add-a`, { method: 'POST', body: JSON.stringify({ host: `${name}.`, addresses: [ip] }) });
    if (res.status !== 200) throw new Error(`challtestsrv add-a ${name} -> ${ip}: HTTP ${res.status}`);
  });
}

function env(storeUrl: string, nodeOptions?: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?|all|no|ftp)_proxy$/i.test(k) && !k.startsWith('PADLOCK_') && k !== 'NODE_OPTIONS') out[k] = v;
  // The URL holds the password: in the environment, not in argv (ps) or the report.
  out['PADLOCK_STORE'] = storeUrl;
  if (nodeOptions) out['NODE_OPTIONS'] = nodeOptions;
  return out;
}

const tail = (s: string, n: number): string => s.trimEnd().split('\n').slice(-n).join('\n');
const secs = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms / 10) / 100);

function parseInfo(info: string, field: string): number {
  return Number(new RegExp(`^${field}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
}

/** Runs one round; never throws for a padlock failure (the result says ok: false and why). */
export async function runRound(o: RoundOptions): Promise<RoundResult> {
  const dir = join(o.workDir, `round-${o.round}`);
  await mkdir(dir, { recursive: true });
  const result: RoundResult = {
    round: o.round, ok: false, startedAt: new Date().toISOString(), loadBefore: loadAverage(), dns: o.dns, names: o.names.length,
    servedPairs: 0, totalPairs: o.names.length * REPLICAS.length, ca: { certificates: 0, gap: false }, replicas: [], probes: { probes: 0, failed: 0 },
  };
  let pebble: Pebble | undefined;
  let redis: RedisServer | undefined;
  const daemons: Daemon[] = [];
  let tracker: ServingTracker | undefined;
  let balancer: Balancer | undefined;
  const logFiles: WriteStream[] = [];
  try {
    pebble = await startPebble({ maxLifetimeSeconds: o.timeoutSeconds + 600 });
    redis = await startRedis();
    const before = Number((await redis.cli(['DBSIZE'])).trim());
    if (before !== 0) throw new Error(`the new Redis holds ${before} keys before the round`);
    const keyFile = join(dir, 'store.key');
    await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    const sitesFile = join(dir, 'sites.yaml');
    await writeSites(sitesFile, o.names, o.upstreamPort);
    await mapDns(pebble, o.names, o.dns);
    if (o.dns === 'balancer') balancer = await startBalancer(BALANCER_IP, pebble.httpPort, REPLICAS);
    const ports = { https: await freePort(), admin: await freePort() };
    const logs = REPLICAS.map((ip) => new ReplicaLog((name) => tracker?.kick(ip, name)));
    // Every replica's whole log, for reading afterwards (--keep keeps the folder).
    logFiles.push(...REPLICAS.map((ip) => createWriteStream(join(dir, `replica-${ip}.log`))));

    o.log(`round ${o.round}: load ${result.loadBefore.join(' ')}; starting 3 replicas for ${o.names.length} names (DNS ${o.dns})`);
    const t0 = process.hrtime.bigint();
    tracker = new ServingTracker({ replicas: REPLICAS, names: o.names, port: ports.https, ca: pebble.rootPem, t0 });
    for (const [i, ip] of REPLICAS.entries()) {
      const args = [
        'run', '--http-port', String(pebble.httpPort), '--https-port', String(ports.https), '--bind', ip, '--admin-listen', `${ip}:${ports.admin}`,
        '--config', sitesFile, '--docker', 'false', '--config-dir', join(dir, `cfg-${ip}`), '--log-format', 'json', '--drain-seconds', '1',
        '--store-key-file', keyFile, '--store-prefix', STORE_PREFIX, ...pebbleRunFlags(pebble),
        ...(o.concurrency ? ['--concurrency', String(o.concurrency)] : []),
      ];
      daemons.push(startDaemon(`padlock ${ip}`, o.padlockBin, args, {
        env: env(redis.url, o.nodeOptions), cwd: o.repoRoot, capSeconds: o.timeoutSeconds + 120,
        onOutput: (chunk, stream) => {
          logs[i]!.feed(chunk, stream);
          logFiles[i]!.write(chunk);
        },
      }));
    }
    const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
    const readyMs: (number | undefined)[] = REPLICAS.map(() => undefined);
    const deadline = Date.now() + o.timeoutSeconds * 1000;
    const readyWatch = Promise.all(REPLICAS.map(async (ip, i) => {
      while (Date.now() < deadline && !daemons[i]!.exited()) {
        const ok = await getJson(ports.admin, '/readyz', ip).then((j) => j['ready'] === true, () => false);
        if (ok) {
          readyMs[i] = elapsed();
          return;
        }
        await sleep(50);
      }
    }));
    tracker.start();

    // Wait for every pair, a replica's death, or the timeout; read the CA's log every 2 s; say how far it got every 15 s.
    const caLog = new CaLog();
    let lastScan = 0;
    let outcome: 'done' | 'timeout' | 'exited' | undefined;
    const all = tracker.allServed().then(() => (outcome ??= 'done'));
    let lastReport = Date.now();
    while (!outcome) {
      await Promise.race([all, sleep(250)]);
      if (outcome) break;
      if (Date.now() - lastScan >= 2_000) {
        lastScan = Date.now();
        caLog.scan(pebble.logs());
      }
      if (daemons.some((d) => d.exited())) outcome = 'exited';
      else if (Date.now() > deadline) outcome = 'timeout';
      else if (Date.now() - lastReport >= 15_000) {
        lastReport = Date.now();
        const ca = caLog.counts();
        o.log(`  ${(elapsed() / 1000).toFixed(0)} s: ${tracker.served}/${tracker.total} served; orders at the CA ${ca.orders ?? 0}; load ${loadAverage().join(' ')}`);
      }
    }
    const endMs = elapsed();
    tracker.stop();
    await readyWatch;
    result.servedPairs = tracker.served;
    result.probes = tracker.probeCounts();
    const times = tracker.nameTimes();
    const firstServed = distribution(times.map((t) => t.firstMs));
    const everywhere = distribution(times.map((t) => t.everywhereMs));
    const spread = distribution(times.map((t) => t.everywhereMs - t.firstMs));
    if (firstServed) result.firstServed = firstServed;
    if (everywhere) result.everywhere = everywhere;
    if (spread) result.spread = spread;
    const slow = times.filter((t) => t.everywhereMs - t.firstMs > SLOW_FOLLOW_MS).sort((a, b) => b.everywhereMs - b.firstMs - (a.everywhereMs - a.firstMs));
    result.slowToFollow = { count: slow.length, names: slow.slice(0, 20).map((t) => ({ name: t.name, replica: t.lastReplica, afterS: secs(t.everywhereMs - t.firstMs)! })) };
    if (outcome === 'done') result.allServedS = secs(endMs);
    else {
      result.error = outcome === 'timeout'
        ? `timed out after ${o.timeoutSeconds} s: ${tracker.served} of ${tracker.total} (replica, name) pairs served`
        : `a replica exited during the round (${daemons.filter((d) => d.exited()).map((d) => d.name).join(', ')})`;
      result.missing = tracker.missing(10);
    }

    // Clock stopped: what each part used, what the CA counted, what the store holds.
    result.loadAfter = loadAverage();
    const done = tracker.replicaDoneMs();
    const served = tracker.servedPerReplica();
    result.pebbleProcess = usageOf(descendantsNamed('pebble'));
    result.challtestsrvProcess = usageOf(descendantsNamed('pebble-challtestsrv'));
    const info = await redis.cli(['INFO', 'memory']);
    const mib = (f: string): number => Math.round((parseInfo(info, f) / 1048576) * 10) / 10;
    result.redis = {
      usedMemoryMiB: mib('used_memory'), usedMemoryPeakMiB: mib('used_memory_peak'), usedMemoryRssMiB: mib('used_memory_rss'),
      keys: Number((await redis.cli(['DBSIZE'])).trim()), process: usageOf(descendantsNamed('redis-server')),
    };
    for (const [i, ip] of REPLICAS.entries()) {
      const d = daemons[i]!;
      const r: ReplicaResult = { ip, servedNames: served[ip] ?? 0, log: logs[i]!.summary() };
      const ready = secs(readyMs[i]);
      if (ready !== undefined) r.readyS = ready;
      const all = secs(done[ip]);
      if (all !== undefined) r.allServedS = all;
      if (d.exited()) {
        r.exitedEarly = true;
        r.outputTail = tail(d.output(), 15);
      } else {
        r.usage = usageOf(serverPids(d.pid));
        const status = await getJson(ports.admin, '/api/status', ip).catch(() => undefined);
        if (status) {
          const states: Record<string, number> = {};
          for (const c of (status['certificates'] ?? []) as { state?: string }[]) states[c.state ?? '?'] = (states[c.state ?? '?'] ?? 0) + 1;
          r.status = { summary: status['summary'], store: status['store'], certificateStates: states };
        }
        const name = o.names[o.names.length - 1]!;
        const get = await getHttps(ip, ports.https, name, pebble.rootPem);
        r.get = { name, status: get.status, bodyOk: get.body === UPSTREAM_BODY, ...(get.error ? { error: get.error } : {}) };
      }
      result.replicas.push(r);
    }
    if (o.heapSnapshotDir) await heapSnapshot(daemons[0]!, o.heapSnapshotDir, o.log);
    caLog.scan(pebble.logs());
    result.ca = caLog.counts();
    if (balancer) result.balancer = { connections: balancer.counts(), dropped: balancer.dropped() };
    result.store = await checkStore(o, redis.url, keyFile, dir);

    const problems: string[] = [];
    if (result.error) problems.push(result.error);
    if (result.ca.orders !== o.names.length) problems.push(`the CA saw ${result.ca.orders ?? '?'} orders, not ${o.names.length}`);
    for (const r of result.replicas) if (r.get && (r.get.status !== 200 || !r.get.bodyOk)) problems.push(`GET https://${r.get.name}/ on ${r.ip} gave ${r.get.status}${r.get.error ? ` (${r.get.error})` : ''}`);
    if (result.store.error) problems.push(`store check: ${result.store.error}`);
    else if (result.store.lineages !== o.names.length || result.store.atVersion1 !== o.names.length) {
      problems.push(`the store holds ${result.store.lineages} lineages, ${result.store.atVersion1} at version 1 (expected ${o.names.length} at version 1)`);
    }
    result.ok = problems.length === 0;
    if (!result.ok) result.error = problems.join('; ');
  } catch (e) {
    result.error = `${result.error ? `${result.error}; ` : ''}${(e as Error).message}`;
    if (tracker) {
      result.servedPairs = tracker.served;
      result.missing = tracker.missing(10);
    }
  } finally {
    tracker?.stop();
    await Promise.all(daemons.map((d) => d.stop(15_000)));
    await balancer?.close();
    await Promise.all(logFiles.map((f) => new Promise((r) => f.end(r))));
    if (pebble) await writeFile(join(dir, 'pebble.log'), pebble.logs());
    await redis?.stop();
    await pebble?.stop();
  }
  return result;
}

/** Sends SIGUSR2 to the replica's node process and waits (at most 2 minutes) for the snapshot file to be complete. */
async function heapSnapshot(d: Daemon, dir: string, log: (line: string) => void): Promise<void> {
  const pid = serverPids(d.pid)[0];
  if (pid === undefined) return;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 120_000;
  let last = -1;
  while (Date.now() < deadline) {
    await sleep(1000);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.heapsnapshot'));
    const size = files.length ? (await stat(join(dir, files[0]!))).size : -1;
    if (size > 0 && size === last) {
      log(`  heap snapshot of ${d.name}: ${join(dir, files[0]!)} (${Math.round(size / 1048576)} MiB)`);
      return;
    }
    last = size;
  }
  log(`  heap snapshot of ${d.name}: not complete after 2 minutes`);
}

/** One HTTPS GET / at `ip` with SNI and Host `name`, trusting only `ca`. */
function getHttps(ip: string, port: number, name: string, ca: string): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = https.request({ host: ip, port, path: '/', servername: name, headers: { host: name }, ca, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d.slice(0, 10_000))).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    req.end();
  });
}

/** `padlock certificates --json` on the shared store: every name once, each at version 1. */
async function checkStore(o: RoundOptions, storeUrl: string, keyFile: string, dir: string): Promise<StoreCheck> {
  const failed = (error: string): StoreCheck => ({ lineages: 0, atVersion1: 0, laterVersions: [], missing: o.names.length, error });
  // Its JSON for 1,000 names is ~1 MB: read it whole (runTimed keeps only the last 100 kB of a big output).
  const r = await new Promise<{ code: number | null; stdout: string; stderr: string; error?: string }>((resolve) => {
    execFile(o.padlockBin, ['certificates', '--json', '--store-key-file', keyFile, '--store-prefix', STORE_PREFIX, '--config-dir', join(dir, 'cfg-check')],
      { env: env(storeUrl), cwd: o.repoRoot, timeout: 180_000, killSignal: 'SIGKILL', maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr, ...(err ? { error: err.message.split('\n')[0] } : {}) }));
  });
  if (r.code !== 0) return failed(`padlock certificates failed (${r.error ?? r.code}): ${tail(r.stderr || r.stdout, 3)}`);
  let list: { name: string; version: number }[];
  try {
    list = (JSON.parse(r.stdout) as { certificates: { name: string; version: number }[] }).certificates;
  } catch (e) {
    return failed(`padlock certificates --json printed no JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
  const wanted = new Set(o.names);
  const ours = list.filter((c) => wanted.has(c.name));
  return {
    lineages: ours.length,
    atVersion1: ours.filter((c) => c.version === 1).length,
    laterVersions: ours.filter((c) => c.version !== 1).map((c) => `${c.name} v${c.version}`).slice(0, 20),
    missing: o.names.length - ours.length,
  };
}
