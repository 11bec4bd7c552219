/**
 * A real Pebble (Let's Encrypt's test CA, Debian package `pebble` 2.4.0) on
 * loopback, for integration tests and benchmarks.
 *
 * Each `startPebble()` gets its own temp dir, its own listener CA, its own
 * ports and its own `pebble-challtestsrv` as DNS server, so tests may run in
 * parallel. Nothing listens on anything but 127.0.0.1, and nothing resolves
 * names through the system resolver: Pebble's VA asks challtestsrv, which
 * answers 127.0.0.1 (A) and nothing (AAAA) for every name.
 *
 * Facts this relies on are in TESTBED.md: Pebble ships no certificates, makes a
 * new root at every start (fetch it from the management API), and forgets all
 * accounts when it restarts.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { onPath, requireProgram } from './programs.js';

const execFileP = promisify(execFile);

export interface PebbleOptions {
  /** The port Pebble's VA connects to for HTTP-01 (default: a free port picked here). */
  httpPort?: number;
  /** The port Pebble's VA connects to for TLS-ALPN-01 (default: a free port picked here). */
  tlsPort?: number;
  /** kid -> base64url HMAC key; when given, sets `externalAccountBindingRequired`. */
  eab?: Record<string, string>;
  /** Pebble's `certificateValidityPeriod` in seconds (default: Pebble's own, about 5 years). */
  validitySeconds?: number;
  /**
   * Extra environment for Pebble, merged over the deterministic defaults
   * `PEBBLE_VA_NOSLEEP=1`, `PEBBLE_WFE_NONCEREJECT=0`, `PEBBLE_AUTHZREUSE=0`.
   * `PEBBLE_ALTERNATE_ROOTS=N` makes `rootsFile` hold all N+1 roots.
   */
  env?: Record<string, string>;
  /**
   * `HOST:PORT` of the DNS server Pebble's VA asks instead of challtestsrv
   * (a real authoritative server for DNS-01 tests, test/support/knot.ts).
   */
  dnsServer?: string;
  /** Upper bound on the processes' lifetime, a safety net if stop() is never called (default 30 min). */
  maxLifetimeSeconds?: number;
}

export interface Pebble {
  /** `https://127.0.0.1:PORT/dir`. */
  directoryUrl: string;
  /** Where the VA sends HTTP-01 requests (on 127.0.0.1, whatever the name). */
  httpPort: number;
  /** Where the VA connects for TLS-ALPN-01 (on 127.0.0.1). */
  tlsPort: number;
  /** PEM file of the CA that signed Pebble's own HTTPS listener: trust it to talk to the ACME server. */
  serverCaFile: string;
  /** PEM file with Pebble's issuing root(s) from the management API, for verifying issued chains. */
  rootsFile: string;
  rootPem: string;
  intermediatePem: string;
  /** `https://127.0.0.1:MGMT` (Pebble's management API: /roots/N, /intermediates/N, /cert-status-by-serial/S). */
  managementUrl: string;
  /** `http://127.0.0.1:PORT` (challtestsrv's management API: /set-txt, /add-a, /clear-txt ...). */
  challtestsrvUrl: string;
  /** The DNS port (UDP and TCP) Pebble's VA asks. */
  dnsPort: number;
  /** Temp dir holding config, certs and keys; removed by stop(). */
  dir: string;
  /** Pebble's stdout/stderr so far (then challtestsrv's), for failure messages. */
  logs(): string;
  /** Kills Pebble and challtestsrv (TERM, then KILL after 2 s), waits for both, removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /**
   * Restarts Pebble alone on the same ports and config, as a CA restart looks
   * to a client: every account and order is forgotten (`accountDoesNotExist`)
   * and there is a new root. Updates `rootPem`, `intermediatePem` and
   * `rootsFile` in place. Throws with the logs if Pebble is not back in 15 s.
   */
  restart(): Promise<void>;
}

const READY_DEADLINE_MS = 15_000;
const POLL_MS = 25;
const REQUEST_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 2_000;
const START_ATTEMPTS = 3;

/** Ports freePort has handed out in this process. */
const issuedPorts = new Set<number>();

/**
 * Returns a TCP port on 127.0.0.1 that was free a moment ago: a random one
 * under the kernel's ephemeral range that could be listened on, else one the
 * kernel assigns (listen on port 0, read it, close). Another process may take
 * it before the caller binds it; startPebble retries on "address already in
 * use" for that reason.
 */
export async function freePort(): Promise<number> {
  // Below the kernel's ephemeral range: a port picked here is given to a test's server later (Pebble's tlsPort to
  // padlock's :443, for example), and in between the kernel hands ephemeral ports to every client connection of every
  // test running alongside; one of those on the same port made padlock's later bind fail with EADDRINUSE (seen in CI).
  // Never the same port twice in one test process: callers that pick several ports at once (three daemons started
  // together) could otherwise get one port twice, since none is bound yet (seen in CI: "admin listener ... in use").
  const range = pickRange();
  if (range) {
    for (let i = 0; i < 50; i++) {
      const port = range.low + Math.floor(Math.random() * (range.high - range.low + 1));
      if (issuedPorts.has(port)) continue;
      issuedPorts.add(port);
      if (await canListen(port)) return port;
    }
  }
  return listenOnce(0);
}

/** Ports under the ephemeral range (`ip_local_port_range`), at most 12,000 of them, or undefined when there is no room. */
function pickRange(): { low: number; high: number } | undefined {
  let ephemeralLow = 32768;
  try {
    ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || ephemeralLow;
  } catch {
    // not Linux: the common default
  }
  const high = ephemeralLow - 1;
  const low = Math.max(10_000, high - 12_000);
  return high - low >= 1_000 ? { low, high } : undefined;
}

function canListen(port: number): Promise<boolean> {
  return listenOnce(port).then(() => true, () => false);
}

/** Listens on 127.0.0.1:port (0: any), closes, and resolves with the port. */
function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (bound ? resolve(bound) : reject(new Error('freePort: no port assigned'))));
    });
  });
}

/** A port free on 127.0.0.1 for both TCP and UDP (the DNS server binds both). */
async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    const ok = await new Promise<boolean>((resolve) => {
      const sock = createSocket('udp4');
      sock.once('error', () => resolve(false));
      sock.bind({ address: '127.0.0.1', port, exclusive: true }, () => sock.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('freeTcpUdpPort: no port free for both TCP and UDP on 127.0.0.1');
}

// --- process bookkeeping: a failing test must never leak a CA or DNS server ---

const live = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let hooksInstalled = false;

/**
 * Signals the child's whole process group. With `force`, also after the child
 * itself exited: pebble may outlive its `timeout` wrapper for a moment.
 */
function killGroup(child: ChildProcess, signal: NodeJS.Signals, force = false): void {
  if (child.pid === undefined) return;
  if (!force && (child.exitCode !== null || child.signalCode !== null)) return;
  try {
    // Children are group leaders (detached), so this also reaches pebble under `timeout`.
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const c of live) killGroup(c, 'SIGKILL', true);
    for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  });
  // 'exit' does not run when a signal kills us; clean up, then die of the same signal.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const c of live) killGroup(c, 'SIGKILL', true);
      for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
      process.removeListener(sig, handler);
      // Someone else handles this signal: let them decide whether to exit.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<void>;
}

function launch(bin: string, args: string[], env: NodeJS.ProcessEnv, lifetimeSeconds: number): Proc {
  installHooks();
  // coreutils `timeout` bounds the lifetime even if this process is SIGKILLed.
  const timeoutBin = onPath('timeout');
  const [cmd, argv] = timeoutBin
    ? [timeoutBin, ['--kill-after=5', `${lifetimeSeconds}`, bin, ...args]]
    : [bin, args];
  const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const add = (d: Buffer): void => {
    out += d.toString('utf8');
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    const done = (): void => {
      live.delete(child);
      resolve();
    };
    child.once('exit', done);
    child.once('error', (e) => {
      out += `\n[spawn error: ${e.message}]\n`;
      done();
    });
  });
  // Don't keep the event loop alive just for these.
  child.unref();
  (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  return { child, output: () => out, exited };
}

async function stopProc(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null || !live.has(p.child)) {
    killGroup(p.child, 'SIGKILL', true);
    return;
  }
  // The child was unref'd at launch; hold the event loop until it is gone.
  p.child.ref();
  killGroup(p.child, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const graceful = await Promise.race([
    p.exited.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), STOP_GRACE_MS))),
  ]);
  clearTimeout(timer);
  // KILL the group regardless: `timeout` exits once pebble does, but be sure.
  killGroup(p.child, 'SIGKILL', true);
  if (!graceful) await p.exited;
}

// --- HTTPS to Pebble, trusting only its listener CA ---

function get(url: string, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: 'GET', timeout: REQUEST_TIMEOUT_MS, agent: false, ...(ca ? { ca } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class StartFailure extends Error {
  constructor(
    message: string,
    readonly portClash: boolean,
  ) {
    super(message);
  }
}

const portClash = (text: string): boolean => /address already in use/i.test(text);

/** Polls `url` until it answers 200, the process dies, or the deadline passes. */
async function waitFor(url: string, ca: string | undefined, procs: Proc[], deadline: number, what: string, logs: () => string): Promise<string> {
  let last = '';
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null || !live.has(p.child));
    if (dead) {
      const l = logs();
      throw new StartFailure(`startPebble: a process exited before ${what} was ready (exit ${dead.child.exitCode ?? dead.child.signalCode}).\n--- logs ---\n${l}`, portClash(l));
    }
    try {
      const r = await get(url, ca);
      if (r.status === 200) return r.body;
      last = `HTTP ${r.status}: ${r.body.slice(0, 200)}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(POLL_MS);
  }
  const l = logs();
  throw new StartFailure(`startPebble: ${what} (${url}) not ready after ${READY_DEADLINE_MS} ms; last error: ${last}\n--- logs ---\n${l}`, portClash(l));
}

// --- the listener certificate ---

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = padlock test Pebble listener
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** ECDSA P-256 CA plus a leaf for 127.0.0.1/localhost signed by it; returns the paths. */
async function makeListenerCert(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const openssl = requireProgram('openssl', 'openssl', "Pebble's listener certificate");
  const cnf = join(dir, 'openssl.cnf');
  const caFile = join(dir, 'listener-ca.pem');
  const caKey = join(dir, 'listener-ca.key');
  const certFile = join(dir, 'listener.pem');
  const keyFile = join(dir, 'listener.key');
  const csr = join(dir, 'listener.csr');
  await writeFile(cnf, OPENSSL_CNF);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await Promise.all([
    execFileP(openssl, ['req', '-x509', '-config', cnf, '-extensions', 'v3_ca', ...ec, '-keyout', caKey, '-out', caFile, '-days', '7', '-subj', '/CN=padlock test Pebble listener CA']),
    execFileP(openssl, ['req', '-new', '-config', cnf, ...ec, '-keyout', keyFile, '-out', csr, '-subj', '/CN=localhost']),
  ]);
  await execFileP(openssl, [
    'x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', `0x${randomBytes(12).toString('hex')}`,
    '-days', '7', '-extfile', cnf, '-extensions', 'v3_leaf', '-out', certFile,
  ]);
  return { caFile, certFile, keyFile };
}

/** Everything but proxies: Pebble's VA and the tools must talk to loopback directly. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(https?|all|no|ftp)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return env;
}

/**
 * Starts pebble-challtestsrv (DNS only) and Pebble on free loopback ports and
 * resolves once the directory answers and the roots are fetched (about 0.5 s).
 * Throws, with the processes' logs, if they are not ready within 15 s; throws
 * naming the Debian package if a program is missing. The caller must call
 * stop(); a process 'exit' hook and a lifetime cap catch those who don't.
 */
export async function startPebble(opts: PebbleOptions = {}): Promise<Pebble> {
  const pebbleBin = requireProgram('pebble', 'pebble', "Let's Encrypt's test CA");
  const challBin = requireProgram('pebble-challtestsrv', 'pebble', 'DNS server for the test CA');
  let lastErr: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    try {
      return await startOnce(pebbleBin, challBin, opts);
    } catch (e) {
      lastErr = e;
      // Another process took a port between freePort() and bind: try other ports.
      if (!(e instanceof StartFailure && e.portClash)) throw e;
    }
  }
  throw lastErr;
}

async function startOnce(pebbleBin: string, challBin: string, opts: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'padlock-pebble-'));
  liveDirs.add(dir);
  let chall: Proc | undefined;
  let pebbleProc: Proc | undefined;
  let earlierPebbleOutput = ''; // from before restart()s
  const procs = (): Proc[] => [chall, pebbleProc].filter((p): p is Proc => p !== undefined);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await Promise.all(procs().map(stopProc));
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    })());
  const logs = (): string =>
    `[pebble]\n${earlierPebbleOutput}${pebbleProc?.output() ?? ''}\n[pebble-challtestsrv]\n${chall?.output() ?? ''}`;

  try {
    const [certs, listenPort, mgmtPort, dnsPort, challMgmtPort, httpPort, tlsPort] = await Promise.all([
      makeListenerCert(dir),
      freePort(),
      freePort(),
      freeTcpUdpPort(),
      freePort(),
      opts.httpPort ?? freePort(),
      opts.tlsPort ?? freePort(),
    ]);
    const ports = [listenPort, mgmtPort, dnsPort, challMgmtPort, httpPort, tlsPort];
    if (new Set(ports).size !== ports.length) throw new StartFailure('startPebble: two ports collided', true);

    const eab = opts.eab ?? {};
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${listenPort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: certs.certFile,
        privateKey: certs.keyFile,
        httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: Object.keys(eab).length > 0,
        externalAccountMACKeys: eab,
        domainBlocklist: [] as string[],
        ...(opts.validitySeconds !== undefined ? { certificateValidityPeriod: opts.validitySeconds } : {}),
      },
    };
    const configFile = join(dir, 'pebble-config.json');
    await writeFile(configFile, JSON.stringify(config, null, 2));

    const lifetime = opts.maxLifetimeSeconds ?? 1800;
    const env = baseEnv();
    const pebbleEnv = { ...env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0', ...opts.env };
    const ca = await readFile(certs.caFile, 'utf8');
    const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;
    const managementUrl = `https://127.0.0.1:${mgmtPort}`;
    const challtestsrvUrl = `http://127.0.0.1:${challMgmtPort}`;
    const rootsFile = join(dir, 'pebble-roots.pem');
    const alternates = Number(opts.env?.PEBBLE_ALTERNATE_ROOTS ?? 0) || 0;

    /** Waits for the directory, then (re)reads the roots Pebble made at this start. */
    const pebbleReady = async (deadline: number): Promise<{ rootPem: string; intermediatePem: string }> => {
      const ps = procs();
      const [, rootPem, intermediatePem, ...moreRoots] = await Promise.all([
        waitFor(directoryUrl, ca, ps, deadline, 'the ACME directory', logs),
        waitFor(`${managementUrl}/roots/0`, ca, ps, deadline, 'the management API', logs),
        waitFor(`${managementUrl}/intermediates/0`, ca, ps, deadline, 'the management API', logs),
        ...Array.from({ length: alternates }, (_, i) => waitFor(`${managementUrl}/roots/${i + 1}`, ca, ps, deadline, 'the management API', logs)),
      ]);
      if (!rootPem?.includes('BEGIN CERTIFICATE') || !intermediatePem?.includes('BEGIN CERTIFICATE')) {
        throw new StartFailure(`startPebble: the management API returned no PEM for the root or intermediate.\n--- logs ---\n${logs()}`, false);
      }
      await writeFile(rootsFile, [rootPem, ...moreRoots].map((p) => (p ?? '').trim() + '\n').join(''));
      await writeFile(join(dir, 'pebble-intermediate.pem'), intermediatePem);
      return { rootPem, intermediatePem };
    };

    // DNS only: empty listeners keep it off :5001-:5003 on all interfaces; no AAAA answers.
    chall = launch(challBin, [
      '-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '',
      '-management', `127.0.0.1:${challMgmtPort}`, '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
    ], env, lifetime);
    const pebbleArgs = ['-config', configFile, '-dnsserver', opts.dnsServer ?? `127.0.0.1:${dnsPort}`];
    pebbleProc = launch(pebbleBin, pebbleArgs, pebbleEnv, lifetime);

    const deadline = Date.now() + READY_DEADLINE_MS;
    const [first] = await Promise.all([
      pebbleReady(deadline),
      // challtestsrv answers 404 on "/"; any answer means it is listening (its DNS starts first).
      waitForAnyAnswer(challtestsrvUrl, procs(), deadline, logs),
    ]);

    const pebble: Pebble = {
      directoryUrl,
      httpPort,
      tlsPort,
      serverCaFile: certs.caFile,
      rootsFile,
      rootPem: first.rootPem,
      intermediatePem: first.intermediatePem,
      managementUrl,
      challtestsrvUrl,
      dnsPort,
      dir,
      logs,
      stop,
      restart: async () => {
        if (stopped) throw new Error('restart: this Pebble was stopped');
        const old = pebbleProc;
        if (old) {
          await stopProc(old);
          earlierPebbleOutput += old.output() + '\n[restart]\n';
        }
        pebbleProc = launch(pebbleBin, pebbleArgs, pebbleEnv, lifetime);
        const again = await pebbleReady(Date.now() + READY_DEADLINE_MS);
        pebble.rootPem = again.rootPem;
        pebble.intermediatePem = again.intermediatePem;
      },
    };
    return pebble;
  } catch (e) {
    await stop();
    throw e;
  }
}

async function waitForAnyAnswer(url: string, procs: Proc[], deadline: number, logs: () => string): Promise<string> {
  let last = '';
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.child.exitCode !== null || p.child.signalCode !== null || !live.has(p.child));
    if (dead) {
      const l = logs();
      throw new StartFailure(`startPebble: a process exited before challtestsrv was ready.\n--- logs ---\n${l}`, portClash(l));
    }
    try {
      await get(url, undefined);
      return '';
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(POLL_MS);
  }
  const l = logs();
  throw new StartFailure(`startPebble: challtestsrv (${url}) not ready after ${READY_DEADLINE_MS} ms; last error: ${last}\n--- logs ---\n${l}`, portClash(l));
}

