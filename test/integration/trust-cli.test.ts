/**
 * `padlock trust` as a user runs it: which names the local root can sign,
 * where the suffixes come from, and what it says when it replaces a root an
 * older padlock made without name constraints.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { runCli } from '../support/cli.js';
import { tempConfigDir } from '../support/padlock.js';
import { TestPki, DAY } from '../support/certs.js';
import { openFsStore } from '../../src/store/fs-store.js';
import { LOCAL_ROOT_LINEAGE, LOCAL_ROOT_SERVER } from '../../src/tls/local-ca.js';

let cfg: { dir: string; cleanup: () => Promise<void> };
let pki: TestPki;
// The machine's own PADLOCK_* settings must not leak into what the tests expect.
const env = { PADLOCK_LOCAL_SUFFIXES: undefined, PADLOCK_CONFIG: undefined };

before(async () => {
  cfg = await tempConfigDir();
  pki = await TestPki.create();
});
after(async () => {
  await cfg?.cleanup();
  await pki?.cleanup();
});

describe('padlock trust', () => {
  const cases = [
    { desc: 'the default local suffixes', args: [] as string[], extraEnv: {}, line: 'localhost, internal, home.arpa and names under them; no IP addresses' },
    { desc: '--local-suffixes', args: ['--local-suffixes', 'lan,*.corp.'], extraEnv: {}, line: 'localhost, lan, corp and names under them; no IP addresses' },
    { desc: 'PADLOCK_LOCAL_SUFFIXES', args: [], extraEnv: { PADLOCK_LOCAL_SUFFIXES: 'lan' }, line: 'localhost, lan and names under them; no IP addresses' },
    { desc: "padlock run's config file", args: ['--config', 'FILE'], extraEnv: {}, line: 'localhost, box and names under them; no IP addresses' },
  ];
  for (const [i, c] of cases.entries()) {
    it(`says which names the root can sign, from ${c.desc}`, async () => {
      const file = join(cfg.dir, `padlock-${i}.yaml`);
      await writeFile(file, 'localSuffixes: [box]\n');
      const store = join(cfg.dir, `store-${i}`);
      const r = await runCli(['trust', '--config-dir', store, ...c.args.map((a) => (a === 'FILE' ? file : a))], { env: { ...env, ...c.extraEnv } });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^  can sign:    ${c.line.replace(/[.*]/g, '\\$&')}$`, 'm'));
      const json = await runCli(['trust', '--json', '--config-dir', store, ...c.args.map((a) => (a === 'FILE' ? file : a))], { env: { ...env, ...c.extraEnv } });
      const doc = JSON.parse(json.stdout) as { permittedNames: string[]; replaced: boolean };
      assert.equal(doc.permittedNames.join(', ') + ' and names under them; no IP addresses', c.line);
      assert.equal(doc.replaced, false, 'the second run keeps the root the first made');
    });
  }

  it('replaces a root an older padlock made without name constraints, and tells the user to install the new one', async () => {
    const now = Date.now();
    const old = await pki.issue({ cn: 'padlock local CA 0ld000', kind: 'ca', pathLen: 0, notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) });
    const dir = join(cfg.dir, 'store-old');
    const store = await openFsStore(dir);
    await store.putVersion(LOCAL_ROOT_LINEAGE, { cert: old.cert, chain: '', fullchain: old.cert, privkey: old.key }, {
      name: LOCAL_ROOT_LINEAGE, domains: [], server: LOCAL_ROOT_SERVER, keyType: 'ecdsa', ellipticCurve: 'P-256', challenge: { type: 'standalone', port: 0 }, updatedAt: new Date(now).toISOString(),
    });
    const r = await runCli(['trust', '--pem', '--config-dir', dir], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /replaced the local CA root: the old one had no name constraints, so it could sign any name/);
    assert.match(r.stderr, /install the new root, and remove the old one from your trust stores/);
    assert.notEqual(new X509Certificate(r.stdout).fingerprint256, new X509Certificate(old.cert).fingerprint256, 'the PEM printed is the new root');
    const again = await runCli(['trust', '--pem', '--config-dir', dir], { env });
    assert.equal(again.stderr, '', 'a second run keeps the new root and says nothing');
    assert.equal(again.stdout, r.stdout);
  });
});
