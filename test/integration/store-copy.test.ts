/**
 * Moving a single host into a shared Redis store and backing it up again,
 * with the real CLI, a real Redis and a real Pebble: `padlock store copy`
 * from a folder to Redis, a replica on the Redis store serving the copied
 * certificate, and a copy back into a folder, all without a new order.
 *
 * Orders are counted at the CA from Pebble's own log ("Added order").
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile, readFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { startPadlockRun, httpsGet } from '../support/daemon.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, pebbleRunFlags, uniqueName } from '../support/padlock.js';

let pebble: Pebble;
let redis: RedisServer;
let dir: string;
let keyFile: string;

before(async () => {
  [pebble, redis] = await Promise.all([startPebble(), startRedis()]);
  dir = await mkdtemp(join(tmpdir(), 'padlock-store-copy-'));
  keyFile = join(dir, 'store.key');
  await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
});
after(async () => {
  await redis?.stop();
  await pebble?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ordersAtCa = () => (pebble.logs().match(/Added order/g) ?? []).length;
const redisFlags = () => ['--store', redis.url, '--store-key-file', keyFile];

async function listed(flags: string[]): Promise<{ name: string; serial: string; version: number }[]> {
  const r = await runCli(['certificates', '--json', ...flags]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).certificates;
}

describe('padlock store copy', () => {
  it('moves a host\'s folder into Redis and back into a backup folder with no new order, and a replica on Redis serves the same certificate', async () => {
    const name = uniqueName('moved');
    const single = join(dir, 'single-host');
    const issued = await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', single]);
    assert.equal(issued.code, 0, issued.stderr);
    const [original] = await listed(['--config-dir', single]);
    assert.ok(original);
    const orders = ordersAtCa();

    const up = await runCli(['store', 'copy', '--from', single, '--to', redis.url, '--store-key-file', keyFile, '--json']);
    assert.equal(up.code, 0, up.stderr);
    const report = JSON.parse(up.stdout);
    const kinds = report.items.filter((i: { action: string }) => i.action === 'copied').map((i: { kind: string }) => i.kind).sort();
    assert.ok(kinds.includes('lineage') && kinds.includes('account'), `the certificate and the ACME account were copied: ${kinds.join(', ')}`);
    assert.equal(report.to.includes(redis.password), false, 'the Redis password is not printed');
    assert.equal(up.stdout.includes(redis.password), false);

    const inRedis = await listed([...redisFlags(), '--config-dir', join(dir, 'other-host')]);
    assert.deepEqual(inRedis.map((c) => [c.name, c.serial]), [[name, original.serial]], 'every host on the store lists the same certificate');

    const again = await runCli(['store', 'copy', '--from', single, '--to', redis.url, '--store-key-file', keyFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Copied 0 items .*already the same/, 'a second copy changes nothing');

    // A replica on the Redis store serves the copied certificate and orders nothing (it is not due).
    const sites = join(dir, 'sites.yaml');
    await writeFile(sites, `sites:\n  - host: ${name}\n    upstream: http://127.0.0.1:9\n`);
    const replica = await startPadlockRun(['--config', sites, '--docker', 'false', '--config-dir', join(dir, 'replica'), ...redisFlags(), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort });
    try {
      const res = await httpsGet(replica.httpsPort, name, pebble.rootPem, '/', false);
      assert.equal(String(res.peer.serialNumber).toLowerCase(), original.serial.replace(/:/g, '').toLowerCase(), 'the replica serves the copied certificate');
    } finally {
      assert.equal(await replica.stop(), 0, replica.output());
    }

    const backup = join(dir, 'backup');
    const down = await runCli(['store', 'copy', ...redisFlags(), '--config-dir', join(dir, 'other-host'), '--to', backup]);
    assert.equal(down.code, 0, down.stderr);
    for (const file of ['fullchain.pem', 'privkey.pem']) {
      assert.equal(await readFile(join(backup, 'live', name, file), 'utf8'), await readFile(join(single, 'live', name, file), 'utf8'), `${file} came back byte for byte`);
    }
    assert.equal((await stat(join(backup, 'live', name, 'privkey.pem'))).mode & 0o777, 0o600, 'the private key is 0600 in the backup');
    assert.deepEqual((await listed(['--config-dir', backup])).map((c) => [c.name, c.serial]), [[name, original.serial]]);
    assert.equal(ordersAtCa(), orders, 'no order reached the CA while moving and backing up');
  });

  it('refuses to copy into Redis without a store key, and writes nothing', async () => {
    const empty = join(dir, 'empty-source');
    const r = await runCli(['store', 'copy', '--from', empty, '--to', redis.url, '--store-prefix', 'nokey:']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /store key/i);
    assert.equal(r.stderr.includes(redis.password), false, 'the Redis password is not printed');
  });
});

describe('padlock issue on a Redis store', () => {
  it('refuses --deploy-hook before ordering: a Redis store has no live folder for the hook', async () => {
    const orders = ordersAtCa();
    const r = await runCli(['issue', '-d', uniqueName('hooked'), ...pebbleFlags(pebble), ...redisFlags(), '--config-dir', join(dir, 'hook-host'), '--deploy-hook', 'true']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /--deploy-hook needs a folder store.*\[CONFIG_INVALID\]/s);
    assert.equal(ordersAtCa(), orders, 'nothing was ordered');
  });
});
