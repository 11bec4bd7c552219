/**
 * `padlock import` of Traefik's acme.json and certbot's /etc/letsencrypt,
 * with certificates from a real Pebble laid out the way those tools write
 * them, then read back with `padlock certificates`.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdir, readFile, readdir, symlink, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPebble, type Pebble } from '../support/pebble.js';
import { runCli, repoRoot, type CliResult } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';
import { TestPki, DAY } from '../support/certs.js';

/** Runs the real CLI (bin/padlock); imports of many certificates can take a while. */
function padlock(args: string[]): Promise<CliResult> {
  return runCli(args, { timeoutMs: 90_000 });
}

interface Issued { name: string; domains: string[]; cert: string; chain: string; fullchain: string; privkey: string }

let pebble: Pebble;
let source: { dir: string; cleanup: () => Promise<void> };
let work: string;
let pki: TestPki;
const issued: Issued[] = [];
let expired: { cert: string; key: string; root: string };
let privateCa: { cert: string; chain: string; key: string; rootFile: string; name: string };

async function issue(domains: string[], extra: string[] = []): Promise<Issued> {
  const r = await runCli(['issue', ...domains.flatMap((d) => ['-d', d]), ...extra, ...pebbleFlags(pebble), '--config-dir', source.dir], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  const live = join(source.dir, 'live', domains[0]!);
  const [cert, chain, fullchain, privkey] = await Promise.all(['cert', 'chain', 'fullchain', 'privkey'].map((f) => readFile(join(live, `${f}.pem`), 'utf8')));
  return { name: domains[0]!, domains, cert: cert!, chain: chain!, fullchain: fullchain!, privkey: privkey! };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

before(async () => {
  pebble = await startPebble();
  source = await tempConfigDir('padlock-import-src-');
  work = await mkdtemp(join(tmpdir(), 'padlock-import-'));
  const a = uniqueName('traefik');
  issued.push(await issue([a, `www.${a}`]));
  issued.push(await issue([uniqueName('traefik-rsa')], ['--key-type', 'rsa']));
  issued.push(await issue([uniqueName('certbot-web'), `www2.${uniqueName('certbot-web')}`]));
  issued.push(await issue([uniqueName('certbot-standalone')]));
  pki = await TestPki.create();
  const now = Date.now();
  const root = await pki.issue({ cn: 'Import Test Root', kind: 'ca', notBefore: new Date(now - 400 * DAY), notAfter: new Date(now + 400 * DAY) });
  const old = await pki.issue({ cn: 'old.example.com', kind: 'leaf', names: ['old.example.com'], issuer: root, notBefore: new Date(now - 100 * DAY), notAfter: new Date(now - 10 * DAY) });
  expired = { cert: old.cert, key: old.key, root: root.cert };
  const inter = await pki.issue({ cn: 'Private Intermediate', kind: 'ca', issuer: root, notBefore: new Date(now - 300 * DAY), notAfter: new Date(now + 300 * DAY) });
  const priv = await pki.issue({ cn: 'intranet.example.com', kind: 'leaf', names: ['intranet.example.com'], issuer: inter, notBefore: new Date(now - DAY), notAfter: new Date(now + 60 * DAY) });
  privateCa = { cert: priv.cert, chain: inter.cert, key: priv.key, rootFile: root.certFile, name: 'intranet.example.com' };
});

after(async () => {
  await pebble?.stop();
  await source?.cleanup();
  await pki?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

/** Traefik v2/v3 acme.json with an RSA account key (PKCS#1 DER, as Traefik stores it). */
async function writeAcmeJson(file: string, certificates: Array<{ main: string; sans: string[]; fullchain: string; key: string }>): Promise<string> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const accountUri = `${new URL(pebble.directoryUrl).origin}/my-account/4242`;
  const doc = {
    le: {
      Account: {
        Email: 'traefik@example.com',
        Registration: { body: { status: 'valid', contact: ['mailto:traefik@example.com'] }, uri: accountUri },
        PrivateKey: b64(privateKey.export({ type: 'pkcs1', format: 'der' })),
        KeyType: '4096',
      },
      Certificates: certificates.map((c) => ({ domain: { main: c.main, sans: c.sans }, certificate: b64(c.fullchain), key: b64(c.key), Store: 'default' })),
    },
  };
  await writeFile(file, JSON.stringify(doc, null, 2), { mode: 0o600 });
  return accountUri;
}

/** A certbot tree: archive/NAME/{cert,chain,fullchain,privkey}1.pem, live/NAME/*.pem relative symlinks, renewal/NAME.conf. */
async function certbotLineage(root: string, name: string, pems: { cert: string; chain: string; key: string }, conf: string): Promise<void> {
  const archive = join(root, 'archive', name);
  const live = join(root, 'live', name);
  await mkdir(archive, { recursive: true });
  await mkdir(live, { recursive: true });
  await mkdir(join(root, 'renewal'), { recursive: true });
  const files = { cert: pems.cert, chain: pems.chain, fullchain: pems.cert + pems.chain, privkey: pems.key };
  for (const [f, text] of Object.entries(files)) {
    await writeFile(join(archive, `${f}1.pem`), text, { mode: f === 'privkey' ? 0o600 : 0o644 });
    await symlink(`../../archive/${name}/${f}1.pem`, join(live, `${f}.pem`));
  }
  await writeFile(join(root, 'renewal', `${name}.conf`), conf);
}

function certbotConf(name: string, params: string): string {
  return [
    '# renew_before_expiry = 30 days',
    'version = 2.9.0',
    `archive_dir = /etc/letsencrypt/archive/${name}`,
    `cert = /etc/letsencrypt/live/${name}/cert.pem`,
    `privkey = /etc/letsencrypt/live/${name}/privkey.pem`,
    `chain = /etc/letsencrypt/live/${name}/chain.pem`,
    `fullchain = /etc/letsencrypt/live/${name}/fullchain.pem`,
    '',
    '# Options used in the renewal process',
    '[renewalparams]',
    'account = 0123456789abcdef0123456789abcdef',
    `server = ${pebble.directoryUrl}`,
    params,
    '',
  ].join('\n');
}

async function certificates(dir: string): Promise<Array<{ name: string; domains: string[]; notAfter: string; status: string; keyType: string; server: string }>> {
  const r = await padlock(['certificates', '--json', '--config-dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).certificates;
}

const notAfterOf = (pem: string) => new Date(new X509Certificate(pem).validTo).toISOString();

describe('padlock import traefik', () => {
  it('imports valid certificates and the account, skips a mismatched key and an expired certificate with reasons', async () => {
    const [a, rsa] = issued;
    const file = join(work, 'acme.json');
    const accountUri = await writeAcmeJson(file, [
      { main: a!.name, sans: [`www.${a!.name}`], fullchain: a!.fullchain, key: a!.privkey },
      { main: rsa!.name, sans: [], fullchain: rsa!.fullchain, key: rsa!.privkey },
      { main: 'mismatch.example.com', sans: [], fullchain: a!.fullchain, key: rsa!.privkey },
      { main: 'old.example.com', sans: [], fullchain: expired.cert + expired.root, key: expired.key },
    ]);
    const cfg = await tempConfigDir();
    try {
      const r = await padlock(['import', 'traefik', file, '--resolver', 'le', '--server', pebble.directoryUrl, '--server-ca', pebble.serverCaFile,
        '--trusted-roots', pebble.rootsFile, '--http-01-port', '8088', '--config-dir', cfg.dir, '--json']);
      assert.equal(r.code, 1, `two certificates are skipped, so exit 1\n${r.stderr}`);
      const report = JSON.parse(r.stdout);
      const by = (n: string) => report.results.find((x: { name: string }) => x.name === n);
      assert.equal(by(a!.name).action, 'imported');
      assert.equal(by(rsa!.name).action, 'imported');
      assert.equal(by('mismatch.example.com').action, 'skipped');
      assert.equal(by('mismatch.example.com').code, 'CERT_KEY_MISMATCH');
      assert.match(by('mismatch.example.com').reason, /private key does not match/);
      assert.equal(by('old.example.com').action, 'skipped');
      assert.equal(by('old.example.com').code, 'CERT_EXPIRED');
      assert.match(by('old.example.com').reason, /expired on \d{4}-\d\d-\d\dT/);
      assert.deepEqual(report.summary, { imported: 2, unchanged: 0, skipped: 2, total: 4 });
      assert.equal(report.account.action, 'imported');
      assert.equal(report.account.accountUrl, accountUri);

      const list = await certificates(cfg.dir);
      assert.deepEqual(list.map((c) => c.name).sort(), [a!.name, rsa!.name].sort());
      const rowA = list.find((c) => c.name === a!.name)!;
      assert.deepEqual(rowA.domains.sort(), [a!.name, `www.${a!.name}`].sort());
      assert.equal(rowA.notAfter, notAfterOf(a!.cert));
      assert.equal(rowA.status, 'VALID');
      assert.equal(list.find((c) => c.name === rsa!.name)!.keyType, 'rsa 2048');
      assert.equal(await readFile(join(cfg.dir, 'live', a!.name, 'fullchain.pem'), 'utf8'), a!.fullchain, 'fullchain.pem is the source chain');
      assert.equal(await readFile(join(cfg.dir, 'live', a!.name, 'chain.pem'), 'utf8'), a!.chain);

      const meta = JSON.parse(await readFile(join(cfg.dir, 'renewal', `${a!.name}.json`), 'utf8'));
      assert.equal(meta.server, pebble.directoryUrl);
      assert.deepEqual(meta.challenge, { type: 'standalone', port: 8088 });
      assert.equal(meta.email, 'traefik@example.com', "the account's email");
      assert.equal(meta.keyType, 'ecdsa');
      assert.equal(meta.updatedAt, new Date(new X509Certificate(a!.cert).validFrom).toISOString(), 'obtained at the certificate notBefore, not now');
      const accounts = await readdir(join(cfg.dir, 'accounts'));
      assert.equal(accounts.length, 1);
      const account = JSON.parse(await readFile(join(cfg.dir, 'accounts', accounts[0]!, 'account.json'), 'utf8'));
      assert.equal(account.accountUrl, accountUri);
      assert.equal(account.directoryUrl, pebble.directoryUrl);
      assert.match(account.keyPem, /BEGIN PRIVATE KEY/);

      const again = await padlock(['import', 'traefik', file, '--server', pebble.directoryUrl, '--trusted-roots', pebble.rootsFile, '--config-dir', cfg.dir]);
      assert.match(again.stdout, /unchanged\s+\S+ .*already in the store/);
      assert.match(again.stdout, /account\s+kept-existing/);
      assert.match(again.stdout, /^Imported 0 of 4 certificates into .* \(2 already there, 2 skipped\)\.$/m);
    } finally {
      await cfg.cleanup();
    }
  });

  it('--per-name stores one lineage per name, as padlock run serves them', async () => {
    const [a] = issued;
    const file = join(work, 'acme-per-name.json');
    await writeAcmeJson(file, [{ main: a!.name, sans: [`www.${a!.name}`], fullchain: a!.fullchain, key: a!.privkey }]);
    const cfg = await tempConfigDir();
    try {
      const r = await padlock(['import', 'traefik', file, '--per-name', '--no-account', '--server', pebble.directoryUrl, '--trusted-roots', pebble.rootsFile, '--config-dir', cfg.dir]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const list = await certificates(cfg.dir);
      assert.deepEqual(list.map((c) => c.name).sort(), [a!.name, `www.${a!.name}`].sort());
      const meta = JSON.parse(await readFile(join(cfg.dir, 'renewal', `www.${a!.name}.json`), 'utf8'));
      assert.deepEqual(meta.domains, [`www.${a!.name}`]);
      assert.equal((await readdir(join(cfg.dir, 'accounts'))).length, 0, '--no-account');
    } finally {
      await cfg.cleanup();
    }
  });

  it('--dry-run checks everything and stores nothing', async () => {
    const [a] = issued;
    const file = join(work, 'acme-dry.json');
    await writeAcmeJson(file, [{ main: a!.name, sans: [`www.${a!.name}`], fullchain: a!.fullchain, key: a!.privkey }]);
    const cfg = await tempConfigDir();
    try {
      const r = await padlock(['import', 'traefik', file, '--dry-run', '--server', pebble.directoryUrl, '--trusted-roots', pebble.rootsFile, '--config-dir', cfg.dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /would import\s+/);
      assert.match(r.stdout, /Would import 1 of 1 certificate into .*; dry run: nothing was stored\.$/m);
      assert.deepEqual(await certificates(cfg.dir), []);
      assert.deepEqual(await readdir(join(cfg.dir, 'accounts')), []);
      assert.deepEqual(await readdir(join(cfg.dir, 'archive')), []);
    } finally {
      await cfg.cleanup();
    }
  });
});

describe('padlock import certbot', () => {
  it('imports lineages through live/ symlinks with their challenge settings, and refuses expired and untrusted ones', async () => {
    const web = issued[2]!;
    const standalone = issued[3]!;
    const le = join(work, 'letsencrypt');
    await certbotLineage(le, web.name, { cert: web.cert, chain: web.chain, key: web.privkey }, certbotConf(web.name, [
      'authenticator = webroot',
      'webroot_path = /var/www/site,',
      'key_type = ecdsa',
      'renew_hook = systemctl reload nginx',
      '[[webroot_map]]',
      `${web.domains[0]} = /var/www/site`,
      `${web.domains[1]} = /var/www/site`,
    ].join('\n')));
    await certbotLineage(le, standalone.name, { cert: standalone.cert, chain: standalone.chain, key: standalone.privkey }, certbotConf(standalone.name, [
      'authenticator = standalone',
      'http01_port = 8081',
      'reuse_key = True',
    ].join('\n')));
    await certbotLineage(le, 'old.example.com', { cert: expired.cert, chain: expired.root, key: expired.key }, certbotConf('old.example.com', 'authenticator = standalone'));
    await certbotLineage(le, privateCa.name, { cert: privateCa.cert, chain: privateCa.chain, key: privateCa.key }, certbotConf(privateCa.name, 'authenticator = nginx'));

    const cfg = await tempConfigDir();
    try {
      const r = await padlock(['import', 'certbot', le, '--trusted-roots', pebble.rootsFile, '--config-dir', cfg.dir, '--json']);
      assert.equal(r.code, 1, r.stderr);
      const report = JSON.parse(r.stdout);
      const by = (n: string) => report.results.find((x: { name: string }) => x.name === n);
      assert.equal(by(web.name).action, 'imported');
      assert.equal(by(standalone.name).action, 'imported');
      assert.equal(by('old.example.com').code, 'CERT_EXPIRED');
      assert.equal(by(privateCa.name).code, 'CHAIN_UNTRUSTED');
      assert.match(by(privateCa.name).reason, /--allow-untrusted/);

      const list = await certificates(cfg.dir);
      assert.deepEqual(list.map((c) => c.name).sort(), [web.name, standalone.name].sort());
      assert.equal(list.find((c) => c.name === web.name)!.notAfter, notAfterOf(web.cert));
      assert.equal(await readFile(join(cfg.dir, 'live', web.name, 'fullchain.pem'), 'utf8'), await readFile(join(le, 'live', web.name, 'fullchain.pem'), 'utf8'));

      const webMeta = JSON.parse(await readFile(join(cfg.dir, 'renewal', `${web.name}.json`), 'utf8'));
      assert.deepEqual(webMeta.challenge, { type: 'webroot', webroot: '/var/www/site' });
      assert.equal(webMeta.deployHook, 'systemctl reload nginx');
      assert.equal(webMeta.server, pebble.directoryUrl);
      assert.deepEqual(webMeta.domains, web.domains);
      const saMeta = JSON.parse(await readFile(join(cfg.dir, 'renewal', `${standalone.name}.json`), 'utf8'));
      assert.deepEqual(saMeta.challenge, { type: 'standalone', port: 8081 });
      assert.equal(saMeta.reuseKey, true);

      // The untrusted one goes in with --allow-untrusted (and a warning), or when its root is trusted.
      const forced = await padlock(['import', 'certbot', le, '--cert-name', privateCa.name, '--allow-untrusted', '--config-dir', cfg.dir]);
      assert.equal(forced.code, 0, forced.stderr + forced.stdout);
      assert.match(forced.stdout, /warning\s+intranet\.example\.com: imported although its chain is not trusted here/);
      assert.match(forced.stdout, /warning\s+intranet\.example\.com: certbot renewed this with the "nginx" authenticator/);
      assert.ok((await certificates(cfg.dir)).some((c) => c.name === privateCa.name));
    } finally {
      await cfg.cleanup();
    }
  });

  it('--dry-run stores nothing', async () => {
    const cfg = await tempConfigDir();
    try {
      const r = await padlock(['import', 'certbot', join(work, 'letsencrypt'), '--cert-name', issued[3]!.name, '--dry-run', '--trusted-roots', pebble.rootsFile, '--config-dir', cfg.dir, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.dryRun, true);
      assert.equal(report.results[0].action, 'would-import');
      assert.deepEqual(await certificates(cfg.dir), []);
    } finally {
      await cfg.cleanup();
    }
  });
});
