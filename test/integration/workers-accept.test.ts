/**
 * `padlock run --workers 2` on Linux: every worker listens on :80 and :443
 * itself (one SO_REUSEPORT socket each) and accepts its own connections; the
 * main process holds no listening socket. Checked the way an operator would,
 * with `ss` (iproute2): who listens, and which process holds a connection.
 * Also: a killed worker leaves the other worker's connections alone and the
 * port answering, and a port held by another program still fails start-up.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProxyCluster } from '../../src/proxy/cluster.js';
import { silentLogger } from '../../src/log.js';
import { runCli } from '../support/cli.js';
import { freePort } from '../support/pebble.js';
import { tempConfigDir } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';

const run = promisify(execFile);

/** `ss` with `-H -n -p` and a filter; fails with the package to install when it is missing. */
async function ss(args: string[]): Promise<string[]> {
  try {
    const { stdout } = await run('ss', ['-H', '-n', '-p', ...args]);
    return stdout.split('\n').filter((l) => l.trim() !== '');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('these tests need `ss` (Debian package iproute2)');
    throw err;
  }
}
const pidsOf = (lines: string[]): number[] => lines.flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
/** The pids owning a listening TCP socket on `port`, one entry per socket (sorted). */
const listeners = async (port: number): Promise<number[]> => pidsOf(await ss(['-l', '-t', `sport = :${port}`])).sort((a, b) => a - b);
/** The pid holding the server side of the connection from local port `clientPort` to `serverPort`. */
async function serverPid(serverPort: number, clientPort: number): Promise<number> {
  const pids = pidsOf(await ss(['-t', 'state', 'established', `( sport = :${serverPort} and dport = :${clientPort} )`]));
  assert.equal(pids.length, 1, `one process holds the connection from port ${clientPort}`);
  return pids[0]!;
}
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

interface WorkerView { slot: number; pid: number; listening: boolean; requests: number }

describe('padlock run --workers 2: each worker accepts its own connections', () => {
  const name = 'accept.localhost';
  let cfg: { dir: string; cleanup: () => Promise<void> };
  let app: Awaited<ReturnType<typeof startUpstream>>;
  let daemon: RunningDaemon;
  let root: string;
  const workers = async (): Promise<WorkerView[]> => (await daemon.status())['workers'] as WorkerView[];

  /** An HTTP/2 session (one TCP connection) kept open, with the pid of the worker that accepted it. */
  interface Held { session: http2.ClientHttp2Session; pid: number; closed: boolean }
  const hold = async (): Promise<Held> => {
    const session = http2.connect(`https://127.0.0.1:${daemon.httpsPort}`, { servername: name, ca: root });
    session.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    const held: Held = { session, pid: await serverPid(daemon.httpsPort, session.socket.localPort!), closed: false };
    session.once('close', () => (held.closed = true));
    return held;
  };
  const get = (session: http2.ClientHttp2Session) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const stream = session.request({ ':path': '/', ':authority': name });
    stream.setTimeout(5000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    let body = '';
    let status = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8').on('data', (d: string) => (body += d));
    stream.on('error', reject);
    stream.on('close', () => (status ? resolve({ status, body }) : reject(new Error(`no answer (RST_STREAM ${stream.rstCode})`))));
  });
  /** Opens connections (up to 64) until both workers hold at least one; returns them all. */
  const holdOnBoth = async (pids: number[]): Promise<Held[]> => {
    const all: Held[] = [];
    while (all.length < 64 && !pids.every((p) => all.some((h) => h.pid === p))) all.push(...await Promise.all(Array.from({ length: 8 }, hold)));
    return all;
  };

  before(async () => {
    cfg = await tempConfigDir();
    app = await startUpstream('accept-app');
    const file = join(cfg.dir, 'padlock.yaml');
    await writeFile(file, ['sites:', `  - host: ${name}`, `    upstream: ${app.url}`].join('\n'));
    daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), '--workers', '2']);
    root = (await runCli(['trust', '--pem', '--config-dir', join(cfg.dir, 'store')])).stdout;
    await waitFor('HTTPS for the local name', () => httpsGet(daemon.httpsPort, name, root).catch(() => undefined));
  });
  after(async () => {
    await daemon?.stop();
    await app?.close();
    await cfg?.cleanup();
  });

  it('has one listening socket per worker on both ports, and none in the main process', async () => {
    const pids = (await workers()).map((w) => w.pid).sort((a, b) => a - b);
    assert.equal(pids.length, 2);
    assert.deepEqual(await listeners(daemon.httpsPort), pids);
    assert.deepEqual(await listeners(daemon.httpPort), pids);
    assert.ok(!pids.includes(daemon.child.pid!));
  });

  it('spreads new connections over both workers, and each serves the requests on its own connections', async () => {
    const pids = (await workers()).map((w) => w.pid);
    const held = await holdOnBoth(pids);
    try {
      assert.deepEqual([...new Set(held.map((h) => h.pid))].sort(), [...pids].sort(), 'both workers accepted some of the connections');
      for (const h of held) {
        const res = await get(h.session);
        assert.equal(res.status, 200);
        assert.equal(JSON.parse(res.body).app, 'accept-app');
      }
    } finally {
      for (const h of held) h.session.destroy();
    }
  });

  it('keeps serving when a worker is killed: the other worker\'s connections keep working, every new connection is answered, and a replacement joins the port', async () => {
    const before = await workers();
    const held = await holdOnBoth(before.map((w) => w.pid));
    try {
      const victim = before[0]!.pid;
      const survivor = before[1]!.pid;
      process.kill(victim, 'SIGKILL');
      await waitFor('the killed worker gone', async () => !alive(victim), 5_000);
      // The survivor's connections: same TCP connection, still answered.
      for (const h of held.filter((x) => x.pid === survivor)) {
        const res = await get(h.session);
        assert.equal(res.status, 200);
        assert.equal(h.closed, false);
      }
      // New connections, while the replacement starts: every one answered.
      for (let i = 0; i < 20; i++) assert.equal((await httpsGet(daemon.httpsPort, name, root)).status, 200);
      // The replacement listens on both ports itself, and gets connections.
      const after = await waitFor('a replacement worker listening', async () => {
        const list = await workers();
        return list.length === 2 && list.every((w) => w.listening) && !list.some((w) => w.pid === victim) ? list : undefined;
      }, 20_000);
      const pids = after.map((w) => w.pid).sort((a, b) => a - b);
      assert.ok(pids.includes(survivor));
      assert.deepEqual(await listeners(daemon.httpsPort), pids);
      assert.deepEqual(await listeners(daemon.httpPort), pids);
      const again = await holdOnBoth(pids);
      held.push(...again);
      assert.deepEqual([...new Set(again.map((h) => h.pid))].sort(), [...pids].sort(), 'the replacement accepts connections too');
      for (const h of again) assert.equal((await get(h.session)).status, 200);
    } finally {
      for (const h of held) h.session.destroy();
    }
  });
});

describe('padlock run --workers 2: a port held by another program', () => {
  const startWith = async (blocker: net.Server, reusePort: boolean) => {
    const dir = await tempConfigDir();
    const taken = await freePort();
    await new Promise<void>((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen({ port: taken, host: '127.0.0.1', ...(reusePort ? { reusePort: true } : {}) }, () => resolve());
    });
    try {
      const r = await runCli(['run', '--docker', 'false', '--config-dir', dir.dir, '--admin-listen', '127.0.0.1:0', '--http-port', '0', '--https-port', String(taken), '--bind', '127.0.0.1', '--workers', '2']);
      return { r, taken };
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      await dir.cleanup();
    }
  };
  const expected = (taken: number) => new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} \\(EADDRINUSE\\): another program already listens on 127\\.0\\.0\\.1:${taken}.*\\[LISTEN_FAILED\\]`);

  it('fails start-up with the same error as one process', async () => {
    const { r, taken } = await startWith(http.createServer(), false);
    assert.equal(r.code, 1);
    assert.match(r.stderr, expected(taken));
  });

  it('fails start-up when the holder uses SO_REUSEPORT too (as another padlock would), instead of sharing its connections', async () => {
    let stolen = 0;
    const { r, taken } = await startWith(net.createServer((s) => {
      stolen++;
      s.destroy();
    }), true);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, expected(taken));
    assert.equal(stolen, 0);
  });
});

describe('padlock run --workers 2: the same port for HTTP and HTTPS', () => {
  it('fails start-up as one process does, instead of both servers sharing the port', async () => {
    const dir = await tempConfigDir();
    try {
      const port = await freePort();
      const r = await runCli(['run', '--docker', 'false', '--config-dir', dir.dir, '--admin-listen', '127.0.0.1:0', '--http-port', String(port), '--https-port', String(port), '--bind', '127.0.0.1', '--workers', '2']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\).*\\[LISTEN_FAILED\\]`));
    } finally {
      await dir.cleanup();
    }
  });
});

describe('ProxyCluster on IPv6 loopback, port 0', () => {
  let cluster: ProxyCluster;
  let primary: ProxyCluster | undefined;
  after(async () => {
    await cluster?.close({ drainMs: 0 });
    await primary?.close({ drainMs: 0 });
  });

  it('binds both workers to the port the first one picked on ::1, and answers there', async () => {
    cluster = new ProxyCluster({ workers: 2, httpPort: 0, httpsPort: 0, bind: '::1', logger: silentLogger, logLevel: 'error', pretty: false });
    cluster.setSites([{ host: 'v6.example.com', upstreams: [{ url: 'http://127.0.0.1:9' }], https: true, redirect: true, issuer: 'acme' }]);
    const ports = await cluster.listen();
    const pids = cluster.describe().map((w) => w.pid!).sort((a, b) => a - b);
    assert.deepEqual(await listeners(ports.httpsPort), pids);
    assert.deepEqual(await listeners(ports.httpPort), pids);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '::1', port: ports.httpPort, path: '/x', headers: { host: 'v6.example.com' } }, (r) => resolve(r.resume())).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://v6.example.com:${ports.httpsPort}/x`);
  });

  it("with accept 'primary' (other systems), the main process holds the listening sockets and a worker answers through it", async () => {
    primary = new ProxyCluster({ workers: 2, httpPort: 0, httpsPort: 0, bind: '::1', logger: silentLogger, logLevel: 'error', pretty: false, accept: 'primary' });
    primary.setSites([{ host: 'v6.example.com', upstreams: [{ url: 'http://127.0.0.1:9' }], https: true, redirect: true, issuer: 'acme' }]);
    const ports = await primary.listen();
    assert.deepEqual(await listeners(ports.httpsPort), [process.pid]);
    assert.deepEqual(await listeners(ports.httpPort), [process.pid]);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '::1', port: ports.httpPort, path: '/y', headers: { host: 'v6.example.com' } }, (r) => resolve(r.resume())).on('error', reject);
    });
    assert.equal(res.statusCode, 308);
    assert.equal(res.headers.location, `https://v6.example.com:${ports.httpsPort}/y`);
  });
});
