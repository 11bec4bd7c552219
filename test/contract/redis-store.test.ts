import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { ChildProcess } from 'node:child_process';
import { createClient } from '@redis/client';
import { PadlockError } from '../../src/errors.js';
import { openRedisStore } from '../../src/store/open-store.js';
import { effectivePrefix, type RedisStore } from '../../src/store/redis-store.js';
import { fakeBundle, fakeMeta, recordChanges, runStoreContract, sleep, waitUntil, type StoreUnderTest } from './store.contract.js';
import { startRedis, startRedisCluster, startRedisSentinel, type RedisServer } from '../support/redis.js';
import { runRedisChild, spawnRedisChild, type ChildStore } from '../support/redis-store-child.js';
import { taggedBundle } from '../support/store-crash-child.js';

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

const isCode = (code: string, ...mentions: string[]) => (err: unknown): boolean => {
  assert.ok(err instanceof PadlockError, `expected a PadlockError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  for (const m of mentions) assert.ok(err.message.includes(m), `message ${JSON.stringify(err.message)} should mention ${m}`);
  return true;
};

/** Asserts that no secret (password, store key in any spelling) appears in `texts`. */
function assertNoSecrets(texts: string[], secrets: string[]): void {
  for (const text of texts) for (const s of secrets) assert.ok(!text.includes(s), `${JSON.stringify(text)} holds a secret`);
}

const keySpellings = (key: Buffer): string[] => [key.toString('hex'), key.toString('base64'), key.toString('base64url')];

/** A plain client on `server` for looking at (and tampering with) the keyspace behind the store's back. */
async function rawClient(server: RedisServer) {
  const client = createClient({ url: server.url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Every value of every key on `server`: strings whole, hashes as their field values. */
async function everyValue(server: RedisServer): Promise<Map<string, string>> {
  const client = await rawClient(server);
  try {
    const values = new Map<string, string>();
    for await (const keys of client.scanIterator({ COUNT: 1000 })) {
      for (const key of keys) {
        const type = await client.type(key);
        if (type === 'string') values.set(key, (await client.get(key)) ?? '');
        else if (type === 'hash') for (const [field, value] of Object.entries(await client.hGetAll(key))) values.set(`${key} ${field}`, value);
        else values.set(key, `(${type})`);
      }
    }
    return values;
  } finally {
    client.destroy();
  }
}

/** Resolves with the child's first stdout line. */
async function firstLine(child: ChildProcess): Promise<string> {
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  return line;
}

function childStore(server: RedisServer, prefix: string, key: Buffer, lockTtlMs?: number): ChildStore {
  return { url: server.url, prefix, keyHex: key.toString('hex'), caFile: server.caFile, lockTtlMs };
}

describe('RedisStore on a real Redis', () => {
  describe('secrets at rest', () => {
    it('stores no private key in clear: no value in the whole keyspace contains PRIVATE KEY', async () => {
      const server = await single();
      const { store } = await storeOn({ url: server.url, cluster: false, cliNode: server });
      try {
        await store.putVersion('a.example.test', fakeBundle('a1'), fakeMeta('a.example.test'));
        await store.putVersion('a.example.test', fakeBundle('a2'), fakeMeta('a.example.test'));
        await store.putVersion('b.example.test', fakeBundle('b1'), fakeMeta('b.example.test'));
        await store.writeAccount({ directoryUrl: 'https://acme.test/dir', keyPem: '-----BEGIN PRIVATE KEY-----\naccount\n-----END PRIVATE KEY-----\n', createdAt: 'now' });
        const values = await everyValue(server);
        const all = [...values.values()].join('\n');
        assert.match(all, /BEGIN CERTIFICATE-----\\nleaf a2/, 'the scan found the stored versions');
        assert.ok(values.size >= 5);
        for (const [key, value] of values) assert.ok(!value.includes('PRIVATE KEY'), `${key} holds a private key in clear`);
        assert.deepEqual((await store.readLineage('a.example.test'))?.bundle, fakeBundle('a2'), 'and the store still reads them back');
      } finally {
        await store.close();
      }
    });

    it('reports STORE_CORRUPT naming the key, never crashing, for a wrong store key, a changed value, a value moved to another version and a key in clear', async () => {
      const server = await single();
      const deployment = { url: server.url, cluster: false, cliNode: server };
      const { store, prefix } = await storeOn(deployment);
      const otherKey = randomBytes(32);
      const { store: wrong } = await storeOn(deployment, { prefix, key: otherKey });
      const raw = await rawClient(server);
      const name = 'sealed.example.test';
      const dir = 'https://acme.test/sealed';
      const messages: string[] = [];
      const corrupt = (...mentions: string[]) => (err: unknown) => {
        messages.push((err as Error).message, JSON.stringify((err as PadlockError).toJSON()));
        return isCode('STORE_CORRUPT', ...mentions)(err);
      };
      try {
        await store.putVersion(name, fakeBundle('s1'), fakeMeta(name));
        await store.putVersion(name, fakeBundle('s2'), fakeMeta(name));
        await store.writeAccount({ directoryUrl: dir, keyPem: 'account key', createdAt: 'now' });

        await assert.rejects(wrong.readLineage(name), corrupt(`${prefix}lineage:${name} field v2`, 'does not decrypt with the store key', '--store-key-file'));
        await assert.rejects(wrong.readServing(name), corrupt(`${prefix}lineage:${name} field v2`, 'does not decrypt with the store key', '--store-key-file'));
        await assert.rejects(wrong.readAccount(dir), corrupt(`${prefix}account:`, 'does not decrypt with the store key'));
        assert.deepEqual(await wrong.listLineages(), [name], 'listing needs no key');
        assert.deepEqual([...(await wrong.currentVersions())], [[name, 2]]);

        const v2 = JSON.parse((await raw.hGet(`${prefix}lineage:${name}`, 'v2'))!) as { privkey: string };
        const v1 = await raw.hGet(`${prefix}lineage:${name}`, 'v1');
        await raw.hSet(`${prefix}lineage:${name}`, 'v2', v1!);
        await assert.rejects(store.readLineage(name), corrupt('v2', 'does not decrypt'), 'version 1 moved to version 2 does not open');
        await assert.rejects(store.readServing(name), corrupt('v2', 'does not decrypt'), 'nor through the serving read');
        const flipped = v2.privkey.slice(0, -3) + (v2.privkey.endsWith('A') ? 'B' : 'A') + v2.privkey.slice(-2);
        await raw.hSet(`${prefix}lineage:${name}`, 'v2', JSON.stringify({ ...v2, privkey: flipped }));
        await assert.rejects(store.readLineage(name), corrupt('does not decrypt'), 'a changed byte does not open');
        await assert.rejects(store.readServing(name), corrupt('does not decrypt'));
        await raw.hSet(`${prefix}lineage:${name}`, 'v2', JSON.stringify({ ...v2, privkey: fakeBundle('clear').privkey }));
        await assert.rejects(store.readLineage(name), corrupt('is not sealed in a format this padlock knows'));
        await assert.rejects(store.readServing(name), corrupt('is not sealed in a format this padlock knows'));
        await raw.hSet(`${prefix}lineage:${name}`, 'v2', 'not json');
        await assert.rejects(store.readLineage(name), corrupt(`${prefix}lineage:${name} field v2`, 'is not valid JSON'));
        await assert.rejects(store.readServing(name), corrupt(`${prefix}lineage:${name} field v2`, 'is not valid JSON'));
        await raw.hDel(`${prefix}lineage:${name}`, 'v2');
        await assert.rejects(store.readLineage(name), corrupt('version 2', 'is missing'));
        await assert.rejects(store.readServing(name), corrupt('version 2', 'is missing'));
        assertNoSecrets(messages, [...keySpellings(storeKey), ...keySpellings(otherKey), server.password]);
      } finally {
        raw.destroy();
        await wrong.close();
        await store.close();
      }
    });

    it('refuses to open a Redis store without a store key, and a CA file for a Redis without TLS', async () => {
      const server = await single();
      await assert.rejects(openRedisStore({ url: server.url }), isCode('CONFIG_INVALID', 'padlock does not write private keys to Redis in clear: set --store-key-file or PADLOCK_STORE_KEY'));
      await assert.rejects(openRedisStore({ url: server.url, key: storeKey, caFile: '/nonexistent.pem' }), isCode('CONFIG_INVALID', '--store-ca is set but the store', 'use rediss://'));
    });
  });

  describe('locks across processes', () => {
    it('lets another client take a lock after the TTL once its holder process was killed and stopped renewing it', async () => {
      const server = await single();
      const { store, prefix } = await storeOn({ url: server.url, cluster: false, cliNode: server });
      const name = 'orphan.example.test';
      const child = spawnRedisChild(childStore(server, prefix, storeKey, 1_500), ['hold-lock', name]);
      try {
        assert.equal(await firstLine(child), 'locked');
        await assert.rejects(store.lock(name), isCode('STORE_LOCKED', `process ${child.pid} on `, `${prefix}lock:${name}`, 'which expires in 1.', 'unless its holder renews it'));
        await sleep(2_000);
        await assert.rejects(store.lock(name), isCode('STORE_LOCKED'), 'a live holder keeps its lock past the TTL by renewing it');
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
        const started = Date.now();
        const unlock = await store.lock(name, { waitMs: 5_000 });
        const took = Date.now() - started;
        assert.ok(took <= 2_000, `took ${took} ms, longer than the 1.5 s TTL allows`);
        await unlock();
      } finally {
        child.kill('SIGKILL');
        await store.close();
      }
    });

    it('keeps a lock its holder renews, however long past the TTL it works', async () => {
      const server = await single();
      const deployment = { url: server.url, cluster: false, cliNode: server };
      const { store: holder, prefix } = await storeOn(deployment, { lockTtlMs: 600 });
      const { store: other } = await storeOn(deployment, { prefix, lockTtlMs: 600 });
      try {
        const unlock = await holder.lock('long.example.test');
        await sleep(1_800);
        await assert.rejects(other.lock('long.example.test'), isCode('STORE_LOCKED'));
        await holder.putVersion('long.example.test', fakeBundle('l1'), fakeMeta('long.example.test'), { lock: unlock });
        await unlock();
        await (await other.lock('long.example.test'))();
      } finally {
        await holder.close();
        await other.close();
      }
    });

    it('gives a lock key that has no TTL (set by hand) one, so it cannot block the name forever', async () => {
      const server = await single();
      const { store, prefix } = await storeOn({ url: server.url, cluster: false, cliNode: server }, { lockTtlMs: 500 });
      const raw = await rawClient(server);
      try {
        await raw.set(`${prefix}lock:stuck.example.test`, JSON.stringify({ token: 'by-hand', pid: 1, hostname: 'elsewhere', since: '2020-01-01T00:00:00.000Z' }));
        await assert.rejects(store.lock('stuck.example.test'), isCode('STORE_LOCKED', 'process 1 on elsewhere since 2020-01-01T00:00:00.000Z', 'expires in 0.5 s'));
        const ttl = await raw.pTTL(`${prefix}lock:stuck.example.test`);
        assert.ok(ttl > 0 && ttl <= 500, `PTTL ${ttl}`);
        await (await store.lock('stuck.example.test', { waitMs: 3_000 }))();
      } finally {
        raw.destroy();
        await store.close();
      }
    });

    it('updateState loses no update when two other processes and this one update the same state at once', async () => {
      const server = await single();
      const { store, prefix } = await storeOn({ url: server.url, cluster: false, cliNode: server });
      const name = 'shared-state.example.test';
      try {
        const children = ['a', 'b'].map((p) => runRedisChild(childStore(server, prefix, storeKey), ['update-state', name, p]));
        await Promise.all(Array.from({ length: 30 }, (_, i) =>
          store.updateState(name, (state) => ({ ...state, [`me-${i}`]: true, count: Number(state?.['count'] ?? 0) + 1 }))));
        for (const c of await Promise.all(children)) assert.equal(c.code, 0, c.stderr);
        const final = await store.readState(name);
        assert.equal(final?.['count'], 90, '30 updates from each of three processes');
        for (const p of ['me', 'a', 'b']) for (let i = 0; i < 30; i++) assert.equal(final?.[`${p}-${i}`], true, `${p}-${i}`);
      } finally {
        await store.close();
      }
    });
  });

  describe('watching', () => {
    it('reports a new version written by another process within 5 s', async () => {
      const server = await single();
      const { store, prefix } = await storeOn({ url: server.url, cluster: false, cliNode: server });
      const name = 'cross.example.test';
      const seen = recordChanges(store);
      try {
        await sleep(200); // the subscription connection is up
        const child = await runRedisChild(childStore(server, prefix, storeKey), ['put', name, 'child']);
        assert.equal(child.code, 0, child.stderr);
        assert.equal(child.stdout, '1\n');
        await waitUntil(() => seen.names.includes(name), "the other process's version is reported", 5_000);
        assert.deepEqual((await store.readLineage(name))?.bundle, taggedBundle('child'));
      } finally {
        seen.unsubscribe();
        await store.close();
      }
    });

    for (const [label, deploy] of Object.entries(deployments)) {
      it(`reports a version another store instance wrote, through pub/sub, on ${label}`, async () => {
        const deployment = await deploy();
        const { store: watcher, prefix } = await storeOn(deployment);
        const { store: writer } = await storeOn(deployment, { prefix });
        const seen = recordChanges(watcher);
        try {
          await sleep(300); // the subscription connection is up
          await writer.putVersion('pubsub.example.test', fakeBundle('p1'), fakeMeta('pubsub.example.test'));
          await writer.deleteLineage('gone.example.test'); // never existed: nothing to report
          await waitUntil(() => seen.names.includes('pubsub.example.test'), 'the other instance\'s version is reported', 5_000);
          assert.deepEqual(seen.names, ['pubsub.example.test']);
          seen.names.length = 0;
          await writer.deleteLineage('pubsub.example.test');
          await waitUntil(() => seen.names.includes('pubsub.example.test'), 'the deletion is reported', 5_000);
        } finally {
          seen.unsubscribe();
          await writer.close();
          await watcher.close();
        }
      });
    }

    it('lets a process that subscribed and closed the store exit: close ends the connection and the subscription', async () => {
      const server = await single();
      const result = await runRedisChild(childStore(server, `t${++storeCount}:`, storeKey), ['watch-close', 'w.example.test'], 20_000);
      assert.equal(result.signal, null, 'the child had to be killed: something kept it alive after close()');
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'closed\n');
    });
  });

  describe('outages', () => {
    it('reconnects by itself after Redis restarts: health goes unreachable then reachable, and watch reports every lineage again and new changes', async () => {
      const server = await startRedis({ config: ['appendonly yes', 'appendfsync always'] });
      const deployment = { url: server.url, cluster: false, cliNode: server };
      const { store, prefix } = await storeOn(deployment, { commandTimeoutMs: 1_000, probeIntervalMs: 100 });
      const seen = recordChanges(store);
      const states: boolean[] = [];
      const sampler = setInterval(() => {
        const h = store.health();
        if (states.at(-1) !== h.reachable) states.push(h.reachable);
      }, 10);
      try {
        await store.putVersion('kept.example.test', fakeBundle('k1'), fakeMeta('kept.example.test'));
        await waitUntil(() => seen.names.includes('kept.example.test'), 'the first version is reported');
        seen.names.length = 0;
        await server.restart();
        await waitUntil(() => store.health().reachable && states.includes(false), 'health went unreachable and back', 10_000);
        await waitUntil(() => seen.names.includes('kept.example.test'), 'every lineage is reported again after the reconnect', 5_000);
        assert.deepEqual((await store.readLineage('kept.example.test'))?.bundle, fakeBundle('k1'));
        const { store: other } = await storeOn(deployment, { prefix });
        await other.putVersion('after.example.test', fakeBundle('n1'), fakeMeta('after.example.test'));
        await other.close();
        await waitUntil(() => seen.names.includes('after.example.test'), 'a change after the restart is reported', 5_000);
        assert.deepEqual(states.slice(0, 3), [true, false, true]);
      } finally {
        clearInterval(sampler);
        seen.unsubscribe();
        await store.close();
        await server.stop();
      }
    });

    it('rejects a command with STORE_IO within the command timeout while Redis is stopped or stalled, never hanging, and says so in health', async () => {
      const server = await startRedis();
      const { store } = await storeOn({ url: server.url, cluster: false, cliNode: server }, { commandTimeoutMs: 800, probeIntervalMs: 60_000 });
      const messages: string[] = [];
      const storeIo = (err: unknown) => {
        messages.push((err as Error).message, JSON.stringify((err as PadlockError).toJSON()));
        isCode('STORE_IO', `redis://127.0.0.1:${server.port}/0`)(err);
        assert.equal((err as PadlockError).retryable, true);
        return true;
      };
      const within = async (what: string, call: () => Promise<unknown>) => {
        const started = Date.now();
        await assert.rejects(call(), storeIo, what);
        const took = Date.now() - started;
        assert.ok(took < 800 + 700, `${what}: rejected after ${took} ms, long after the 800 ms command timeout`);
      };
      try {
        await store.putVersion('x.example.test', fakeBundle('x1'), fakeMeta('x.example.test'));
        server.pause();
        await within('a read while Redis is stalled (SIGSTOP)', () => store.readLineage('x.example.test'));
        assert.equal(store.health().reachable, false);
        server.resume();
        await waitUntil(() => store.health().reachable, 'reachable once Redis answers again', 5_000);
        await server.kill();
        await within('a read while Redis is stopped', () => store.readLineage('x.example.test'));
        await within('a write while Redis is stopped', () => store.putVersion('x.example.test', fakeBundle('x2'), fakeMeta('x.example.test')));
        await within('a lock while Redis is stopped', () => store.lock('x.example.test', { waitMs: 10_000 }));
        const health = store.health();
        assert.equal(health.reachable, false);
        assert.ok(health.error, 'health says why');
        messages.push(health.error);
        assertNoSecrets(messages, [server.password, ...keySpellings(storeKey)]);
      } finally {
        await store.close();
        await server.stop();
      }
    });

    it('opens while Redis is down, reports it unreachable with the reason, and works once Redis is up', async () => {
      const server = await startRedis();
      await server.kill();
      try {
        const started = Date.now();
        const { store } = await storeOn({ url: server.url, cluster: false, cliNode: server }, { commandTimeoutMs: 500, probeIntervalMs: 100 });
        try {
          assert.ok(Date.now() - started < 2_000, 'opening waits at most about the command timeout');
          const h = store.health();
          assert.equal(h.reachable, false);
          assert.match(h.error ?? '', /ECONNREFUSED/);
          await server.restart();
          await waitUntil(() => store.health().reachable, 'reachable after Redis started', 5_000);
          assert.deepEqual(await store.listLineages(), []);
        } finally {
          await store.close();
        }
      } finally {
        await server.stop();
      }
    });

    it('refuses a wrong password with STORE_IO that names the store and not the password', async () => {
      const server = await single();
      const wrongPassword = 'not-the-password-42';
      const { store } = await storeOn({ url: `redis://:${wrongPassword}@127.0.0.1:${server.port}/0`, cluster: false, cliNode: server }, { commandTimeoutMs: 500 });
      try {
        const err = await store.listLineages().then(() => undefined, (e: unknown) => e);
        isCode('STORE_IO', `redis://127.0.0.1:${server.port}/0`)(err);
        assert.match((err as Error).message, /WRONGPASS|NOAUTH|invalid username-password/);
        assert.equal(store.health().reachable, false);
        assertNoSecrets([(err as Error).message, JSON.stringify((err as PadlockError).toJSON()), store.health().error ?? ''], [wrongPassword, server.password]);
      } finally {
        await store.close();
      }
    });

    it('verifies the TLS server: without its CA the store stays unreachable with a certificate error', async () => {
      const server = await tls();
      const { store } = await storeOn({ url: server.url, cluster: false, cliNode: server }, { commandTimeoutMs: 500 });
      try {
        await assert.rejects(store.listLineages(), isCode('STORE_IO', `rediss://127.0.0.1:${server.port}/0`));
        assert.equal(store.health().reachable, false);
        assert.match(store.health().error ?? '', /certificate|self.signed|unable to verify/i);
      } finally {
        await store.close();
      }
    });
  });
});
