/**
 * Start-up benchmark: how fast a padlock replica whose store holds N
 * certificates (10,000 by default) starts serving, against Caddy (and
 * optionally nginx) serving the same certificate files.
 *
 *   npx node --import tsx bench/startup/run.ts [--names 10000] [--rounds 3]
 *     [--store DIR|redis-url] [--redis start|redis-url] [--store-key-file FILE]
 *     [--out bench/results/startup.json]
 *     [--scenarios padlock-all,padlock-one,padlock-all-redis,padlock-one-redis,caddy[,nginx]]
 *     [--handshake-all] [--timeout 120] [--settle 30] [--wait-idle 30]
 *     [--cpu-prof DIR] [--cap-seconds 1800] [--keep]
 *
 * Per scenario and round, from spawn: when the HTTPS port accepts, when
 * padlock's /readyz says 200, when a TLS handshake for the first and for the
 * last fixture name succeeds (verified against the local root), and the
 * server's RSS at ready, after the last-name handshake, and once it has gone
 * idle. With --handshake-all, then a verified handshake for every name and
 * the RSS after them. Rounds alternate the order of the scenarios. The
 * `*-redis` scenarios read a copy of the fixture from a Redis store (a
 * private redis-server on 127.0.0.1 unless --redis names one). Everything runs on
 * 127.0.0.1; every server runs under `timeout` in its own process group and
 * is killed when its round ends, when the bench fails or exits, and at the
 * overall cap. See bench/startup/README.md.
 */
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveInt } from '../args.js';
import { ensureBuilt } from '../build.js';
import { runTimed, killAllChildren } from '../issue/child.js';
import { killAllDaemons, serverPids, memory, cpuSeconds, machineBusy, type Daemon } from '../proxy/procs.js';
import { toolEnv } from '../proxy/load.js';
import { BENCH_REDIS_PREFIX, benchName, defaultFixtureDir, ensureFsFixture, fixtureIntact, invalidateFixture, newStoreKey, openBenchStore, parseStoreLocation, redactUrl, type FixtureResult } from './fixture.js';
import { SCENARIOS, DEFAULT_SCENARIOS, isPadlock, routesOne, startScenario, usesRedis, type Scenario, type Ports } from './servers.js';
import { copyStore } from '../../src/store/copy.js';
import { startRedis, type RedisServer } from '../../test/support/redis.js';
import { loadStoreKey } from '../../src/store/store-key.js';
import { handshake, httpsGet, readyz, rssOf, sleep, tcpAccepts, until } from './probes.js';
import { LogTimeline } from './timeline.js';
import { markdownAllNames, markdownRounds, markdownSummary, type Memory, type StartupRun, type StartupReport } from './report.js';
import { summarizeWindowFile, windowMarkdown, type WindowSummary } from './profile-window.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const BODY = 'hello from upstream\n';

const { values } = parseArgs({
  options: {
    names: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '3' },
    store: { type: 'string' },
    redis: { type: 'string', default: 'start' },
    'store-key-file': { type: 'string' },
    'handshake-all': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results/startup.json' },
    scenarios: { type: 'string', default: DEFAULT_SCENARIOS.join(',') },
    timeout: { type: 'string', default: '120' },
    settle: { type: 'string', default: '30' },
    'wait-idle': { type: 'string', default: '30' },
    'cpu-prof': { type: 'string' },
    'cap-seconds': { type: 'string', default: '1800' },
    keep: { type: 'boolean', default: false },
  },
});

const names = positiveInt('names', values.names);
const rounds = positiveInt('rounds', values.rounds);
const timeoutSeconds = positiveInt('timeout', values.timeout);
const settleSeconds = positiveInt('settle', values.settle);
const capSeconds = positiveInt('cap-seconds', values['cap-seconds']);
const waitIdleSeconds = Number(values['wait-idle']);
if (!Number.isFinite(waitIdleSeconds) || waitIdleSeconds < 0) fail('--wait-idle must be a number of seconds >= 0');
if (names > 99_999) fail('--names must be at most 99999 (the names are n00001 ... n99999)');
const scenarios = (values.scenarios ?? '').split(',').map((s) => s.trim()).filter(Boolean) as Scenario[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) fail(`unknown scenario ${JSON.stringify(s)}; known: ${SCENARIOS.join(', ')}`);
if (!scenarios.length) fail('--scenarios is empty');
const outPath = resolve(values.out ?? 'bench/results/startup.json');
const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
const storeArg = values.store ?? defaultFixtureDir(names);
let location: ReturnType<typeof parseStoreLocation>;
try {
  location = parseStoreLocation(storeArg);
} catch (e) {
  fail((e as Error).message);
}
// `--store redis://…` is `--redis redis://…` with the folder fixture at its default place (Caddy and nginx need files).
let redisArg = values.redis ?? 'start';
if (location.kind === 'redis') {
  redisArg = location.url;
  location = { kind: 'fs', dir: defaultFixtureDir(names) };
}
if (redisArg !== 'start') {
  try {
    if (parseStoreLocation(redisArg).kind !== 'redis') fail(`--redis ${redisArg}: not a redis:// URL (or "start")`);
  } catch (e) {
    fail((e as Error).message);
  }
  if (!values['store-key-file']) fail('--redis URL needs --store-key-file FILE (32 bytes, as padlock --store-key-file)');
}
const handshakeAll = values['handshake-all'] ?? false;

function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

const startedMs = Date.now();
const deadline = startedMs + capSeconds * 1000;
const capLeft = (): number => Math.max(1, (deadline - Date.now()) / 1000);
let workDir: string | undefined;
let upstream: http.Server | undefined;
let redisServer: RedisServer | undefined;

process.on('exit', () => {
  killAllDaemons();
  killAllChildren();
  // Sends the signal now; the process cannot wait for it any more.
  void redisServer?.kill();
  if (workDir && !values.keep) rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`bench: ${sig}, cleaning up`);
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
// The overall deadline holds even if a step hangs: servers die by `timeout`, and so does the bench.
const hardStop = setTimeout(() => {
  console.error(`bench: --cap-seconds ${capSeconds} reached; stopping`);
  process.exit(1);
}, (capSeconds + 30) * 1000);
hardStop.unref();

const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};
const la = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);
const tail = (s: string, n = 8): string => s.trim().split('\n').slice(-n).join('\n');
const secs = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms) / 1000);

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

async function versions(padlockBin: string): Promise<Record<string, string>> {
  const v: Record<string, string> = {};
  const run = async (key: string, cmd: string, args: string[], pick: (out: string) => string | undefined): Promise<void> => {
    const r = await runTimed(cmd, args, toolEnv(), 15_000, repoRoot);
    const s = pick(`${r.stdout}\n${r.stderr}`.trim());
    if (s) v[key] = s;
  };
  await run('padlock', padlockBin, ['--version'], (o) => o.split('\n')[0]?.trim());
  await run('padlock node', join(repoRoot, 'node_modules', '.bin', 'node'), ['--version'], (o) => o.split('\n')[0]?.trim());
  if (scenarios.includes('caddy')) await run('caddy', '/usr/bin/caddy', ['version'], (o) => o.split('\n')[0]?.trim());
  if (scenarios.includes('nginx')) await run('nginx', '/usr/sbin/nginx', ['-v'], (o) => /nginx\/(\S+)/.exec(o)?.[1]);
  return v;
}

/** A tiny upstream in this process: every route of every server forwards here. */
async function startUpstream(): Promise<number> {
  upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(BODY) });
    res.end(BODY);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  return (upstream.address() as net.AddressInfo).port;
}

/** RSS/PSS summed over the server's processes, and their peak RSS (VmHWM) summed. */
function memoryOf(d: Daemon): Memory | undefined {
  const pids = serverPids(d.pid);
  if (!pids.length) return undefined;
  const m = memory(pids);
  const peak = pids.reduce((s, p) => s + (rssOf(p)?.peakMiB ?? 0), 0);
  return { rssMiB: m.rssMiB, ...(m.pssMiB !== undefined ? { pssMiB: m.pssMiB } : {}), peakMiB: Math.round(peak * 10) / 10, processes: pids.length };
}

/** Waits until the server's processes used (almost) no CPU for 1 s, at most `maxMs`. */
async function waitServerIdle(d: Daemon, maxMs: number): Promise<number> {
  const t0 = Date.now();
  let before = cpuSeconds(serverPids(d.pid));
  while (Date.now() - t0 < maxMs && !d.exited()) {
    await sleep(1000);
    const now = cpuSeconds(serverPids(d.pid));
    if (now - before <= 0.02) break;
    before = now;
  }
  return Date.now() - t0;
}

interface Fixture {
  storeDir: string;
  info: FixtureResult;
  /** The copy in Redis, for the `*-redis` scenarios. */
  redis?: { url: string; keyFile: string; prefix: string; key: Buffer };
}

/** The Redis store the `*-redis` scenarios read, opened by the bench itself. */
function redisStoreOf(fx: Fixture): Promise<import('../../src/store/store.js').CertStore> {
  if (!fx.redis) throw new Error('no Redis store in this run');
  return openBenchStore({ kind: 'redis', url: fx.redis.url }, fx.redis.key);
}

/** The fixture in `store` (the folder, or its Redis copy) still holds exactly what was written. */
async function checkIntact(fx: Fixture, redis: boolean): Promise<{ ok: boolean; detail: string }> {
  const store = redis ? await redisStoreOf(fx) : await openBenchStore({ kind: 'fs', dir: fx.storeDir });
  try {
    return await fixtureIntact(store, names);
  } finally {
    await store.close();
  }
}

/** A verified handshake for every name, `concurrency` at a time: how long, and how many failed (with the first errors). */
async function handshakeEvery(port: number, rootPem: string, concurrency = 8): Promise<{ handshakes: number; failed: number; seconds: number; errors: string[] }> {
  const t0 = performance.now();
  let next = 1;
  let failed = 0;
  const errors: string[] = [];
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next <= names) {
      const name = benchName(next++);
      const h = await handshake(port, name, rootPem, 10_000);
      if (!h.ok) {
        failed++;
        if (errors.length < 3) errors.push(`${name}: ${h.error}`);
      }
    }
  }));
  return { handshakes: names, failed, seconds: Math.round((performance.now() - t0) / 100) / 10, errors };
}

async function measure(scenario: Scenario, round: number, fx: Fixture, upstreamPort: number, opts: { profileDir?: string } = {}): Promise<StartupRun> {
  const w0 = Date.now();
  let busy = waitIdleSeconds > 0 ? await machineBusy(1000) : undefined;
  while (busy !== undefined && busy > 0.25 && Date.now() - w0 < waitIdleSeconds * 1000) busy = await machineBusy(1000);
  const run: StartupRun = { scenario, round, ok: false, loadavgBefore: la(), ...(busy !== undefined ? { busyBefore: busy } : {}), ...(opts.profileDir ? { profiled: true } : {}) };
  const ports: Ports = { https: await freePort(), http: await freePort(), admin: await freePort() };
  const padlock = isPadlock(scenario);
  const first = benchName(1);
  const last = benchName(names);
  const timeline = new LogTimeline();
  const dir = join(workDir!, `${scenario}-r${round}${opts.profileDir ? '-prof' : ''}`);
  let d: Daemon | undefined;
  const t0 = process.hrtime.bigint();
  const wall0 = Date.now();
  try {
    d = await startScenario(scenario, {
      storeDir: fx.storeDir,
      names,
      dir,
      upstreamPort,
      ports,
      capSeconds: Math.min(capLeft(), timeoutSeconds + settleSeconds + 60),
      padlockBin: join(repoRoot, 'bin', 'padlock'),
      ...(fx.redis ? { redis: { url: fx.redis.url, keyFile: fx.redis.keyFile, prefix: fx.redis.prefix } } : {}),
      ...(opts.profileDir ? { padlockEnv: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${opts.profileDir}` } } : {}),
      ...(padlock ? { onOutput: (chunk: string, stream: 'stdout' | 'stderr') => timeline.feed(chunk, stream) } : {}),
    });
    const daemon = d;
    const limit = { deadline: Math.min(Date.now() + timeoutSeconds * 1000, deadline), alive: () => !daemon.exited() };
    const probes: Promise<void>[] = [];
    probes.push(until(t0, () => tcpAccepts(ports.https), (ok) => ok, limit).then((r) => void (run.portOpenS = secs(r.ms))));
    if (padlock) {
      probes.push(
        until(t0, () => readyz(ports.admin), (s) => s === 200, { ...limit, onSuccess: () => void (run.memAtReady = memoryOf(daemon)) }).then((r) => {
          run.readyS = secs(r.ms);
          if (r.ms === undefined) run.error = `/readyz never said 200 (last ${r.last ?? '-'})`;
        }),
      );
    }
    if (!routesOne(scenario)) {
      probes.push(until(t0, () => handshake(ports.https, first, fx.info.rootPem), (o) => o.ok, limit).then((r) => void (run.firstNameS = secs(r.ms))));
    }
    const lastProbe = until(t0, () => handshake(ports.https, last, fx.info.rootPem), (o) => o.ok, { ...limit, onSuccess: () => void (run.memAtLastName = memoryOf(daemon)) });
    probes.push(
      lastProbe.then((r) => {
        run.lastNameS = secs(r.ms);
        if (r.ms === undefined) run.error = `no verified handshake for ${last} within ${timeoutSeconds} s (last: ${r.last?.error ?? '-'})`;
        else run.tlsProtocol = r.last?.protocol;
      }),
    );
    await Promise.all(probes);
    run.cpuSecondsToLastName = Math.round(cpuSeconds(serverPids(daemon.pid)) * 100) / 100;
    if (run.lastNameS === undefined || daemon.exited()) throw new Error(run.error ?? 'the server exited');
    // Correctness, after the clock stopped: the last name routes to the upstream.
    const get = await httpsGet(ports.https, last, fx.info.rootPem);
    run.lastNameGet = { status: get.status, bodyOk: get.body === BODY, ...(get.error ? { error: get.error } : {}) };
    if (opts.profileDir) {
      run.ok = get.status === 200 && get.body === BODY;
      return run;
    }
    // Until it goes idle: a handshake for the last name every 250 ms, to see whether serving stalls meanwhile.
    let settling = true;
    const latencies: number[] = [];
    const watch = (async () => {
      while (settling && !daemon.exited()) {
        const h0 = performance.now();
        const h = await handshake(ports.https, last, fx.info.rootPem, 30_000);
        latencies.push(h.ok ? performance.now() - h0 : Infinity);
        await sleep(250);
      }
    })();
    const waited = await waitServerIdle(daemon, settleSeconds * 1000);
    settling = false;
    await watch;
    if (latencies.length) {
      const sorted = [...latencies].sort((a, b) => a - b);
      run.handshakesWhileSettling = {
        count: latencies.length,
        failed: latencies.filter((x) => x === Infinity).length,
        medianMs: Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10,
        maxMs: Math.round(Math.max(...latencies.filter((x) => x !== Infinity), 0) * 10) / 10,
      };
    }
    run.memSettled = memoryOf(daemon);
    run.settledAfterS = Math.round((Number(process.hrtime.bigint() - t0) / 1e6) / 100) / 10;
    if (waited >= settleSeconds * 1000) run.settleNote = `still busy after ${settleSeconds} s`;
    // Every name, once the start is over: what memory the TLS contexts of 10,000 names in use cost.
    if (handshakeAll && !routesOne(scenario)) {
      const all = await handshakeEvery(ports.https, fx.info.rootPem);
      const after = memoryOf(daemon);
      await waitServerIdle(daemon, settleSeconds * 1000);
      run.allNames = { ...all, ...(after ? { memAfter: after } : {}), ...(memoryOf(daemon) ? { memIdleAfter: memoryOf(daemon)! } : {}) };
      log(`  ${scenario}: ${all.handshakes} handshakes in ${all.seconds} s, ${all.failed} failed${all.errors.length ? ` (${all.errors.join('; ')})` : ''}; RSS after ${after?.rssMiB ?? '?'} MiB, peak ${after?.peakMiB ?? '?'} MiB`);
    }
    run.ok = get.status === 200 && get.body === BODY && (!padlock || run.readyS !== undefined) && (run.allNames?.failed ?? 0) === 0;
    if (!run.ok && !run.error) run.error = `GET https://${last}/ gave ${get.status}${get.error ? ` (${get.error})` : ''}, body ${get.body === BODY ? 'as expected' : 'not the upstream\'s'}`;
  } catch (e) {
    run.error = run.error ?? (e as Error).message;
    run.outputTail = d ? tail(d.output(), 12) : undefined;
    log(`  ${scenario}: FAILED ${run.error}${run.outputTail ? `\n${run.outputTail}` : ''}`);
  } finally {
    await d?.stop(padlock ? 10_000 : 5_000);
    if (padlock) {
      run.logTimeline = timeline.summary(wall0);
      const check = await checkIntact(fx, usesRedis(scenario));
      run.fixtureIntact = check.ok;
      if (!check.ok) {
        run.ok = false;
        run.error = `${run.error ? `${run.error}; ` : ''}padlock changed the fixture store${usesRedis(scenario) ? ' (its Redis copy)' : ''}: ${check.detail}`;
        if (!usesRedis(scenario)) await invalidateFixture(fx.storeDir);
      }
    }
  }
  return run;
}

function describeRun(r: StartupRun): string {
  const f = (x: number | undefined): string => (x === undefined ? '–' : `${x.toFixed(2)} s`);
  const m = (x: Memory | undefined): string => (x ? `${x.rssMiB} MiB` : '–');
  return `port ${f(r.portOpenS)}, ready ${f(r.readyS)}, first ${f(r.firstNameS)}, last ${f(r.lastNameS)}; RSS ready ${m(r.memAtReady)}, last ${m(r.memAtLastName)}, settled ${m(r.memSettled)} (peak ${r.memSettled?.peakMiB ?? '–'})`;
}

async function main(): Promise<number> {
  const startedAt = new Date().toISOString();
  if (location.kind !== 'fs') throw new Error('unreachable: the fixture folder');
  const build = await ensureBuilt(log);
  log(`padlock: ${build}`);
  const padlockBin = join(repoRoot, 'bin', 'padlock');
  const vers = await versions(padlockBin);
  log(`versions: ${Object.entries(vers).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const storeDir = location.dir;
  const info = await ensureFsFixture(storeDir, names, log);
  const fx: Fixture = { storeDir, info };

  workDir = await mkdtemp(join(tmpdir(), 'padlock-bench-startup-run-'));
  if (scenarios.some(usesRedis)) fx.redis = await redisCopy(fx, workDir);
  const upstreamPort = await startUpstream();
  const loadBefore = la();
  const busyBefore = await machineBusy(1000);
  log(`load before: ${loadBefore.join(' ')}, CPU busy ${busyBefore === undefined ? '?' : Math.round(busyBefore * 100)}% over 1 s`);

  const runs: StartupRun[] = [];
  try {
    for (let r = 1; r <= rounds; r++) {
      const order = r % 2 === 1 ? scenarios : [...scenarios].reverse();
      for (const s of order) {
        if (Date.now() > deadline - (timeoutSeconds + 30) * 1000) {
          log(`cap reached: skipping ${s} in round ${r}`);
          runs.push({ scenario: s, round: r, ok: false, error: 'skipped: --cap-seconds reached', loadavgBefore: la() });
          continue;
        }
        log(`round ${r}/${rounds}: ${s} (load ${la().join(' ')})`);
        const run = await measure(s, r, fx, upstreamPort);
        runs.push(run);
        if (run.ok) log(`  ${s}: ${describeRun(run)}`);
        if (run.fixtureIntact === false) throw new Error('the fixture store was changed by a run; it will be rebuilt next time');
      }
    }

    const profiles: { scenario: Scenario; summary: WindowSummary; run: StartupRun }[] = [];
    if (cpuProfDir) {
      for (const s of scenarios.filter(isPadlock)) {
        const dir = join(cpuProfDir, s);
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        log(`profiling ${s} (--cpu-prof; not part of the tables)`);
        const run = await measure(s, 0, fx, upstreamPort, { profileDir: dir });
        const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
        if (!files.length || run.lastNameS === undefined) {
          log(`  ${s}: no profile (${run.error ?? 'no .cpuprofile written'})`);
          continue;
        }
        const summary = await summarizeWindowFile(join(dir, files[0]!), run.lastNameS * 1000, 30);
        profiles.push({ scenario: s, summary, run });
      }
    }

    const cpu = cpus();
    const report: StartupReport = {
      benchmark: 'startup',
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { names, rounds, scenarios, timeoutSeconds, settleSeconds, waitIdleSeconds, store: storeDir, handshakeAll, ...(fx.redis ? { redis: redactUrl(fx.redis.url) } : {}), ...(cpuProfDir ? { cpuProf: cpuProfDir } : {}) },
      machine: { cpus: cpu.length, cpuModel: cpu[0]?.model ?? '?', memMiB: Math.round(totalmem() / 1048576), loadavgBefore: loadBefore, ...(busyBefore !== undefined ? { busyBefore } : {}), node: process.version, platform: `${platform()} ${release()}` },
      versions: vers,
      fixture: {
        dir: storeDir,
        names: info.names,
        built: info.built,
        createdAt: info.createdAt,
        writeSeconds: info.writeSeconds,
        rootFingerprint256: info.rootFingerprint256,
        leafValidityDays: info.leafValidityDays,
        sharedLeafKey: info.sharedLeafKey,
      },
      runs,
      ...(profiles.length ? { profiles: profiles.map((p) => ({ scenario: p.scenario, lastNameS: p.run.lastNameS, ...p.summary })) } : {}),
    };
    console.log(
      `\n## Start-up with ${names.toLocaleString('en')} stored certificates, ${report.machine.cpus} CPUs, load ${loadBefore.join(' ')} before; ${startedAt}\n\n` +
        `${Object.entries(vers).map(([k, v]) => `${k} ${v}`).join(', ')}; fixture ${storeDir} (${info.built ? `built in ${info.writeSeconds} s` : `reused, made ${info.createdAt}`}).\n`,
    );
    console.log(markdownRounds(report));
    const allTable = markdownAllNames(report);
    if (allTable) console.log(`\nHandshakes to every name, after the start settled:\n\n${allTable}`);
    console.log(`\n${markdownSummary(report)}`);
    for (const p of profiles) console.log(`\n### ${p.scenario}: where the time to the last name went (--cpu-prof run: ${p.run.lastNameS?.toFixed(2)} s to the last name)\n\n${windowMarkdown(p.summary)}`);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nJSON: ${outPath}`);
    return runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    killAllDaemons();
    killAllChildren();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    if (workDir && !values.keep) await rm(workDir, { recursive: true, force: true });
    else if (workDir) log(`kept ${workDir}`);
    workDir = undefined;
    await redisServer?.stop();
    redisServer = undefined;
  }
}

/**
 * The Redis store for the `*-redis` scenarios: a private redis-server on
 * 127.0.0.1 (`--redis start`) or the one `--redis URL` names, holding a copy
 * of the folder fixture under BENCH_REDIS_PREFIX, copied through the store
 * contract (`padlock store copy` does the same) unless it is there already.
 */
async function redisCopy(fx: Fixture, dir: string): Promise<NonNullable<Fixture['redis']>> {
  let url: string;
  let key: Buffer;
  let keyFile: string;
  if (redisArg === 'start') {
    redisServer = await startRedis();
    url = redisServer.url;
    key = newStoreKey();
    keyFile = join(dir, 'store.key');
    await writeFile(keyFile, `${key.toString('base64')}\n`, { mode: 0o600 });
  } else {
    url = redisArg;
    keyFile = resolve(values['store-key-file']!);
    const k = await loadStoreKey({ file: keyFile });
    if (!k) throw new Error(`--store-key-file ${keyFile}: no key`);
    key = k;
  }
  const redis = { url, key, keyFile, prefix: BENCH_REDIS_PREFIX };
  log(`redis: ${redactUrl(url)}${redisServer ? ' (started for this run)' : ''}`);
  const check = await checkIntact({ ...fx, redis }, true);
  if (check.ok) {
    log('redis: the fixture is there already');
    return redis;
  }
  const t0 = Date.now();
  const [from, to] = await Promise.all([openBenchStore({ kind: 'fs', dir: fx.storeDir }), redisStoreOf({ ...fx, redis })]);
  try {
    const r = await copyStore(from, to, { replace: true });
    log(`redis: copied ${r.copied} items of the fixture in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } finally {
    await Promise.all([from.close(), to.close()]);
  }
  const again = await checkIntact({ ...fx, redis }, true);
  if (!again.ok) throw new Error(`the Redis copy of the fixture is not complete: ${again.detail}`);
  return redis;
}

main().then(
  (code) => {
    process.exitCode = code;
    clearTimeout(hardStop);
  },
  (e: unknown) => {
    console.error('bench: failed:', e instanceof Error ? e.message : e);
    process.exitCode = 1;
  },
);
