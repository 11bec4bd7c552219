/**
 * Requests failed during a redeploy: the app behind one name goes away for
 * `--gap-ms` (2 s) and comes back, under a constant load, in front of each
 * proxy, in one run.
 *
 *   npx node --import tsx bench/redeploy/run.ts [--rounds 3] [--rate 200]
 *     [--gap-ms 2000] [--rows padlock,padlock-hold-2000,padlock-no-wait,nginx-503,caddy-lb-try,padlock-docker]
 *     [--out bench/results/redeploy.json] [--cap-seconds 330]
 *
 * Rows (see bench/README.md):
 * - `padlock`: a static site (config file) to a loopback app process the
 *   bench stops and starts again; `--upstream-wait 5` (the default).
 * - `padlock-hold-2000`: the same with `--held-requests-max 2000` (one name
 *   may hold 1000 requests, 5 s at 200 req/s; the default 1000 lets it hold 500).
 * - `padlock-no-wait`: the same with `--upstream-wait 0` (padlock before
 *   held requests: a down upstream answers 502 at once).
 * - `nginx-503`: nginx-proxy's answer for a name with no container, 503 with
 *   a valid certificate: nginx with `error_page 502 504 = @unavailable` ->
 *   `return 503`, in front of the same app process.
 * - `caddy-lb-try`: Caddy's `reverse_proxy` with `lb_try_duration 5s` and
 *   `lb_try_interval 250ms`, in front of the same app process.
 * - `padlock-docker`: padlock with Docker discovery on a private dockerd
 *   (no --live-restore): the container is stopped, and after the gap a new
 *   container with the same labels is started, as a redeploy does.
 *
 * For the first four rows the "container" is simulated by a loopback process
 * (bench/redeploy/app.mjs) that is stopped with SIGTERM and started again:
 * nginx and Caddy here have no Docker discovery, and padlock's static site
 * is the same setup for comparison. Rounds rotate the order of the rows.
 */
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import https from 'node:https';
import { loadavg, tmpdir, cpus } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runTimed, killAllChildren } from '../issue/child.js';
import { killAllDaemons, startDaemon, type Daemon } from '../proxy/procs.js';
import { toolEnv } from '../proxy/load.js';
import { positiveInt } from '../args.js';
import { startLoad, type LoadResult } from './load.js';
import { startDockerd, type Dockerd, type TestContainer } from '../../test/support/dockerd.js';
import { freePort } from '../../test/support/pebble.js';
import { caddyPlan } from '../proxy/servers.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const ROWS = ['padlock', 'padlock-hold-2000', 'padlock-no-wait', 'nginx-503', 'caddy-lb-try', 'padlock-docker'] as const;
type Row = (typeof ROWS)[number];
/** A local name: padlock's local CA issues it, and the others get a self-signed certificate for it. */
const NAME = 'app.localhost';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '200' },
    'gap-ms': { type: 'string', default: '2000' },
    rows: { type: 'string', default: ROWS.join(',') },
    out: { type: 'string', default: 'bench/results/redeploy.json' },
    'cap-seconds': { type: 'string', default: '330' },
  },
});
const rounds = positiveInt('rounds', values.rounds);
const rate = positiveInt('rate', values.rate);
const gapMs = positiveInt('gap-ms', values['gap-ms']);
const capSeconds = positiveInt('cap-seconds', values['cap-seconds']);
const rows = (values.rows ?? '').split(',').map((s) => s.trim()).filter(Boolean) as Row[];
for (const r of rows) if (!(ROWS as readonly string[]).includes(r)) fail(`unknown row ${JSON.stringify(r)}; known: ${ROWS.join(', ')}`);
const outPath = resolve(values.out ?? 'bench/results/redeploy.json');
const BEFORE_MS = 2_000;
const AFTER_MS = 3_000;

function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

const deadline = Date.now() + capSeconds * 1000;
const capLeft = (): number => Math.max(1, (deadline - Date.now()) / 1000);
let workDir: string | undefined;
let dockerd: Dockerd | undefined;
process.on('exit', () => {
  killAllDaemons();
  killAllChildren();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void (dockerd?.stop() ?? Promise.resolve()).finally(() => process.exit(130)));

const log = (msg: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const la = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nodeBin = existsSync(join(repoRoot, 'node_modules', '.bin', 'node')) ? join(repoRoot, 'node_modules', '.bin', 'node') : process.execPath;
const padlockBin = join(repoRoot, 'bin', 'padlock');

/** One GET through the proxy, verified against `ca`: its status, or 0. */
function probe(port: number, ca: string): Promise<number> {
  return new Promise((res) => {
    const req = https.get({ host: '127.0.0.1', port, servername: NAME, headers: { host: NAME }, ca, agent: false, timeout: 2_000 }, (r) => {
      r.resume().on('end', () => res(r.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => res(0));
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Resolves once 127.0.0.1:port accepts a connection (a connect, never a bind: the app must get the port). */
function listening(port: number): Promise<true> {
  return until('the app to listen', () => new Promise<true | undefined>((res) => {
    const c = connect({ host: '127.0.0.1', port }, () => {
      c.destroy();
      res(true);
    });
    c.once('error', () => res(undefined));
  }), 15_000);
}

/** The app behind the name, and how to take it away and bring it back. */
interface App {
  /** Resolves once it accepts connections; with the time (ms since the epoch) it started to, when known exactly. */
  start(): Promise<number | undefined>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

function processApp(dir: string, port: number): App {
  let current: { d: Daemon; go: string } | undefined;
  let next: { d: Daemon; go: string } | undefined;
  let n = 0;
  const spawnApp = (): { d: Daemon; go: string } => {
    const go = join(dir, `go-${++n}`);
    const d = startDaemon('app', nodeBin, [join(repoRoot, 'bench', 'redeploy', 'app.mjs'), String(port), `app-${n}`, go], { env: process.env, cwd: dir, capSeconds: capLeft() });
    return { d, go };
  };
  return {
    async start() {
      // The next app is spawned long before it is needed and listens the moment its go file exists,
      // so the gap is the bench's, not Node's start-up time on a busy machine.
      const app = next ?? spawnApp();
      await writeFile(app.go, '');
      current = app;
      await listening(port);
      next = spawnApp();
      return Number(await readFile(`${app.go}.listening`, 'utf8').catch(() => '')) || undefined;
    },
    async stop() {
      await current?.d.stop(2_000);
      current = undefined;
    },
    async close() {
      await current?.d.stop(2_000);
      await next?.d.stop(2_000);
    },
  };
}

function dockerApp(docker: Dockerd, port: number, round: number): App {
  let c: TestContainer | undefined;
  let n = 0;
  const all: TestContainer[] = [];
  return {
    async start() {
      c = await docker.runContainer({ name: `redeploy-${round}-${++n}`, port, labels: { 'padlock.host': NAME } });
      all.push(c);
      await listening(port);
      return undefined;
    },
    async stop() {
      await c?.stop();
    },
    async close() {
      for (const x of all) await x.remove().catch(() => undefined);
    },
  };
}

/** A proxy in front of the app: its HTTPS port, the CA its certificate chains to, and how to stop it. */
interface Proxy {
  port: number;
  ca: string;
  /** padlock only: how its holds ended and why it answered 503 itself, from its /metrics. */
  holdStats?: () => Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** Sums padlock's hold outcomes (`held:released`, ...) and own 503s (`503:hold-full`, ...) from a /metrics text. */
function parseHoldStats(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^padlock_proxy_(held_requests_total|unavailable_total)\{[^}]*(?:outcome|reason)="([^"]+)"[^}]*\} (\d+)/.exec(line);
    if (!m) continue;
    const key = `${m[1] === 'held_requests_total' ? 'held' : '503'}:${m[2]}`;
    out[key] = (out[key] ?? 0) + Number(m[3]);
  }
  return out;
}

/** The certificate nginx and Caddy serve: files for them, the PEM for the load to trust. */
interface SelfSigned {
  fullchain: string;
  privkey: string;
  pem: string;
}

async function selfSigned(dir: string): Promise<SelfSigned> {
  await mkdir(dir, { recursive: true });
  const fullchain = join(dir, 'fullchain.pem');
  const privkey = join(dir, 'privkey.pem');
  const r = await runTimed('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${NAME}`, '-addext', `subjectAltName=DNS:${NAME}`, '-days', '2', '-keyout', privkey, '-out', fullchain], toolEnv(), 15_000);
  if (!r.ok) throw new Error(`openssl req failed: ${r.stderr}`);
  return { fullchain, privkey, pem: await readFile(fullchain, 'utf8') };
}

async function startPadlock(dir: string, appPort: number, opts: { wait: number; heldMax?: number; docker?: Dockerd }): Promise<Proxy> {
  const [https, http, admin] = [await freePort(), await freePort(), await freePort()];
  const configDir = join(workDir!, 'padlock-config');
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'padlock.yaml');
  await writeFile(conf, opts.docker ? 'sites: []\n' : `sites:\n  - host: ${NAME}\n    upstream: http://127.0.0.1:${appPort}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k) || k.startsWith('PADLOCK_')) delete env[k];
  const d = startDaemon('padlock', padlockBin, [
    'run', '--config', conf, '--config-dir', configDir, '--log-level', 'warn',
    '--http-port', String(http), '--https-port', String(https), '--bind', '127.0.0.1', '--admin-listen', `127.0.0.1:${admin}`,
    '--upstream-wait', String(opts.wait),
    ...(opts.heldMax ? ['--held-requests-max', String(opts.heldMax)] : []),
    ...(opts.docker ? ['--docker-host', opts.docker.dockerHost] : ['--docker', 'false']),
  ], { env, cwd: repoRoot, capSeconds: capLeft() });
  const ca = await until('padlock\'s local CA', async () => {
    if (d.exited()) throw new Error(`padlock exited: ${d.output()}`);
    const r = await runTimed(padlockBin, ['trust', '--pem', '--config-dir', configDir], toolEnv(), 15_000, repoRoot);
    return r.ok && r.stdout.includes('BEGIN CERTIFICATE') ? r.stdout : undefined;
  });
  const holdStats = async (): Promise<Record<string, number>> => {
    const r = await fetch(`http://127.0.0.1:${admin}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return parseHoldStats(await r.text());
  };
  return { port: https, ca, holdStats, stop: () => d.stop(15_000) };
}

async function startNginx(dir: string, appPort: number, cert: SelfSigned): Promise<Proxy> {
  const port = await freePort();
  await mkdir(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  // nginx-proxy answers a name whose container is gone with 503 (its template's fallback); here a failed upstream becomes that 503.
  await writeFile(conf, `worker_processes 2;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${NAME};
    ssl_certificate ${cert.fullchain};
    ssl_certificate_key ${cert.privkey};
    location / {
      proxy_pass http://127.0.0.1:${appPort};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      error_page 502 504 = @unavailable;
    }
    location @unavailable {
      add_header Retry-After 5 always;
      return 503 "503 Service Temporarily Unavailable\\n";
    }
  }
}
`);
  const d = startDaemon('nginx', '/usr/sbin/nginx', ['-p', dir, '-c', conf, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} warn;`], { env: process.env, capSeconds: capLeft() });
  return { port, ca: cert.pem, stop: () => d.stop(5_000) };
}

async function startCaddy(dir: string, appPort: number, cert: SelfSigned): Promise<Proxy> {
  const port = await freePort();
  const plan = caddyPlan(dir, port, await freePort(), appPort, cert, capLeft, { host: NAME, proxyOptions: ['lb_try_duration 5s', 'lb_try_interval 250ms'] });
  const d = await plan.start();
  return { port, ca: cert.pem, stop: () => d.stop(5_000) };
}

interface Run extends Partial<LoadResult> {
  row: Row;
  round: number;
  ok?: number;
  measuredGapMs?: number;
  /** padlock rows: its own count of held requests by outcome and of the 503s it answered by reason. */
  padlock?: Record<string, number>;
  error?: string;
  loadavgBefore: number[];
}

async function measure(row: Row, round: number, cert: SelfSigned): Promise<Run> {
  const dir = join(workDir!, `${row}-${round}`);
  await mkdir(dir, { recursive: true });
  const appPort = await freePort();
  const app = row === 'padlock-docker' ? dockerApp(dockerd!, appPort, round) : processApp(dir, appPort);
  let proxy: Proxy | undefined;
  const loadavgBefore = la();
  try {
    await app.start();
    proxy = row === 'nginx-503' ? await startNginx(dir, appPort, cert)
      : row === 'caddy-lb-try' ? await startCaddy(dir, appPort, cert)
        : await startPadlock(dir, appPort, {
          wait: row === 'padlock-no-wait' ? 0 : 5,
          ...(row === 'padlock-hold-2000' ? { heldMax: 2000 } : {}),
          ...(row === 'padlock-docker' ? { docker: dockerd! } : {}),
        });
    const p = proxy;
    await until(`${row} to answer 200`, async () => ((await probe(p.port, p.ca)) === 200 ? true : undefined));
    const load = startLoad(p.port, NAME, p.ca, rate);
    await sleep(BEFORE_MS);
    await app.stop();
    const down = Date.now();
    await sleep(gapMs);
    const up = (await app.start()) ?? Date.now();
    // The real gap: from the app's exit to the new app (or container) accepting connections.
    const measuredGapMs = up - down;
    await sleep(AFTER_MS);
    const result = await load.stop();
    const padlock = await p.holdStats?.().catch((e: unknown) => ({ [`metrics failed: ${(e as Error).message}`]: 0 }));
    log(`${row} round ${round}: gap ${measuredGapMs} ms, sent ${result.sent}, failed ${result.failedTotal} ${JSON.stringify(result.failed)} ${JSON.stringify(result.byKind)}, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms (load ${loadavgBefore.join(' ')})${padlock ? ` padlock: ${JSON.stringify(padlock)}` : ''}`);
    return { row, round, ...result, measuredGapMs, ...(padlock ? { padlock } : {}), loadavgBefore };
  } catch (e) {
    log(`${row} round ${round}: ${(e as Error).message}`);
    return { row, round, error: (e as Error).message, loadavgBefore };
  } finally {
    await proxy?.stop();
    await app.close();
  }
}

async function main(): Promise<void> {
  const loadavgAtStart = la();
  log(`load average ${loadavgAtStart.join(' ')}`);
  workDir = await mkdtemp(join(tmpdir(), 'padlock-bench-redeploy-'));
  const cert = await selfSigned(join(workDir, 'selfsigned'));
  if (rows.includes('padlock-docker')) {
    log('starting a private dockerd (no --live-restore)');
    dockerd = await startDockerd({ liveRestore: false });
  }
  const runs: Run[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      // Rotate the order so load drift does not always hit the same row.
      const order = rows.map((_, i) => rows[(i + round - 1) % rows.length]!);
      for (const row of order) {
        if (Date.now() > deadline) {
          runs.push({ row, round, error: 'skipped: --cap-seconds reached', loadavgBefore: la() });
          continue;
        }
        runs.push(await measure(row, round, cert));
      }
    }
  } finally {
    await dockerd?.stop();
  }
  const summary = rows.map((row) => {
    const mine = runs.filter((r) => r.row === row && r.error === undefined);
    const byFailed = [...mine].sort((a, b) => (a.failedTotal ?? 0) - (b.failedTotal ?? 0));
    return { row, best: byFailed[0], worst: byFailed[byFailed.length - 1], errors: runs.filter((r) => r.row === row && r.error).map((r) => r.error) };
  });
  const report = { when: new Date().toISOString(), machine: { cpus: cpus().length, loadavgAtStart, loadavgAtEnd: la() }, settings: { rounds, ratePerSecond: rate, gapMs, beforeMs: BEFORE_MS, afterMs: AFTER_MS, name: NAME }, runs, summary };
  await mkdir(dirname(outPath), { recursive: true });
  await writeFile(outPath, JSON.stringify(report, null, 2));
  const kinds = (r: Run): string => Object.entries(r.byKind ?? {}).map(([k, v]) => `${k} ${v}`).join(', ');
  const line = (r: Run | undefined): string => (r
    ? `round ${r.round}: ${r.failedTotal} of ${r.sent} (${kinds(r)}); gap ${r.measuredGapMs} ms; p99 ${r.latencyMs?.p99} ms, max ${r.latencyMs?.max} ms; load ${r.loadavgBefore.join(' ')}`
    : '–');
  console.log(`| row | best round | worst round |\n|---|---|---|`);
  for (const s of summary) console.log(`| ${s.row} | ${line(s.best)} | ${line(s.worst)} |${s.errors.length ? ` errors: ${s.errors.join('; ')}` : ''}`);
  console.log(`\nevery round:`);
  for (const r of runs) console.log(`  ${r.row} ${r.error ? `round ${r.round}: ${r.error}` : `${line(r)}; ${JSON.stringify(r.failed)}${r.padlock ? `; padlock ${JSON.stringify(r.padlock)}` : ''}`}`);
  log(`wrote ${outPath}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
