/**
 * `padlock issue` against a real Pebble: what a certbot user does and sees.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFile, stat, readdir, mkdtemp, rm, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, extname } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, sanNames, uniqueName } from '../support/padlock.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pebble = await startPebble();
  cfg = await tempConfigDir();
});
after(async () => {
  await pebble?.stop();
  await cfg?.cleanup();
});

describe('padlock issue (standalone)', () => {
  it('issues an ECDSA P-256 certificate for several names, showing each step, into a certbot-style live folder', async () => {
    const name = uniqueName('multi');
    const r = await runCli(['issue', '-d', name, '-d', `WWW.${name}.`, '-d', `api.${name}`, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    for (const step of ['account', 'order', 'challenge', 'validating', 'finalizing', 'verifying', 'saved']) {
      assert.match(r.stderr, new RegExp(`^  ${step}\\b`, 'm'), `progress shows "${step}"`);
    }
    assert.match(r.stdout, new RegExp(`Certificate ${name} issued for ${name}, www.${name}, api.${name}, valid until`));
    const live = join(cfg.dir, 'live', name);
    const [cert, chain, fullchain, privkey] = await Promise.all(['cert', 'chain', 'fullchain', 'privkey'].map((f) => readFile(join(live, `${f}.pem`), 'utf8')));
    assert.equal(fullchain, cert! + chain!);
    assert.deepEqual(sanNames(cert!), [name, `api.${name}`, `www.${name}`].sort());
    const key = createPrivateKey(privkey!);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(new X509Certificate(cert!).checkPrivateKey(key), 'the key matches the certificate');
    assert.equal((await stat(join(live, 'privkey.pem'))).mode & 0o777, 0o600, 'the key is private');
    assert.equal((await stat(join(cfg.dir, 'archive'))).mode & 0o777, 0o700);
    const root = new X509Certificate(pebble.rootPem);
    assert.ok(new X509Certificate(chain!).checkIssued(root), 'chain.pem holds the intermediate the root issued');
    assert.ok(new X509Certificate(cert!).checkIssued(new X509Certificate(chain!)), 'cert.pem was issued by that intermediate');
  });

  it('issues an RSA certificate when asked', async () => {
    const name = uniqueName('rsa');
    const r = await runCli(['issue', '-d', name, '--key-type', 'rsa', '--rsa-key-size', '2048', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    const key = createPrivateKey(await readFile(join(cfg.dir, 'live', name, 'privkey.pem'), 'utf8'));
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  });

  it('prints one JSON document with --json, and padlock certificates lists the result', async () => {
    const name = uniqueName('json');
    const r = await runCli(['issue', '-d', name, '--json', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, true);
    assert.equal(doc.action, 'issued');
    assert.deepEqual(doc.domains, [name]);
    assert.equal(doc.fullchainPath, join(cfg.dir, 'live', name, 'fullchain.pem'));
    assert.ok(Date.parse(doc.notAfter) > Date.now());

    const list = await runCli(['certificates', '--json', '--config-dir', cfg.dir]);
    assert.equal(list.code, 0, list.stderr);
    const row = JSON.parse(list.stdout).certificates.find((c: { name: string }) => c.name === name);
    assert.ok(row, 'the new lineage is listed');
    assert.deepEqual(row.domains, [name]);
    assert.equal(row.status, 'VALID');
    assert.equal(row.keyType, 'ecdsa P-256');
    assert.ok(row.daysLeft > 300, `days left ${row.daysLeft}`);
    assert.match(row.issuer, /Pebble/i);
    assert.equal(row.paths.fullchain, join(cfg.dir, 'live', name, 'fullchain.pem'));

    const text = await runCli(['certificates', '--config-dir', cfg.dir, '--cert-name', name]);
    assert.match(text.stdout, new RegExp(`Certificate Name: ${name}\\n  Domains:     ${name}\\n  Expiry:      \\S+ \\(VALID: \\d+ days left`));
  });

  it('keeps a certificate that is not yet due instead of ordering again, unless --force-renewal', async () => {
    const name = uniqueName('keep');
    assert.equal((await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    const before = await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8');
    const again = await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /not yet due for renewal .*kept it/);
    assert.equal(await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8'), before);
    const forced = await runCli(['issue', '-d', name, '--force-renewal', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await readFile(join(cfg.dir, 'live', name, 'cert.pem'), 'utf8'), before);
  });

  it('runs the deploy hook with RENEWED_LINEAGE and RENEWED_DOMAINS', async () => {
    const name = uniqueName('hook');
    const out = join(cfg.dir, `hook-${name}.txt`);
    const r = await runCli(['issue', '-d', name, '-d', `www.${name}`, '--deploy-hook', `echo "$RENEWED_LINEAGE|$RENEWED_DOMAINS" > ${out}`, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(out, 'utf8'), `${join(cfg.dir, 'live', name)}|${name} www.${name}\n`);
  });

  it('reports a failing deploy hook with exit 1 but keeps the certificate', async () => {
    const name = uniqueName('badhook');
    const r = await runCli(['issue', '-d', name, '--deploy-hook', 'exit 3', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /deploy hook "exit 3" exited with 3; the certificate itself was saved \[HOOK_FAILED\]/);
    await stat(join(cfg.dir, 'live', name, 'fullchain.pem'));
  });

  it('stores nothing and runs no hook with --dry-run', async () => {
    const dry = await tempConfigDir();
    after(dry.cleanup);
    const name = uniqueName('dry');
    const marker = join(dry.dir, 'hook-ran');
    const r = await runCli(['issue', '-d', name, '--dry-run', '--deploy-hook', `touch ${marker}`, ...pebbleFlags(pebble), '--config-dir', dry.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /dry run succeeded/);
    assert.match(r.stderr, /^  verifying/m, 'the whole flow ran, verification included');
    const live = (await readdir(join(dry.dir, 'live')).catch(() => [] as string[])).filter((f) => f !== 'README');
    assert.deepEqual(live, [], 'no certificate was stored');
    assert.deepEqual(await readdir(join(dry.dir, 'accounts')).catch(() => []), [], 'no account was stored');
    await assert.rejects(stat(marker));
  });
});

describe('padlock issue keys and verification', () => {
  it('keeps the private key across issuances with --reuse-key, and makes a new one without it', async () => {
    const name = uniqueName('reuse');
    const keyOf = () => readFile(join(cfg.dir, 'live', name, 'privkey.pem'), 'utf8');
    assert.equal((await runCli(['issue', '-d', name, '--reuse-key', ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    const k1 = await keyOf();
    assert.equal((await runCli(['issue', '-d', name, '--reuse-key', '--force-renewal', ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    assert.equal(await keyOf(), k1, 'same key with --reuse-key');
    assert.equal((await runCli(['issue', '-d', name, '--force-renewal', ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    assert.notEqual(await keyOf(), k1, 'a new key by default');
  });

  it('refuses to store a chain that does not build to a trusted root, and keeps the current certificate', async () => {
    const name = uniqueName('untrusted');
    assert.equal((await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir])).code, 0);
    const before = await readFile(join(cfg.dir, 'live', name, 'fullchain.pem'), 'utf8');
    // Trust some other root instead of Pebble's: the new chain must fail verification.
    const flags = pebbleFlags(pebble).map((f) => (f === pebble.rootsFile ? pebble.serverCaFile : f));
    const r = await runCli(['issue', '-d', name, '--force-renewal', ...flags, '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ {2}verifying/m);
    assert.match(r.stderr, /\[CHAIN_UNTRUSTED\]/);
    assert.doesNotMatch(r.stderr, /^ {2}saved/m);
    assert.equal(await readFile(join(cfg.dir, 'live', name, 'fullchain.pem'), 'utf8'), before, 'live/ is unchanged');
  });
});

describe('padlock issue --webroot', () => {
  it('answers the challenge through an existing web server and removes the token files afterwards', async () => {
    const webroot = await mkdtemp(join(tmpdir(), 'padlock-www-'));
    after(() => rm(webroot, { recursive: true, force: true }));
    const seen: string[] = [];
    // A plain static file server standing in for the user's nginx on the port Pebble validates.
    const server = http.createServer(async (req, res) => {
      seen.push(req.url ?? '');
      const path = join(webroot, decodeURIComponent((req.url ?? '/').split('?')[0]!));
      try {
        const body = await readFile(path);
        res.writeHead(200, { 'content-type': extname(path) ? 'text/plain' : 'application/octet-stream' }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(pebble.httpPort, '127.0.0.1', r));
    after(() => new Promise((r) => server.close(r)));
    const name = uniqueName('webroot');
    const r = await runCli(['issue', '-d', name, '--webroot', '-w', webroot, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(seen.some((u) => u.startsWith('/.well-known/acme-challenge/')), 'the CA fetched the token from the web server');
    assert.deepEqual(await readdir(webroot), [], 'token files and the folders padlock made are gone');
    assert.ok((await lstat(join(cfg.dir, 'live', name))).isSymbolicLink() || (await stat(join(cfg.dir, 'live', name))).isDirectory());
    const meta = JSON.parse(await readFile(join(cfg.dir, 'renewal', `${name}.json`), 'utf8'));
    assert.deepEqual(meta.challenge, { type: 'webroot', webroot }, 'renewals will use the webroot too');
  });
});
