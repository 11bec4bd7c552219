/**
 * Real Redis servers on loopback for the Redis store's tests (Debian
 * `redis-server` 7.0; valkey is not packaged on this machine): a plain one
 * with a password, a TLS one, a Sentinel setup and a Cluster.
 *
 * Every server gets its own temp dir, a config file there (so the password
 * never shows in `ps`), a port picked at run time on 127.0.0.1, and no
 * persistence (`save ""`, `appendonly no`). `stop()` is idempotent and
 * removes the temp dir; `restart()` brings a server back on the same port
 * (with an empty keyspace: nothing is persisted); `pause()`/`resume()` send
 * SIGSTOP/SIGCONT, so clients see a server that accepts connections but
 * never answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { DAY, TestPki } from './certs.js';
import { freePort } from './pebble.js';
import { requireProgram, runBounded } from './programs.js';

const READY_DEADLINE_MS = 15_000;
const STOP_GRACE_MS = 3_000;

/** One redis-server (or redis-sentinel) process we started. */
export interface RedisServer {
  host: '127.0.0.1';
  port: number;
  /** The `requirepass` password ('' for none). */
  password: string;
  /** The store URL for this server alone (`redis://:PW@127.0.0.1:PORT/0`, or `rediss://` with TLS). */
  url: string;
  /** PEM file of the CA that signed the TLS server certificate (TLS servers only). */
  caFile?: string;
  /** Runs redis-cli against this server with its password and TLS settings; resolves with its stdout. */
  cli(args: string[]): Promise<string>;
  /** The server's log so far, for failure messages. */
  logs(): string;
  /** SIGTERM (SIGKILL after 3 s); waits for the exit. The temp dir stays until stop(). */
  kill(): Promise<void>;
  /** Kills the server and starts it again on the same port and config; resolves once it answers PING. */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing until resume(). */
  pause(): void;
  resume(): void;
  /** Kills it and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /** Default: a random one. '' for none. */
  password?: string;
  /** Serve TLS only (`port 0`, `tls-port`), with a certificate for 127.0.0.1 from a test CA. */
  tls?: boolean;
  /** Extra config lines. */
  config?: string[];
  /** Run `redis-server --sentinel` with this config instead of a data server. */
  sentinel?: boolean;
}

function redisServerPath(): string {
  return requireProgram('redis-server', 'redis-server', 'the Redis store tests run a real Redis');
}

function redisCliPath(): string {
  return requireProgram('redis-cli', 'redis-tools', 'the Redis store tests set up Redis with redis-cli');
}

async function makeTlsFiles(dir: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const pki = await TestPki.create();
  const now = Date.now();
  const ca = await pki.issue({ cn: 'padlock test Redis CA', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 7 * DAY) });
  const leaf = await pki.issue({ cn: 'redis.test', kind: 'leaf', issuer: ca, names: ['127.0.0.1', 'redis.test'], notBefore: new Date(now - DAY), notAfter: new Date(now + 7 * DAY) });
  const caFile = join(dir, 'ca.pem');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server.key');
  await writeFile(caFile, ca.cert);
  await writeFile(certFile, leaf.cert);
  await writeFile(keyFile, leaf.key, { mode: 0o600 });
  await pki.cleanup();
  return { caFile, certFile, keyFile };
}

/** Starts one redis-server on 127.0.0.1 and resolves once it answers PING. */
export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const server = redisServerPath();
  const cliPath = redisCliPath();
  const dir = await mkdtemp(join(tmpdir(), options.sentinel ? 'padlock-sentinel-' : 'padlock-redis-'));
  const password = options.password ?? randomBytes(12).toString('hex');
  const port = await freePort();
  const tls = options.tls ? await makeTlsFiles(dir) : undefined;
  const lines = [
    'bind 127.0.0.1',
    tls ? 'port 0' : `port ${port}`,
    ...(tls ? [`tls-port ${port}`, `tls-cert-file ${tls.certFile}`, `tls-key-file ${tls.keyFile}`, `tls-ca-cert-file ${tls.caFile}`, 'tls-auth-clients no'] : []),
    `dir ${dir}`,
    'daemonize no',
    ...(options.sentinel ? [] : ['save ""', 'appendonly no']),
    ...(password && !options.sentinel ? [`requirepass ${password}`] : []),
    ...(options.config ?? []),
  ];
  const configFile = join(dir, options.sentinel ? 'sentinel.conf' : 'redis.conf');
  await writeFile(configFile, `${lines.join('\n')}\n`, { mode: 0o600 });

  let child: ChildProcess | undefined;
  let log = '';
  let stopped = false;
  const cliBase = ['-h', '127.0.0.1', '-p', String(port), ...(password && !options.sentinel ? ['-a', password, '--no-auth-warning'] : []), ...(tls ? ['--tls', '--cacert', tls.caFile] : [])];
  const cli = (args: string[]): Promise<string> => runBounded(`redis-cli ${args[0] ?? ''}`, cliPath, [...cliBase, ...args], { timeoutMs: 10_000 });

  const launch = async (): Promise<void> => {
    child = spawn(server, [configFile, ...(options.sentinel ? ['--sentinel'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    const add = (b: Buffer): void => {
      log = (log + b.toString('utf8')).slice(-20_000);
    };
    child.stdout!.on('data', add);
    child.stderr!.on('data', add);
    const deadline = Date.now() + READY_DEADLINE_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}) before answering\n${log}`);
      const answer = await cli(['PING']).catch(() => '');
      if (answer.trim() === 'PONG') return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${READY_DEADLINE_MS / 1000} s\n${log}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };

  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill('SIGCONT');
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  const auth = password && !options.sentinel ? `:${password}@` : '';
  return {
    host: '127.0.0.1',
    port,
    password,
    url: `${tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}/0`,
    ...(tls ? { caFile: tls.caFile } : {}),
    cli,
    logs: () => log,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    pause: () => {
      child?.kill('SIGSTOP');
    },
    resume: () => {
      child?.kill('SIGCONT');
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A master with a password and one Sentinel watching it, both on 127.0.0.1. */
export interface RedisSentinelSetup {
  master: RedisServer;
  sentinel: RedisServer;
  masterName: string;
  /** `redis+sentinel://:PW@127.0.0.1:SENTINEL_PORT/MASTER/0`. */
  url: string;
  stop(): Promise<void>;
}

export async function startRedisSentinel(): Promise<RedisSentinelSetup> {
  const master = await startRedis();
  const masterName = 'padlock-test';
  try {
    const sentinel = await startRedis({
      sentinel: true,
      password: '',
      config: [
        'sentinel announce-ip 127.0.0.1',
        `sentinel monitor ${masterName} 127.0.0.1 ${master.port} 1`,
        `sentinel auth-pass ${masterName} ${master.password}`,
        `sentinel down-after-milliseconds ${masterName} 5000`,
      ],
    });
    const deadline = Date.now() + READY_DEADLINE_MS;
    while (!(await sentinel.cli(['SENTINEL', 'get-master-addr-by-name', masterName]).catch(() => '')).includes(String(master.port))) {
      if (Date.now() > deadline) throw new Error(`the sentinel does not know master ${masterName}\n${sentinel.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      master,
      sentinel,
      masterName,
      url: `redis+sentinel://:${master.password}@127.0.0.1:${sentinel.port}/${masterName}/0`,
      stop: async () => {
        await sentinel.stop();
        await master.stop();
      },
    };
  } catch (err) {
    await master.stop();
    throw err;
  }
}

/** Three cluster masters (no replicas) sharing one password, on 127.0.0.1. */
export interface RedisClusterSetup {
  nodes: RedisServer[];
  /** `redis+cluster://:PW@127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`. */
  url: string;
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<RedisClusterSetup> {
  const password = randomBytes(12).toString('hex');
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      nodes.push(await startRedis({
        password,
        config: ['cluster-enabled yes', 'cluster-announce-ip 127.0.0.1', `cluster-port ${await freePort()}`, 'cluster-node-timeout 5000', `masterauth ${password}`],
      }));
    }
    await runBounded('redis-cli --cluster create', redisCliPath(), [
      '-a', password, '--no-auth-warning', '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes',
    ], { timeoutMs: 30_000 });
    const deadline = Date.now() + 30_000;
    for (const node of nodes) {
      while (!(await node.cli(['CLUSTER', 'INFO']).catch(() => '')).includes('cluster_state:ok')) {
        if (Date.now() > deadline) throw new Error(`cluster node ${node.port} never reached cluster_state:ok\n${node.logs()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return {
      nodes,
      url: `redis+cluster://:${password}@${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
      stop: async () => {
        for (const n of nodes) await n.stop();
      },
    };
  } catch (err) {
    for (const n of nodes) await n.stop();
    throw err;
  }
}
