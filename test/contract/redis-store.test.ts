import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openRedisStore } from '../../src/store/open-store.js';
import { effectivePrefix, type RedisStore } from '../../src/store/redis-store.js';
import { runStoreContract, type StoreUnderTest } from './store.contract.js';
import { startRedis, startRedisCluster, startRedisSentinel, type RedisServer } from '../support/redis.js';

const storeKey = randomBytes(32);

/** Starts a setup once, on first use, and stops it after the file's tests. */
function shared<T extends { stop(): Promise<void> }>(start: () => Promise<T>): () => Promise<T> {
  let started: Promise<T> | undefined;
  after(async () => {
    if (started) await (await started).stop();
  });
  return () => (started ??= start());
}

interface Deployment {
  url: string;
  caFile?: string | undefined;
  cluster: boolean;
  /** The server to run redis-cli against (any node: the cli follows Cluster redirects). */
  cliNode: RedisServer;
}

const single = shared(() => startRedis());
const tls = shared(() => startRedis({ tls: true }));
const sentinel = shared(() => startRedisSentinel());
const cluster = shared(() => startRedisCluster());

const deployments: Record<string, () => Promise<Deployment>> = {
  'Redis with a password': async () => {
    const s = await single();
    return { url: s.url, cluster: false, cliNode: s };
  },
  'Redis over TLS': async () => {
    const s = await tls();
    return { url: s.url, caFile: s.caFile, cluster: false, cliNode: s };
  },
  'Redis Sentinel': async () => {
    const s = await sentinel();
    return { url: s.url, cluster: false, cliNode: s.master };
  },
  'Redis Cluster': async () => {
    const c = await cluster();
    return { url: c.url, cluster: true, cliNode: c.nodes[0]! };
  },
};

let storeCount = 0;

/** A store on `deployment` under a prefix of its own, so tests never see each other's keys. */
async function storeOn(deployment: Deployment, options: { key?: Buffer; prefix?: string; lockTtlMs?: number; commandTimeoutMs?: number; probeIntervalMs?: number } = {}): Promise<{ store: RedisStore; prefix: string }> {
  const prefix = options.prefix ?? `t${++storeCount}-${randomBytes(3).toString('hex')}:`;
  const store = await openRedisStore({ url: deployment.url, caFile: deployment.caFile, prefix, key: options.key ?? storeKey, lockTtlMs: options.lockTtlMs, commandTimeoutMs: options.commandTimeoutMs, probeIntervalMs: options.probeIntervalMs });
  return { store, prefix };
}

for (const [label, deploy] of Object.entries(deployments)) {
  runStoreContract(label, async (): Promise<StoreUnderTest> => {
    const deployment = await deploy();
    const { store, prefix } = await storeOn(deployment);
    return {
      store,
      cleanup: () => store.close(),
      // The lock's TTL runs out as if its holder had stopped renewing it.
      loseLock: async (name) => {
        const key = `${effectivePrefix(prefix, deployment.cluster)}lock:${name}`;
        assert.equal((await deployment.cliNode.cli(['-c', 'PEXPIRE', key, '1'])).trim(), '1', `${key} exists`);
        await new Promise((r) => setTimeout(r, 20));
      },
    };
  }, { withLoseLock: true });
}
