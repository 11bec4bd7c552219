/**
 * Reading the sources `padlock import` understands: Traefik's acme.json and
 * certbot's renewal conf. Pure parsing, in tables.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { accountKeyToPem, parseTraefikAcmeJson, serverForAccountUrl, traefikCandidates } from '../../src/import/traefik.js';
import { certbotRenewalMeta, parseCertbotConf } from '../../src/import/certbot.js';
import { lineageNameFor } from '../../src/import/candidate.js';
import { PadlockError } from '../../src/errors.js';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n';

describe('parseTraefikAcmeJson', () => {
  it('reads v2/v3 resolvers with their certificates and account', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const doc = {
      le: {
        Account: { Email: 'a@example.com', Registration: { body: {}, uri: 'https://acme-v02.api.letsencrypt.org/acme/acct/1' }, PrivateKey: b64(privateKey.export({ type: 'pkcs1', format: 'der' })), KeyType: '4096' },
        Certificates: [{ domain: { main: 'example.com', sans: ['www.example.com'] }, certificate: b64(PEM), key: b64(KEY), Store: 'default' }],
      },
      staging: { Account: null, Certificates: null },
    };
    const rs = parseTraefikAcmeJson(JSON.stringify(doc));
    assert.deepEqual(rs.map((r) => r.name), ['le', 'staging']);
    assert.equal(rs[0]!.account?.email, 'a@example.com');
    assert.match(rs[0]!.account!.keyPem!, /BEGIN PRIVATE KEY/);
    assert.deepEqual(rs[0]!.certificates.map((c) => [c.main, c.sans, c.store]), [['example.com', ['www.example.com'], 'default']]);
    assert.deepEqual(rs[1]!.certificates, []);
    const [cand] = traefikCandidates(rs, 'acme.json');
    assert.equal(cand!.name, 'example.com');
    assert.deepEqual(cand!.domains, ['example.com', 'www.example.com']);
    assert.equal(cand!.fullchainPem, PEM);
    assert.equal(cand!.keyPem, KEY);
    assert.equal(cand!.problem, undefined);
  });

  it('reads the v1 shape (capitalised fields, no resolver level)', () => {
    const doc = { Account: { Email: 'x@example.com' }, Certificates: [{ Domain: { Main: 'old.example.com', SANs: null }, Certificate: b64(PEM), Key: b64(KEY) }] };
    const rs = parseTraefikAcmeJson(JSON.stringify(doc));
    assert.equal(rs.length, 1);
    assert.equal(rs[0]!.name, 'default');
    assert.equal(rs[0]!.certificates[0]!.main, 'old.example.com');
  });

  it('turns undecodable entries into candidates with a problem, not an exception', () => {
    const rs = parseTraefikAcmeJson(JSON.stringify({ r: { Certificates: [{ domain: { main: 'bad.example.com' }, certificate: 'bm90IHBlbQ==', key: b64(KEY) }, { domain: {}, certificate: b64(PEM), key: b64(KEY) }] } }));
    const cands = traefikCandidates(rs, 'acme.json');
    assert.match(cands[0]!.problem!.message, /certificate is not base64-encoded PEM/);
    assert.match(cands[1]!.problem!.message, /no domain.main/);
  });

  for (const [label, text, pattern] of [
    ['not JSON', '{', /is not JSON/],
    ['an array', '[]', /does not hold a JSON object/],
    ['no resolver', '{"a": 1}', /no certificate resolver/],
  ] as const) {
    it(`rejects ${label}`, () => {
      assert.throws(() => parseTraefikAcmeJson(text), (e: unknown) => e instanceof PadlockError && e.code === 'CONFIG_INVALID' && pattern.test(e.message));
    });
  }
});

describe('account keys and CAs', () => {
  it('reads PKCS#1, PKCS#8 and SEC1 DER keys as PKCS#8 PEM', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    for (const der of [rsa.export({ type: 'pkcs1', format: 'der' }), rsa.export({ type: 'pkcs8', format: 'der' }), ec.export({ type: 'sec1', format: 'der' })]) {
      const pem = accountKeyToPem(der.toString('base64'));
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
      assert.ok(createPrivateKey(pem));
    }
    assert.throws(() => accountKeyToPem(b64('junk')), /not a DER private key/);
  });

  it("knows Let's Encrypt's account URLs", () => {
    assert.equal(serverForAccountUrl('https://acme-v02.api.letsencrypt.org/acme/acct/1'), 'https://acme-v02.api.letsencrypt.org/directory');
    assert.equal(serverForAccountUrl('https://acme-staging-v02.api.letsencrypt.org/acme/acct/1'), 'https://acme-staging-v02.api.letsencrypt.org/directory');
    assert.equal(serverForAccountUrl('https://ca.internal/acct/1'), undefined);
    assert.equal(serverForAccountUrl(undefined), undefined);
  });

  it('names lineages after the first name, wildcards spelled out', () => {
    assert.equal(lineageNameFor('Example.COM.'), 'example.com');
    assert.equal(lineageNameFor('*.example.com'), 'wildcard_.example.com', 'the lineage padlock run serves *.example.com from');
  });
});

describe('certbot renewal conf', () => {
  const conf = (params: string) => parseCertbotConf(`version = 2.9.0\ncert = /etc/letsencrypt/live/x/cert.pem\n\n# Options used in the renewal process\n[renewalparams]\n${params}\n`);

  it('parses top-level keys, sections and subsections', () => {
    const c = parseCertbotConf('a = 1\n[renewalparams]\nserver = "https://ca/dir"\n# comment\n[[webroot_map]]\nexample.com = /var/www\n');
    assert.deepEqual(c.top, { a: '1' });
    assert.deepEqual(c.sections['renewalparams'], { server: 'https://ca/dir' });
    assert.deepEqual(c.sections['renewalparams.webroot_map'], { 'example.com': '/var/www' });
  });

  const cases: Array<[string, string, string[], Record<string, unknown>, RegExp | undefined]> = [
    ['standalone with a port', 'authenticator = standalone\nhttp01_port = 8080\nhttp01_address = 127.0.0.1', ['a.example'],
      { challenge: { type: 'standalone', port: 8080, address: '127.0.0.1' } }, undefined],
    ['webroot from webroot_map', 'authenticator = webroot\nwebroot_path = /srv/a,\n[[webroot_map]]\na.example = /srv/a\nb.example = /srv/a', ['a.example', 'b.example'],
      { challenge: { type: 'webroot', webroot: '/srv/a' } }, undefined],
    ['webroot from webroot_path only', 'authenticator = webroot\nwebroot_path = /srv/b,', ['a.example'],
      { challenge: { type: 'webroot', webroot: '/srv/b' } }, undefined],
    ['several webroots', 'authenticator = webroot\n[[webroot_map]]\na.example = /srv/a\nb.example = /srv/b', ['a.example', 'b.example'],
      { challenge: { type: 'webroot', webroot: '/srv/a' } }, /several webroots \(\/srv\/a, \/srv\/b\)/],
    ['nginx authenticator', 'authenticator = nginx\ninstaller = nginx', ['a.example'],
      { challenge: { type: 'standalone', port: 80 } }, /"nginx" authenticator/],
    ['hooks, key reuse and server', 'authenticator = standalone\nreuse_key = True\nrenew_hook = systemctl reload nginx\npre_hook = true\nserver = https://ca.example/dir', ['a.example'],
      { challenge: { type: 'standalone', port: 80 }, reuseKey: true, deployHook: 'systemctl reload nginx', server: 'https://ca.example/dir' }, /pre_hook/],
    ['post_hook as deploy hook', 'authenticator = standalone\npost_hook = service nginx reload', ['a.example'],
      { challenge: { type: 'standalone', port: 80 }, deployHook: 'service nginx reload' }, /post_hook/],
  ];
  for (const [label, params, domains, meta, warning] of cases) {
    it(label, () => {
      const r = certbotRenewalMeta(conf(params), domains);
      assert.deepEqual(r.meta, meta);
      if (warning) assert.ok(r.warnings.some((w) => warning.test(w)), r.warnings.join('\n'));
      else assert.deepEqual(r.warnings, []);
    });
  }
});
