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
export async function resumptionProbe(port: number, dir: string): Promise<{ resumed: boolean; detail: string }> {
  const sess = join(dir, `sess-${port}.pem`);
  await rm(sess, { force: true });
  const req = `printf 'GET / HTTP/1.1\\r\\nHost: ${HOST}\\r\\nConnection: close\\r\\n\\r\\n'`;
  const base = `openssl s_client -connect 127.0.0.1:${port} -servername ${HOST}`;
  // -quiet implies -ign_eof: s_client reads until the server closes, so a TLS 1.3 ticket sent after the handshake is kept.
  const first = await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -quiet -sess_out ${sess}`], toolEnv(), 15_000);
  let have = false;
  try {
    have = (await readFile(sess, 'utf8')).includes('BEGIN SSL SESSION');
  } catch {
    have = false;
  }
  if (!have) return { resumed: false, detail: `no session saved (${first.stderr.trim().split('\n').slice(-1)[0] ?? ''})` };
  const second = await runTimed('sh', ['-c', `${req} | timeout 10 ${base} -sess_in ${sess}`], toolEnv(), 15_000);
  const line = /^(New|Reused), [^\n]*/m.exec(second.stdout)?.[0] ?? 'no handshake line';
  return { resumed: line.startsWith('Reused'), detail: line };
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
