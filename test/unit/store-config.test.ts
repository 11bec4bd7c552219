import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { storeConfigProblems, storeConfigSchema, isRedisStore } from '../../src/store/store-config.js';
import { effectivePrefix } from '../../src/store/redis-store.js';
import { PadlockError } from '../../src/errors.js';

const PASSWORD = 'pw-Zq81x';
const parse = (input: Record<string, unknown>) => storeConfigSchema.parse(input);

describe('storeConfigSchema', () => {
  it('defaults to the folder store (empty store) and the padlock: prefix', () => {
    assert.deepEqual(parse({}), { store: '', storePrefix: 'padlock:' });
  });

  it('merges into a run config schema without clashing keys', () => {
    const merged = z.object({ configDir: z.string().default('/etc/padlock') }).extend(storeConfigSchema.shape).strict();
    assert.deepEqual(merged.parse({ store: 'redis://h', storeKeyFile: '/k' }), { configDir: '/etc/padlock', store: 'redis://h', storePrefix: 'padlock:', storeKeyFile: '/k' });
  });
});

describe('storeConfigProblems', () => {
  const key = { PADLOCK_STORE_KEY: 'x'.repeat(44) };
  const table: Array<{ desc: string; config: Record<string, unknown>; env?: Record<string, string>; problems: RegExp[] }> = [
    { desc: 'the folder store needs nothing', config: {}, problems: [] },
    { desc: 'a folder path as store', config: { store: '/srv/padlock' }, problems: [] },
    { desc: 'Redis with a key file', config: { store: `redis://:${PASSWORD}@h:6379/0`, storeKeyFile: '/etc/padlock/store.key' }, problems: [] },
    { desc: 'Redis with the key in the env', config: { store: `redis://:${PASSWORD}@h:6379/0` }, env: key, problems: [] },
    { desc: 'TLS with a private CA', config: { store: 'rediss://h:6380/0', storeCa: '/ca.pem', storeKeyFile: '/k' }, problems: [] },
    { desc: 'Redis without a store key', config: { store: `redis://:${PASSWORD}@h:6379/0` },
      problems: [/a Redis store needs a store key: padlock does not write private keys to Redis in clear; set --store-key-file or PADLOCK_STORE_KEY/] },
    { desc: 'an empty PADLOCK_STORE_KEY is no key', config: { store: 'redis://h' }, env: { PADLOCK_STORE_KEY: '' }, problems: [/needs a store key/] },
    { desc: 'both a key file and the env key', config: { store: 'redis://h', storeKeyFile: '/k' }, env: key, problems: [/both --store-key-file and PADLOCK_STORE_KEY are set/] },
    { desc: 'a broken Redis URL', config: { store: `redis://:${PASSWORD}@h:port/0`, storeKeyFile: '/k' }, problems: [/^--store: store URL "redis:\/\/…@h:port\/0": port "port" of h is not a port/] },
    { desc: 'another scheme', config: { store: `consul://:${PASSWORD}@h:8500` }, problems: [/--store "consul:\/\/…@h:8500" is neither a folder path nor a Redis URL/] },
    { desc: 'a CA for a Redis without TLS', config: { store: 'redis://h', storeCa: '/ca.pem', storeKeyFile: '/k' }, problems: [/--store-ca is set but the Redis store does not use TLS: use rediss:\/\//] },
    { desc: 'a CA and a key file for the folder store', config: { storeCa: '/ca.pem', storeKeyFile: '/k' },
      problems: [/--store-ca is set but --store is not a Redis URL/, /--store-key-file is set but --store is not a Redis URL/] },
    { desc: 'a prefix with a space', config: { store: 'redis://h', storePrefix: 'my fleet:', storeKeyFile: '/k' }, problems: [/store prefix "my fleet:" must be 1 to 64 printable characters without spaces/] },
  ];
  for (const c of table) {
    it(`${c.desc}: ${c.problems.length} problem(s)`, () => {
      const problems = storeConfigProblems(parse(c.config), c.env ?? {});
      assert.equal(problems.length, c.problems.length, problems.join('\n'));
      c.problems.forEach((p, i) => assert.match(problems[i]!, p));
      for (const p of problems) assert.ok(!p.includes(PASSWORD), `a problem shows the password: ${p}`);
    });
  }

  it('tells a Redis store from the folder store', () => {
    assert.equal(isRedisStore(parse({ store: 'rediss+cluster://n1:7000' })), true);
    assert.equal(isRedisStore(parse({})), false);
  });
});

describe('effectivePrefix', () => {
  const table = [
    { desc: 'a prefix stays as it is on one server', prefix: 'padlock:', cluster: false, want: 'padlock:' },
    { desc: 'the default becomes the {padlock}: hash tag on Cluster', prefix: 'padlock:', cluster: true, want: '{padlock}:' },
    { desc: 'a prefix without a colon is wrapped whole on Cluster', prefix: 'fleet-a', cluster: true, want: '{fleet-a}' },
    { desc: 'a prefix that has a hash tag is kept on Cluster', prefix: '{fleet-b}:padlock:', cluster: true, want: '{fleet-b}:padlock:' },
    { desc: 'an empty {} is no hash tag (Redis hashes the whole key)', prefix: '{}x:', cluster: true, want: '{{}x}:' },
  ];
  for (const c of table) it(c.desc, () => assert.equal(effectivePrefix(c.prefix, c.cluster), c.want));

  for (const bad of ['', 'a b', 'x'.repeat(65), 'tab\t']) {
    it(`refuses the prefix ${JSON.stringify(bad.length > 20 ? `${bad.length} characters` : bad)} with CONFIG_INVALID`, () => {
      assert.throws(() => effectivePrefix(bad, false), (err: unknown) => err instanceof PadlockError && err.code === 'CONFIG_INVALID');
    });
  }
});
