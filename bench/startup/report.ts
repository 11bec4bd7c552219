/**
 * The start-up bench's record (JSON) and its markdown tables: every round,
 * then best and worst per scenario, then the issue's targets checked.
 */
import type { Scenario } from './servers.js';
import { LABEL } from './servers.js';
import type { TimelineEntry } from './timeline.js';
import type { WindowSummary } from './profile-window.js';

/** Issue 10's targets for a replica joining a fleet with 10,000 stored certificates. */
export const TARGET = { readySeconds: 3, rssBytes: 250e6 } as const;
const TARGET_RSS_MIB = TARGET.rssBytes / 1048576;

export interface Memory {
  /** VmRSS summed over the server's processes, MiB. */
  rssMiB: number;
  pssMiB?: number;
  /** VmHWM (peak RSS so far) summed over the server's processes, MiB. */
  peakMiB: number;
  processes: number;
}

export interface StartupRun {
  scenario: Scenario;
  /** 0 for the --cpu-prof run, which is not in the tables. */
  round: number;
  ok: boolean;
  error?: string;
  profiled?: boolean;
  loadavgBefore: number[];
  busyBefore?: number;
  /** Seconds from spawn until the HTTPS port accepted a TCP connection. */
  portOpenS?: number;
  /** Seconds from spawn until padlock's /readyz answered 200. */
  readyS?: number;
  /** Seconds from spawn until a verified handshake for the first / last fixture name. */
  firstNameS?: number;
  lastNameS?: number;
  tlsProtocol?: string;
  /** CPU seconds the server's processes had used when the last name was served. */
  cpuSecondsToLastName?: number;
  memAtReady?: Memory;
  memAtLastName?: Memory;
  /** Once the server used no CPU for 1 s (padlock: its background load done). */
  memSettled?: Memory;
  settledAfterS?: number;
  settleNote?: string;
  /** Sequential handshakes for the last name, every 250 ms from the last-name handshake until the server went idle. */
  handshakesWhileSettling?: { count: number; failed: number; medianMs: number; maxMs: number };
  lastNameGet?: { status: number; bodyOk: boolean; error?: string };
  /** --handshake-all: a verified handshake for every name after the start settled, and the memory after them. */
  allNames?: { handshakes: number; failed: number; seconds: number; errors: string[]; memAfter?: Memory; memIdleAfter?: Memory };
  fixtureIntact?: boolean;
  logTimeline?: { entries: TimelineEntry[]; unparsedLines: number };
  outputTail?: string;
}

export interface StartupReport {
  benchmark: 'startup';
  startedAt: string;
  finishedAt: string;
  options: Record<string, unknown>;
  machine: { cpus: number; cpuModel: string; memMiB: number; loadavgBefore: number[]; busyBefore?: number; node: string; platform: string };
  versions: Record<string, string>;
  fixture: { dir: string; names: number; built: boolean; createdAt: string; writeSeconds: number; rootFingerprint256: string; leafValidityDays: number; sharedLeafKey: boolean };
  runs: StartupRun[];
  profiles?: (WindowSummary & { scenario: Scenario; lastNameS?: number })[];
}

const s2 = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(2));
/** RSS; for several processes (nginx's master and worker) also PSS, which counts shared pages once. */
const mem = (m: Memory | undefined): string => (m ? `${m.rssMiB.toFixed(0)}${m.processes > 1 && m.pssMiB !== undefined ? ` (PSS ${m.pssMiB.toFixed(0)})` : ''}` : '–');

/** One row per scenario and round, in the order they ran. */
export function markdownRounds(r: StartupReport): string {
  const lines = [
    '| round | server | port open s | /readyz 200 s | first name s | last name s | CPU s to last name | RSS MiB at ready | RSS MiB at last name | RSS MiB idle (peak) | idle at s | slowest handshake ms until idle | load before |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  let busyNote = false;
  for (const x of r.runs.filter((x) => !x.profiled)) {
    if (!x.ok && x.lastNameS === undefined) {
      lines.push(`| ${x.round} | ${LABEL[x.scenario]} | FAILED: ${(x.error ?? '?').replace(/\|/g, '\\|').slice(0, 160)} | | | | | | | | | | ${x.loadavgBefore.join(' ')} |`);
      continue;
    }
    if (x.settleNote) busyNote = true;
    const idle = x.memSettled ? `${mem(x.memSettled)} (${x.memSettled.peakMiB.toFixed(0)})` : '–';
    const idleAt = x.settledAfterS === undefined ? '–' : `${x.settledAfterS.toFixed(1)}${x.settleNote ? '*' : ''}`;
    const hs = x.handshakesWhileSettling;
    const slowest = hs ? `${hs.maxMs.toFixed(0)}${hs.failed ? ` (${hs.failed} failed)` : ''}` : '–';
    lines.push(
      `| ${x.round} | ${LABEL[x.scenario]}${x.ok ? '' : ' (FAILED)'} | ${s2(x.portOpenS)} | ${s2(x.readyS)} | ${s2(x.firstNameS)} | ${s2(x.lastNameS)} | ${s2(x.cpuSecondsToLastName)} | ${mem(x.memAtReady)} | ${mem(x.memAtLastName)} | ${idle} | ${idleAt} | ${slowest} | ${x.loadavgBefore.join(' ')} |`,
    );
  }
  const settle = r.options['settleSeconds'];
  return `${lines.join('\n')}${busyNote ? `\n\n\\* still using CPU when the --settle limit (${String(settle)} s after the last-name handshake) ran out; measured then.` : ''}`;
}

function bestWorst(xs: (number | undefined)[]): string {
  const v = xs.filter((x): x is number => x !== undefined);
  if (!v.length) return '–';
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return lo === hi ? lo.toFixed(2) : `${lo.toFixed(2)} / ${hi.toFixed(2)}`;
}

function maxOf(xs: (number | undefined)[]): number | undefined {
  const v = xs.filter((x): x is number => x !== undefined);
  return v.length ? Math.max(...v) : undefined;
}

/** --handshake-all: one row per scenario and round. */
export function markdownAllNames(r: StartupReport): string {
  const rows = r.runs.filter((x) => !x.profiled && x.allNames);
  if (!rows.length) return '';
  const lines = [
    '| round | server | handshakes | failed | seconds | RSS MiB after | RSS MiB idle after | peak RSS MiB |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of rows) {
    const a = x.allNames!;
    lines.push(`| ${x.round} | ${LABEL[x.scenario]} | ${a.handshakes} | ${a.failed} | ${a.seconds.toFixed(1)} | ${mem(a.memAfter)} | ${mem(a.memIdleAfter)} | ${a.memIdleAfter?.peakMiB.toFixed(0) ?? a.memAfter?.peakMiB.toFixed(0) ?? '–'} |`);
  }
  return lines.join('\n');
}

/** Best / worst round per scenario, and the targets checked against the worst round. */
export function markdownSummary(r: StartupReport): string {
  const order = [...new Set(r.runs.map((x) => x.scenario))];
  const lines = [
    '| server | rounds ok | /readyz 200 s, best / worst | last name s, best / worst | RSS MiB at last name, worst | RSS MiB settled, worst (peak) |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const s of order) {
    const runs = r.runs.filter((x) => x.scenario === s && !x.profiled);
    const ok = runs.filter((x) => x.ok);
    const settled = maxOf(ok.map((x) => x.memSettled?.rssMiB));
    const peak = maxOf(ok.map((x) => x.memSettled?.peakMiB));
    lines.push(
      `| ${LABEL[s]} | ${ok.length}/${runs.length} | ${bestWorst(ok.map((x) => x.readyS))} | ${bestWorst(ok.map((x) => x.lastNameS))} | ${maxOf(ok.map((x) => x.memAtLastName?.rssMiB))?.toFixed(0) ?? '–'} | ${settled?.toFixed(0) ?? '–'} (${peak?.toFixed(0) ?? '–'}) |`,
    );
  }
  const checks: string[] = [];
  for (const s of order.filter((x) => x.startsWith('padlock'))) {
    const ok = r.runs.filter((x) => x.scenario === s && !x.profiled && x.ok);
    if (!ok.length) continue;
    const worstServe = maxOf(ok.map((x) => Math.max(x.readyS ?? Infinity, x.lastNameS ?? Infinity)))!;
    const worstPeak = maxOf(ok.map((x) => x.memSettled?.peakMiB ?? x.memAtLastName?.peakMiB));
    const time = worstServe <= TARGET.readySeconds ? `met (worst ${worstServe.toFixed(2)} s)` : `MISSED by ${(worstServe - TARGET.readySeconds).toFixed(2)} s (worst ${worstServe.toFixed(2)} s)`;
    const rss = worstPeak === undefined ? 'not measured' : worstPeak <= TARGET_RSS_MIB ? `met (worst peak ${worstPeak.toFixed(0)} MiB)` : `MISSED by ${(worstPeak - TARGET_RSS_MIB).toFixed(0)} MiB (worst peak ${worstPeak.toFixed(0)} MiB)`;
    checks.push(`- ${LABEL[s]}: ready and serving the last name in ${TARGET.readySeconds} s or less: ${time}; RSS no more than 250 MB (${TARGET_RSS_MIB.toFixed(0)} MiB), peak over the whole run: ${rss}.`);
    const all = ok.filter((x) => x.allNames);
    if (all.length) {
      const worstAll = maxOf(all.map((x) => x.allNames!.memIdleAfter?.peakMiB ?? x.allNames!.memAfter?.peakMiB));
      const failed = all.reduce((n, x) => n + x.allNames!.failed, 0);
      checks.push(`- ${LABEL[s]}, after a handshake to every name: peak RSS ${worstAll === undefined ? 'not measured' : worstAll <= TARGET_RSS_MIB ? `met (worst ${worstAll.toFixed(0)} MiB)` : `MISSED by ${(worstAll - TARGET_RSS_MIB).toFixed(0)} MiB (worst ${worstAll.toFixed(0)} MiB)`}; ${failed} failed handshakes.`);
    }
  }
  return `${lines.join('\n')}${checks.length ? `\n\nTargets (issue 10), against the worst round:\n${checks.join('\n')}` : ''}`;
}
