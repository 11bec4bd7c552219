import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PadlockError } from '../../src/errors.js';
import { isRedisUrl, parseRedisUrl, shownStoreUrl, type RedisTarget } from '../../src/store/redis-url.js';

const PASSWORD = 's3cr3t-Pa55';

describe('parseRedisUrl: accepted URLs', () => {
  const table: Array<{ desc: string; url: string; want: Partial<RedisTarget> & Record<string, unknown> }> = [
    { desc: 'a host with the default port and database', url: 'redis://redis.internal',
      want: { kind: 'single', tls: false, node: { host: 'redis.internal', port: 6379 }, db: 0, location: 'redis://redis.internal:6379/0' } },
    { desc: 'a password, a port and a database', url: `redis://:${PASSWORD}@redis.internal:6380/2`,
      want: { kind: 'single', password: PASSWORD, node: { host: 'redis.internal', port: 6380 }, db: 2, location: 'redis://redis.internal:6380/2' } },
    { desc: 'an ACL user and password', url: `redis://padlock:${PASSWORD}@10.0.0.5:6379/0`,
      want: { kind: 'single', username: 'padlock', password: PASSWORD, node: { host: '10.0.0.5', port: 6379 } } },
    { desc: 'a percent-encoded password', url: 'redis://:p%40ss%2Fw%3Ard%25@h:1/0', want: { password: 'p@ss/w:rd%' } },
    { desc: 'a password with an unencoded @, / and :', url: 'redis://:p@ss/w:rd@h:1/0', want: { password: 'p@ss/w:rd', node: { host: 'h', port: 1 } } },
    { desc: 'a trailing slash as database 0', url: 'redis://h:6379/', want: { db: 0 } },
    { desc: 'an IPv6 address in brackets', url: 'redis://[::1]:6379/0', want: { node: { host: '::1', port: 6379 }, location: 'redis://[::1]:6379/0' } },
    { desc: 'the scheme in capitals', url: 'REDIS://h/1', want: { kind: 'single', db: 1, location: 'redis://h:6379/1' } },
    { desc: 'TLS', url: `rediss://:${PASSWORD}@redis.internal:6380/0`, want: { kind: 'single', tls: true, location: 'rediss://redis.internal:6380/0' } },
    { desc: 'Sentinel with two sentinels, the default Sentinel port, a master and a database', url: `redis+sentinel://:${PASSWORD}@s1,s2:26380/mymaster/3`,
      want: { kind: 'sentinel', tls: false, sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], masterName: 'mymaster', db: 3, password: PASSWORD,
        location: 'redis+sentinel://s1:26379,s2:26380/mymaster/3' } },
    { desc: 'Sentinel without a database', url: 'redis+sentinel://s1:26379/mymaster', want: { kind: 'sentinel', masterName: 'mymaster', db: 0 } },
    { desc: 'Sentinel over TLS', url: 'rediss+sentinel://s1/m', want: { kind: 'sentinel', tls: true } },
    { desc: 'Cluster with three seed nodes', url: `redis+cluster://:${PASSWORD}@n1:7000,n2:7001,n3`,
      want: { kind: 'cluster', tls: false, nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }, { host: 'n3', port: 6379 }], location: 'redis+cluster://n1:7000,n2:7001,n3:6379' } },
    { desc: 'Cluster with database 0 spelled out', url: 'redis+cluster://n1:7000/0', want: { kind: 'cluster' } },
    { desc: 'Cluster over TLS', url: 'rediss+cluster://n1:7000', want: { kind: 'cluster', tls: true, location: 'rediss+cluster://n1:7000' } },
  ];
  for (const c of table) {
    it(c.desc, () => {
      const got = parseRedisUrl(c.url) as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(c.want)) assert.deepEqual(got[k], v, k);
      assert.ok(!String(got['location']).includes(PASSWORD), 'the location never holds the password');
    });
  }
});

describe('parseRedisUrl: refused URLs say what is wrong without the password', () => {
  const table: Array<{ desc: string; url: string; says: RegExp }> = [
    { desc: 'another scheme', url: `http://:${PASSWORD}@h:6379`, says: /not a Redis URL: use redis:\/\// },
    { desc: 'a password without the colon before it', url: `redis://${PASSWORD}@h:6379/0`, says: /has no ":"; write the password as redis:\/\/:PASSWORD@HOST/ },
    { desc: 'an empty password', url: 'redis://:@h:6379/0', says: /password after ":" is empty/ },
    { desc: 'a broken percent-encoding in the password', url: `redis://:${PASSWORD}%zz@h:6379/0`, says: /password is not correctly percent-encoded/ },
    { desc: 'a port that is not a number', url: `redis://:${PASSWORD}@h:port/0`, says: /port "port" of h is not a port/ },
    { desc: 'port 0', url: 'redis://h:0/0', says: /port "0" of h is not a port \(1-65535\)/ },
    { desc: 'a port above 65535', url: 'redis://h:70000/0', says: /port "70000"/ },
    { desc: 'a database that is not a number', url: `redis://:${PASSWORD}@h:6379/db1`, says: /database "db1" is not a number/ },
    { desc: 'several hosts on redis://', url: `redis://:${PASSWORD}@a:1,b:2/0`, says: /takes one host; for several, use redis\+sentinel:\/\/ or redis\+cluster:\/\// },
    { desc: 'no host', url: `redis://:${PASSWORD}@/0`, says: /a host is missing/ },
    { desc: 'an empty entry in a host list', url: 'redis+cluster://a:1,,b:2', says: /a host is missing/ },
    { desc: 'a host with a bad character', url: 'redis://ho$t:1/0', says: /"ho\$t" is not a host name/ },
    { desc: 'an unbracketed IPv6 address', url: 'redis://::1:6379/0', says: /write an IPv6 address in brackets/ },
    { desc: 'a query string', url: `redis://:${PASSWORD}@h:6379/0?tls=true`, says: /query strings and fragments are not supported/ },
    { desc: 'white space', url: 'redis://h :6379/0', says: /contains white space/ },
    { desc: 'Sentinel without a master name', url: `redis+sentinel://:${PASSWORD}@s1:26379`, says: /name the master set after the hosts/ },
    { desc: 'Sentinel with a bad master name', url: 'redis+sentinel://s1/my!master', says: /master name "my!master" may only hold letters, digits/ },
    { desc: 'Sentinel with too many path segments', url: 'redis+sentinel://s1/m/0/x', says: /too many path segments/ },
    { desc: 'Cluster with a database', url: `redis+cluster://:${PASSWORD}@n1:7000/2`, says: /Redis Cluster has database 0 only/ },
  ];
  for (const c of table) {
    it(c.desc, () => {
      assert.throws(() => parseRedisUrl(c.url), (err: unknown) => {
        assert.ok(err instanceof PadlockError);
        assert.equal(err.code, 'CONFIG_INVALID');
        assert.match(err.message, c.says);
        assert.ok(!err.message.includes(PASSWORD), `the message shows the password: ${err.message}`);
        assert.ok(!JSON.stringify(err.toJSON()).includes(PASSWORD), 'the details hold the password');
        return true;
      });
    });
  }
});

describe('store URLs as shown in messages', () => {
  const table = [
    { desc: 'credentials are replaced', url: `redis://user:${PASSWORD}@h:6379/0`, shown: 'redis://…@h:6379/0' },
    { desc: 'a password holding @ is hidden whole', url: `redis://:a@${PASSWORD}@h:6379/0`, shown: 'redis://…@h:6379/0' },
    { desc: 'a URL without credentials is kept', url: 'redis://h:6379/0', shown: 'redis://h:6379/0' },
    { desc: 'a long value is cut', url: `redis://${'h'.repeat(300)}`, shown: `redis://${'h'.repeat(191)}…` },
  ];
  for (const c of table) it(c.desc, () => assert.equal(shownStoreUrl(c.url), c.shown));

  const kinds = [
    { desc: 'redis://', value: 'redis://h', redis: true },
    { desc: 'rediss+cluster:// in capitals', value: 'REDISS+CLUSTER://h', redis: true },
    { desc: 'a folder path', value: '/etc/padlock', redis: false },
    { desc: 'a relative folder with a colon', value: 'data:store', redis: false },
    { desc: 'another scheme', value: 'consul://h', redis: false },
  ];
  for (const c of kinds) it(`isRedisUrl: ${c.desc}`, () => assert.equal(isRedisUrl(c.value), c.redis));
});
