/**
 * Load generators and probes of the proxy bench. Every one is bounded in time
 * (its own duration plus a hard `timeout`/kill) and talks to 127.0.0.1 only.
 *
 * - keep-alive: `wrk -t2 -c50 -d10s --latency https://localhost:PORT/`. wrk 4.1
 *   sends the URL's host as SNI and Host; it resolves `localhost` through
 *   /etc/hosts (nsswitch `files` first), and `dnsCheck` verifies with strace
 *   that no DNS packet is sent.
 * - full handshakes: curl in parallel mode, `--no-sessionid` (no TLS session
 *   reuse) and `Connection: close`, so every request is a new TCP connection
 *   and a full TLS handshake with SNI `localhost` (`--resolve` pins 127.0.0.1).
 *   wrk is not used for this: with `Connection: close` it reconnects with
 *   SSL_clear() and resumes the previous session (checked against nginx's
 *   `$ssl_session_reused`), so it would measure resumed handshakes.
 * - resumed reconnects: wrk with `Connection: close` (it resumes, see above),
 *   plus an `openssl s_client -sess_out/-sess_in` probe that says whether the
 *   proxy resumes TLS sessions at all.
 * - HTTP/2: `h2load -t2 -c50 -m10 -D10 --warm-up-time 2` (nghttp2-client):
 *   50 connections with 10 streams in flight each. `--connect-to
 *   127.0.0.1:PORT` connects without resolving anything; the URL's `localhost`
 *   is only the SNI name and `:authority`. h2load prints no percentiles, so
 *   `--log-file` records every request's time and they are computed here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runTimed } from '../issue/child.js';
import { HOST } from './servers.js';

/** The environment for the load tools: no proxy variables (curl would honour them). */
export function toolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?|all|no|ftp)_proxy$/i.test(k)) env[k] = v;
  return env;
}

// ---------------- wrk ----------------

export interface WrkResult {
  ok: boolean;
  error?: string;
  seconds: number;
  requests?: number;
  rps?: number;
  latencyMs?: { p50?: number; p75?: number; p90?: number; p99?: number; avg?: number; max?: number };
  socketErrors?: { connect: number; read: number; write: number; timeout: number };
  non2xx?: number;
  raw: string;
}

function toMs(v: string, unit: string): number {
  const x = Number(v);
  return unit === 'us' ? x / 1000 : unit === 'ms' ? x : unit === 's' ? x * 1000 : unit === 'm' ? x * 60_000 : NaN;
}

/** Parses wrk 4.x output (with --latency). */
export function parseWrk(out: string): Omit<WrkResult, 'ok' | 'seconds' | 'raw' | 'error'> {
  const r: Omit<WrkResult, 'ok' | 'seconds' | 'raw' | 'error'> = {};
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (rps) r.rps = Number(rps[1]);
  const req = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (req) r.requests = Number(req[1]);
  const lat: NonNullable<WrkResult['latencyMs']> = {};
  const avg = /Latency\s+([\d.]+)(us|ms|s|m)\s+[\d.]+(?:us|ms|s|m)\s+([\d.]+)(us|ms|s|m)/.exec(out);
  if (avg) {
    lat.avg = toMs(avg[1]!, avg[2]!);
    lat.max = toMs(avg[3]!, avg[4]!);
  }
  for (const [p, key] of [['50', 'p50'], ['75', 'p75'], ['90', 'p90'], ['99', 'p99']] as const) {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(out);
    if (m) lat[key] = toMs(m[1]!, m[2]!);
  }
  if (Object.keys(lat).length) r.latencyMs = lat;
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  r.socketErrors = se ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) } : { connect: 0, read: 0, write: 0, timeout: 0 };
  const n2 = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  r.non2xx = n2 ? Number(n2[1]) : 0;
  return r;
}

export async function wrk(port: number, opts: { threads: number; connections: number; seconds: number; headers?: string[] }): Promise<WrkResult> {
  const args = ['-t', String(opts.threads), '-c', String(opts.connections), '-d', `${opts.seconds}s`, '--latency', '--timeout', '5s'];
  for (const h of opts.headers ?? []) args.push('-H', h);
  args.push(`https://${HOST}:${port}/`);
  const r = await runTimed('wrk', args, toolEnv(), (opts.seconds + 15) * 1000);
  const parsed = parseWrk(r.stdout);
  const ok = r.ok && parsed.rps !== undefined;
  return {
    ok,
    seconds: r.seconds,
    ...parsed,
    raw: r.stdout.trim(),
    ...(ok ? {} : { error: r.timedOut ? 'wrk killed at its time bound' : `wrk exit ${r.code ?? r.signal}: ${(r.stderr || r.stdout).trim().slice(-400)}` }),
  };
}

// ---------------- HTTP/2 (h2load) ----------------

export interface H2loadResult {
  ok: boolean;
  error?: string;
  seconds: number;
  /** Requests completed (any status) in the measured window. */
  requests?: number;
  rps?: number;
  /** Per-request time, from the log file: start of the request to the end of its answer. */
  latencyMs?: { p50?: number; p90?: number; p99?: number; avg?: number; max?: number };
  /** failed + errored + timed out, and answers other than 2xx/3xx. */
  errors?: { failed: number; errored: number; timeout: number; non2xx: number };
  /** The protocol h2load negotiated (`h2`; anything else means no HTTP/2). */
  protocol?: string;
  raw: string;
}

/** Parses h2load's summary (nghttp2 1.52). */
export function parseH2load(out: string): Omit<H2loadResult, 'ok' | 'seconds' | 'raw' | 'error' | 'latencyMs'> {
  const r: Omit<H2loadResult, 'ok' | 'seconds' | 'raw' | 'error' | 'latencyMs'> = {};
  const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  if (rps) r.rps = Number(rps[1]);
  const req = /requests: (\d+) total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (req) {
    r.requests = Number(req[2]);
    r.errors = { failed: Number(req[3]), errored: Number(req[4]), timeout: Number(req[5]), non2xx: codes ? Number(codes[3]) + Number(codes[4]) : 0 };
  }
  const proto = /Application protocol: (\S+)/.exec(out);
  if (proto) r.protocol = proto[1]!;
  return r;
}

/** Percentiles of h2load's `--log-file` (start µs, status, duration µs per line). */
export function h2loadLatency(log: string): H2loadResult['latencyMs'] | undefined {
  const durations: number[] = [];
  for (const line of log.split('\n')) {
    const us = Number(line.split('\t')[2]);
    if (Number.isFinite(us) && us > 0) durations.push(us / 1000);
  }
  if (!durations.length) return undefined;
  durations.sort((a, b) => a - b);
  const at = (q: number): number => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))]!;
  const avg = durations.reduce((a, b) => a + b, 0) / durations.length;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), avg, max: durations[durations.length - 1]! };
}

export async function h2load(port: number, opts: { threads: number; clients: number; streams: number; seconds: number; warmupSeconds: number; logFile: string }): Promise<H2loadResult> {
  await rm(opts.logFile, { force: true });
  const args = [
    '-t', String(opts.threads), '-c', String(opts.clients), '-m', String(opts.streams),
    '-D', String(opts.seconds), '--warm-up-time', String(opts.warmupSeconds),
    '--connect-to', `127.0.0.1:${port}`, '--log-file', opts.logFile,
    `https://${HOST}:${port}/`,
  ];
  const r = await runTimed('h2load', args, toolEnv(), (opts.seconds + opts.warmupSeconds + 20) * 1000);
  const parsed = parseH2load(r.stdout);
  let latencyMs: H2loadResult['latencyMs'] | undefined;
  try {
    latencyMs = h2loadLatency(await readFile(opts.logFile, 'utf8'));
  } catch {
    latencyMs = undefined;
  }
  await rm(opts.logFile, { force: true });
  const ok = r.ok && parsed.rps !== undefined && parsed.protocol === 'h2';
  return {
    ok,
    seconds: r.seconds,
    ...parsed,
    ...(latencyMs ? { latencyMs } : {}),
    raw: r.stdout.trim(),
    ...(ok ? {} : { error: r.timedOut ? 'h2load killed at its time bound' : `h2load exit ${r.code ?? r.signal}, protocol ${parsed.protocol ?? 'none'}: ${(r.stderr || r.stdout).trim().slice(-400)}` }),
  };
}

// ---------------- full handshakes (curl) ----------------

const curls = new Set<ChildProcess>();

/** SIGKILLs every curl group still running. Safe from an 'exit' hook. */
export function killLoad(): void {
  for (const c of curls) {
    try {
      if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export interface HandshakeResult {
  ok: boolean;
  error?: string;
  tool: string;
  processes: number;
  parallelPerProcess: number;
  /** Seconds counted (after the warm-up). */
  windowSeconds: number;
  /** Completed connections (status 200) inside the window. */
  completed: number;
  /** Transfers inside the window that did not answer 200 (curl prints 000 for a failed connection). */
  failed: number;
  perSecond?: number;
}

/**
 * Runs `processes` curl processes (one per core), each with `parallel` transfers
 * in flight, every transfer a new connection with a full handshake. Counts the
 * 200s that arrive in [warmup, warmup + seconds], then kills the curls.
 */
export async function fullHandshakes(port: number, opts: { processes: number; connections: number; seconds: number; warmupSeconds: number }): Promise<HandshakeResult> {
  const parallel = Math.max(1, Math.ceil(opts.connections / opts.processes));
  const bound = opts.warmupSeconds + opts.seconds + 5;
  let completed = 0;
  let failed = 0;
  let counting = false;
  const errors: string[] = [];
  const children: ChildProcess[] = [];
  for (let i = 0; i < opts.processes; i++) {
    const args = [
      '-k', '2', String(bound), 'stdbuf', '-oL',
      'curl', '-s', '-k', '--noproxy', '*', '--no-sessionid', '--http1.1', '-H', 'Connection: close',
      '--resolve', `${HOST}:${port}:127.0.0.1`, '-Z', '--parallel-max', String(parallel),
      '-o', '/dev/null', '-w', '%{http_code}\\n', `https://${HOST}:${port}/?[1-10000000]`,
    ];
    const c = spawn('timeout', args, { env: toolEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let buf = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!counting) continue;
        if (line === '200') completed++;
        else failed++;
      }
    });
    c.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (errors.join('').length < 2000) errors.push(d);
    });
    children.push(c);
    curls.add(c);
    c.on('close', () => curls.delete(c));
  }
  const killAll = async (): Promise<void> => {
    // SIGTERM to the `timeout` wrappers only: each passes it to its curl and reaps it, so curl's CPU
    // time reaches this process's children totals (the bench accounts for it). SIGKILL the groups after.
    const closed = children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('close', () => r()))));
    for (const c of children) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    await Promise.race([Promise.all(closed), sleep(3000)]);
    for (const c of children) {
      try {
        if (c.pid !== undefined) process.kill(-c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };
  try {
    await sleep(opts.warmupSeconds * 1000);
    counting = true;
    const t0 = process.hrtime.bigint();
    await sleep(opts.seconds * 1000);
    counting = false;
    const window = Number(process.hrtime.bigint() - t0) / 1e9;
    const early = children.filter((c) => c.exitCode !== null || c.signalCode !== null);
    const ok = completed > 0 && early.length === 0;
    return {
      ok,
      tool: 'curl --no-sessionid -Z (Connection: close)',
      processes: opts.processes,
      parallelPerProcess: parallel,
      windowSeconds: Math.round(window * 1000) / 1000,
      completed,
      failed,
      perSecond: Math.round((completed / window) * 10) / 10,
      ...(ok ? {} : { error: `${early.length} curl process(es) ended early; ${completed} completed; ${errors.join('').trim().slice(-400)}` }),
    };
  } finally {
    await killAll();
  }
}

// ---------------- probes ----------------

export interface HttpsProbe {
  status?: number;
  body?: string;
  fingerprint256?: string;
  protocol?: string;
  error?: string;
}

/** One HTTPS GET to 127.0.0.1:port with SNI and Host `localhost`, trusting only `ca`. */
export function probe(port: number, ca: string | undefined, timeoutMs = 3000): Promise<HttpsProbe> {
  return new Promise((resolve) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: '/', servername: HOST, headers: { host: HOST }, agent: false, timeout: timeoutMs, ...(ca ? { ca } : { rejectUnauthorized: false }) },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          const sock = res.socket as import('node:tls').TLSSocket;
          resolve({ status: res.statusCode, body, fingerprint256: sock.getPeerCertificate?.()?.fingerprint256, protocol: sock.getProtocol?.() ?? undefined });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message }));
  });
}

/** Polls until `probe` answers 200 with `body`, or `timeoutMs` passes. */
export async function waitReady(port: number, ca: string | undefined, body: string, timeoutMs: number, alive: () => boolean): Promise<HttpsProbe & { seconds: number }> {
  const t0 = Date.now();
  let last: HttpsProbe = {};
  while (Date.now() - t0 < timeoutMs && alive()) {
    last = await probe(port, ca, 2000);
    if (last.status === 200 && last.body === body) return { ...last, seconds: (Date.now() - t0) / 1000 };
    await sleep(50);
  }
  return { ...last, error: last.error ?? (alive() ? `no 200 with the upstream's body within ${timeoutMs} ms (status ${last.status ?? '-'})` : 'process exited'), seconds: (Date.now() - t0) / 1000 };
}

/** Whether the proxy resumes a TLS session: two `openssl s_client` connections, the second offering the first's session. */
/** Whether a reconnect resumes, and how many of a chain of reconnects that each use the ticket of the one before do. */
export interface ResumptionProbe {
  resumed: boolean;
  detail: string;
  /** `of` reconnects, each offering only the ticket the connection before it received (`-sess_in` the last `-sess_out`). */
  chain?: { resumed: number; of: number };
}

/**
 * openssl s_client: one connection saves its session, a second offers it
 * (`resumed`); then `chain` more reconnects each offer only the ticket the
 * previous connection was given, as browsers and wrk use tickets once. A
 * server that sends no new ticket after a resumed handshake resumes only
 * every other one of those.
 */
export async function resumptionProbe(port: number, dir: string, chain = 10): Promise<ResumptionProbe> {
  const sess = (i: number) => join(dir, `sess-${port}-${i}.pem`);
  const req = `printf 'GET / HTTP/1.1\\r\\nHost: ${HOST}\\r\\nConnection: close\\r\\n\\r\\n'`;
  const base = `openssl s_client -connect 127.0.0.1:${port} -servername ${HOST}`;
  const saved = async (i: number): Promise<boolean> => (await readFile(sess(i), 'utf8').catch(() => '')).includes('BEGIN SSL SESSION');
  for (let i = 0; i <= chain; i++) await rm(sess(i), { force: true });
  try {
    // -quiet implies -ign_eof: s_client reads until the server closes, so a TLS 1.3 ticket sent after the handshake is kept.
    const first = await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -quiet -sess_out ${sess(0)}`], toolEnv(), 15_000);
    if (!(await saved(0))) return { resumed: false, detail: `no session saved (${first.stderr.trim().split('\n').slice(-1)[0] ?? ''})` };
    const second = await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -sess_in ${sess(0)}`], toolEnv(), 15_000);
    const line = /^(New|Reused), [^\n]*/m.exec(second.stdout)?.[0] ?? 'no handshake line';
    // The chain starts again from a fresh full handshake's ticket, so its first link does not reuse the ticket just offered above.
    await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -quiet -sess_out ${sess(0)}`], toolEnv(), 15_000);
    let resumed = 0;
    let offer: string | undefined = sess(0);
    for (let i = 1; i <= chain; i++) {
      // Without -quiet, s_client prints the handshake line; -ign_eof still waits for the close, so the ticket is saved.
      const r = await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -ign_eof ${offer ? `-sess_in ${offer} ` : ''}-sess_out ${sess(i)}`], toolEnv(), 15_000);
      if (/^Reused, /m.test(r.stdout)) resumed += 1;
      // No new ticket: the next link offers nothing, as a browser would, and does a full handshake.
      offer = (await saved(i)) ? sess(i) : undefined;
    }
    return { resumed: line.startsWith('Reused'), detail: line, chain: { resumed, of: chain } };
  } finally {
    for (let i = 0; i <= chain; i++) await rm(sess(i), { force: true });
  }
}

/**
 * Runs wrk for 1 s against `http://localhost:PORT/` under strace and reports
 * every UDP socket or connect() that is not to 127.0.0.1 (a DNS query would be
 * both). Proves that resolving `localhost` in wrk stays in /etc/hosts.
 */
export async function dnsCheck(upstreamPort: number, dir: string): Promise<{ checked: boolean; clean?: boolean; suspicious: string[]; note: string }> {
  const trace = join(dir, 'wrk-dns.strace');
  const r = await runTimed(
    'strace',
    ['-f', '-qq', '-e', 'trace=socket,connect,sendto,sendmsg', '-o', trace, 'wrk', '-t1', '-c1', '-d1s', `http://${HOST}:${upstreamPort}/`],
    toolEnv(),
    20_000,
  );
  let text = '';
  try {
    text = await readFile(trace, 'utf8');
  } catch {
    return { checked: false, suspicious: [], note: `strace did not run: ${(r.stderr || r.stdout).trim().slice(-200)}` };
  }
  const suspicious = text
    .split('\n')
    .filter((l) => /SOCK_DGRAM|htons\(53\)|AF_INET6/.test(l) || (/sin_addr=inet_addr\("/.test(l) && !/inet_addr\("127\.0\.0\.1"\)/.test(l)));
  return {
    checked: true,
    clean: suspicious.length === 0 && /127\.0\.0\.1/.test(text),
    suspicious: suspicious.slice(0, 10),
    note: `wrk -t1 -c1 -d1s http://${HOST}:${upstreamPort}/ under strace: ${text.split('\n').filter(Boolean).length} socket calls traced`,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The first PEM certificate's SHA-256 fingerprint, in Node's colon format. */
export function fingerprintOf(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}
