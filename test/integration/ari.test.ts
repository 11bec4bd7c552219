/**
 * ARI (RFC 9773) and ACME profiles through the real CLI. Certificates come
 * from a real Pebble; renewal information, profiles and (in "record" mode)
 * newOrder come from the small fake in test/support/fake-acme.ts, because
 * Pebble 2.4 has neither ARI nor profiles.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startPebble, type Pebble } from '../support/pebble.js';
import { fakeAcmes, type FakeAcme } from '../support/fake-acme.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, pebbleRunFlags, tempConfigDir, uniqueName } from '../support/padlock.js';
import { startPadlockRun, waitFor } from '../support/daemon.js';
import { certId } from '../../src/acme/ari.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
const fakes = fakeAcmes(() => pebble);

before(async () => {
  // 20-second certificates: by the lifetime rule they are due after 10 s, so only ARI can say "not yet".
  pebble = await startPebble({ validitySeconds: 20 });
  cfg = await tempConfigDir();
});
after(async () => {
  await fakes.closeAll();
  await pebble?.stop();
  await cfg?.cleanup();
});

const fake = (opts: Parameters<typeof fakes.start>[0]): Promise<FakeAcme> => fakes.start(opts);

/** Issues from Pebble, then points the lineage at the fake (the CA now speaks ARI). */
async function lineageAt(f: FakeAcme, label: string): Promise<{ name: string; cert: string }> {
  const name = uniqueName(label);
  const r = await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
  assert.equal(r.code, 0, r.stderr);
  const metaFile = join(cfg.dir, 'renewal', `${name}.json`);
  await writeFile(metaFile, JSON.stringify({ ...JSON.parse(await readFile(metaFile, 'utf8')), server: f.directoryUrl }));
  return { name, cert: await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8') };
}

const renew = (name: string, extra: string[] = []) => runCli(['renew', '--config-dir', cfg.dir, '--cert-name', name, '--json', ...extra]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ARI', () => {
  it("follows the CA's window over the lifetime rule, shows its explanation, and does not poll again before Retry-After", async () => {
    const f = await fake({ ari: { mode: 'future', explanationURL: 'https://ca.example/why', retryAfter: 21600 } });
    const { name, cert } = await lineageAt(f, 'ari-future');
    // Past the lifetime rule's due time (half of a short lifetime), with the certificate still valid.
    const leaf = new X509Certificate(cert);
    await sleep((Date.parse(leaf.validFrom) + Date.parse(leaf.validTo)) / 2 + 500 - Date.now());
    const first = await renew(name);
    assert.equal(first.code, 0, first.stderr);
    const result = JSON.parse(first.stdout).results[0];
    assert.equal(result.action, 'not-due');
    assert.equal(result.explanationURL, 'https://ca.example/why');
    const dueAt = Date.parse(result.dueAt);
    assert.ok(dueAt > Date.now() + 23 * 3600_000 && dueAt < Date.now() + 49 * 3600_000, `chosen inside the window: ${result.dueAt}`);
    assert.deepEqual(f.renewalInfoRequests.map((r) => r.certId), [certId(cert)]);

    const second = JSON.parse((await renew(name)).stdout).results[0];
    assert.equal(second.dueAt, result.dueAt, 'the chosen time is kept');
    assert.equal(f.renewalInfoRequests.length, 1, 'no poll before the Retry-After');
  });

  it('renews at once when the window is already past (how a CA signals mass revocation)', async () => {
    const f = await fake({ ari: 'past' });
    const { name } = await lineageAt(f, 'ari-past');
    const r = await renew(name);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout).results[0];
    assert.equal(result.action, 'renewed');
    assert.equal(result.reason, 'ari-past-window');
  });

  it('sends replaces with the old CertID, and on alreadyReplaced retries once without it', async () => {
    // Issued through the fake's directory: the same account that renews ordered it, as a CA requires for `replaces`.
    const f = await fake({ ari: 'current' });
    const name = uniqueName('ari-replaces');
    const r0 = await runCli(['issue', '-d', name, ...pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x)), '--config-dir', cfg.dir]);
    assert.equal(r0.code, 0, r0.stderr);
    const cert = await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8');
    f.setNewOrderMode('record');
    const r = await renew(name);
    assert.equal(r.code, 1, 'the fake refuses every order in record mode');
    assert.equal(f.newOrders.length, 2);
    assert.equal(f.newOrders[0]!.payload['replaces'], certId(cert));
    assert.equal(f.newOrders[1]!.payload['replaces'], undefined);
    assert.match(r.stderr, /already replaced; ordering without "replaces"/);
  });
});

describe('ARI replaces and ownership', () => {
  it('does not send replaces for a certificate another account ordered (an imported one, or from another CA URL)', async () => {
    const f = await fake({ ari: 'current', newOrder: 'record', newOrderProblems: [{ status: 500, type: 'urn:ietf:params:acme:error:serverInternal' }] });
    const { name } = await lineageAt(f, 'ari-foreign');
    await renew(name);
    assert.equal(f.newOrders.length, 1);
    assert.equal(f.newOrders[0]!.payload['replaces'], undefined);
  });
});

describe('ARI and --dry-run', () => {
  it('asks the CA nothing and stores nothing about renewal windows in a dry run', async () => {
    const f = await fake({ ari: 'future' });
    const { name } = await lineageAt(f, 'ari-dry');
    const stateFile = join(cfg.dir, 'state', `${name}.json`);
    const before = await readFile(stateFile, 'utf8').catch(() => '');
    const r = await renew(name, ['--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(f.renewalInfoRequests.length, 0);
    assert.equal(await readFile(stateFile, 'utf8').catch(() => ''), before);
  });
});

describe('ACME profiles', () => {
  it('asks for an offered profile', async () => {
    const f = await fake({ newOrder: 'record', newOrderProblems: [{ status: 500, type: 'urn:ietf:params:acme:error:serverInternal' }] });
    const r = await runCli(['issue', '-d', uniqueName('profile'), '--profile', 'shortlived', ...pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x)), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.equal(f.newOrders[0]?.payload['profile'], 'shortlived');
  });

  it("falls back to the CA's default with a warning when a preferred profile is not offered", async () => {
    const f = await fake({});
    const name = uniqueName('fallback');
    const r = await runCli(['issue', '-d', name, '--profile', 'tlsserver', ...pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x)), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^ {2}order +the preferred profile "tlsserver" .* is not offered .*\(it offers "classic", "shortlived"\); using the CA's default profile/m);
    assert.match(r.stderr, /^ {2}saved/m);
  });

  it('fails clearly, before ordering, when a required profile is not offered', async () => {
    const f = await fake({ newOrder: 'record' });
    const r = await runCli(['issue', '-d', uniqueName('required'), '--required-profile', 'tlsserver', ...pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x)), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the required profile "tlsserver" .* is not offered .*\(it offers "classic", "shortlived"\).*\[CONFIG_INVALID\]/);
    assert.equal(f.newOrders.length, 0, 'no order was placed');
  });
});

describe('ARI in padlock run', () => {
  it("asks the CA for the new certificate's window apart from planning, and /api/status says the CA's renewal window decides", async () => {
    const f = await fake({ ari: { mode: 'future', explanationURL: 'https://ca.example/why' } });
    const name = uniqueName('ari-daemon');
    const file = join(cfg.dir, `${name}.yaml`);
    await writeFile(file, `sites:\n  - host: ${name}\n    upstream: http://127.0.0.1:9\n`);
    const d = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'daemon-store'),
      ...pebbleRunFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x))], { httpPort: pebble.httpPort });
    try {
      const cert = await waitFor("the CA's window in the status", async () => {
        const c = (await d.status())['certificates'].find((x: { name: string }) => x.name === name);
        return c?.nextRenewal?.why === "inside the CA's suggested renewal window (ARI)" ? c : undefined;
      }, 30_000);
      const at = Date.parse(cert.nextRenewal.at);
      assert.ok(at > Date.now() + 23 * 3600_000, `the chosen time is in the CA's window a day away, not the 20-second lifetime rule: ${cert.nextRenewal.at}`);
      assert.equal(f.renewalInfoRequests.length, 1);
    } finally {
      assert.equal(await d.stop(), 0, d.output());
    }
  });
});
