/**
 * Issuance benchmark: lego, certbot, padlock and Caddy against one Pebble, in one run.
 *
 *   npx node --import tsx bench/issue/run.ts [--runs 5] [--names 20]
 *     [--out bench/results/issue.json] [--tools lego,certbot,padlock,caddy]
 *     [--cap-seconds 1800] [--child-timeout 120]
 *
 * Each invocation is killed after --child-timeout seconds, or 10 s per name
 * when that is longer; the whole run stops starting steps after --cap-seconds.
 *
 * Measures, per tool: (a) one fresh name per invocation with the account
 * already registered (one untimed warm-up first), median of --runs; (b1)
 * --names fresh names, one invocation per name, in sequence; (b2) --names
 * fresh names in one certificate, one invocation. Steps of (a) alternate
 * between tools so drift in machine load hits every tool alike. Only one
 * tool binds the HTTP-01 port at a time. Caddy, a server, is timed from spawn
 * until its certificate files exist, then stopped. See bench/README.md.
 */
import { mkdtemp, mkdir, writeFile, readFile, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir, cpus, loadavg, platform, release } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startPebble, type Pebble } from '../../test/support/pebble.js';
import { runTimed, killAllChildren } from './child.js';
import { lego, certbot, padlock, caddy, TOOL_NAMES, type ExpectedCert, type Tool, type ToolName } from './tools.js';
import { markdownTable, type Attempt, type BenchReport, type ToolResult } from './report.js';
import { positiveInt } from '../args.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    names: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results/issue.json' },
    tools: { type: 'string', default: 'lego,certbot,padlock,caddy' },
    'cap-seconds': { type: 'string', default: '1800' },
    'child-timeout': { type: 'string', default: '120' },
  },
});


const runs = positiveInt('runs', values.runs);
const nameCount = positiveInt('names', values.names);
const capSeconds = positiveInt('cap-seconds', values['cap-seconds']);
const childTimeoutSeconds = positiveInt('child-timeout', values['child-timeout']);
const outPath = resolve(values.out ?? 'bench/results/issue.json');
const toolNames = (values.tools ?? '').split(',').map((s) => s.trim()).filter(Boolean) as ToolName[];
for (const t of toolNames) {
  if (!(TOOL_NAMES as readonly string[]).includes(t)) {
    console.error(`bench: unknown tool ${JSON.stringify(t)}; known: ${TOOL_NAMES.join(', ')}`);
    process.exit(2);
  }
}

const deadline = Date.now() + capSeconds * 1000;
const skippedForCap: string[] = [];
let stateDir: string | undefined;

// Never leave a tool or its standalone server behind (Pebble has its own hook).
process.on('exit', () => {
  killAllChildren();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
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

function tail(s: string, lines = 8): string {
  return s.trim().split('\n').slice(-lines).join('\n');
}

/** Runs one issuance unless the overall cap is spent; returns undefined when skipped. */
async function issue(tool: Tool, names: string[], label: string): Promise<Attempt | undefined> {
  const remainingMs = deadline - Date.now();
  if (remainingMs <= 0) {
    skippedForCap.push(`${tool.name}: ${label}`);
    return undefined;
  }
  const inv = tool.issue(names);
  // lego solves authorizations one after another with a fixed ~5 s wait each, so
  // N names in one certificate take ~6 s x N: scale the bound (10 s per name).
  const boundMs = Math.max(childTimeoutSeconds, 10 * names.length) * 1000;
  await inv.prepare?.();
  const r = await runTimed(inv.cmd, inv.args, inv.env, Math.min(boundMs, remainingMs), repoRoot, inv.until);
  // Exit 0 is not enough: the certificate must exist and carry every name (checked after timing).
  const problem = r.ok ? await checkCerts(tool.certs(names)) : undefined;
  const attempt: Attempt = { names, ok: r.ok && !problem, seconds: r.seconds };
  if (!attempt.ok) {
    const why = problem ?? (r.timedOut ? `killed after ${Math.round(r.seconds)} s` : `exit ${r.code ?? r.signal}`);
    attempt.error = `${why}\n${tail(r.stderr || r.stdout)}`;
    log(`${tool.name} ${label}: FAILED (${why}) after ${r.seconds.toFixed(2)} s\n${tail(r.stderr || r.stdout)}`);
  } else {
    log(`${tool.name} ${label}: ${r.seconds.toFixed(2)} s`);
  }
  return attempt;
}

/** Undefined when each file holds a certificate whose SAN lists every one of its names; else what is wrong. */
async function checkCerts(expected: ExpectedCert[]): Promise<string | undefined> {
  for (const { file, names } of expected) {
    try {
      const cert = new X509Certificate(await readFile(file));
      const sans = new Set((cert.subjectAltName ?? '').split(',').map((x) => x.trim().replace(/^DNS:/, '')));
      const missing = names.filter((n) => !sans.has(n));
      if (missing.length) return `done but ${file} lacks ${missing.join(', ')}`;
    } catch (e) {
      return `done but no certificate at ${file}: ${(e as Error).message}`;
    }
  }
  return undefined;
}

async function probe(tool: Tool): Promise<{ ok: boolean; text: string }> {
  const r = await runTimed(tool.probe.cmd, tool.probe.args, tool.probe.env, 20_000, repoRoot);
  return { ok: r.ok, text: (r.ok ? r.stdout || r.stderr : r.stderr || r.stdout).trim() };
}

async function version(tool: Tool): Promise<string | undefined> {
  if (tool.name !== 'padlock') {
    // Debian's lego reports "version dev"; the package version is the useful one.
    const r = await runTimed('dpkg-query', ['-W', '-f', '${Version}', tool.name], process.env, 10_000);
    if (r.ok && r.stdout.trim()) return `${r.stdout.trim()} (Debian)`;
  }
  const r = await runTimed(tool.probe.cmd, ['--version'], tool.probe.env, 20_000, repoRoot);
  return r.ok ? r.stdout.trim().split('\n')[0] : undefined;
}

async function main(): Promise<number> {
  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg().map((x) => Math.round(x * 100) / 100);
  const pebbleEnv = { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' };
  const t0 = process.hrtime.bigint();
  let pebble: Pebble;
  try {
    pebble = await startPebble({ env: pebbleEnv });
  } catch (e) {
    console.error(`bench: could not start Pebble: ${(e as Error).message}`);
    return 1;
  }
  const startupSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  log(`pebble up in ${startupSeconds.toFixed(2)} s at ${pebble.directoryUrl}, HTTP-01 on 127.0.0.1:${pebble.httpPort}`);
  stateDir = await mkdtemp(join(tmpdir(), 'padlock-bench-issue-'));
  const runId = Date.now().toString(36);
  const name = (tool: string, kind: string, i: number): string => `b${runId}-${tool}-${kind}${i}.example.com`;

  try {
    const makers: Record<ToolName, () => Tool> = {
      lego: () => lego(pebble, stateDir!),
      certbot: () => certbot(pebble, stateDir!),
      padlock: () => padlock(pebble, stateDir!, join(repoRoot, 'bin', 'padlock')),
      caddy: () => caddy(pebble, stateDir!),
    };
    const results = new Map<ToolName, ToolResult>();
    const active: Tool[] = [];
    for (const tn of toolNames) {
      const tool = makers[tn]();
      const res: ToolResult = { tool: tn, available: false, single: [], sequential: [] };
      results.set(tn, res);
      const p = await probe(tool);
      if (!p.ok) {
        res.unavailableReason = `\`${[tool.probe.cmd, ...tool.probe.args].join(' ')}\` failed: ${tail(p.text, 3)}`;
        log(`${tn}: not available (${res.unavailableReason})`);
        continue;
      }
      res.version = await version(tool);
      res.available = true;
      active.push(tool);
    }

    // Warm-up: registers the account (kept in the tool's state dir), untimed.
    for (const tool of [...active]) {
      const res = results.get(tool.name)!;
      const a = await issue(tool, [name(tool.name, 'w', 0)], 'warm-up');
      if (a) res.warmup = a;
      if (!a?.ok) {
        res.available = false;
        res.unavailableReason = a ? `warm-up issuance failed: ${a.error ?? ''}` : 'skipped: overall cap reached';
        active.splice(active.indexOf(tool), 1);
      }
    }

    // (a) one fresh name, interleaved between tools.
    for (let r = 0; r < runs; r++) {
      for (const tool of active) {
        const a = await issue(tool, [name(tool.name, 's', r)], `single ${r + 1}/${runs}`);
        if (a) results.get(tool.name)!.single.push(a);
      }
    }
    // (b1) one invocation per name, in sequence.
    for (const tool of active) {
      for (let i = 0; i < nameCount; i++) {
        const a = await issue(tool, [name(tool.name, 'q', i)], `sequential ${i + 1}/${nameCount}`);
        if (a) results.get(tool.name)!.sequential.push(a);
      }
    }
    // (b2) all names in one certificate, one invocation.
    for (const tool of active) {
      const names = Array.from({ length: nameCount }, (_, i) => name(tool.name, 'm', i));
      const a = await issue(tool, names, `${nameCount} names in one invocation`);
      if (a) results.get(tool.name)!.multi = a;
    }

    const cpu = cpus();
    const report: BenchReport = {
      benchmark: 'issue',
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { runs, names: nameCount, capSeconds, childTimeoutSeconds },
      machine: { cpus: cpu.length, cpuModel: cpu[0]?.model ?? '?', loadavgAtStart: loadAtStart, node: process.version, platform: `${platform()} ${release()}` },
      pebble: { startupSeconds, env: pebbleEnv },
      tools: toolNames.map((t) => results.get(t)!),
      skippedForCap,
    };
    console.log(`\n## Issuance against Pebble 2.4.0 (${report.machine.cpus} CPUs, load ${loadAtStart.join(' ')} at start; ${startedAt})\n`);
    console.log(markdownTable(report));
    if (skippedForCap.length) console.log(`\nSkipped because the ${capSeconds} s cap was reached: ${skippedForCap.length} steps.`);
    await mkdir(dirname(outPath), { recursive: true });
    await writeFile(outPath, JSON.stringify(report, null, 2) + '\n');
    console.log(`\nJSON: ${outPath}`);
    return 0;
  } finally {
    killAllChildren();
    await pebble.stop();
    await rm(stateDir, { recursive: true, force: true });
    stateDir = undefined;
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
