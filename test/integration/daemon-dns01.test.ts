/**
 * `padlock run` with a `dns:` section: a wildcard route from one wildcard
 * certificate obtained over DNS-01 (RFC 2136 to a real Knot server, Pebble
 * validating against it), an exact route that beats the wildcard and shares
 * its certificate, an internal name that asks for dns-01, and the challenge
 * records a crashed padlock left, removed at start (also through a provider,
 * here `exec`, that no order of this run uses).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { rfc2136DnsSection, startKnot, type Knot } from '../support/knot.js';
import { tempConfigDir, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, startUpstream, httpsGet, waitFor, type RunningDaemon } from '../support/daemon.js';
import { runCli } from '../support/cli.js';
import { requireProgram } from '../support/programs.js';
import { openFsStore } from '../../src/store/fs-store.js';
import { systemClock } from '../../src/clock.js';
import { DNS_RECORDS_STATE, type LedgerRecord } from '../../src/acme/dns01.js';

let knot: Knot;
let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let wildApp: Awaited<ReturnType<typeof startUpstream>>;
let exactApp: Awaited<ReturnType<typeof startUpstream>>;
let daemon: RunningDaemon;
const base = `wc-${process.pid}.example.com`;
const internal = `intranet-${process.pid}.example.com`;
const stale = `stale-${process.pid}.example.com`;
const staleElsewhere = `stale-${process.pid}.example.org`;

before(async () => {
  knot = await startKnot({ zones: ['example.com', 'example.org'] });
  pebble = await startPebble({ dnsServer: `${knot.address}:53` });
  cfg = await tempConfigDir();
  [wildApp, exactApp] = await Promise.all([startUpstream('wildcard-app'), startUpstream('exact-app')]);
  const creds = join(cfg.dir, 'rfc2136.ini');
  await writeFile(creds, knot.credentials(), { mode: 0o600 });
  // The exec provider of example.org (no site there): logs its calls and removes the record with knsupdate.
  const hook = join(cfg.dir, 'dns-hook.sh');
  await writeFile(hook, [
    '#!/bin/sh',
    `echo "$*" >> ${join(cfg.dir, 'dns-hook.log')}`,
    `[ "$1" = cleanup ] && printf 'server ${knot.address} 53\\nzone example.org.\\nupdate delete %s TXT "%s"\\nsend\\n' "$2" "$3" | ${requireProgram('knsupdate', 'knot-dnsutils', 'the exec hook of the DNS-01 daemon test')} -y hmac-sha256:${knot.keyName}:${knot.secret}`,
    'exit 0',
  ].join('\n') + '\n', { mode: 0o700 });
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, [
    ...rfc2136DnsSection(knot, creds, ['    - provider: exec', `      exec: ${hook}`, '      zones: [example.org]']),
    'sites:',
    `  - host: "*.${base}"`,
    `    upstream: ${wildApp.url}`,
    `  - host: exact.${base}`,
    `    upstream: ${exactApp.url}`,
    `  - host: ${internal}`,
    `    upstream: ${exactApp.url}`,
    '    challenge: dns-01',
  ].join('\n'));
  // Records a crashed padlock (on this host, its process gone) presented and never removed, one per provider.
  await knot.setTxt('example.com', `_acme-challenge.${stale}`, ['left-by-a-crash']);
  await knot.setTxt('example.org', `_acme-challenge.${staleElsewhere}`, ['left-by-a-crash']);
  const crashed = { value: 'left-by-a-crash', host: hostname(), pid: spawnSync('true').pid, instance: 'crashed', createdAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString() };
  const records: LedgerRecord[] = [
    { ...crashed, fqdn: `_acme-challenge.${stale}`, zone: 'example.com', provider: `rfc2136:${knot.address}:53:${knot.keyName}` },
    { ...crashed, fqdn: `_acme-challenge.${staleElsewhere}`, zone: 'example.org', provider: `exec:${hook}` },
  ];
  const store = await openFsStore(join(cfg.dir, 'store'), { clock: systemClock });
  await store.writeState(DNS_RECORDS_STATE, { records });
  await store.close();
  daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort });
});
after(async () => {
  await daemon?.stop();
  await Promise.all([wildApp?.close(), exactApp?.close()]);
  await pebble?.stop();
  await knot?.stop();
  await cfg?.cleanup();
});

describe('padlock run with DNS-01 (wildcard routes)', () => {
  it('serves two subdomains from one wildcard certificate, and an exact route beats the wildcard', async () => {
    const a = await waitFor('HTTPS for a name under the wildcard', () => httpsGet(daemon.httpsPort, `a.${base}`, pebble.rootPem).catch(() => undefined), 60_000).catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output().slice(-4000)}`); });
    const b = await httpsGet(daemon.httpsPort, `b.${base}`, pebble.rootPem);
    const exact = await httpsGet(daemon.httpsPort, `exact.${base}`, pebble.rootPem);
    assert.equal(JSON.parse(a.body).app, 'wildcard-app');
    assert.equal(JSON.parse(b.body).app, 'wildcard-app');
    assert.equal(JSON.parse(exact.body).app, 'exact-app', 'the exact route wins over the wildcard');
    assert.equal(a.peer.subjectaltname, `DNS:*.${base}`);
    assert.equal(a.peer.fingerprint256, b.peer.fingerprint256, 'one certificate for both subdomains');
    assert.equal(exact.peer.fingerprint256, a.peer.fingerprint256, 'the exact name under the wildcard shares its certificate');
    // Two labels below the wildcard are not covered (RFC 6125): the handshake is refused.
    await assert.rejects(httpsGet(daemon.httpsPort, `x.y.${base}`, pebble.rootPem));
  });

  it('obtains an internal name over DNS-01 when its site asks for it, with no lineage for names the wildcard covers', async () => {
    const res = await waitFor('HTTPS for the internal name', () => httpsGet(daemon.httpsPort, internal, pebble.rootPem).catch(() => undefined), 60_000);
    assert.equal(res.status, 200);
    // The lineage records how it was validated, so a renewal (or padlock renew from cron) uses DNS-01 again.
    const meta = JSON.parse(await readFile(join(cfg.dir, 'store', 'renewal', `${internal}.json`), 'utf8')) as { challenge: { type: string; provider: string } };
    assert.deepEqual([meta.challenge.type, meta.challenge.provider], ['dns-01', 'rfc2136']);
    const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
    const names = (JSON.parse(list.stdout).certificates as Array<{ name: string }>).map((c) => c.name).sort();
    assert.deepEqual(names, [`wildcard_.${base}`, internal].sort(), 'exact.* has no certificate of its own');
    assert.deepEqual(await knot.txt(`_acme-challenge.${base}`), [], 'challenge records are gone');
  });

  it('removes at start the challenge records a crashed padlock left, also through a provider no order uses', async () => {
    await waitFor('the leftover records removed', async () => (await knot.txt(`_acme-challenge.${stale}`)).length === 0 && (await knot.txt(`_acme-challenge.${staleElsewhere}`)).length === 0);
    const calls = await readFile(join(cfg.dir, 'dns-hook.log'), 'utf8');
    assert.deepEqual(calls.trim().split('\n'), [`cleanup _acme-challenge.${staleElsewhere}. left-by-a-crash`], 'the exec provider was asked to remove exactly that record');
    const state = JSON.parse(await readFile(join(cfg.dir, 'store', 'state', `${DNS_RECORDS_STATE}.json`), 'utf8')) as { records: LedgerRecord[] };
    assert.deepEqual(state.records.filter((r) => r.value === 'left-by-a-crash'), [], 'and forgotten in the store');
  });
});
