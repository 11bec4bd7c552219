/**
 * `padlock run` renewing a wildcard over DNS-01 when the DNS provider fails:
 * the TSIG key was rotated on the Knot server, and padlock's rfc2136
 * credentials file still holds the old one. Pebble issues 30-second certificates, so
 * the renewal falls due within seconds of the first issuance. The failure
 * must name the provider and the zone (log, /api/status, the store's failure
 * record), the old certificate must keep serving, and the next attempt must
 * wait for the backoff (1 minute after a first failure) rather than hammer
 * the CA and the DNS server.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { rfc2136DnsSection, startKnot, type Knot } from '../support/knot.js';
import { tempConfigDir, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';
import { runCli } from '../support/cli.js';

// Long enough that the key is rotated well before the renewal falls due, even on a loaded CI machine (at 20 s a
// renewal once started, and succeeded with the old key, while the key was being rotated).
const VALIDITY_S = 30;
/** How long the test watches for a second attempt after the failure (the backoff is a minute; well under it). */
const WATCH_MS = 6_000;

let knot: Knot;
let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let app: Awaited<ReturnType<typeof startUpstream>>;
let daemon: RunningDaemon;
let creds: string;
const base = `rn-${process.pid}.example.com`;
const lineage = `wildcard_.${base}`;

before(async () => {
  knot = await startKnot({ zones: ['example.com'] });
  pebble = await startPebble({ dnsServer: `${knot.address}:53`, validitySeconds: VALIDITY_S });
  cfg = await tempConfigDir();
  app = await startUpstream('wildcard-app');
  creds = join(cfg.dir, 'rfc2136.ini');
  await writeFile(creds, knot.credentials(), { mode: 0o600 });
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, [
    ...rfc2136DnsSection(knot, creds),
    'sites:',
    `  - host: "*.${base}"`,
    `    upstream: ${app.url}`,
  ].join('\n'));
  daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort });
});
after(async () => {
  await daemon?.stop();
  await app?.close();
  await pebble?.stop();
  await knot?.stop();
  await cfg?.cleanup();
});

type CertView = { name: string; lastError?: { code: string; message: string }; nextAttemptAt?: string; backoffUntil?: string; nextRenewal?: { at: string; why: string }; notAfter?: string };
type Attention = { kind: string; subject: string; title: string; message: string; code?: string; until?: string };

/** Lines of the daemon's JSON log with this message for the wildcard's lineage. */
const logLines = (msg: string) => daemon.output().split('\n').filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(`"name":"${lineage}"`));

describe('padlock run: a DNS provider error on a wildcard renewal', () => {
  it('names the provider and the zone, keeps the old certificate serving, and waits for the backoff before trying again', async () => {
    const first = await waitFor('HTTPS for a name under the wildcard', () => httpsGet(daemon.httpsPort, `a.${base}`, pebble.rootPem).catch(() => undefined), 60_000)
      .catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output().slice(-4000)}`); });
    assert.equal(first.peer.subjectaltname, `DNS:*.${base}`);
    assert.equal(logLines('renewing certificate').length, 0, 'no renewal yet: the certificate was just obtained');

    // The key is rotated on the DNS server, and padlock's credentials file still holds the old one: every update is refused (BADSIG).
    const oldSecret = knot.secret;
    await knot.rotateKey();
    assert.equal(logLines('renewing certificate').length, 0, 'no renewal began before the key was rotated (else it could succeed with the old key)');

    // The renewal falls due at half of the 30-second lifetime and fails.
    const cert = await waitFor('the failed renewal in /api/status', async () => {
      const c = ((await daemon.status())['certificates'] as CertView[]).find((x) => x.name === lineage);
      return c?.lastError ? c : undefined;
    }, 30_000).catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output().slice(-4000)}`); });
    const failedAt = Date.now();
    const named = /DNS provider rfc2136 at [\d.]+:53 \(TSIG key padlock-test-key\) for the zone example\.com: adding the TXT record _acme-challenge\.rn-\d+\.example\.com: .*BADSIG/;
    assert.equal(cert.lastError!.code, 'DNS_PROVIDER_FAILED');
    assert.match(cert.lastError!.message, named);
    assert.ok(!cert.lastError!.message.includes(oldSecret) && !daemon.output().includes(oldSecret), 'the TSIG secret is in neither the message nor the log');
    assert.equal(cert.nextRenewal?.why, 'retry after a failed attempt (backoff)');
    assert.equal(cert.backoffUntil, cert.nextAttemptAt);

    const status = await daemon.status();
    const item = (status['attention'] as Attention[]).find((a) => a.kind === 'certificate' && a.subject === lineage);
    assert.equal(item?.title, 'renewal failed; the current certificate keeps serving');
    assert.match(item!.message, named);
    assert.equal(item!.until, cert.nextAttemptAt);

    // The log says the same, once.
    const failed = logLines('certificate failed; the current one (if any) keeps serving');
    assert.equal(failed.length, 1, failed.join('\n'));
    assert.match(failed[0]!, /DNS provider rfc2136 at [\d.]+:53 \(TSIG key padlock-test-key\) for the zone example\.com/);

    // The old certificate keeps serving, still trusted (it expires 30 s after issuance; the renewal failed at about 15 s).
    const after = await httpsGet(daemon.httpsPort, `b.${base}`, pebble.rootPem);
    assert.equal(after.status, 200);
    assert.equal(after.peer.serialNumber, first.peer.serialNumber, 'the same certificate as before the failed renewal');

    // The store's failure record: one failed attempt, the next one a minute later (plus at most 10 % jitter).
    const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
    assert.equal(list.code, 0, list.stderr);
    const row = (JSON.parse(list.stdout).certificates as Array<{ name: string; lastFailure?: { failures: number; lastAttemptAt: string; nextAttemptAt: string; lastError: { code: string } } }>).find((c) => c.name === lineage);
    assert.equal(row?.lastFailure?.failures, 1, list.stdout);
    assert.equal(row!.lastFailure!.lastError.code, 'DNS_PROVIDER_FAILED');
    assert.equal(row!.lastFailure!.nextAttemptAt, cert.nextAttemptAt);
    const wait = Date.parse(row!.lastFailure!.nextAttemptAt) - Date.parse(row!.lastFailure!.lastAttemptAt);
    assert.ok(wait >= 60_000 && wait <= 66_000, `backoff after the first failure is 1 min + up to 10 % jitter, got ${wait} ms`);

    // No second attempt while the backoff holds, not even once the old certificate has expired (at 30 s): the CA is not hammered.
    const watchUntil = Math.max(failedAt + WATCH_MS, Date.parse(cert.notAfter!) + 1_000);
    await new Promise((r) => setTimeout(r, Math.max(0, watchUntil - Date.now())));
    assert.equal(logLines('renewing certificate').length, 1, 'one renewal attempt in the watch window');
    assert.equal(logLines('certificate failed; the current one (if any) keeps serving').length, 1);
    const later = ((await daemon.status())['certificates'] as CertView[]).find((x) => x.name === lineage);
    assert.equal(later?.nextAttemptAt, cert.nextAttemptAt, 'the same backoff still holds');
  });
});
