/**
 * A CA rate limit is reported with the CA's words and when to retry, is
 * remembered in the store, and stops padlock from asking again before then.
 * The 429 comes from a small fake (test/support/rate-limit-ca.ts) because
 * Pebble 2.4 never sends rateLimited or Retry-After.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { startRateLimitCa, type RateLimitCa } from '../support/rate-limit-ca.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

let pebble: Pebble;
let fake: RateLimitCa;
let cfg: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pebble = await startPebble();
  fake = await startRateLimitCa(pebble, 3600);
  cfg = await tempConfigDir();
});
after(async () => {
  await fake?.close();
  await pebble?.stop();
  await cfg?.cleanup();
});

describe('a CA rate limit', () => {
  it('is reported with the CA words and the time to retry, then honoured without asking the CA again', async () => {
    const name = uniqueName('limited');
    const flags = pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? fake.directoryUrl : f));
    const started = Date.now();
    const r = await runCli(['issue', '-d', name, ...flags, '--config-dir', cfg.dir, '--json']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`creating an order for ${name}: the CA refused \\(rateLimited\\): too many new orders .* The CA asks to retry after (\\S+)\\. \\[ACME_RATE_LIMITED\\]`));
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.error.code, 'ACME_RATE_LIMITED');
    assert.equal(doc.error.problem.type, 'urn:ietf:params:acme:error:rateLimited');
    const retryAt = Date.parse(doc.error.retryAfter);
    assert.ok(retryAt >= started + 3500_000 && retryAt <= Date.now() + 3600_000, `retry after ${doc.error.retryAfter}`);
    assert.equal(fake.newOrderRequests(), 1);

    const state = JSON.parse(await readFile(join(cfg.dir, 'state', `${name}.json`), 'utf8'));
    assert.equal(state.failure.rateLimited, true);
    assert.equal(state.failure.lastError.acmeType, 'rateLimited');
    assert.equal(Date.parse(state.failure.nextAttemptAt), retryAt, 'the backoff waits for the CA Retry-After');

    // Even a forced run does not ask again before the CA's time.
    const again = await runCli(['issue', '-d', name, '--force-renewal', ...flags, '--config-dir', cfg.dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`${name} is rate limited \\(creating an order for ${name}: the CA refused \\(rateLimited\\).*\\); padlock will not ask again before ${new Date(retryAt).toISOString().replace(/\./g, '\\.')}`));
    assert.equal(fake.newOrderRequests(), 1, 'the CA was not asked again');
  });

  it('makes padlock renew (the cron path) wait it out, even with --force-renewal, unless the user insists', async () => {
    const name = uniqueName('cron');
    assert.equal((await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    // The CA starts rate limiting this lineage: point its stored CA at the fake.
    const metaFile = join(cfg.dir, 'renewal', `${name}.json`);
    const meta = JSON.parse(await readFile(metaFile, 'utf8'));
    await writeFile(metaFile, JSON.stringify({ ...meta, server: fake.directoryUrl }));
    const before = fake.newOrderRequests();

    const first = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name]);
    assert.equal(first.code, 1);
    assert.match(first.stdout, new RegExp(`${name}: FAILED: .*rateLimited.* \\[ACME_RATE_LIMITED\\]`));
    assert.equal(fake.newOrderRequests(), before + 1);

    const forced = await runCli(['renew', '--force-renewal', '--config-dir', cfg.dir, '--cert-name', name]);
    assert.equal(forced.code, 1, 'a lineage waiting out a rate limit is a problem cron monitoring must see');
    assert.match(forced.stdout, new RegExp(`${name}: waiting until \\S+: rate limited \\(creating an order for ${name}: the CA refused \\(rateLimited\\)`));
    const plain = await runCli(['renew', '--config-dir', cfg.dir, '--cert-name', name]);
    assert.equal(plain.code, 1);
    assert.match(plain.stdout, new RegExp(`${name}: waiting until \\S+: rate limited`));
    assert.equal(fake.newOrderRequests(), before + 1, 'cron runs did not ask the CA again');

    const insist = await runCli(['renew', '--force-renewal', '--ignore-rate-limit', '--config-dir', cfg.dir, '--cert-name', name]);
    assert.equal(insist.code, 1);
    assert.equal(fake.newOrderRequests(), before + 2, 'only an explicit --ignore-rate-limit asks again');
  });

  it("is not padlock's to impose on a CA that is not Let's Encrypt: six certificates for the same names in a row are all issued", async () => {
    // Applying Let's Encrypt's "5 duplicates a week" to every CA once stopped renewal of short-lived
    // certificates from a private CA after the fifth, and the sixth expired. Let's Encrypt's own
    // directories keep the limit (test/unit/governor.test.ts, test/unit/engine.test.ts).
    const name = uniqueName('dup');
    for (let i = 0; i < 6; i++) {
      const r = await runCli(['issue', '-d', name, '--force-renewal', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 0, `issuance ${i + 1}: ${r.stderr}`);
    }
    const archive = await readdir(join(cfg.dir, 'archive', name));
    assert.equal(archive.filter((e) => /^v\d+$/.test(e)).length, 6);
  });
});
