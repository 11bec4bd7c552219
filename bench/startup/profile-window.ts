/**
 * Where a process spent its start-up: a V8 .cpuprofile (node --cpu-prof) cut
 * to its first `windowMs` milliseconds, summarised as self time by category
 * (bench/proxy/profile.ts's categories) and as inclusive ("total") time of
 * padlock's own functions, so a call like `CertificateManager.refresh` shows
 * with everything it called (parsing, signature checks, file reads).
 *
 *   npx node --import tsx bench/startup/profile-window.ts FILE.cpuprofile [--window-ms 5000] [--top 25]
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { categorize } from '../proxy/profile.js';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface WindowSummary {
  file: string;
  windowMs: number;
  busyMs: number;
  idleMs: number;
  categories: { category: string; ms: number }[];
  /** padlock functions (dist/ or src/) by inclusive time within the window, with when they were first and last on the stack. */
  padlockInclusive: { fn: string; where: string; ms: number; firstMs: number; lastMs: number }[];
  /** Any function by self time within the window. */
  self: { fn: string; where: string; category: string; ms: number }[];
}

function whereOf(url: string, line: number): string {
  return url ? `${url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/')}:${line + 1}` : '';
}

/** Summarises the samples taken in the first `windowMs` ms of the profile. */
export function summarizeWindow(p: CpuProfile, file: string, windowMs: number, topN = 25): WindowSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  const limitUs = windowMs * 1000;
  const selfUs = new Map<string, { fn: string; where: string; category: string; us: number }>();
  const inclUs = new Map<string, { fn: string; where: string; us: number; first: number; last: number }>();
  const cats = new Map<string, number>();
  let elapsed = 0;
  let idle = 0;
  let busy = 0;
  for (let i = 0; i < samples.length; i++) {
    elapsed += deltas[i] ?? 0;
    if (elapsed > limitUs) break;
    // V8's convention: the interval after sample i belongs to sample i.
    const us = Math.max(0, deltas[i + 1] ?? 0);
    const leaf = byId.get(samples[i]!);
    if (!leaf) continue;
    const fn = leaf.callFrame.functionName || '(anonymous)';
    const category = categorize(fn, leaf.callFrame.url);
    cats.set(category, (cats.get(category) ?? 0) + us);
    if (category === 'idle') {
      idle += us;
      continue;
    }
    busy += us;
    const where = whereOf(leaf.callFrame.url, leaf.callFrame.lineNumber);
    const sk = `${fn}@${where}`;
    const se = selfUs.get(sk) ?? { fn, where, category, us: 0 };
    se.us += us;
    selfUs.set(sk, se);
    // Inclusive: every distinct padlock frame on the stack once (recursion counted once).
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!;
      if (!/\/(dist|src)\//.test(n.callFrame.url) || /node_modules/.test(n.callFrame.url)) continue;
      const f = n.callFrame.functionName || '(anonymous)';
      const w = whereOf(n.callFrame.url, n.callFrame.lineNumber);
      const k = `${f}@${w}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const e = inclUs.get(k) ?? { fn: f, where: w, us: 0, first: elapsed, last: elapsed };
      e.us += us;
      e.last = elapsed;
      inclUs.set(k, e);
    }
  }
  const ms = (us: number): number => Math.round(us / 1000);
  return {
    file,
    windowMs: Math.round(Math.min(windowMs, elapsed / 1000)),
    busyMs: ms(busy),
    idleMs: ms(idle),
    categories: [...cats.entries()].filter(([c]) => c !== 'idle').sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: ms(us) })),
    padlockInclusive: [...inclUs.values()].sort((a, b) => b.us - a.us).slice(0, topN).map((e) => ({ fn: e.fn, where: e.where, ms: ms(e.us), firstMs: ms(e.first), lastMs: ms(e.last) })),
    self: [...selfUs.values()].sort((a, b) => b.us - a.us).slice(0, topN).map((e) => ({ fn: e.fn, where: e.where, category: e.category, ms: ms(e.us) })),
  };
}

export async function summarizeWindowFile(file: string, windowMs: number, topN = 25): Promise<WindowSummary> {
  return summarizeWindow(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, file, windowMs, topN);
}

export function windowMarkdown(s: WindowSummary): string {
  const esc = (x: string): string => x.replace(/\|/g, '\\|');
  const lines = [
    `Profile ${s.file}, first ${s.windowMs} ms: ${s.busyMs} ms on the CPU, ${s.idleMs} ms idle (waiting for I/O).`,
    '',
    '| category (self time) | ms |',
    '|---|---:|',
    ...s.categories.map((c) => `| ${c.category} | ${c.ms} |`),
    '',
    '| padlock function (inclusive time) | where | ms | on the stack from – to (ms after process start) |',
    '|---|---|---:|---:|',
    ...s.padlockInclusive.map((e) => `| ${esc(e.fn)} | ${e.where} | ${e.ms} | ${e.firstMs}–${e.lastMs} |`),
    '',
    '| function (self time) | where | category | ms |',
    '|---|---|---|---:|',
    ...s.self.map((e) => `| ${esc(e.fn)} | ${e.where} | ${e.category} | ${e.ms} |`),
  ];
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ options: { 'window-ms': { type: 'string', default: '600000' }, top: { type: 'string', default: '25' } }, allowPositionals: true });
  for (const file of positionals) console.log(`${windowMarkdown(await summarizeWindowFile(file, Number(values['window-ms']), Number(values.top)))}\n`);
}
