/**
 * DNS-01 end to end with real parts: `padlock issue --dns rfc2136` sends
 * TSIG-signed RFC 2136 updates to a real Knot DNS server, and a real Pebble
 * validates against that same server (`-dnsserver`). Also IP address
 * certificates (RFC 8738) over HTTP-01.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate, randomUUID } from 'node:crypto';
import { startPebble, type Pebble } from '../support/pebble.js';
import { startKnot, type Knot } from '../support/knot.js';
import { fakeAcmes } from '../support/fake-acme.js';
import { startFakeCloudflare, startFakeAcmeDns, startFakeRoute53 } from '../support/fake-dns-apis.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, sanNames } from '../support/padlock.js';
import { dns01Solver } from '../../src/acme/dns01-solver.js';
import { dns01Value } from '../../src/acme/dns01.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { silentLogger } from '../../src/log.js';
import { systemClock } from '../../src/clock.js';

let knot: Knot;
let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let creds: string;
let seq = 0;
const fakes = fakeAcmes(() => pebble);

/** A fresh name under the test zone. */
const fresh = (label: string) => `${label}-${process.pid}-${++seq}.example.com`;

async function credentialsFile(name: string, text: string): Promise<string> {
  const path = join(cfg.dir, name);
  await writeFile(path, text, { mode: 0o600 });
  return path;
}

function dnsFlags(file: string, extra: string[] = []): string[] {
  return ['--dns', 'rfc2136', '--dns-credentials', file, '--dns-resolvers', knot.address, '--dns-propagation-interval', '0.2', ...extra];
}

before(async () => {
  knot = await startKnot({
    zones: ['example.com', 'locked.test'],
    readOnly: ['locked.test'],
    records: { 'example.com': ['_acme-challenge.deleg IN CNAME deleg.acme-delegated.example.com.'] },
  });
  pebble = await startPebble({ dnsServer: `${knot.address}:53` });
  cfg = await tempConfigDir();
  creds = await credentialsFile('rfc2136.ini', knot.credentials());
});
after(async () => {
  await fakes.closeAll();
  await pebble?.stop();
  await knot?.stop();
  await cfg?.cleanup();
});

describe('padlock issue --dns rfc2136 (Knot DNS + Pebble)', () => {
  it('issues a wildcard plus its apex in one order, and leaves no TXT record behind', async () => {
    const apex = fresh('wild');
    const r = await runCli(['issue', '-d', `*.${apex}`, '-d', apex, ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    // certbot's lineage name for a wildcard: the name without "*.".
    const cert = await readFile(join(cfg.dir, 'live', apex, 'cert.pem'), 'utf8');
    assert.deepEqual(sanNames(cert), [`*.${apex}`, apex].sort());
    assert.match(r.stderr, /dns-01 challenge for \*\./);
    assert.deepEqual(await knot.txt(`_acme-challenge.${apex}`), [], 'both values at the shared name were removed');
  });

  it('follows a CNAME from _acme-challenge to another name and writes the record there', async () => {
    const r = await runCli(['issue', '-d', 'deleg.example.com', ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir, '--verbose']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /following CNAME delegation.*deleg\.acme-delegated\.example\.com/);
    assert.deepEqual(await knot.txt('deleg.acme-delegated.example.com'), [], 'cleaned up at the CNAME target');
  });

  it('removes a record left by a crash between present and cleanup at the next start', async () => {
    const name = fresh('crash');
    const crashed = await runCli(['issue', '-d', name, ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir], { env: { PADLOCK_FAULT_KILL_AT: 'dns-presented' } });
    assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
    const left = await knot.txt(`_acme-challenge.${name}`);
    assert.equal(left.length, 1, 'the crash left the record in the zone');
    const ledger = JSON.parse(await readFile(join(cfg.dir, 'state', 'padlock-dns01.json'), 'utf8')) as { records: Array<{ value: string }> };
    assert.ok(ledger.records.some((x) => x.value === left[0]), 'the record was written down before it was created');

    const again = await runCli(['issue', '-d', fresh('after-crash'), ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await knot.txt(`_acme-challenge.${name}`), [], 'the next start removed the leftover');
  });

  it('fails clearly on a bad TSIG key, naming the provider and the zone, and keeps the old certificate with a backoff', async () => {
    const name = fresh('badkey');
    const file = await credentialsFile(`${name}.ini`, knot.credentials());
    const first = await runCli(['issue', '-d', name, ...dnsFlags(file), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(first.code, 0, first.stderr);
    const before = await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8');

    // The stored settings point at the same file: the key in it is now wrong.
    await writeFile(file, knot.credentials({ secret: Buffer.from('not the key at all, not at all!!').toString('base64') }));
    const failed = await runCli(['renew', '--cert-name', name, '--force-renewal', '--server-ca', pebble.serverCaFile, '--config-dir', cfg.dir]);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr + failed.stdout, /DNS provider rfc2136 at [\d.]+:53 \(TSIG key padlock-test-key\) for the zone example\.com: .*BADSIG/);
    assert.equal(await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8'), before, 'the old certificate stays current');

    const waiting = await runCli(['renew', '--cert-name', name, '--server-ca', pebble.serverCaFile, '--config-dir', cfg.dir, '--json']);
    const row = (JSON.parse(waiting.stdout) as { results: Array<{ name: string; action: string; reason?: string }> }).results.find((x) => x.name === name);
    assert.equal(row?.action, 'backoff', waiting.stdout);
    assert.match(row?.reason ?? '', /backing off after 1 failed attempt \(DNS provider rfc2136/);
  });

  it('names the provider and zone when the server refuses the update', async () => {
    const r = await runCli(['issue', '-d', `app-${process.pid}.locked.test`, ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /DNS provider rfc2136 .* for the zone locked\.test: adding the TXT record _acme-challenge\.app-\d+\.locked\.test: (the server answered REFUSED|the server answered NOTAUTH|the server refused the TSIG signature \(BADKEY\): the server does not know this key for this zone)/);
    assert.match(r.stderr, /\[DNS_PROVIDER_FAILED\]/);
  });

  it('refuses a credentials file that others may read', async () => {
    const file = await credentialsFile('open.ini', knot.credentials());
    await chmod(file, 0o644);
    const r = await runCli(['issue', '-d', fresh('mode'), ...dnsFlags(file), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /its mode is 0644, but it holds a secret; run chmod 600/);
  });

  it('refuses a wildcard without --dns, saying DNS-01 is needed', async () => {
    const r = await runCli(['issue', '-d', '*.nodns.example.com', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /wildcard names need the DNS-01 challenge \(--dns PROVIDER\)/);
  });
});

describe('propagation check', () => {
  it('times out naming the authoritative server that never sees the record, and removes the record', async () => {
    const slow = await startKnot({ zones: ['slow.test'], secondary: true });
    try {
      const file = await credentialsFile('slow.ini', slow.credentials());
      const name = `app-${process.pid}.slow.test`;
      const r = await runCli(['issue', '-d', name, '--dns', 'rfc2136', '--dns-credentials', file, '--dns-resolvers', slow.address,
        '--dns-propagation-timeout', '2', '--dns-propagation-interval', '0.3', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`the TXT record _acme-challenge\\.${name.replace(/\./g, '\\.')} \\(zone slow\\.test, written by rfc2136 at [\\d.]+:53.*\\) did not reach every authoritative server within 2 s; still missing on ns2\\.slow\\.test \\(${slow.secondaryAddress!.replace(/\./g, '\\.')}:53\\): (NXDOMAIN|no TXT record)`));
      assert.match(r.stderr, /\[DNS_PROPAGATION_TIMEOUT\]/);
      assert.doesNotMatch(r.stderr, /ns1\.slow\.test \(/, 'the primary is not listed as missing');
      assert.deepEqual(await slow.txt(`_acme-challenge.${name}`), [], 'the record was removed after the timeout');
    } finally {
      await slow.stop();
    }
  });
});

describe('IP address certificates (RFC 8738)', () => {
  it('issues a certificate for 127.0.0.1 over HTTP-01 with an IP SAN', async () => {
    const r = await runCli(['issue', '-d', '127.0.0.1', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    const cert = new X509Certificate(await readFile(join(cfg.dir, 'live', '127.0.0.1', 'cert.pem'), 'utf8'));
    assert.equal(cert.subjectAltName, 'IP Address:127.0.0.1');
  });

  /** Pebble's flags with another directory URL. */
  const against = (url: string) => pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? url : f));

  it('asks for the shortlived profile for an IP identifier when the CA offers profiles, and none when it does not', async () => {
    const withProfiles = await fakes.start({ newOrder: 'record' });
    await runCli(['issue', '-d', '127.0.0.1', '--cert-name', 'ip-profile', ...against(withProfiles.directoryUrl), '--config-dir', cfg.dir]);
    const order = withProfiles.newOrders.at(-1)?.payload;
    assert.deepEqual(order?.['identifiers'], [{ type: 'ip', value: '127.0.0.1' }]);
    assert.equal(order?.['profile'], 'shortlived');

    const without = await fakes.start({ newOrder: 'record', profiles: null });
    await runCli(['issue', '-d', '127.0.0.1', '--cert-name', 'ip-noprofile', ...against(without.directoryUrl), '--config-dir', cfg.dir]);
    assert.equal(without.newOrders.at(-1)?.payload['profile'], undefined);
  });

  it('refuses an IP address with --dns', async () => {
    const r = await runCli(['issue', '-d', '127.0.0.1', ...dnsFlags(creds), ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /an IP address cannot be validated over DNS-01/);
  });
});

describe('DNS providers tested against fakes of their HTTP APIs (writing into the real Knot zone)', () => {
  it('cloudflare: issues a wildcard plus apex with an API token, and removes only its own records', async () => {
    const cf = await startFakeCloudflare(knot, { token: 'cf-test-token', zones: ['example.com'] });
    try {
      const apex = fresh('cf');
      const file = await credentialsFile('cloudflare.ini', `dns_cloudflare_api_token = cf-test-token\napi_url = ${cf.url}/client/v4\n`);
      const r = await runCli(['issue', '-d', `*.${apex}`, '-d', apex, '--dns', 'cloudflare', '--dns-credentials', file, '--dns-resolvers', knot.address, '--dns-propagation-interval', '0.2', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(sanNames(await readFile(join(cfg.dir, 'live', apex, 'cert.pem'), 'utf8')), [`*.${apex}`, apex].sort());
      assert.equal(cf.requests.filter((x) => x.startsWith('POST')).length, 2, 'one record per value');
      assert.equal(cf.requests.filter((x) => x.startsWith('DELETE')).length, 2, 'both removed');
      assert.deepEqual(await knot.txt(`_acme-challenge.${apex}`), []);
    } finally {
      await cf.close();
    }
  });

  it('cloudflare: a 403 names the provider and the zone and says what the token needs', async () => {
    const cf = await startFakeCloudflare(knot, { token: 'cf-test-token', zones: ['example.com'], forbiddenZones: ['example.com'] });
    try {
      const file = await credentialsFile('cloudflare-403.ini', `api_token = cf-test-token\napi_url = ${cf.url}/client/v4\n`);
      const r = await runCli(['issue', '-d', fresh('cf403'), '--dns', 'cloudflare', '--dns-credentials', file, '--dns-resolvers', knot.address, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /DNS provider cloudflare for the zone example\.com: adding the TXT record _acme-challenge\.cf403-\S+: HTTP 403 \(10000: Authentication error\); check that the API token is valid and has Zone:DNS:Edit on this zone \[DNS_PROVIDER_FAILED\]/);
    } finally {
      await cf.close();
    }
  });

  it('acme-dns: follows the CNAME to the registration and updates it over HTTP', async () => {
    const full = `${randomUUID()}.auth.example.com`;
    const name = fresh('acmedns');
    await knot.setCname('example.com', `_acme-challenge.${name}`, full);
    const api = await startFakeAcmeDns(knot, { zone: 'example.com', username: 'u1', password: 'p1', subdomain: full.split('.')[0]!, fulldomain: full });
    try {
      const file = await credentialsFile('acme-dns.ini', `api_url = ${api.url}\nusername = u1\npassword = p1\nsubdomain = ${full.split('.')[0]}\nfulldomain = ${full}\n`);
      const r = await runCli(['issue', '-d', name, '--dns', 'acme-dns', '--dns-credentials', file, '--dns-resolvers', knot.address, '--dns-propagation-interval', '0.2', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(api.requests, ['POST /update']);
    } finally {
      await api.close();
    }
  });

  it('route53: issues through @aws-sdk/client-route-53 against a fake endpoint, with credentials from the AWS environment', async () => {
    const r53 = await startFakeRoute53(knot, { zones: ['example.com'] });
    try {
      const apex = fresh('r53');
      const file = await credentialsFile('route53.ini', `endpoint = ${r53.url}\n`);
      const r = await runCli(['issue', '-d', `*.${apex}`, '-d', apex, '--dns', 'route53', '--dns-credentials', file, '--dns-resolvers', knot.address, '--dns-propagation-interval', '0.2', ...pebbleFlags(pebble), '--config-dir', cfg.dir],
        { env: { AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'secret-for-tests', AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent' } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(sanNames(await readFile(join(cfg.dir, 'live', apex, 'cert.pem'), 'utf8')), [`*.${apex}`, apex].sort());
      assert.equal(r53.sets.size, 0, 'the record set was emptied and deleted');
      assert.deepEqual(await knot.txt(`_acme-challenge.${apex}`), []);
    } finally {
      await r53.close();
    }
  });

  it('exec: calls the program with present and cleanup, FQDN and value', async () => {
    const log = join(cfg.dir, 'exec.log');
    const script = join(cfg.dir, 'hook.sh');
    await writeFile(script, `#!/bin/sh\necho "$1 $2 $3" >> ${log}\nzone=example.com\nif [ "$1" = present ]; then v="$3"; else v=""; fi\nprintf 'server ${knot.address} 53\\nzone example.com.\\nupdate delete %s TXT\\n%s\\nsend\\n' "$2" "\${v:+update add $2 60 TXT \\"$v\\"}" | knsupdate -y hmac-sha256:${knot.keyName}:${knot.secret}\n`, { mode: 0o755 });
    const name = fresh('exec');
    const r = await runCli(['issue', '-d', name, '--dns', 'exec', '--dns-exec', script, '--dns-resolvers', knot.address, '--dns-propagation-interval', '0.2', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    const calls = (await readFile(log, 'utf8')).trim().split('\n');
    assert.equal(calls.length, 2);
    assert.match(calls[0]!, new RegExp(`^present _acme-challenge\\.${name.replace(/\./g, '\\.')}\\. [A-Za-z0-9_-]{43}$`));
    assert.match(calls[1]!, new RegExp(`^cleanup _acme-challenge\\.${name.replace(/\./g, '\\.')}\\. [A-Za-z0-9_-]{43}$`));
  });
});

describe("padlock run's DNS-01 solver (one per provider, shared by every order of the daemon)", () => {
  it('reads the credentials file again after the server refused its key, so the fixed file works at the next attempt without a restart', async () => {
    const own = await startKnot({ zones: ['rotate.test'] });
    const file = await credentialsFile('rotate.ini', own.credentials());
    const solver = dns01Solver({ type: 'dns-01', provider: 'rfc2136', credentials: file, resolvers: [own.address], propagationTimeout: 10, propagationInterval: 0.2 },
      { store: new MemoryStore(), logger: silentLogger, clock: systemClock });
    const challenge = (token: string) => ({ type: 'dns-01' as const, identifier: 'app.rotate.test', token, keyAuthorization: `${token}.thumbprint` });
    try {
      await solver.present(challenge('t1'));
      assert.deepEqual(await own.txt('_acme-challenge.app.rotate.test'), [dns01Value('t1.thumbprint')]);
      await solver.cleanup(challenge('t1'));

      // The key is rotated on the server: the daemon's provider, built with the old one, is refused.
      await own.rotateKey();
      await assert.rejects(solver.present(challenge('t2')), /for the zone rotate\.test: adding the TXT record _acme-challenge\.app\.rotate\.test: the server refused the TSIG signature \(BADSIG\)/);
      // The operator puts the new key in the file; the same solver (no restart) uses it for the next order.
      await writeFile(file, own.credentials());
      await solver.present(challenge('t3'));
      assert.deepEqual(await own.txt('_acme-challenge.app.rotate.test'), [dns01Value('t3.thumbprint')]);
      await solver.cleanup(challenge('t3'));
      assert.deepEqual(await own.txt('_acme-challenge.app.rotate.test'), [], 'removed with the new key');
    } finally {
      await solver.close();
      await own.stop();
    }
  });
});
