/**
 * After issuance: renew, revoke, delete, and a crash in the middle of a
 * renewal, against a real Pebble issuing short-lived certificates.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

// Short enough that a certificate becomes due (half of a <10-day lifetime) within the test, long enough
// (8 s between due and expiry) that a loaded machine does not see it expire before the renewal runs.
const VALIDITY_S = 16;

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pebble = await startPebble({ validitySeconds: VALIDITY_S });
  cfg = await tempConfigDir();
});
after(async () => {
  await pebble?.stop();
  await cfg?.cleanup();
});

const issue = (name: string, extra: string[] = []) => runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir, ...extra]);
const leafOf = async (name: string) => new X509Certificate(await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8'));
const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

describe('padlock renew', () => {
  it('renews only the lineage that is due, and runs its deploy hook', async () => {
    const due = uniqueName('due');
    const fresh = uniqueName('fresh');
    const hookOut = join(cfg.dir, `renew-hook-${due}.txt`);
    assert.equal((await issue(due, ['--deploy-hook', `echo "$RENEWED_DOMAINS" >> ${hookOut}`])).code, 0);
    const dueLeaf = await leafOf(due);

    // Right after issuance nothing is due: renew must not touch the CA or the files.
    const early = await runCli(['renew', '--config-dir', cfg.dir, '--cert-name', due]);
    assert.equal(early.code, 0, early.stderr);
    assert.match(early.stdout, new RegExp(`${due}: not due until`));
    assert.equal((await leafOf(due)).serialNumber, dueLeaf.serialNumber);

    // Half of an 8-second lifetime later, `due` is due; `fresh` is issued just now and is not.
    const dueAt = (Date.parse(dueLeaf.validFrom) + Date.parse(dueLeaf.validTo)) / 2;
    await sleepUntil(dueAt + 300);
    assert.equal((await issue(fresh)).code, 0);
    const freshSerial = (await leafOf(fresh)).serialNumber;

    const r = await runCli(['renew', '--config-dir', cfg.dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const results = JSON.parse(r.stdout).results as Array<{ name: string; action: string; reason?: string }>;
    assert.equal(results.find((x) => x.name === due)?.action, 'renewed');
    assert.equal(results.find((x) => x.name === due)?.reason, 'lifetime-share');
    assert.equal(results.find((x) => x.name === fresh)?.action, 'not-due');
    assert.notEqual((await leafOf(due)).serialNumber, dueLeaf.serialNumber, 'the due lineage has a new certificate');
    assert.equal((await leafOf(fresh)).serialNumber, freshSerial, 'the fresh lineage is untouched');
    assert.equal(await readFile(hookOut, 'utf8'), `${due}\n${due}\n`, 'the stored deploy hook ran at issuance and again for the renewal');
  });

  it('says so when asked for a lineage that does not exist', async () => {
    const r = await runCli(['renew', '--config-dir', cfg.dir, '--cert-name', 'nope.example.com']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no certificate named nope\.example\.com .*\[STORE_NOT_FOUND\]/);
  });
});

describe('a crash in the middle of a renewal', () => {
  for (const point of ['putVersion:after-stage-partial', 'putVersion:before-switch', 'putVersion:after-switch']) {
    it(`leaves a complete, readable certificate when killed at ${point}, and the next renewal works`, async () => {
      const name = uniqueName('crash');
      assert.equal((await issue(name)).code, 0);
      const old = await readFile(join(cfg.dir, 'live', name, 'fullchain.pem'), 'utf8');

      const killed = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name], { env: { PADLOCK_FAULT_KILL_AT: point } });
      assert.equal(killed.signal, 'SIGKILL', `the renewal was killed at ${point}: ${killed.stderr}`);

      // Whatever the crash point, the live files are one complete, matching set.
      const live = join(cfg.dir, 'live', name);
      const [cert, chain, fullchain, privkey] = await Promise.all(['cert', 'chain', 'fullchain', 'privkey'].map((f) => readFile(join(live, `${f}.pem`), 'utf8')));
      assert.equal(fullchain, cert! + chain!);
      assert.ok(new X509Certificate(cert!).checkPrivateKey(createPrivateKey(privkey!)), 'key and certificate still match');
      if (point !== 'putVersion:after-switch') assert.equal(fullchain, old, 'before the switch, the old certificate keeps serving');

      const listed = await runCli(['certificates', '--json', '--config-dir', cfg.dir, '--cert-name', name]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(JSON.parse(listed.stdout).certificates[0].name, name);

      const again = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name]);
      assert.equal(again.code, 0, again.stderr);
      assert.notEqual(await readFile(join(live, 'fullchain.pem'), 'utf8'), old);
    });
  }
});

describe('padlock revoke and delete', () => {
  it('revokes at the CA, lists the lineage as revoked, and the CA refuses a second revocation with its own words', async () => {
    const name = uniqueName('revoke');
    assert.equal((await issue(name)).code, 0);
    const r = await runCli(['revoke', '--cert-name', name, '--reason', 'keycompromise', '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Revoked ${name} \\(keycompromise\\)`));

    const list = JSON.parse((await runCli(['certificates', '--json', '--config-dir', cfg.dir, '--cert-name', name])).stdout);
    assert.equal(list.certificates[0].status, 'REVOKED');

    const twice = await runCli(['revoke', '--cert-name', name, '--config-dir', cfg.dir, '--json']);
    assert.equal(twice.code, 1);
    const doc = JSON.parse(twice.stdout);
    assert.equal(doc.ok, false);
    assert.equal(doc.error.acmeType, 'alreadyRevoked');
    assert.match(twice.stderr, /revoking .*the CA refused \(alreadyRevoked\)/);

    // A revoked certificate is useless: the next renew replaces it even though it is not due by date.
    const renewed = await runCli(['renew', '--config-dir', cfg.dir, '--cert-name', name, '--json']);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.equal(JSON.parse(renewed.stdout).results[0].reason, 'revoked');
    const after = JSON.parse((await runCli(['certificates', '--json', '--config-dir', cfg.dir, '--cert-name', name])).stdout);
    assert.notEqual(after.certificates[0].status, 'REVOKED');
  });

  it('deletes a lineage and its files', async () => {
    const name = uniqueName('delete');
    assert.equal((await issue(name)).code, 0);
    const r = await runCli(['delete', '--cert-name', name, '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    await assert.rejects(stat(join(cfg.dir, 'live', name, 'fullchain.pem')));
    const list = JSON.parse((await runCli(['certificates', '--json', '--config-dir', cfg.dir])).stdout);
    assert.ok(!list.certificates.some((c: { name: string }) => c.name === name));
    const again = await runCli(['delete', '--cert-name', name, '--config-dir', cfg.dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no certificate named/);
  });
});

describe('a CA that forgot our account', () => {
  it('registers the stored key again, says so, and issues', async () => {
    const first = uniqueName('before-restart');
    assert.equal((await issue(first)).code, 0);
    // Pebble keeps no state across a restart: every account is gone, at the same directory URL.
    await pebble.restart();
    const second = uniqueName('after-restart');
    const r = await issue(second);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /the CA no longer knew our account; registered it again/);
    await stat(join(cfg.dir, 'live', second, 'fullchain.pem'));
  });
});

