import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { padlockBin, repoRoot } from './cli.js';
import { freePort } from './pebble.js';

export interface RunningDaemon {
  child: ChildProcess;
  httpPort: number;
  httpsPort: number;
  adminPort: number;
  output: () => string;
  status: () => Promise<Record<string, any>>;
  /** Sends SIGTERM and resolves with the exit code (kills after `ms`). */
  stop: (ms?: number) => Promise<number | null>;
}

/**
 * Starts `padlock run` as a real process with the given flags and waits for
 * /readyz. `bind` (default 127.0.0.1) is the loopback address it listens on,
 * admin API included: several replicas can share ports on 127.0.0.1, .2, .3
 * (`::1` works too).
 */
export async function startPadlockRun(args: string[], opts: { env?: Record<string, string>; httpPort?: number; httpsPort?: number; adminPort?: number; bind?: string; readyTimeoutMs?: number } = {}): Promise<RunningDaemon> {
  const [httpPort, httpsPort, adminPort] = [opts.httpPort ?? (await freePort()), opts.httpsPort ?? (await freePort()), opts.adminPort ?? (await freePort())];
  const bind = opts.bind ?? '127.0.0.1';
  const child = spawn(padlockBin, ['run', '--http-port', String(httpPort), '--https-port', String(httpsPort), '--bind', bind, '--admin-listen', `${bind.includes(':') ? `[${bind}]` : bind}:${adminPort}`, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const safety = () => child.kill('SIGKILL');
  process.once('exit', safety);
  const status = () => getJson(adminPort, '/api/status', bind);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 20_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`padlock run exited with ${child.exitCode}:\n${out}`);
    const ready = await getJson(adminPort, '/readyz', bind).then((j) => j['ready'] === true, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`padlock run not ready in time:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child, httpPort, httpsPort, adminPort,
    output: () => out,
    status,
    stop: async (ms = 15_000) => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), ms);
      const code = await exited;
      clearTimeout(t);
      process.removeListener('exit', safety);
      return code;
    },
  };
}

/**
 * Env for `startPadlockRun` that preloads test/support/loopback-resolver.mjs:
 * `names` (and `localhost`) resolve to 127.0.0.1 inside the daemon and its
 * workers, every other name fails, and no DNS query is ever sent.
 */
export function loopbackResolverEnv(names: string[]): Record<string, string> {
  const preload = fileURLToPath(new URL('./loopback-resolver.mjs', import.meta.url));
  return { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import ${preload}`.trim(), PADLOCK_TEST_LOOPBACK_NAMES: names.join(',') };
}

export function getJson(port: number, path: string, host = '127.0.0.1'): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    // The admin API answers only loopback Host names: 127.0.0.x is one.
    const req = http.get({ host, port, path, timeout: 2000, headers: { host: `${host.includes(':') ? `[${host}]` : host}:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(e);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface HttpsResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  peer: tls.PeerCertificate;
  /** The protocol the answer came over (ALPN): `http/1.1` or `h2`. */
  protocol: string;
}

/** Both HTTPS client protocols, for tests that must hold over each. */
export const CLIENT_PROTOCOLS = ['http/1.1', 'h2'] as const;
export type ClientProtocol = (typeof CLIENT_PROTOCOLS)[number];

/** `httpsGet` over `protocol` (HTTP/2: one fresh session, closed after the answer). */
export function httpsGetOver(protocol: ClientProtocol, port: number, name: string, ca: string | string[], path = '/'): Promise<HttpsResult> {
  if (protocol === 'http/1.1') return httpsGet(port, name, ca, path);
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: name, ca });
    session.on('error', reject);
    const stream = session.request({ ':path': path, ':authority': name });
    stream.setTimeout(5000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    let body = '';
    let head: http2.IncomingHttpHeaders = {};
    let peer: tls.PeerCertificate | undefined;
    let protocol = '';
    stream.on('response', (h) => {
      head = h;
      const socket = session.socket as tls.TLSSocket;
      peer = socket.getPeerCertificate();
      protocol = String(socket.alpnProtocol);
    });
    stream.setEncoding('utf8').on('data', (d: string) => (body += d));
    stream.on('error', (err) => {
      session.close();
      reject(err);
    });
    stream.on('close', () => {
      session.close();
      if (!peer) return reject(new Error(`no answer (RST_STREAM ${stream.rstCode})`));
      const { ':status': status, ...headers } = head;
      resolve({ status: Number(status), body, headers: headers as http.IncomingHttpHeaders, peer, protocol });
    });
  });
}

/** GET https://NAME:port/path on 127.0.0.1, trusting only `ca`, with no DNS. */
export function httpsGet(port: number, name: string, ca: string | string[], path = '/', agent: https.Agent | false = false, host = '127.0.0.1'): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, path, servername: name, headers: { host: name }, ca, agent, timeout: 5000 }, (res) => {
      let body = '';
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
      // No ALPN offered (Node's https client offers none): HTTP/1.1.
      const protocol = (res.socket as tls.TLSSocket).alpnProtocol || 'http/1.1';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, peer, protocol }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A plain upstream app on 127.0.0.1 that answers with its name and what it received; `?delay=MS` answers late. */
export async function startUpstream(name: string): Promise<{ port: number; url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits += 1;
    const delay = Number(new URL(req.url ?? '/', 'http://upstream.invalid').searchParams.get('delay') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ app: name, path: req.url, headers: req.headers })), delay);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    hits: () => hits,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** What clients saw while `padlock run` drained on SIGTERM (see `sigtermDuringRequests`). */
export interface SigtermOutcome {
  /** The exit code. */
  code: number | null;
  /** Status of the slow request in flight on HTTP/1.1 and on HTTP/2 when SIGTERM arrived. */
  statuses: Record<ClientProtocol, number | string>;
  /** The GOAWAY error code the HTTP/2 connection got, if any. */
  goaway: number | undefined;
  /** Whether the GOAWAY came before the answer to the request in flight (it should: drain starts at once). */
  goawayFirst: boolean;
  /** What a new connection after the exit got: `refused`, or what it unexpectedly got. */
  afterExit: string;
}

/**
 * Sends `padlock run` SIGTERM while one slow request (`path`, about
 * `delayMs` at the upstream) is in flight over HTTP/1.1 and one over an
 * HTTP/2 connection, and reports what each client saw. `hits` counts the
 * upstream's requests, so SIGTERM goes out only once both have reached it.
 */
export async function sigtermDuringRequests(daemon: RunningDaemon, name: string, ca: string, hits: () => number, delayMs = 1_000): Promise<SigtermOutcome> {
  const path = `/drain?delay=${delayMs}`;
  const before = hits();
  const h1 = httpsGet(daemon.httpsPort, name, ca, path).then((r) => r.status, (err: Error) => err);
  const session = http2.connect(`https://127.0.0.1:${daemon.httpsPort}`, { servername: name, ca });
  session.on('error', () => undefined);
  let goaway: number | undefined;
  let answered = false;
  let goawayFirst = false;
  session.on('goaway', (code: number) => {
    goaway ??= code;
    goawayFirst ||= !answered;
  });
  const h2 = new Promise<number | Error>((resolve) => {
    const stream = session.request({ ':path': path, ':authority': name });
    let status = 0;
    stream.on('response', (h) => {
      answered = true;
      status = Number(h[':status']);
    });
    stream.resume();
    stream.on('error', (err) => resolve(err));
    stream.on('close', () => resolve(status));
  });
  await waitFor('both slow requests at the upstream', async () => hits() - before >= 2, 5_000, 10);
  const code = await daemon.stop();
  const [s1, s2] = await Promise.all([h1, h2]);
  session.destroy();
  const afterExit = await httpsGet(daemon.httpsPort, name, ca).then((r) => `answered ${r.status}`, (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? 'refused' : String(err)));
  const status = (s: number | Error) => (s instanceof Error ? `error ${(s as NodeJS.ErrnoException).code ?? s.message}` : s);
  return { code, statuses: { 'http/1.1': status(s1), h2: status(s2) }, goaway, goawayFirst, afterExit };
}

/** Something a test started; still unset when its start failed. */
interface Stoppable {
  stop(): Promise<unknown>;
}

/**
 * Tears down a `padlock run` test in the order that leaves nothing behind:
 * padlock first (it watches the rest), then the test's containers, dockerd,
 * Pebble and the config dir. What is still unset (its start failed) is skipped.
 */
export async function stopRunTest(parts: {
  daemon?: Stoppable;
  containers?: Array<{ remove(): Promise<unknown> }>;
  dockerd?: Stoppable;
  pebble?: Stoppable;
  cfg?: { cleanup(): Promise<unknown> };
}): Promise<void> {
  await parts.daemon?.stop();
  for (const c of parts.containers ?? []) await c.remove().catch(() => undefined);
  await parts.dockerd?.stop();
  await parts.pebble?.stop();
  await parts.cfg?.cleanup();
}
