/**
 * The local CA's root can sign only local names: what `openssl verify` and a
 * Node TLS client decide about leaves signed with its key, and how a root
 * made before name constraints is replaced.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { MemoryStore } from '../../src/store/memory-store.js';
import {
  ensureLocalRoot,
  issueLocalCertificate,
  issuedByRoot,
  localRootNames,
  rootPermittedNames,
  LOCAL_ROOT_LINEAGE,
  LOCAL_ROOT_SERVER,
  type LocalRoot,
} from '../../src/tls/local-ca.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import { PadlockError } from '../../src/errors.js';
import { TestPki, DAY, type TestCert } from '../support/certs.js';

const DEFAULTS = ['localhost', 'internal', 'home.arpa'];

let pki: TestPki;
before(async () => {
  pki = await TestPki.create();
});
after(async () => {
  await pki?.cleanup();
});

function openssl(args: string[]): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 20_000, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') return reject(new Error('the openssl program is missing: apt-get install openssl'));
      resolve({ ok: err === null, out: stdout + stderr });
    });
  });
}

/** The root as a TestPki issuer, so `openssl ca` can sign whatever a test asks with the root's key. */
async function asIssuer(root: LocalRoot, slug: string): Promise<TestCert> {
  return { cn: slug, cert: root.certPem, key: root.keyPem, certFile: await pki.file(`${slug}-root.pem`, root.certPem), keyFile: await pki.file(`${slug}-root.key`, root.keyPem) };
}

function leafSpec(issuer: TestCert, names: string[]) {
  const now = Date.now();
  return { cn: names[0]!, issuer, kind: 'leaf' as const, names, notBefore: new Date(now - DAY), notAfter: new Date(now + 7 * DAY) };
}

/** `openssl verify` as a TLS server certificate, trusting only `rootPem`. */
async function opensslVerify(leafPem: string, rootPem: string): Promise<{ ok: boolean; out: string }> {
  const rootFile = await pki.file(`anchor-${Math.random().toString(36).slice(2)}.pem`, rootPem);
  const leafFile = await pki.file(`leaf-${Math.random().toString(36).slice(2)}.pem`, leafPem);
  return openssl(['verify', '-purpose', 'sslserver', '-CAfile', rootFile, '-no-CApath', '-no-CAstore', leafFile]);
}

/** A TLS handshake on 127.0.0.1 (no name is resolved) with `servername`, trusting only `rootPem`. */
async function handshake(leaf: { cert: string; key: string }, rootPem: string, servername: string): Promise<{ authorized: boolean; error?: string }> {
  const server = tls.createServer({ cert: leaf.cert, key: leaf.key }, (s) => s.end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: [rootPem] });
      socket.once('secureConnect', () => {
        resolve({ authorized: socket.authorized });
        socket.destroy();
      });
      // Node has no code of its own for these OpenSSL errors (it says UNSPECIFIED); the message is OpenSSL's text.
      socket.once('error', (err) => resolve({ authorized: false, error: err.message }));
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('local CA root name constraints', () => {
  const rootCases = [
    { desc: 'the default suffixes', suffixes: DEFAULTS, permitted: ['localhost', 'internal', 'home.arpa'] },
    { desc: 'suffixes written as wildcards, with dots and capitals, repeated or empty', suffixes: ['*.Internal.', '.home.arpa', 'lan', 'LOCALHOST', 'lan.', ''], permitted: ['localhost', 'internal', 'home.arpa', 'lan'] },
  ];
  for (const c of rootCases) {
    it(`makes a root with a critical NameConstraints permitting localhost and ${c.desc}, and excluding every IP address`, async () => {
      const root = await ensureLocalRoot(new MemoryStore(), systemClock, c.suffixes);
      assert.deepEqual(root.permittedNames, c.permitted);
      const text = (await openssl(['x509', '-noout', '-text', '-in', await pki.file(`text-${c.permitted.length}.pem`, root.certPem)])).out;
      const block = /X509v3 Name Constraints: critical\n\s*Permitted:\n((?:\s+DNS:.*\n)+)\s*Excluded:\n((?:\s+IP:.*\n)+)/.exec(text);
      assert.ok(block, `openssl shows a critical Name Constraints extension with permitted DNS and excluded IP subtrees:\n${text}`);
      assert.deepEqual(block[1]!.trim().split(/\s+/), c.permitted.map((n) => `DNS:${n}`));
      assert.deepEqual(block[2]!.trim().split(/\s+/), ['IP:0.0.0.0/0.0.0.0', 'IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0']);
    });
  }

  it('rejects a local suffix that is not a DNS name', () => {
    assert.throws(() => localRootNames(['my lan']), (e: unknown) => e instanceof PadlockError && e.code === 'CONFIG_INVALID' && /"my lan"/.test(e.message));
  });

  describe('leaves signed with the root key', () => {
    let root: LocalRoot;
    let issuer: TestCert;
    before(async () => {
      root = await ensureLocalRoot(new MemoryStore(), systemClock, DEFAULTS);
      issuer = await asIssuer(root, 'constrained');
    });

    it('verifies a local name with openssl verify -purpose sslserver, and a TLS client trusting only the root accepts it', async () => {
      const key = await generatePrivateKey({ keyType: 'ecdsa' });
      const leaf = await issueLocalCertificate(root, ['app.localhost', 'db.corp.internal'], key, systemClock);
      const v = await opensslVerify(leaf.cert, root.certPem);
      assert.ok(v.ok, v.out);
      assert.match(v.out, /: OK$/m);
      assert.deepEqual(await handshake({ cert: leaf.cert, key }, root.certPem, 'app.localhost'), { authorized: true });
    });

    const outsideCases = [
      { desc: 'a public name (bank.com)', names: ['bank.com'], servername: 'bank.com', reason: /permitted subtree violation/ },
      { desc: 'a name that merely ends in the same letters (notlocalhost)', names: ['notlocalhost'], servername: 'notlocalhost', reason: /permitted subtree violation/ },
      { desc: 'a local name with an IP address SAN', names: ['app.localhost', '127.0.0.1'], servername: 'app.localhost', reason: /excluded subtree violation/ },
    ];
    for (const c of outsideCases) {
      it(`is rejected by openssl verify and by a TLS client for ${c.desc}`, async () => {
        const leaf = await pki.issue(leafSpec(issuer, c.names));
        const v = await opensslVerify(leaf.cert, root.certPem);
        assert.equal(v.ok, false, v.out);
        assert.match(v.out, c.reason);
        const hs = await handshake(leaf, root.certPem, c.servername);
        assert.equal(hs.authorized, false);
        assert.match(hs.error ?? '', c.reason);
      });
    }

    it('refuses to issue a name outside the root, naming the fix', async () => {
      const key = await generatePrivateKey({ keyType: 'ecdsa' });
      await assert.rejects(issueLocalCertificate(root, ['app.localhost', 'bank.com'], key, systemClock), (e: unknown) =>
        e instanceof PadlockError && e.code === 'NAME_INVALID' && /not bank\.com/.test(e.message) && /localSuffixes/.test(e.message));
    });
  });

  it('replaces an unconstrained root made by an older padlock, says to run padlock trust again, and keeps the new root afterwards', async () => {
    const now = Date.now();
    const old = await pki.issue({ cn: 'padlock local CA 0ld000', kind: 'ca', pathLen: 0, notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) });
    const store = new MemoryStore();
    const meta = { name: LOCAL_ROOT_LINEAGE, domains: [], server: LOCAL_ROOT_SERVER, keyType: 'ecdsa' as const, ellipticCurve: 'P-256', challenge: { type: 'standalone' as const, port: 0 }, updatedAt: new Date(now).toISOString() };
    await store.putVersion(LOCAL_ROOT_LINEAGE, { cert: old.cert, chain: '', fullchain: old.cert, privkey: old.key }, meta);
    const oldRoot = { certPem: old.cert, keyPem: old.key };
    assert.equal(rootPermittedNames(old.cert), null, 'the old root has no name constraints');
    const oldLeafKey = await generatePrivateKey({ keyType: 'ecdsa' });
    const oldLeaf = await issueLocalCertificate(oldRoot, ['app.localhost'], oldLeafKey, systemClock);

    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const fresh = await ensureLocalRoot(store, systemClock, DEFAULTS, { logger });
    assert.equal(fresh.replaced, true);
    assert.notEqual(fresh.certPem, old.cert);
    assert.deepEqual(rootPermittedNames(fresh.certPem), ['localhost', 'internal', 'home.arpa']);
    assert.equal((await store.readLineage(LOCAL_ROOT_LINEAGE))?.version, 2, 'the new root is a new version of the lineage');
    assert.equal(lines.length, 1, lines.join('\n'));
    const line = JSON.parse(lines[0]!) as { level: string; msg: string };
    assert.equal(line.level, 'warn');
    assert.match(line.msg, /had no name constraints/);
    assert.match(line.msg, /Run `padlock trust` again/);
    assert.doesNotMatch(lines[0]!, /PRIVATE KEY/);

    assert.equal(issuedByRoot(oldLeaf.cert, old.cert), true, 'the old leaf came from the old root');
    assert.equal(issuedByRoot(oldLeaf.cert, fresh.certPem), false, 'the old leaf is not from the new root: reissue it');
    const newLeaf = await issueLocalCertificate(fresh, ['app.localhost'], oldLeafKey, systemClock);
    assert.equal(issuedByRoot(newLeaf.cert, fresh.certPem), true);
    assert.equal(issuedByRoot('not a certificate', fresh.certPem), false);

    const again = await ensureLocalRoot(store, systemClock, DEFAULTS, { logger });
    assert.equal(again.certPem, fresh.certPem);
    assert.equal(again.replaced, false);
    assert.equal((await store.readLineage(LOCAL_ROOT_LINEAGE))?.version, 2);
    assert.equal(lines.length, 1, 'nothing more is logged');
  });

  const coverCases = [
    { desc: 'keeps a root made for more suffixes than are wanted now', first: ['internal', 'home.arpa', 'lan'], then: ['internal'], replaced: false, permitted: ['localhost', 'internal', 'home.arpa', 'lan'] },
    { desc: 'keeps a root whose suffix already covers a wanted deeper suffix', first: ['internal'], then: ['corp.internal'], replaced: false, permitted: ['localhost', 'internal'] },
    { desc: 'replaces a root missing a wanted suffix, keeping the names it had', first: ['internal'], then: ['lan'], replaced: true, permitted: ['localhost', 'internal', 'lan'] },
  ];
  for (const c of coverCases) {
    it(c.desc, async () => {
      const store = new MemoryStore();
      const first = await ensureLocalRoot(store, systemClock, c.first);
      const second = await ensureLocalRoot(store, systemClock, c.then);
      assert.equal(second.replaced, c.replaced);
      assert.equal(second.certPem === first.certPem, !c.replaced);
      assert.deepEqual(rootPermittedNames(second.certPem), c.permitted);
      if (c.replaced) assert.match(second.notice ?? '', /did not cover lan/);
    });
  }
});
