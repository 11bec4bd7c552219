/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by function
 * and by coarse category (TLS, HTTP parser/server, http-proxy-3, streams, GC,
 * native, padlock's own code, idle).
 *
 *   npx node --import tsx bench/proxy/profile.ts FILE.cpuprofile [--top 25]
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  busyMs: number;
  categories: { category: string; ms: number; pctOfBusy: number }[];
  top: { fn: string; where: string; category: string; ms: number; pctOfBusy: number }[];
}

export function categorize(fn: string, url: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(program)') return 'native (program)';
  if (/http-proxy-3/.test(url)) return 'http-proxy-3';
  if (/node_modules/.test(url)) return 'other dependencies';
  if (/\/(dist|src)\//.test(url)) return 'padlock';
  if (/_tls_|internal\/tls|node:tls/.test(url)) return 'TLS (node:tls)';
  if (/_http_|node:http|internal\/http/.test(url)) return 'HTTP (node:http)';
  if (/streams|stream_base|node:stream/.test(url)) return 'streams';
  if (/node:net|internal\/net|timers|internal\/async_hooks|internal\/process|events/.test(url)) return 'net, timers, events';
  if (url === '' && fn) return 'native (builtin)';
  return 'other node internals';
}

export function summarize(p: CpuProfile, file: string, topN = 25): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  if (p.samples && p.timeDeltas && p.samples.length === p.timeDeltas.length) {
    // Attribute each interval to the sample it precedes (V8's convention: delta i belongs to sample i).
    for (let i = 0; i < p.samples.length; i++) {
      const id = p.samples[i]!;
      const d = p.timeDeltas[i + 1] ?? 0;
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, d));
    }
  } else {
    const total = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0) || 1;
    const per = (p.endTime - p.startTime) / total;
    for (const n of p.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * per);
  }
  const fnTotals = new Map<string, { fn: string; where: string; category: string; us: number }>();
  const cats = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName || '(anonymous)';
    const url = n.callFrame.url;
    const where = url ? `${url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src)\//, '$1/')}:${n.callFrame.lineNumber + 1}` : '';
    const category = categorize(fn, url);
    const key = `${fn}@${where}`;
    const e = fnTotals.get(key) ?? { fn, where, category, us: 0 };
    e.us += us;
    fnTotals.set(key, e);
    cats.set(category, (cats.get(category) ?? 0) + us);
    total += us;
  }
  const busy = total - (cats.get('idle') ?? 0);
  const pct = (us: number): number => Math.round((us / (busy || 1)) * 1000) / 10;
  return {
    file,
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    categories: [...cats.entries()]
      .filter(([c]) => c !== 'idle')
      .sort((a, b) => b[1] - a[1])
      .map(([category, us]) => ({ category, ms: Math.round(us / 1000), pctOfBusy: pct(us) })),
    top: [...fnTotals.values()]
      .filter((e) => e.category !== 'idle')
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, category: e.category, ms: Math.round(e.us / 1000), pctOfBusy: pct(e.us) })),
  };
}

export async function summarizeFile(file: string, topN = 25): Promise<ProfileSummary> {
  return summarize(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, file, topN);
}

export function profileMarkdown(s: ProfileSummary): string {
  const lines = [`Profile ${s.file}: ${s.busyMs} ms busy of ${s.totalMs} ms sampled.`, '', '| category | self ms | % of busy |', '|---|---:|---:|'];
  for (const c of s.categories) lines.push(`| ${c.category} | ${c.ms} | ${c.pctOfBusy} |`);
  lines.push('', '| function | where | category | self ms | % of busy |', '|---|---|---|---:|---:|');
  for (const t of s.top) lines.push(`| ${t.fn.replace(/\|/g, '\\|')} | ${t.where} | ${t.category} | ${t.ms} | ${t.pctOfBusy} |`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
  for (const file of positionals) console.log(profileMarkdown(await summarizeFile(file, Number(values.top))) + '\n');
}
