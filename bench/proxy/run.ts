/**
 * HTTPS reverse-proxy benchmark: padlock, nginx and Caddy in front of the same
 * loopback upstream, one at a time, in one run.
 *
 *   npx node --import tsx bench/proxy/run.ts [--seconds 10] [--connections 50]
 *     [--out bench/results/proxy.json] [--rounds 2] [--proxies nginx,caddy,padlock,node-hello]
 *     [--phases keepalive,h2,handshakes,reconnect] [--handshake-seconds N]
 *     [--h2-streams 10]
 *     [--warmup-seconds 2] [--threads 2] [--cpu-prof DIR] [--cap-seconds 900]
 *     [--wait-idle 60] [--settle 0]
 *
 * Per proxy and round: keep-alive req/s and latency (wrk), HTTP/2 req/s and
 * latency (h2load, for the proxies that speak it), full TLS handshakes
 * per second (curl, no session reuse), reconnects with session resumption
 * (wrk, Connection: close), how many reconnects resume when each ticket is
 * used once (openssl s_client),
 * RSS/PSS idle and after the load, and the proxy's CPU time per request.
 * Rounds alternate the order of the proxies. See bench/proxy/README.md.
 */
import { mkdtemp, mkdir, writeFile, readFile, readdir, rm, access } from 'node:fs/promises';
import { rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import http from 'node:http';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { tmpdir, cpus, loadavg, platform, release } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runTimed, killAllChildren } from '../issue/child.js';
import { killAllDaemons, serverPids, memory, cpuSeconds, machineBusy, machineCpu, selfAndChildrenCpu, type Daemon } from './procs.js';
import { startUpstream, nginxPlan, caddyPlan, padlockPlan, nodeHelloPlan, PROXIES, EXTRA_PROXIES, SPEAKS_H2, BODY, HOST, type ProxyName, type ProxyPlan, type CertFiles } from './servers.js';
import { wrk, h2load, fullHandshakes, waitReady, resumptionProbe, dnsCheck, sleep, toolEnv, fingerprintOf, killLoad } from './load.js';
import { markdownTable, h2MarkdownTable, memoryMarkdownTable, type ProxyRun, type ProxyBenchReport, type CpuShare } from './report.js';
import { summarizeFile, profileMarkdown, type ProfileSummary } from './profile.js';
import { positiveInt } from '../args.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const PHASES = ['keepalive', 'h2', 'handshakes', 'reconnect'] as const;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/results/proxy.json' },
    proxies: { type: 'string', default: PROXIES.join(',') },
    phases: { type: 'string', default: PHASES.join(',') },
    'handshake-seconds': { type: 'string' },
    'warmup-seconds': { type: 'string', default: '2' },
    'h2-streams': { type: 'string', default: '10' },
    'cpu-prof': { type: 'string' },
    'cap-seconds': { type: 'string', default: '900' },
    'wait-idle': { type: 'string', default: '60' },
    settle: { type: 'string', default: '0' },
    keep: { type: 'boolean', default: false },
  },
});


const seconds = positiveInt('seconds', values.seconds);
const connections = positiveInt('connections', values.connections);
const threads = positiveInt('threads', values.threads);
const rounds = positiveInt('rounds', values.rounds);
const handshakeSeconds = positiveInt('handshake-seconds', values['handshake-seconds'] ?? String(seconds));
const warmupSeconds = positiveInt('warmup-seconds', values['warmup-seconds']);
const h2Streams = positiveInt('h2-streams', values['h2-streams']);
const capSeconds = positiveInt('cap-seconds', values['cap-seconds']);
const waitIdleSeconds = Number(values['wait-idle']);
if (!Number.isFinite(waitIdleSeconds) || waitIdleSeconds < 0) fail('--wait-idle must be a number of seconds >= 0');
const settleSeconds = Number(values.settle);
if (!Number.isFinite(settleSeconds) || settleSeconds < 0 || settleSeconds > 120) fail('--settle must be 0 to 120 seconds');
const outPath = resolve(values.out ?? 'bench/results/proxy.json');
const cpuProfDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;
const proxies = (values.proxies ?? '').split(',').map((s) => s.trim()).filter(Boolean) as ProxyName[];
const phases = (values.phases ?? '').split(',').map((s) => s.trim()).filter(Boolean);
for (const p of proxies) if (!PROXIES.includes(p) && !EXTRA_PROXIES.includes(p)) fail(`unknown proxy ${JSON.stringify(p)}; known: ${[...PROXIES, ...EXTRA_PROXIES].join(', ')}`);
const baseBin = process.env['BENCH_PADLOCK_BASE_BIN'];
if (proxies.includes('padlock-base') && !baseBin) fail('padlock-base needs BENCH_PADLOCK_BASE_BIN (bin/padlock of the build to compare with)');
/** `--workers` of the `padlock-base` row (`BENCH_PADLOCK_BASE_WORKERS`, default 1): 2 compares against `padlock`. */
const baseWorkers = Math.max(1, Math.floor(Number(process.env['BENCH_PADLOCK_BASE_WORKERS'] ?? 1)) || 1);
for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) fail(`unknown phase ${JSON.stringify(p)}; known: ${PHASES.join(', ')}`);
if (threads > connections) fail('--threads must not exceed --connections');

function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

const deadline = Date.now() + capSeconds * 1000;
let workDir: string | undefined;

process.on('exit', () => {
  killLoad();
  killAllDaemons();
  killAllChildren();
  if (workDir && !values.keep) rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    console.error(`bench: ${sig}, cleaning up`);
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

const log = (msg: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};
const la = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);
const tail = (s: string, n = 8): string => s.trim().split('\n').slice(-n).join('\n');
const capLeft = (): number => Math.max(1, (deadline - Date.now()) / 1000);

/** padlock's own Node (the npm package `node`), else the one running the bench. */
function nodeBinFor(): string {
  const local = join(repoRoot, 'node_modules', '.bin', 'node');
  return existsSync(local) ? local : process.execPath;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

async function httpOk(port: number): Promise<boolean> {
  return new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 1000 }, (r) => {
      r.resume();
      r.on('end', () => res(r.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(false));
  });
}

async function versions(padlockBin: string): Promise<Record<string, string>> {
  const v: Record<string, string> = {};
  const run = async (key: string, cmd: string, args: string[], pick: (out: string) => string | undefined): Promise<void> => {
    const r = await runTimed(cmd, args, toolEnv(), 15_000, repoRoot);
    const s = pick(`${r.stdout}\n${r.stderr}`.trim());
    if (s) v[key] = s;
  };
  await run('nginx', '/usr/sbin/nginx', ['-v'], (o) => /nginx\/(\S+)/.exec(o)?.[1]);
  await run('caddy', '/usr/bin/caddy', ['version'], (o) => o.split('\n')[0]?.trim());
  await run('wrk', 'wrk', ['-v'], (o) => /wrk (\S+)/.exec(o)?.[1]);
  await run('h2load', 'h2load', ['--version'], (o) => /nghttp2\/(\S+)/.exec(o)?.[1]);
  await run('curl', 'curl', ['--version'], (o) => o.split('\n')[0]?.split(' ').slice(1, 4).join(' '));
  await run('openssl', 'openssl', ['version'], (o) => o.split('\n')[0]);
  await run('padlock', padlockBin, ['--version'], (o) => o.split('\n')[0]?.trim());
  const nodeBin = join(repoRoot, 'node_modules', '.bin', 'node');
  await run('padlock node', nodeBin, ['--version'], (o) => o.split('\n')[0]?.trim());
  for (const pkg of ['nginx-light', 'nginx-core', 'nginx', 'caddy', 'wrk', 'curl', 'nghttp2-client']) {
    await run(`deb ${pkg}`, 'dpkg-query', ['-W', '-f', '${Status} ${Version}', pkg], (o) => (/install ok installed (\S+)/.exec(o)?.[1]));
  }
  return v;
}

/** The shared certificate: padlock's local-CA `localhost` certificate (first padlock start); openssl self-signed if padlock is unusable. */
async function makeCertificate(
  plan: ReturnType<typeof padlockPlan>,
  padlockBin: string,
  dir: string,
): Promise<{ files: CertFiles; ca?: string; source: string; padlockFirstStartSeconds?: number; padlockError?: string }> {
  const files = { fullchain: join(plan.configDir, 'live', HOST, 'fullchain.pem'), privkey: join(plan.configDir, 'live', HOST, 'privkey.pem') };
  let padlockError: string | undefined;
  const t0 = Date.now();
  let d: Daemon | undefined;
  try {
    d = await plan.start();
    // Wait for the local CA and the certificate, then for a verified 200 through padlock.
    let ca: string | undefined;
    while (Date.now() - t0 < 30_000 && !d.exited()) {
      try {
        await access(files.fullchain);
        const r = await runTimed(padlockBin, ['trust', '--pem', '--config-dir', plan.configDir], toolEnv(), 15_000, repoRoot);
        if (r.ok && r.stdout.includes('BEGIN CERTIFICATE')) {
          ca = r.stdout;
          break;
        }
      } catch {
        /* not yet */
      }
      await sleep(50);
    }
    if (ca) {
      const ready = await waitReady(plan.port, ca, BODY, Math.max(1000, 30_000 - (Date.now() - t0)), () => !d!.exited());
      if (ready.status === 200) return { files, ca, source: 'padlock local CA (first `padlock run` start)', padlockFirstStartSeconds: (Date.now() - t0) / 1000 };
      padlockError = `padlock did not answer 200 through its proxy: ${ready.error ?? ready.status}`;
    } else {
      padlockError = `padlock made no certificate/local CA within 30 s${d.exited() ? ' (exited)' : ''}`;
    }
    padlockError += `\n${tail(d.output())}`;
  } catch (e) {
    padlockError = (e as Error).message;
  } finally {
    await d?.stop(15_000);
  }
  log(`padlock could not provide the certificate (${padlockError}); using an openssl self-signed one`);
  await mkdir(join(dir, 'selfsigned'), { recursive: true });
  const own = { fullchain: join(dir, 'selfsigned', 'fullchain.pem'), privkey: join(dir, 'selfsigned', 'privkey.pem') };
  const r = await runTimed(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`, '-days', '2', '-keyout', own.privkey, '-out', own.fullchain],
    toolEnv(),
    15_000,
  );
  if (!r.ok) throw new Error(`openssl req failed: ${tail(r.stderr)}`);
  return { files: own, ca: await readFile(own.fullchain, 'utf8'), source: 'openssl self-signed (padlock failed)', padlockError };
}

interface Mark {
  proxy: number;
  upstream: number;
  tools: number;
  machine?: { busy: number; total: number };
  at: bigint;
}

/** CPU counters at one instant: the proxy's processes, the upstream's, this bench with its reaped children, the machine. */
function mark(proxyWrapper: number, upstreamWrapper: number): Mark {
  return { proxy: cpuSeconds(serverPids(proxyWrapper)), upstream: cpuSeconds(serverPids(upstreamWrapper)), tools: selfAndChildrenCpu(), machine: machineCpu(), at: process.hrtime.bigint() };
}

function share(a: Mark, b: Mark, ops: number | undefined, cpuCount: number): CpuShare {
  const wall = Number(b.at - a.at) / 1e9;
  const s = cpuShare(a.proxy, b.proxy, wall, ops);
  if (a.machine && b.machine && b.machine.total > a.machine.total) {
    // /proc/stat's total advances by cpuCount seconds per wall second.
    const w = (b.machine.total - a.machine.total) / cpuCount;
    const busy = (b.machine.busy - a.machine.busy) / w;
    const up = (b.upstream - a.upstream) / w;
    const tools = (b.tools - a.tools) / w;
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    s.machine = { busyCores: r2(busy), upstreamCores: r2(up), toolCores: r2(tools), otherCores: r2(Math.max(0, busy - s.proxyCores - up - tools)) };
  }
  return s;
}

function cpuShare(before: number, after: number, wallSeconds: number, ops: number | undefined): CpuShare {
  const used = Math.max(0, after - before);
  return {
    proxyCpuSeconds: Math.round(used * 100) / 100,
    ...(ops ? { cpuUsPerOp: Math.round((used / ops) * 1e6 * 10) / 10 } : {}),
    proxyCores: Math.round((used / Math.max(0.001, wallSeconds)) * 100) / 100,
  };
}

async function measure(plan: ProxyPlan, round: number, ca: string | undefined, fingerprint: string, dir: string, upstreamPid: number): Promise<ProxyRun> {
  // On a shared machine: give other work up to --wait-idle seconds to finish (machine < 25% busy over 1 s).
  const w0 = Date.now();
  let busy = await machineBusy(1000);
  while (busy !== undefined && busy > 0.25 && Date.now() - w0 < waitIdleSeconds * 1000) busy = await machineBusy(1000);
  const run: ProxyRun = { proxy: plan.name, round, ok: false, loadavgBefore: la(), ...(busy !== undefined ? { busyBefore: busy } : {}), waitedSeconds: Math.round((Date.now() - w0) / 100) / 10 };
  if (waitIdleSeconds > 0 && busy !== undefined && busy > 0.25) log(`  machine still ${Math.round(busy * 100)}% busy after ${waitIdleSeconds} s; measuring anyway`);
  const t0 = Date.now();
  let d: Daemon | undefined;
  try {
    d = await plan.start();
    const ready = await waitReady(plan.port, ca, BODY, 30_000, () => !d!.exited());
    if (ready.status !== 200) throw new Error(`not ready: ${ready.error ?? ready.status}`);
    run.readySeconds = (Date.now() - t0) / 1000;
    run.certFingerprint = ready.fingerprint256;
    run.sameCertificate = ready.fingerprint256 === fingerprint;
    if (ready.protocol) run.tlsProtocol = ready.protocol;
    if (!run.sameCertificate) throw new Error(`serves another certificate (${ready.fingerprint256 ?? '?'})`);
    await sleep(300);
    const pids = serverPids(d.pid);
    if (!pids.length) throw new Error('no server process found');
    run.memIdle = memory(pids);
    // --settle: the same processes again after S quiet seconds (padlock gives memory back after a busy spell; start-up is one).
    if (settleSeconds > 0) {
      await sleep(settleSeconds * 1000);
      run.memIdleSettled = memory(serverPids(d.pid));
    }

    if (phases.includes('keepalive')) {
      // Warm-up (JIT, pools, TLS caches): same settings, not recorded.
      await wrk(plan.port, { threads, connections, seconds: warmupSeconds });
      const m0 = mark(d.pid, upstreamPid);
      const w = await wrk(plan.port, { threads, connections, seconds });
      const m1 = mark(d.pid, upstreamPid);
      run.keepAlive = { ...w, cpu: share(m0, m1, w.requests, cpus().length) };
      run.memAfterKeepAlive = memory(serverPids(d.pid));
      if (settleSeconds > 0) {
        await sleep(settleSeconds * 1000);
        run.memAfterKeepAliveSettled = memory(serverPids(d.pid));
      }
      log(`  ${plan.name}: keep-alive ${w.ok ? `${Math.round(w.rps ?? 0)} req/s, p50 ${w.latencyMs?.p50} ms, p99 ${w.latencyMs?.p99} ms, ${run.keepAlive.cpu?.cpuUsPerOp} µs CPU/req` : `FAILED ${w.error}`}`);
    }
    if (phases.includes('h2') && SPEAKS_H2.has(plan.name)) {
      // h2load's own warm-up (--warm-up-time) is outside its numbers, not outside the CPU marks: the CPU share covers both.
      const m0 = mark(d.pid, upstreamPid);
      const h = await h2load(plan.port, { threads, clients: connections, streams: h2Streams, seconds, warmupSeconds, logFile: join(dir, `h2load-${plan.name}.log`) });
      const m1 = mark(d.pid, upstreamPid);
      const ops = h.rps ? h.rps * (Number(m1.at - m0.at) / 1e9) : undefined;
      run.h2 = { ...h, cpu: share(m0, m1, ops, cpus().length) };
      run.memAfterH2 = memory(serverPids(d.pid));
      log(`  ${plan.name}: h2 ${h.ok ? `${Math.round(h.rps ?? 0)} req/s, p50 ${h.latencyMs?.p50?.toFixed(2)} ms, p99 ${h.latencyMs?.p99?.toFixed(2)} ms, errors ${JSON.stringify(h.errors)}` : `FAILED ${h.error}`}`);
    }
    if (phases.includes('handshakes')) {
      const m0 = mark(d.pid, upstreamPid);
      const h = await fullHandshakes(plan.port, { processes: Math.min(2, cpus().length), connections, seconds: handshakeSeconds, warmupSeconds: 1 });
      const m1 = mark(d.pid, upstreamPid);
      // CPU covers warm-up + window; scale the op count to the same span.
      const ops = h.perSecond ? h.perSecond * (Number(m1.at - m0.at) / 1e9) : undefined;
      run.handshakes = { ...h, cpu: share(m0, m1, ops, cpus().length) };
      log(`  ${plan.name}: full handshakes ${h.ok ? `${h.perSecond}/s (${h.failed} failed)` : `FAILED ${h.error}`}`);
      await sleep(500);
    }
    if (phases.includes('reconnect')) {
      const m0 = mark(d.pid, upstreamPid);
      const w = await wrk(plan.port, { threads, connections, seconds: handshakeSeconds, headers: ['Connection: close'] });
      const m1 = mark(d.pid, upstreamPid);
      run.reconnect = { ...w, cpu: share(m0, m1, w.requests, cpus().length) };
      run.resumption = await resumptionProbe(plan.port, dir);
      log(`  ${plan.name}: reconnects ${w.ok ? `${Math.round(w.rps ?? 0)}/s` : `FAILED ${w.error}`}; resumes: ${run.resumption.detail}`);
    }
    await sleep(300);
    run.memAfterAll = memory(serverPids(d.pid));
    run.ok = (!run.keepAlive || run.keepAlive.ok) && (!run.h2 || run.h2.ok) && (!run.handshakes || run.handshakes.ok) && (!run.reconnect || run.reconnect.ok);
    if (!run.ok) run.outputTail = tail(d.output(), 15);
  } catch (e) {
    run.error = (e as Error).message;
    run.outputTail = d ? tail(d.output(), 15) : undefined;
    log(`  ${plan.name}: FAILED ${run.error}\n${run.outputTail ?? ''}`);
  } finally {
    await d?.stop(plan.name.startsWith('padlock') ? 15_000 : 5_000);
  }
  return run;
}

async function main(): Promise<number> {
  const startedAt = new Date().toISOString();
  const loadBefore = la();
  const busyBefore = await machineBusy(1000);
  log(`load before: ${loadBefore.join(' ')}, CPU busy ${busyBefore === undefined ? '?' : Math.round(busyBefore * 100)}% over 1 s`);
  const padlockBin = join(repoRoot, 'bin', 'padlock');
  const vers = await versions(padlockBin);
  log(`versions: ${Object.entries(vers).map(([k, v]) => `${k} ${v}`).join(', ')}`);

  workDir = await mkdtemp(join(tmpdir(), 'padlock-bench-proxy-'));
  const upPort = await freePort();
  const upstream = await startUpstream(join(workDir, 'upstream'), upPort, capLeft());
  try {
    const t = Date.now();
    while (!(await httpOk(upPort))) {
      if (upstream.exited() || Date.now() - t > 10_000) throw new Error(`upstream nginx did not start: ${tail(upstream.output())}`);
      await sleep(50);
    }
    const dns = await dnsCheck(upPort, workDir);
    log(`DNS check: ${dns.checked ? (dns.clean ? 'clean (no UDP, no connect outside 127.0.0.1)' : `SUSPICIOUS: ${dns.suspicious.join(' | ')}`) : dns.note}`);
    if (dns.checked && !dns.clean) throw new Error(`wrk resolved ${HOST} with network traffic: ${dns.suspicious.join(' | ')}`);

    const pp = { https: await freePort(), http: await freePort(), admin: await freePort() };
    const profEnv: Record<string, string> = cpuProfDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${cpuProfDir}` } : {};
    if (cpuProfDir) await mkdir(cpuProfDir, { recursive: true });
    // Profiles already in the folder are an earlier run's: only the ones this run writes are summarized.
    const earlierProfiles = new Set(cpuProfDir ? await readdir(cpuProfDir) : []);
    const padlock = padlockPlan(padlockBin, join(workDir, 'padlock'), pp, upPort, capLeft, profEnv);
    const cert = await makeCertificate(padlock, padlockBin, workDir);
    const pem = await readFile(cert.files.fullchain, 'utf8');
    const fingerprint = fingerprintOf(pem);
    const keyType = createPrivateKey(await readFile(cert.files.privkey)).asymmetricKeyType ?? '?';
    const leaf = new X509Certificate(pem);
    log(`certificate: ${cert.source}, ${keyType}, ${leaf.subjectAltName}, first padlock start to 200: ${cert.padlockFirstStartSeconds?.toFixed(2) ?? '–'} s`);

    const plans: Record<ProxyName, ProxyPlan> = {
      nginx: nginxPlan(join(workDir, 'nginx'), await freePort(), upPort, cert.files, capLeft),
      caddy: caddyPlan(join(workDir, 'caddy'), await freePort(), await freePort(), upPort, cert.files, capLeft),
      padlock,
      // The same config dir (so the same certificate) and ports: the proxies run one at a time.
      'padlock-1w': padlockPlan(padlockBin, join(workDir, 'padlock'), pp, upPort, capLeft, profEnv, 1, 'padlock-1w'),
      'padlock-h1': padlockPlan(padlockBin, join(workDir, 'padlock'), pp, upPort, capLeft, profEnv, 1, 'padlock-h1', ['--http2', 'false']),
      'padlock-base': padlockPlan(baseBin ?? padlockBin, join(workDir, 'padlock'), pp, upPort, capLeft, profEnv, baseWorkers, 'padlock-base'),
      'node-hello': nodeHelloPlan(nodeBinFor(), join(repoRoot, 'bench', 'proxy', 'hello-server.mjs'), await freePort(), cert.files, capLeft),
    };
    const runs: ProxyRun[] = [];
    for (let r = 1; r <= rounds; r++) {
      const order = r % 2 === 1 ? proxies : [...proxies].reverse();
      for (const name of order) {
        if (Date.now() > deadline - (seconds + warmupSeconds + 2 * handshakeSeconds + 20) * 1000) {
          log(`cap reached: skipping ${name} in round ${r}`);
          runs.push({ proxy: name, round: r, ok: false, error: 'skipped: --cap-seconds reached', loadavgBefore: la() });
          continue;
        }
        if (name.startsWith('padlock') && cert.padlockError) {
          runs.push({ proxy: name, round: r, ok: false, error: cert.padlockError, loadavgBefore: la() });
          continue;
        }
        log(`round ${r}/${rounds}: ${name} on 127.0.0.1:${plans[name].port} (load ${la().join(' ')})`);
        runs.push(await measure(plans[name], r, cert.ca, fingerprint, workDir, upstream.pid));
      }
    }

    let profile: ProfileSummary[] | undefined;
    if (cpuProfDir) {
      // One file per process: with --workers, the primary's and each worker's (they inherit NODE_OPTIONS), so every
      // process is summarized; the file name carries its pid. A primary that only hands out work shows mostly idle.
      const files = (await readdir(cpuProfDir)).filter((f) => f.endsWith('.cpuprofile') && !earlierProfiles.has(f)).sort();
      profile = [];
      for (const f of files) profile.push(await summarizeFile(join(cpuProfDir, f)));
    }

    const cpu = cpus();
    const report: ProxyBenchReport = {
      benchmark: 'proxy',
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { seconds, handshakeSeconds, warmupSeconds, connections, threads, h2Streams, rounds, proxies, phases, waitIdleSeconds, settleSeconds, ...(cpuProfDir ? { cpuProf: cpuProfDir } : {}) },
      machine: { cpus: cpu.length, cpuModel: cpu[0]?.model ?? '?', loadavgBefore: loadBefore, ...(busyBefore !== undefined ? { busyBefore } : {}), node: process.version, platform: `${platform()} ${release()}` },
      versions: vers,
      upstream: { kind: 'nginx, 1 worker, `return 200` of a fixed body, keep-alive', body: BODY, bytes: Buffer.byteLength(BODY) },
      certificate: { source: cert.source, fingerprint256: fingerprint, keyType, ...(cert.padlockFirstStartSeconds !== undefined ? { padlockFirstStartSeconds: cert.padlockFirstStartSeconds } : {}) },
      dnsCheck: dns,
      runs,
      ...(profile ? { profile } : {}),
    };
    const v = (k: string): string => vers[k] ?? '?';
    console.log(
      `\n## HTTPS reverse proxy, ${report.machine.cpus} CPUs, load ${loadBefore.join(' ')} before (CPU ${busyBefore === undefined ? '?' : Math.round(busyBefore * 100)}% busy); ${startedAt}\n\n` +
        `nginx ${v('nginx')}, Caddy ${v('caddy')}, padlock ${v('padlock')} (Node ${v('padlock node')}); wrk ${v('wrk')}, h2load ${v('h2load')}, curl ${v('curl')}; certificate: ${cert.source} (${keyType}).\n`,
    );
    console.log(markdownTable(report));
    if (report.runs.some((p) => p.h2)) console.log(`\n${h2MarkdownTable(report)}`);
    if (settleSeconds > 0) console.log(`\n${memoryMarkdownTable(report)}`);
    if (profile) for (const p of profile) console.log(`\n${profileMarkdown(p)}`);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, JSON.stringify(report, null, 2) + '\n');
    console.log(`\nJSON: ${outPath}`);
    return runs.every((r) => r.ok) ? 0 : 1;
  } finally {
    await upstream.stop();
    killAllDaemons();
    killAllChildren();
    if (workDir && !values.keep) await rm(workDir, { recursive: true, force: true });
    else if (workDir) log(`kept ${workDir}`);
    workDir = undefined;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error('bench: failed:', e);
    process.exitCode = 1;
  },
);
