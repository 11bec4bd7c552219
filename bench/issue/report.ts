/**
 * Pure summaries of the issuance benchmark: medians and the markdown table.
 */

export interface Attempt {
  names: string[];
  ok: boolean;
  seconds: number;
  /** Why it failed: exit status plus the tail of stderr. */
  error?: string;
}

export interface ToolResult {
  tool: string;
  available: boolean;
  version?: string;
  /** Why the tool was not measured (missing, not built, failed warm-up). */
  unavailableReason?: string;
  warmup?: Attempt;
  /** (a) one fresh name per invocation, account already registered. */
  single: Attempt[];
  /** (b1) N fresh names, one invocation per name, in sequence. */
  sequential: Attempt[];
  /** (b2) N fresh names in one certificate, one invocation. */
  multi?: Attempt;
}

export interface BenchReport {
  benchmark: 'issue';
  startedAt: string;
  finishedAt: string;
  options: { runs: number; names: number; capSeconds: number; childTimeoutSeconds: number };
  machine: { cpus: number; cpuModel: string; loadavgAtStart: number[]; node: string; platform: string };
  pebble: { startupSeconds: number; env: Record<string, string> };
  tools: ToolResult[];
  /** Steps left undone because the overall cap was reached. */
  skippedForCap: string[];
}

export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

const fmt = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(2));

export interface ToolSummary {
  singleMedian?: number;
  singleMin?: number;
  singleMax?: number;
  singleOk: number;
  singleTotal: number;
  sequentialTotal?: number;
  sequentialOk: number;
  sequentialCount: number;
  multi?: number;
  multiOk: boolean;
}

/** Times count only successful attempts; the ok/total counts say how many failed. */
export function summarize(t: ToolResult): ToolSummary {
  const okSingle = t.single.filter((a) => a.ok).map((a) => a.seconds);
  const okSeq = t.sequential.filter((a) => a.ok);
  const seqComplete = t.sequential.length > 0 && okSeq.length === t.sequential.length;
  return {
    singleMedian: median(okSingle),
    singleMin: okSingle.length ? Math.min(...okSingle) : undefined,
    singleMax: okSingle.length ? Math.max(...okSingle) : undefined,
    singleOk: okSingle.length,
    singleTotal: t.single.length,
    // A total over a run with failures would flatter the tool: only report complete runs.
    sequentialTotal: seqComplete ? t.sequential.reduce((s, a) => s + a.seconds, 0) : undefined,
    sequentialOk: okSeq.length,
    sequentialCount: t.sequential.length,
    multi: t.multi?.ok ? t.multi.seconds : undefined,
    multiOk: t.multi?.ok ?? false,
  };
}

export function markdownTable(r: BenchReport): string {
  const n = r.options.names;
  const lines = [
    `| tool | version | 1 name, median of ${r.options.runs} (s) | min–max (s) | ${n} names, ${n} invocations (s) | per name (s) | ${n} names, 1 invocation (s) |`,
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const t of r.tools) {
    if (!t.available) {
      lines.push(`| ${t.tool} | – | not available: ${(t.unavailableReason ?? '').replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 120)} | | | | |`);
      continue;
    }
    const s = summarize(t);
    const fails = (ok: number, total: number): string => (ok < total ? ` (${total - ok}/${total} failed)` : '');
    lines.push(
      `| ${t.tool} | ${t.version ?? '?'} | ${fmt(s.singleMedian)}${fails(s.singleOk, s.singleTotal)} | ${fmt(s.singleMin)}–${fmt(s.singleMax)} | ` +
        `${fmt(s.sequentialTotal)}${fails(s.sequentialOk, s.sequentialCount)} | ${fmt(s.sequentialTotal === undefined ? undefined : s.sequentialTotal / s.sequentialCount)} | ` +
        `${t.multi ? (s.multiOk ? fmt(s.multi) : 'failed') : '–'} |`,
    );
  }
  return lines.join('\n');
}
