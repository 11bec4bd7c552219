import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
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
 * admin API included: several replicas can share ports on 127.0.0.1, .2, .3.
 */
export async function startPadlockRun(args: string[], opts: { env?: Record<string, string>; httpPort?: number; httpsPort?: number; adminPort?: number; bind?: string; readyTimeoutMs?: number } = {}): Promise<RunningDaemon> {
  const [httpPort, httpsPort, adminPort] = [opts.httpPort ?? (await freePort()), opts.httpsPort ?? (await freePort()), opts.adminPort ?? (await freePort())];
  const bind = opts.bind ?? '127.0.0.1';
  const child = spawn(padlockBin, ['run', '--http-port', String(httpPort), '--https-port', String(httpsPort), '--bind', bind, '--admin-listen', `${bind}:${adminPort}`, ...args], {
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
    const req = http.get({ host, port, path, timeout: 2000, headers: { host: `${host}:${port}` } }, (res) => {
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
}

/** GET https://NAME:port/path on 127.0.0.1, trusting only `ca`, with no DNS. */
export function httpsGet(port: number, name: string, ca: string | string[], path = '/', agent: https.Agent | false = false, host = '127.0.0.1'): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, path, servername: name, headers: { host: name }, ca, agent, timeout: 5000 }, (res) => {
      let body = '';
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate();
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, peer }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** A plain upstream app on 127.0.0.1 that answers with its name and what it received. */
export async function startUpstream(name: string): Promise<{ port: number; url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ app: name, path: req.url, headers: req.headers }));
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
