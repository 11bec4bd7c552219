/**
 * CPU cost of forwarding one request, per forwarding strategy.
 *
 * Each strategy runs as a plain-HTTP front in its own child process (so its
 * CPU time is its own: `process.cpuUsage()` around the measured phase), in
 * front of one keep-alive loopback upstream in the parent. The parent's load
 * generator sends N requests over C keep-alive connections. Everything is on
 * 127.0.0.1; every loop is bounded by N and stops by itself.
 *
 * Strategies:
 * - `padlock`            src/proxy/forward.ts (undici dispatch, keep-alive pool, padlock's headers, retries and error pages)
 * - `http-proxy-3+agent` http-proxy-3 with a keep-alive agent and its default response passes, xfwd on
 * - `http-proxy-3`       http-proxy-3 as configured by default (no agent: a new upstream connection per request)
 * - `node-http+agent`    a hand-rolled minimal forward: `http.request` + keep-alive agent (reference only)
 * - `undici-dispatch`    a hand-rolled minimal forward: undici `Pool.dispatch` (reference only: what padlock's
 *                        forward costs without its header handling, retries and error pages)
 *
 *   npx node --import tsx bench/proxy/forward-cpu.ts [--n 20000] [--c 8] [--runs 3] [--only padlock,node-http+agent]
 *
 * Read ratios between rows of one run; the machine is shared and noisy.
 */
import http from 'node:http';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const STRATEGIES = ['padlock', 'http-proxy-3+agent', 'http-proxy-3', 'node-http+agent', 'undici-dispatch'] as const;
type Strategy = (typeof STRATEGIES)[number];

// ---------------- child: one forwarding front ----------------

async function child(strategy: Strategy, upstreamPort: number): Promise<void> {
  const target = new URL(`http://127.0.0.1:${upstreamPort}`);
  let handler: http.RequestListener;
  if (strategy === 'padlock') {
    const { Forwarder } = await import('../../src/proxy/forward.js');
    const { RouteTable } = await import('../../src/proxy/routes.js');
    const { silentLogger } = await import('../../src/log.js');
    const forwarder = new Forwarder({ logger: silentLogger });
    const table = new RouteTable([{ host: 'bench.example.com', upstreams: [{ url: target.origin }], https: false, redirect: false, issuer: 'local' }]);
    handler = (req, res) => {
      const route = table.lookup(req.headers.host);
      if (!route) return void res.writeHead(404).end();
      forwarder.web(req, res, route, { proto: 'http' });
    };
  } else if (strategy === 'http-proxy-3+agent' || strategy === 'http-proxy-3') {
    const { ProxyServer } = await import('http-proxy-3');
    const agent = strategy === 'http-proxy-3+agent' ? new http.Agent({ keepAlive: true, maxSockets: 256 }) : undefined;
    const proxy = new ProxyServer({ target, xfwd: true, ...(agent ? { agent } : {}) });
    proxy.on('error', (_err, _req, res) => {
      if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
    });
    handler = (req, res) => proxy.web(req, res);
  } else if (strategy === 'undici-dispatch') {
    const { Pool } = await import('undici');
    const pool = new Pool(target.origin, { connections: 256, pipelining: 1 });
    const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding', 'expect'];
    handler = (req, res) => {
      const headers = req.headers;
      for (const h of HOP) delete headers[h];
      headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
      headers['x-forwarded-proto'] = 'http';
      const hasBody = headers['content-length'] !== undefined && headers['content-length'] !== '0';
      pool.dispatch(
        { path: req.url ?? '/', method: req.method as 'GET', headers: headers as Record<string, string>, body: hasBody ? req : null },
        {
          onRequestStart() {},
          onResponseStart(_c, status, h) {
            for (const x of HOP) delete h[x];
            res.writeHead(status, h as http.OutgoingHttpHeaders);
          },
          onResponseData(c, chunk) {
            if (!res.write(chunk)) {
              c.pause();
              res.once('drain', () => c.resume());
            }
          },
          onResponseEnd() {
            res.end();
          },
          onResponseError() {
            if (!res.headersSent) res.writeHead(502).end();
            else res.destroy();
          },
        },
      );
    };
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding'];
    handler = (req, res) => {
      const headers = { ...req.headers };
      for (const h of HOP) delete headers[h];
      headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
      headers['x-forwarded-proto'] = 'http';
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (ur) => {
        const out = { ...ur.headers };
        for (const h of HOP) delete out[h];
        res.writeHead(ur.statusCode ?? 502, out);
        ur.pipe(res);
      });
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
      req.pipe(up);
    };
  }
  const server = http.createServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let start: NodeJS.CpuUsage | undefined;
  process.on('message', (msg: string) => {
    if (msg === 'start') {
      start = process.cpuUsage();
      process.send!({ started: true });
    } else if (msg === 'stop') {
      const d = process.cpuUsage(start);
      process.send!({ cpuMicros: d.user + d.system });
    } else if (msg === 'exit') {
      server.closeAllConnections();
      server.close(() => process.exit(0));
    }
  });
  process.send!({ port: (server.address() as AddressInfo).port });
}

// ---------------- parent: upstream, load, report ----------------

function ask<T>(cp: ChildProcess, msg: string | undefined, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Record<string, unknown>) => {
      if (key in m) {
        cp.off('message', onMsg);
        resolve(m[key] as T);
      }
    };
    cp.on('message', onMsg);
    cp.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    if (msg !== undefined) cp.send(msg);
  });
}

/** Sends `n` GETs over `c` keep-alive connections; resolves with the number of non-200 answers. */
async function load(port: number, n: number, c: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: c });
  let sent = 0;
  let bad = 0;
  const worker = async () => {
    while (sent < n) {
      sent++;
      const status = await new Promise<number>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/bench', headers: { host: 'bench.example.com' }, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.setTimeout(10_000, () => req.destroy());
      });
      if (status !== 200) bad++;
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  agent.destroy();
  return bad;
}

async function measure(strategy: Strategy, upstreamPort: number, n: number, c: number) {
  const cp = fork(fileURLToPath(import.meta.url), ['child', strategy, String(upstreamPort)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const port = await ask<number>(cp, undefined, 'port');
    await load(port, Math.min(2_000, n), c); // warm-up: JIT, pools
    await ask(cp, 'start', 'started');
    const t0 = process.hrtime.bigint();
    const bad = await load(port, n, c);
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const cpuMicros = await ask<number>(cp, 'stop', 'cpuMicros');
    return { cpuPerReqMicros: cpuMicros / n, reqPerSec: (n / wallMs) * 1000, bad };
  } finally {
    cp.send('exit');
    await new Promise((r) => cp.once('exit', r));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { n: { type: 'string', default: '20000' }, c: { type: 'string', default: '8' }, runs: { type: 'string', default: '3' }, only: { type: 'string' } },
  });
  const n = Number(values.n);
  const c = Number(values.c);
  const runs = Number(values.runs);
  const chosen = values.only ? (values.only.split(',') as Strategy[]) : [...STRATEGIES];
  for (const s of chosen) if (!STRATEGIES.includes(s)) throw new Error(`unknown strategy ${s}; one of ${STRATEGIES.join(', ')}`);

  let upstreamConnections = 0;
  const body = JSON.stringify({ ok: true, pad: 'x'.repeat(64) });
  const upstream = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  upstream.keepAliveTimeout = 30_000;
  upstream.on('connection', () => upstreamConnections++);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as AddressInfo).port;

  const results = new Map<Strategy, { cpu: number[]; rps: number[]; bad: number; conns: number }>();
  for (let r = 0; r < runs; r++) {
    // Rotate the order each run so no strategy always goes first.
    const order = chosen.map((_, i) => chosen[(i + r) % chosen.length]!);
    for (const s of order) {
      const before = upstreamConnections;
      const m = await measure(s, upstreamPort, n, c);
      const row = results.get(s) ?? { cpu: [], rps: [], bad: 0, conns: 0 };
      row.cpu.push(m.cpuPerReqMicros);
      row.rps.push(m.reqPerSec);
      row.bad += m.bad;
      row.conns += upstreamConnections - before;
      results.set(s, row);
      process.stderr.write(`run ${r + 1}/${runs} ${s}: ${m.cpuPerReqMicros.toFixed(1)} µs/req, ${m.reqPerSec.toFixed(0)} req/s, ${m.bad} failed\n`);
    }
  }
  upstream.closeAllConnections();
  upstream.close();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const best = Math.min(...[...results.values()].map((r) => median(r.cpu)));
  console.log(`\nforward CPU per request: N=${n} requests over C=${c} keep-alive client connections, ${runs} runs, node ${process.version}\n`);
  console.log('| strategy | proxy CPU µs/req (median) | min–max | vs best | req/s (median, info) | upstream conns per run (incl. warm-up) | failed |');
  console.log('|---|---|---|---|---|---|---|');
  for (const s of chosen) {
    const r = results.get(s)!;
    const cpu = median(r.cpu);
    console.log(
      `| ${s} | ${cpu.toFixed(1)} | ${Math.min(...r.cpu).toFixed(1)}–${Math.max(...r.cpu).toFixed(1)} | ${(cpu / best).toFixed(2)}× | ${median(r.rps).toFixed(0)} | ${Math.round(r.conns / runs)} | ${r.bad} |`,
    );
  }
}

if (process.argv[2] === 'child') {
  await child(process.argv[3] as Strategy, Number(process.argv[4]));
} else {
  await main();
}
