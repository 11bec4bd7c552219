/**
 * The proxy bench's record (the JSON it writes) and its markdown table.
 */
import type { MemSample } from './procs.js';
import type { H2loadResult, HandshakeResult, ResumptionProbe, WrkResult } from './load.js';

export interface CpuShare {
  /** CPU seconds (user+system) of the proxy's processes during the phase. */
  proxyCpuSeconds: number;
  /** Proxy CPU time per completed request (or handshake), µs. */
  cpuUsPerOp?: number;
  /** Average number of cores the proxy kept busy. */
  proxyCores: number;
  /** Whole machine during the phase, in cores: everything, the upstream, the load tools (and this bench), and the rest (other work on the machine). */
  machine?: { busyCores: number; upstreamCores: number; toolCores: number; otherCores: number };
}

export interface ProxyRun {
  proxy: string;
  round: number;
  ok: boolean;
  error?: string;
  /** Load average just before this proxy started. */
  loadavgBefore: number[];
  /** Fraction of the machine's CPUs busy over the last second before this proxy started, and how long the bench waited for that. */
  busyBefore?: number;
  waitedSeconds?: number;
  /** Spawn to first 200 through the proxy. */
  readySeconds?: number;
  /** The SHA-256 fingerprint the proxy presented for `localhost`, and whether it is the shared certificate. */
  certFingerprint?: string;
  sameCertificate?: boolean;
  tlsProtocol?: string;
  memIdle?: MemSample;
  memAfterKeepAlive?: MemSample;
  /** With --settle S: S seconds after `memIdle` and after `memAfterKeepAlive`, nothing sent meanwhile. */
  memIdleSettled?: MemSample;
  memAfterKeepAliveSettled?: MemSample;
  memAfterH2?: MemSample;
  memAfterAll?: MemSample;
  keepAlive?: WrkResult & { cpu?: CpuShare };
  /** h2load over HTTP/2 (the proxies that speak it). */
  h2?: H2loadResult & { cpu?: CpuShare };
  handshakes?: HandshakeResult & { cpu?: CpuShare };
  /** wrk with `Connection: close`: wrk resumes the TLS session on each reconnect. */
  reconnect?: WrkResult & { cpu?: CpuShare };
  resumption?: ResumptionProbe;
  /** Last lines of the proxy's own output, when something failed. */
  outputTail?: string;
}

export interface ProxyBenchReport {
  benchmark: 'proxy';
  startedAt: string;
  finishedAt: string;
  options: { seconds: number; handshakeSeconds: number; warmupSeconds: number; connections: number; threads: number; h2Streams?: number; rounds: number; proxies: string[]; phases: string[]; waitIdleSeconds: number; settleSeconds?: number; cpuProf?: string };
  machine: { cpus: number; cpuModel: string; loadavgBefore: number[]; busyBefore?: number; node: string; platform: string };
  versions: Record<string, string>;
  upstream: { kind: string; body: string; bytes: number };
  certificate: { source: string; fingerprint256: string; keyType: string; padlockFirstStartSeconds?: number };
  dnsCheck: { checked: boolean; clean?: boolean; suspicious: string[]; note: string };
  runs: ProxyRun[];
  profile?: unknown;
}

const f = (x: number | undefined, digits = 0): string => (x === undefined || Number.isNaN(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ms = (x: number | undefined): string => (x === undefined ? '–' : x < 10 ? x.toFixed(2) : x.toFixed(1));

function errorsOf(w: WrkResult | undefined): string {
  if (!w) return '–';
  const s = w.socketErrors;
  const n = (s ? s.connect + s.read + s.write + s.timeout : 0) + (w.non2xx ?? 0);
  return String(n);
}

/** `yes`/`no` for the first reconnect, and how many of the chained ones (each ticket used once) resumed. */
function resumes(r: ResumptionProbe | undefined): string {
  if (!r) return '–';
  return `${r.resumed ? 'yes' : 'no'}${r.chain ? `, ${r.chain.resumed}/${r.chain.of} chained` : ''}`;
}

export function markdownTable(r: ProxyBenchReport): string {
  const c = r.options.connections;
  const lines = [
    `| round | proxy | req/s keep-alive | p50 ms | p99 ms | errors | proxy CPU µs/req (cores) | full handshakes/s | resumed reconnects/s | resumes | RSS MiB idle → after | PSS MiB after | other load (cores) |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|:-:|---:|---:|---:|',
  ];
  for (const p of r.runs) {
    if (!p.ok && !p.keepAlive?.rps) {
      lines.push(`| ${p.round} | ${p.proxy} | failed: ${(p.error ?? '').replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 140)} | | | | | | | | | | |`);
      continue;
    }
    const label = p.proxy === 'node-hello' ? 'node-hello (reference: no proxy)' : p.proxy === 'padlock' ? '**padlock**' : p.proxy;
    const k = p.keepAlive;
    const h = p.handshakes;
    const hs = h?.ok ? `${f(h.perSecond)}${h.failed ? ` (${h.failed} failed)` : ''}` : h ? 'failed' : '–';
    const cpu = k?.cpu ? `${f(k.cpu.cpuUsPerOp)} (${k.cpu.proxyCores.toFixed(2)})` : '–';
    lines.push(
      `| ${p.round} | ${label} | ${f(k?.rps)} | ${ms(k?.latencyMs?.p50)} | ${ms(k?.latencyMs?.p99)} | ${errorsOf(k)} | ${cpu} | ${hs} | ` +
        `${p.reconnect?.ok ? f(p.reconnect.rps) : p.reconnect ? 'failed' : '–'} | ${resumes(p.resumption)} | ` +
        `${f(p.memIdle?.rssMiB, 1)} → ${f(p.memAfterAll?.rssMiB ?? p.memAfterKeepAlive?.rssMiB, 1)} | ${f(p.memAfterAll?.pssMiB ?? p.memAfterKeepAlive?.pssMiB, 1)} | ${k?.cpu?.machine ? k.cpu.machine.otherCores.toFixed(2) : '–'} |`,
    );
  }
  lines.push('');
  lines.push(
    `wrk -t${r.options.threads} -c${c} -d${r.options.seconds}s --latency (after a ${r.options.warmupSeconds} s warm-up); ` +
      `full handshakes: curl --no-sessionid, Connection: close, ${c} in flight over ${Math.min(2, r.machine.cpus)} processes, ${r.options.handshakeSeconds} s; ` +
      `resumed reconnects: wrk -H 'Connection: close' ${r.options.handshakeSeconds} s; resumes: openssl s_client -sess_in once, then chained reconnects that each offer only the ticket of the connection before (as browsers and wrk use tickets). Proxy CPU = user+system of the proxy's processes during the keep-alive run; ` +
      `other load = machine CPU busy during that run minus the proxy, the upstream, wrk and the bench (work by other processes on the machine: noise).`,
  );
  return lines.join('\n');
}

/** The HTTP/2 rows (h2load): req/s, latency percentiles from its per-request log, errors, proxy CPU. */
export function h2MarkdownTable(r: ProxyBenchReport): string {
  const lines = [
    '| round | proxy | h2 req/s | p50 ms | p99 ms | errors (failed/errored/timeout/non-2xx) | proxy CPU µs/req (cores) | RSS MiB after h2 | other load (cores) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of r.runs) {
    const h = p.h2;
    if (!h) continue;
    const label = p.proxy === 'padlock' ? '**padlock**' : p.proxy;
    if (!h.ok) {
      lines.push(`| ${p.round} | ${label} | failed: ${(h.error ?? '').replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 140)} | | | | | | |`);
      continue;
    }
    const e = h.errors;
    const cpu = h.cpu ? `${f(h.cpu.cpuUsPerOp)} (${h.cpu.proxyCores.toFixed(2)})` : '–';
    lines.push(
      `| ${p.round} | ${label} | ${f(h.rps)} | ${ms(h.latencyMs?.p50)} | ${ms(h.latencyMs?.p99)} | ${e ? `${e.failed}/${e.errored}/${e.timeout}/${e.non2xx}` : '–'} | ${cpu} | ` +
        `${f(p.memAfterH2?.rssMiB, 1)} | ${h.cpu?.machine ? h.cpu.machine.otherCores.toFixed(2) : '–'} |`,
    );
  }
  lines.push('');
  lines.push(
    `h2load -t${r.options.threads} -c${r.options.connections} -m${r.options.h2Streams ?? 10} -D${r.options.seconds} --warm-up-time ${r.options.warmupSeconds} ` +
      '(percentiles from its --log-file, start of request to end of answer). Proxy CPU covers the warm-up too.',
  );
  return lines.join('\n');
}

/** With --settle: RSS (and PSS) right after start-up and after the keep-alive run, and again S quiet seconds later. */
export function memoryMarkdownTable(r: ProxyBenchReport): string {
  const s = r.options.settleSeconds ?? 0;
  const lines = [
    `| round | proxy | RSS MiB at ready | idle ${s} s later | right after keep-alive | ${s} s later | after h2 | PSS MiB idle ${s} s later |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of r.runs) {
    const label = p.proxy === 'padlock' ? '**padlock**' : p.proxy;
    lines.push(
      `| ${p.round} | ${label} | ${f(p.memIdle?.rssMiB, 1)} | ${f(p.memIdleSettled?.rssMiB, 1)} | ${f(p.memAfterKeepAlive?.rssMiB, 1)} | ` +
        `${f(p.memAfterKeepAliveSettled?.rssMiB, 1)} | ${f(p.memAfterH2?.rssMiB, 1)} | ${f(p.memIdleSettled?.pssMiB, 1)} |`,
    );
  }
  lines.push('');
  lines.push(`All processes of each server (padlock with --workers: the main process and its workers). "At ready": 0.3 s after the first 200; "${s} s later": after ${s} s with no request sent.`);
  return lines.join('\n');
}
