/**
 * Fleet benchmark: three padlock replicas sharing one Redis store, all
 * wanting the same N names (1,000 by default) at the same moment. How long
 * until every replica serves every name, and does the CA see exactly one
 * order per name?
 *
 *   npx node --import tsx bench/fleet/run.ts [--names 1000] [--rounds 2]
 *     [--dns balancer|spread|one] [--concurrency N] [--timeout 900] [--cap-seconds S]
 *     [--cpu-prof DIR] [--heap-snapshot DIR] [--out bench/results/fleet.json] [--keep]
 *
 * Each round gets a fresh Pebble and an empty Redis (round.ts). Everything
 * listens on and talks to 127.0.0.x. Every replica runs under `timeout` in
 * its own process group; a round that is not done after --timeout seconds
 * fails with what was missing, and the whole run stops at --cap-seconds.
 * See bench/fleet/README.md.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir, cpus, platform, release, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { positiveInt } from '../args.js';
import { ensureBuilt } from '../build.js';
import { runTimed, killAllChildren } from '../issue/child.js';
import { killAllDaemons } from '../proxy/procs.js';
import { toolEnv } from '../proxy/load.js';
import { killOwnRedis, loadAverage } from './machine.js';
import { runRound, fleetName, DNS_MODES, UPSTREAM_BODY, type DnsMode, type RoundResult } from './round.js';
import { markdownCpu, markdownReplicas, markdownRounds, markdownSummary, type FleetReport } from './report.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const { values } = parseArgs({
  options: {
    names: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' },
    dns: { type: 'string', default: 'balancer' },
    concurrency: { type: 'string' },
    timeout: { type: 'string', default: '900' },
    'cap-seconds': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'heap-snapshot': { type: 'string' },
    out: { type: 'string', default: 'bench/results/fleet.json' },
    keep: { type: 'boolean', default: false },
  },
});

function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

const names = positiveInt('names', values.names);
const rounds = positiveInt('rounds', values.rounds);
const timeoutSeconds = positiveInt('timeout', values.timeout);
const concurrency = values.concurrency === undefined ? undefined : positiveInt('concurrency', values.concurrency);
const capSeconds = values['cap-seconds'] === undefined ? rounds * (timeoutSeconds + 180) : positiveInt('cap-seconds', values['cap-seconds']);
if (names > 99_999) fail('--names must be at most 99999 (the names are n00001 ... n99999)');
if (!DNS_MODES.includes(values.dns as DnsMode)) fail(`--dns must be one of ${DNS_MODES.join(', ')}, got ${JSON.stringify(values.dns)}`);
const dns = values.dns as DnsMode;
const outPath = resolve(values.out ?? 'bench/results/fleet.json');
const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
const heapDir = values['heap-snapshot'] ? resolve(values['heap-snapshot']) : undefined;

const log = (line: string): void => console.error(`[${new Date().toISOString().slice(11, 19)}] ${line}`);

let workDir: string | undefined;
let upstream: http.Server | undefined;

process.on('exit', () => {
  killAllDaemons();
  killAllChildren();
  killOwnRedis();
  if (workDir && !values.keep) rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`bench: ${sig}, cleaning up`);
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}
// The whole run is bounded even if a step hangs: the replicas die by `timeout`, and so does the bench.
const hardStop = setTimeout(() => {
  console.error(`bench: FAILED: --cap-seconds ${capSeconds} reached; stopping`);
  process.exit(1);
}, capSeconds * 1000);
hardStop.unref();

async function versions(padlockBin: string): Promise<Record<string, string>> {
  const v: Record<string, string> = {};
  const run = async (key: string, cmd: string, args: string[], pick: (out: string) => string | undefined): Promise<void> => {
    const r = await runTimed(cmd, args, toolEnv(), 15_000, repoRoot);
    const s = pick(`${r.stdout}\n${r.stderr}`.trim());
    if (s) v[key] = s;
  };
  await run('padlock', padlockBin, ['--version'], (o) => o.split('\n')[0]?.trim());
  await run('node', join(repoRoot, 'node_modules', '.bin', 'node'), ['--version'], (o) => o.split('\n')[0]?.trim());
  await run('redis', 'redis-server', ['--version'], (o) => /v=(\S+)/.exec(o)?.[1]);
  await run('pebble', 'dpkg-query', ['-W', '-f', '${Version}', 'pebble'], (o) => o.split('\n')[0]?.trim());
  return v;
}

/** A tiny upstream in this process: every name of every replica routes here. */
async function startUpstream(): Promise<number> {
  upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(UPSTREAM_BODY) });
    res.end(UPSTREAM_BODY);
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  return (upstream.address() as net.AddressInfo).port;
}

function describe(r: RoundResult): string {
  if (!r.ok) return `FAILED: ${r.error ?? '?'}`;
  return `all served after ${r.allServedS?.toFixed(1)} s (first ${r.everywhere?.minS.toFixed(1)}, median ${r.everywhere?.medianS.toFixed(1)}); orders at the CA ${r.ca.orders}; per replica ${r.replicas.map((p) => p.log.ordersStored).join('/')}`;
}

async function main(): Promise<number> {
  const startedAt = new Date().toISOString();
  log(`padlock: ${await ensureBuilt(log)}`);
  const padlockBin = join(repoRoot, 'bin', 'padlock');
  const vers = await versions(padlockBin);
  log(`versions: ${Object.entries(vers).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  workDir = await mkdtemp(join(tmpdir(), 'padlock-bench-fleet-'));
  const upstreamPort = await startUpstream();
  const nameList = Array.from({ length: names }, (_, i) => fleetName(i + 1));
  const results: RoundResult[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const nodeOptions: string[] = [];
      let heapSnapshotDir: string | undefined;
      if (cpuProfDir) {
        const dir = join(cpuProfDir, `round-${round}`);
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        nodeOptions.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
      }
      if (heapDir) {
        heapSnapshotDir = join(heapDir, `round-${round}`);
        await rm(heapSnapshotDir, { recursive: true, force: true });
        await mkdir(heapSnapshotDir, { recursive: true });
        nodeOptions.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${heapSnapshotDir}`);
      }
      const r = await runRound({
        round, names: nameList, dns, timeoutSeconds, padlockBin, repoRoot, workDir, upstreamPort, log,
        ...(concurrency ? { concurrency } : {}), ...(nodeOptions.length ? { nodeOptions: nodeOptions.join(' ') } : {}),
        ...(heapSnapshotDir ? { heapSnapshotDir } : {}),
      });
      results.push(r);
      log(`round ${round}: ${describe(r)}`);
    }
    const cpu = cpus();
    const report: FleetReport = {
      benchmark: 'fleet',
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { names, rounds, dns, timeoutSeconds, capSeconds, ...(concurrency ? { concurrency } : {}), ...(cpuProfDir ? { cpuProf: cpuProfDir } : {}), ...(heapDir ? { heapSnapshot: heapDir } : {}) },
      machine: { cpus: cpu.length, cpuModel: cpu[0]?.model ?? '?', memMiB: Math.round(totalmem() / 1048576), node: process.version, platform: `${platform()} ${release()}` },
      versions: vers,
      rounds: results,
    };
    console.log(
      `\n## Fleet: ${names.toLocaleString('en')} names, 3 replicas, one Redis; ${startedAt} – ${report.finishedAt}\n\n` +
        `${Object.entries(vers).map(([k, v]) => `${k} ${v}`).join(', ')}; ${report.machine.cpus} CPUs (${report.machine.cpuModel}); DNS ${dns}; padlock --concurrency ${concurrency ?? 'default'}; load at the end ${loadAverage().join(' ')}.\n`,
    );
    console.log(markdownRounds(report));
    console.log(`\n${markdownReplicas(report)}`);
    console.log(`\n${markdownCpu(report)}`);
    console.log(`\n${markdownSummary(report)}`);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nJSON: ${outPath}`);
    return results.every((r) => r.ok) ? 0 : 1;
  } finally {
    killAllDaemons();
    killAllChildren();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    if (workDir && !values.keep) await rm(workDir, { recursive: true, force: true });
    else if (workDir) log(`kept ${workDir}`);
    workDir = undefined;
  }
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
