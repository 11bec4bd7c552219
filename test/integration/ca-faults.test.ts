/**
 * When the CA misbehaves: 503s and 429s with Retry-After (kept and honoured
 * by every command), ARI renewals that must not loop or drop `replaces` on
 * an outage, hostile Retry-After values, slow and oversized answers, resets,
 * and the exit status cron monitoring relies on.
 *
 * Certificates come from a real Pebble; the misbehaviour comes from the small
 * fake ACME front in test/support/fake-acme.ts (Pebble 2.4 sends no
 * Retry-After, has no ARI, and never fails on purpose).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { fakeAcmes, type FakeAcme } from '../support/fake-acme.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';
import { certId } from '../../src/acme/ari.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
const fakes = fakeAcmes(() => pebble);
const HOUR = 3_600_000;

before(async () => {
  pebble = await startPebble({ validitySeconds: 3600 });
  cfg = await tempConfigDir();
});
after(async () => {
  await fakes.closeAll();
  await pebble?.stop();
  await cfg?.cleanup();
});

const fake = (opts: Parameters<typeof fakes.start>[0]): Promise<FakeAcme> => fakes.start(opts);
const via = (f: FakeAcme) => pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? f.directoryUrl : x));
const issue = (name: string, f: FakeAcme | undefined, extra: string[] = []) =>
  runCli(['issue', '-d', name, ...(f ? via(f) : pebbleFlags(pebble)), '--config-dir', cfg.dir, ...extra]);
const renew = (name: string, extra: string[] = []) => runCli(['renew', '--config-dir', cfg.dir, '--cert-name', name, ...extra]);
/** Points a stored lineage at another CA directory (the CA "changes" under it). */
async function pointAt(name: string, url: string): Promise<void> {
  const file = join(cfg.dir, 'renewal', `${name}.json`);
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), server: url }));
}
const versions = async (name: string) => (await readdir(join(cfg.dir, 'archive', name))).filter((e) => /^v\d+$/.test(e)).length;
const iso = (s: string) => s.replace(/\./g, '\\.');

describe('a 503 with Retry-After', () => {
  it('is called an outage, not a refusal, and no command orders again before it: issue, issue again, renew --force-renewal at the same CA', async () => {
    const f = await fake({ renewalInfo: false, newOrder: 'record', newOrderProblems: [{ status: 503, type: 'serverInternal', detail: 'down for maintenance', retryAfter: 600 }] });
    const name = uniqueName('503');
    const first = await issue(name, f);
    assert.equal(first.code, 1);
    assert.match(first.stderr, new RegExp(`creating an order for ${name}: the CA is unavailable \\(HTTP 503, serverInternal\\): down for maintenance\\. The CA asks to retry after (\\S+)\\. \\[ACME_CA_UNAVAILABLE\\]`));
    assert.doesNotMatch(first.stderr, /refused \(serverInternal\)/);
    assert.equal(f.newOrders.length, 1);
    const until = /retry after (\S+)\. \[/.exec(first.stderr)![1]!;
    assert.ok(Date.parse(until) > Date.now() + 590_000);

    const again = await issue(name, f);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`${name} is asked by the CA to wait \\(.*\\); padlock will not ask again before ${iso(until)} \\(--ignore-rate-limit overrides it\\) \\[RENEWAL_BACKOFF\\]`));
    assert.doesNotMatch(again.stderr, /^ {2}account /m, 'the CA was not contacted');

    // Another lineage at the same CA: the CA asked everyone to wait.
    const other = uniqueName('503-other');
    assert.equal((await issue(other, undefined)).code, 0);
    await pointAt(other, f.directoryUrl);
    const forced = await renew(other, ['--force-renewal']);
    assert.equal(forced.code, 1, 'waiting is a problem cron should see');
    assert.match(forced.stdout, new RegExp(`${other}: waiting until ${iso(until)}: asked by the CA at ${iso(f.directoryUrl)} to wait \\(HTTP 503`));
    assert.equal(f.newOrders.length, 1, 'no order during the wait');

    const insist = await issue(name, f, ['--ignore-rate-limit']);
    assert.equal(insist.code, 1);
    assert.match(insist.stderr, new RegExp(`--ignore-rate-limit: asking anyway, although ${name} is asked by the CA to wait .* until ${iso(until)}; the CA will likely refuse again`));
    assert.equal(f.newOrders.length, 2, 'only --ignore-rate-limit asks again');
  });

  it('on an ARI renewal does not make padlock order again at once without replaces', async () => {
    const f = await fake({ ari: 'current' });
    const name = uniqueName('ari-503');
    assert.equal((await issue(name, f)).code, 0);
    const cert = await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8');
    f.setNewOrderMode('record');
    f.setNewOrderProblems([{ status: 503, type: 'serverInternal', detail: 'down for maintenance', retryAfter: 600 }]);
    const r = await renew(name);
    assert.equal(r.code, 1);
    assert.equal(f.newOrders.length, 1, 'one order, not a second one without replaces');
    assert.equal(f.newOrders[0]!.payload['replaces'], certId(cert));
    assert.doesNotMatch(r.stderr, /ordering without/);
    assert.match(r.stdout, /the CA is unavailable \(HTTP 503, serverInternal\)/);
  });
});

describe('ARI renewals', () => {
  it("renew a lineage once when the CA's window is past, and not again within the hour for a fresh certificate whose window is past too; the CA is asked for the new certificate's own window, and padlock warns", async () => {
    const f = await fake({ ari: 'past' });
    const name = uniqueName('ari-loop');
    assert.equal((await issue(name, f)).code, 0);
    const first = await renew(name, ['--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).results[0].action, 'renewed');
    const renewed = await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8');
    for (let i = 0; i < 3; i++) {
      const r = await renew(name, ['--json']);
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout).results[0];
      assert.equal(result.action, 'not-due', `run ${i + 2}: ${r.stdout}`);
      const dueAt = Date.parse(result.dueAt);
      assert.ok(dueAt > Date.now() + 0.9 * HOUR && dueAt < Date.now() + 1.1 * HOUR, `held for about an hour: ${result.dueAt}`);
      if (i === 0) assert.match(r.stderr, /WARN .*the CA's renewal window \(ARI\) for this certificate, obtained moments ago, is already past/);
    }
    assert.equal(await versions(name), 2, 'one issuance and one renewal, no loop');
    assert.ok(f.renewalInfoRequests.some((q) => q.certId === certId(renewed)), "the new certificate's own window was fetched");
  });
});

describe('hostile Retry-After values', () => {
  for (const c of [
    { desc: 'a huge number', value: '99999999999999999999999999', clamp: /the CA asked for 99999999999999999999999999 s; padlock waits at most 7 days/ },
    { desc: 'a date far in the future', value: 'Fri, 31 Dec 9999 23:59:59 GMT', clamp: /the CA asked for "Fri, 31 Dec 9999 23:59:59 GMT"; padlock waits at most 7 days/ },
    { desc: 'a negative number', value: '-30', clamp: undefined },
  ]) {
    it(`${c.desc} on a 429 keeps the typed rate limit, is clamped, and the wait stays bounded`, async () => {
      const f = await fake({ renewalInfo: false, newOrder: 'record', newOrderProblems: [{ status: 429, type: 'rateLimited', detail: 'too many new orders', retryAfter: c.value }] });
      const name = uniqueName('retry');
      const r = await issue(name, f, ['--json']);
      assert.equal(r.code, 1);
      assert.doesNotMatch(r.stderr, /RangeError|Invalid time value/);
      const doc = JSON.parse(r.stdout);
      assert.equal(doc.error.code, 'ACME_RATE_LIMITED');
      assert.equal(doc.error.problem.type, 'urn:ietf:params:acme:error:rateLimited');
      if (c.clamp) assert.match(doc.error.message, c.clamp);
      const state = JSON.parse(await readFile(join(cfg.dir, 'state', `${name}.json`), 'utf8'));
      const next = Date.parse(state.failure.nextAttemptAt);
      assert.ok(next <= Date.now() + 7 * 24 * HOUR + 60_000, `bounded: ${state.failure.nextAttemptAt}`);
      assert.ok(next >= Date.now() + 50_000, 'at least the first backoff step');
    });
  }
});

describe('a CA that answers slowly, too much, or not at all', () => {
  it('cannot hold a request past its total deadline by trickling bytes, and the message names the step', async () => {
    const sockets: net.Socket[] = [];
    const trickle = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      sockets.push(res.socket!);
      const timer = setInterval(() => res.write(' '), 200);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => trickle.listen(0, '127.0.0.1', r));
    try {
      const port = (trickle.address() as net.AddressInfo).port;
      const started = Date.now();
      const r = await runCli(['issue', '-d', uniqueName('slow'), ...pebbleFlags(pebble).map((x) => (x === pebble.directoryUrl ? `http://127.0.0.1:${port}/dir` : x)), '--timeout', '2', '--config-dir', cfg.dir], { timeoutMs: 30_000 });
      const took = Date.now() - started;
      assert.equal(r.code, 1);
      assert.ok(took < 10_000, `gave up after ${took} ms`);
      assert.match(r.stderr, /reading the directory: the CA did not answer GET http:\/\/127\.0\.0\.1:\d+\/… within 2 s.*\[ACME_UNREACHABLE\]/);
    } finally {
      for (const s of sockets) s.destroy();
      trickle.closeAllConnections();
      await new Promise((r) => trickle.close(r));
    }
  });

  it('refuses an answer larger than 1 MiB', async () => {
    const f = await fake({ directory: { huge: 2 * 1024 * 1024 } });
    const r = await issue(uniqueName('huge'), f);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /reading the directory: the CA's answer to GET .* is larger than 1048576 bytes; padlock stopped reading it .*\[ACME_RESPONSE_TOO_LARGE\]/);
  });

  it('says a reset is a cut connection, without suggesting --server-ca', async () => {
    const f = await fake({ directory: 'reset' });
    const r = await issue(uniqueName('reset'), f);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /reading the directory: cannot reach the CA at http:\/\/127\.0\.0\.1:\d+ \(ECONNRESET\): the connection was cut; padlock tries again later \[ACME_UNREACHABLE\]/);
    assert.doesNotMatch(r.stderr, /--server-ca/);
  });

  it('keeps a directory 503 met while asking for renewal information, and cron runs then leave the CA alone until it ends', async () => {
    const f = await fake({});
    const name = uniqueName('ari-dir503');
    assert.equal((await issue(name, undefined)).code, 0);
    await pointAt(name, f.directoryUrl);
    f.setDirectory({ status: 503, retryAfter: '900' });
    for (let i = 0; i < 3; i++) {
      const r = await renew(name, ['--json']);
      assert.equal(r.code, 0, `not due, so nothing is wrong: ${r.stdout}${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).results[0].action, 'not-due');
    }
    assert.equal(f.directoryRequests(), 1, 'the directory was asked once, then the CA\'s wait was kept');
  });

  it('says when padlock will try a directory that answers 503, and renew then waits without fetching it again', async () => {
    const f = await fake({});
    const name = uniqueName('dir503');
    assert.equal((await issue(name, undefined)).code, 0);
    await pointAt(name, f.directoryUrl);
    f.setDirectory({ status: 503, retryAfter: '900' });
    const first = await renew(name, ['--force-renewal']);
    assert.equal(first.code, 1);
    assert.match(first.stdout, new RegExp(`${name}: FAILED: reading the directory: the CA at ${iso(f.directoryUrl)} is unavailable \\(HTTP 503\\); padlock will try again after (\\S+), as the CA asked \\[ACME_CA_UNAVAILABLE\\]`));
    const asked = f.directoryRequests();
    for (const extra of [[], ['--force-renewal']]) {
      const r = await renew(name, extra);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`${name}: waiting until \\S+: asked by the CA to wait`));
    }
    assert.equal(f.directoryRequests(), asked, 'the directory was not fetched while the CA asked to wait');
  });
});
