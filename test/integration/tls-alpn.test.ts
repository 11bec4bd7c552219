/**
 * TLS-ALPN-01 (RFC 8737) against Pebble's real validation, with port 80
 * closed: nothing listens on Pebble's `httpPort`, so HTTP-01 cannot succeed.
 * Pebble's `tlsPort` is one port P picked here; the CLI's standalone server
 * and then each daemon's :443 take P in turn. Pebble's mock DNS maps every
 * name to 127.0.0.1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, pebbleRunFlags, tempConfigDir, uniqueName } from '../support/padlock.js';
import { httpsGet, startPadlockRun, startUpstream, waitFor } from '../support/daemon.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };
let app: Awaited<ReturnType<typeof startUpstream>>;
let tlsPort: number;

before(async () => {
  tlsPort = await freePort();
  pebble = await startPebble({ tlsPort });
  cfg = await tempConfigDir();
  app = await startUpstream('alpn-app');
});
after(async () => {
  await app?.close();
  await pebble?.stop();
  await cfg?.cleanup();
});

const meta = async (store: string, name: string) => JSON.parse(await readFile(join(store, 'renewal', `${name}.json`), 'utf8')) as { challenge: Record<string, unknown> };

/** Starts `padlock run` on https port P with one site for `name`, and resolves once it serves Pebble's certificate for it. */
async function daemonIssues(name: string, store: string, extra: string[]): Promise<{ output: string; issuer: string }> {
  const file = join(cfg.dir, `${name}.yaml`);
  await writeFile(file, ['sites:', `  - host: ${name}`, `    upstream: ${app.url}`].join('\n'));
  const daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', store, ...pebbleRunFlags(pebble), ...extra], { httpsPort: tlsPort });
  try {
    const res = await waitFor(`HTTPS with a Pebble certificate for ${name}`, () => httpsGet(daemon.httpsPort, name, pebble.rootPem).catch(() => undefined), 60_000, 200);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).app, 'alpn-app');
    return { output: daemon.output(), issuer: String(res.peer.issuer.CN) };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- padlock:\n${daemon.output()}\n--- pebble:\n${pebble.logs().slice(-3000)}`);
  } finally {
    await daemon.stop();
  }
}

describe('TLS-ALPN-01 against Pebble with port 80 closed', () => {
  it('padlock issue --standalone --preferred-challenges tls-alpn-01 issues, and padlock renew repeats TLS-ALPN-01', async () => {
    const name = uniqueName('alpn-cli');
    const store = join(cfg.dir, 'cli');
    const r = await runCli(['issue', '-d', name, '--standalone', '--preferred-challenges', 'tls-alpn-01', '--tls-alpn-01-port', String(tlsPort), '--tls-alpn-01-address', '127.0.0.1',
      ...pebbleFlags(pebble), '--config-dir', store]);
    assert.equal(r.code, 0, `${r.stderr}\n${pebble.logs().slice(-3000)}`);
    assert.match(r.stderr, /tls-alpn-01 challenge for .* served by padlock's TLS server on 127\.0\.0\.1:\d+/);
    assert.deepEqual((await meta(store, name)).challenge, { type: 'tls-alpn-01', port: tlsPort, address: '127.0.0.1' });
    const renewed = await runCli(['renew', '--force-renewal', '--cert-name', name, '--config-dir', store, '--server-ca', pebble.serverCaFile]);
    assert.equal(renewed.code, 0, renewed.stderr + renewed.stdout);
    assert.match(renewed.stdout, new RegExp(`${name}: renewed`));
    assert.match(renewed.stderr, /tls-alpn-01 challenge/);
  });

  it('padlock issue says which flags conflict: --webroot with tls-alpn-01, an unknown challenge type', async () => {
    const r = await runCli(['issue', '-d', uniqueName('alpn-bad'), '--webroot', '-w', cfg.dir, '--preferred-challenges', 'tls-alpn-01,dns-01', ...pebbleFlags(pebble), '--config-dir', join(cfg.dir, 'bad')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /padlock answers http-01 or tls-alpn-01, not dns-01/);
    assert.match(r.stderr, /--webroot answers HTTP-01 with files/);
  });

  it('padlock run --challenge tls-alpn-01 answers acme-tls/1 on :443 and serves the issued certificate', async () => {
    const name = uniqueName('alpn-run');
    const store = join(cfg.dir, 'run');
    const { output } = await daemonIssues(name, store, ['--challenge', 'tls-alpn-01']);
    assert.match(output, /answering an acme-tls\/1 handshake/);
    assert.doesNotMatch(output, /http-01 challenge/);
    assert.equal((await meta(store, name)).challenge['type'], 'tls-alpn-01');
  });

  it('padlock run --workers 2 --challenge tls-alpn-01: every worker has the challenge certificate before Pebble validates', async () => {
    const name = uniqueName('alpn-workers');
    const { output } = await daemonIssues(name, join(cfg.dir, 'workers'), ['--challenge', 'tls-alpn-01', '--workers', '2']);
    // Pebble connects several times (its VA and, with multiple perspectives, more); any worker may take each connection.
    assert.match(output, /answering an acme-tls\/1 handshake/);
  });

  it('padlock run (default challenge) falls back from http-01 to tls-alpn-01 when the CA cannot reach port 80', async () => {
    const name = uniqueName('alpn-fallback');
    const store = join(cfg.dir, 'fallback');
    const { output } = await daemonIssues(name, store, []);
    assert.match(output, /the CA could not reach [^ ]+ on port 80 for http-01; ordering again with tls-alpn-01 on port 443/);
    assert.match(output, /answering an acme-tls\/1 handshake/);
    // The lineage keeps the daemon's setting (auto: HTTP-01 first next time too).
    assert.equal((await meta(store, name)).challenge['type'], 'standalone');
  });

  it('padlock run --challenge http-01 does not fall back: the name stays without a certificate, with the port 80 hint', async () => {
    const name = uniqueName('alpn-nofallback');
    const file = join(cfg.dir, `${name}.yaml`);
    await writeFile(file, ['sites:', `  - host: ${name}`, `    upstream: ${app.url}`].join('\n'));
    const daemon = await startPadlockRun(['--config', file, '--docker', 'false', '--config-dir', join(cfg.dir, 'nofallback'), '--challenge', 'http-01', ...pebbleRunFlags(pebble)], { httpsPort: tlsPort });
    try {
      await waitFor('the failed validation', async () => /could not validate .*\(connection\)/.test(daemon.output()), 30_000, 200);
      assert.match(daemon.output(), /port 80 is open/);
      assert.doesNotMatch(daemon.output(), /ordering again with tls-alpn-01/);
    } finally {
      await daemon.stop();
    }
  });
});
