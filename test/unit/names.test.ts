import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ipLineageName, normaliseIp, normaliseName, normaliseNames, normaliseSiteHost } from '../../src/config/names.js';
import { staticSites } from '../../src/config/static-sites.js';
import { isValidLineageName } from '../../src/store/store.js';
import { lineageNameFor } from '../../src/state/reconcile.js';
import { PadlockError } from '../../src/errors.js';

describe('normaliseName', () => {
  const accepted = [
    { desc: 'a plain name stays as it is', input: 'app.example.com', name: 'app.example.com' },
    { desc: 'uppercase is lowered', input: 'App.Example.COM', name: 'app.example.com' },
    { desc: 'a trailing dot is dropped', input: 'app.example.com.', name: 'app.example.com' },
    { desc: 'surrounding spaces are trimmed', input: '  app.example.com ', name: 'app.example.com' },
    { desc: 'an internationalised name becomes punycode', input: 'bücher.example', name: 'xn--bcher-kva.example' },
    { desc: 'inner hyphens and digits are fine', input: 'a-1.b2.example.org', name: 'a-1.b2.example.org' },
  ];
  for (const c of accepted) {
    it(`accepts: ${c.desc}`, () => assert.deepEqual(normaliseName(c.input), { name: c.name }));
  }

  const rejected = [
    { desc: 'an empty name', input: '', reason: /empty/ },
    { desc: 'an IPv4 address (without allowIp)', input: '192.0.2.1', reason: /IP address is not a domain name/ },
    { desc: 'an IPv6 address (without allowIp)', input: '::1', reason: /IP address is not a domain name/ },
    { desc: 'a wildcard, which HTTP-01 cannot validate', input: '*.example.com', reason: /wildcard names need the DNS-01/ },
    { desc: 'a name over 253 characters', input: `${'a'.repeat(60)}.`.repeat(4) + 'example.com', reason: /limit is 253/ },
    { desc: 'a label over 63 characters', input: `${'a'.repeat(64)}.example.com`, reason: /longer than 63/ },
    { desc: 'a label starting with a hyphen', input: '-bad.example.com', reason: /inner hyphens/ },
    { desc: 'an underscore', input: 'my_app.example.com', reason: /inner hyphens/ },
    { desc: 'two dots in a row', input: 'a..example.com', reason: /empty label/ },
    { desc: 'a single label', input: 'localhost', reason: /single label/ },
    { desc: 'an all-digit top-level label', input: 'example.123', reason: /all digits/ },
  ];
  for (const c of rejected) {
    it(`rejects ${c.desc}`, () => {
      const r = normaliseName(c.input);
      assert.ok('reason' in r, `expected a rejection for ${c.input}`);
      assert.match(r.reason, c.reason);
    });
  }

  it('accepts a wildcard when the challenge allows it', () => {
    assert.deepEqual(normaliseName('*.Example.com', { allowWildcard: true }), { name: '*.example.com' });
  });
});

describe('normaliseName with allowIp and allowWildcard (padlock issue)', () => {
  const cases = [
    { desc: 'an IPv4 address is kept as written', input: '203.0.113.10', options: { allowIp: true }, name: '203.0.113.10' },
    { desc: 'an IPv6 address gets its canonical RFC 5952 text', input: '2001:DB8:0:0::1', options: { allowIp: true }, name: '2001:db8::1' },
    { desc: 'an IPv6 address in brackets loses them', input: '[::1]', options: { allowIp: true }, name: '::1' },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual(normaliseName(c.input, c.options), { name: c.name }));
  it('still refuses a wildcard that is not a whole first label', () => {
    assert.ok('reason' in normaliseName('a*.example.com', { allowWildcard: true }));
  });
});

describe('normaliseNames', () => {
  it('reports every bad name at once, each with its reason', () => {
    assert.throws(() => normaliseNames(['ok.example.com', '*.example.com', '10.0.0.1', 'bad_name.example.com']), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'NAME_INVALID');
      assert.match(err.message, /"\*\.example\.com": wildcard/);
      assert.match(err.message, /"10\.0\.0\.1": an IP address is not a domain name/);
      assert.match(err.message, /"bad_name\.example\.com"/);
      assert.doesNotMatch(err.message, /"ok\.example\.com"/);
      return true;
    });
  });

  it('drops duplicates after normalising, keeping the first position', () => {
    assert.deepEqual(normaliseNames(['B.example.com', 'a.example.com', 'b.example.com.']), ['b.example.com', 'a.example.com']);
  });

  it('rejects an empty list', () => {
    assert.throws(() => normaliseNames([]), /no domain given/);
  });
});

describe('normaliseIp (IP hosts and IP certificate identifiers)', () => {
  const accepted = [
    { desc: 'IPv4 as written', input: '203.0.113.10', name: '203.0.113.10' },
    { desc: 'IPv4 loopback (the operator may route it from sites:)', input: '127.0.0.1', name: '127.0.0.1' },
    { desc: 'IPv6 in canonical RFC 5952 text', input: '2001:DB8:0:0:0:0:0:10', name: '2001:db8::10' },
    { desc: 'IPv6 in brackets', input: '[::1]', name: '::1' },
    { desc: 'IPv6 with an embedded IPv4 tail (not mapped) in hex', input: '64:ff9b::192.0.2.1', name: '64:ff9b::c000:201' },
  ];
  for (const c of accepted) it(`accepts ${c.desc}`, () => assert.deepEqual(normaliseIp(c.input), { name: c.name }));
  const refused = [
    { desc: 'a name', input: 'example.com', reason: /not an IP address/ },
    { desc: 'IPv4 unspecified', input: '0.0.0.0', reason: /unspecified/ },
    { desc: 'IPv6 unspecified', input: '::', reason: /unspecified/ },
    { desc: 'IPv4 multicast', input: '239.1.2.3', reason: /multicast/ },
    { desc: 'IPv6 multicast', input: 'ff02::1', reason: /multicast/ },
    { desc: 'broadcast', input: '255.255.255.255', reason: /broadcast/ },
    { desc: 'an IPv6 zone', input: 'fe80::1%eth0', reason: /zone/ },
    { desc: 'IPv4-mapped IPv6, naming the IPv4 to write', input: '::ffff:203.0.113.10', reason: /see it as 203\.0\.113\.10/ },
  ];
  for (const c of refused) {
    it(`refuses ${c.desc}`, () => {
      const r = normaliseIp(c.input);
      assert.ok('reason' in r, `expected a refusal for ${c.input}`);
      assert.match(r.reason, c.reason);
    });
  }
  it('padlock issue -d with a zone is a NAME_INVALID error, not a crash', () => {
    assert.throws(() => normaliseNames(['fe80::1%eth0'], { allowIp: true }), (err: unknown) => err instanceof PadlockError && err.code === 'NAME_INVALID' && /zone/.test(err.message));
  });
});

describe('lineage names for IP hosts', () => {
  const cases = [
    { desc: 'IPv4 is its own name, as padlock issue -d 127.0.0.1 writes live/127.0.0.1/', ip: '127.0.0.1', name: '127.0.0.1' },
    { desc: 'IPv6 colons become dashes', ip: '2001:db8::10', name: '2001-db8--10' },
    { desc: 'an IPv6 address starting with :: gets a leading 0 (0::1 is the same address)', ip: '::1', name: '0--1' },
    { desc: 'an IPv6 address ending with ::', ip: '2001:db8::', name: '2001-db8--' },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.equal(ipLineageName(c.ip), c.name);
      assert.equal(lineageNameFor(c.ip), c.name);
      assert.ok(isValidLineageName(c.name), `${c.name} must be a valid folder name and Redis key`);
    });
  }
});

describe('IP hosts in the config file\'s sites', () => {
  it('normaliseSiteHost gives an IP an ACME (IP) certificate, never the local CA, even under a local suffix that matches its text', () => {
    assert.deepEqual(normaliseSiteHost('127.0.0.1', ['localhost', '1']), { name: '127.0.0.1', issuer: 'acme' });
    assert.deepEqual(normaliseSiteHost('[::1]', ['localhost']), { name: '::1', issuer: 'acme' });
  });
  it('a site with an IP host is accepted, over HTTP-01', () => {
    const [s] = staticSites([{ host: '127.0.0.1', upstream: 'http://127.0.0.1:8080', https: true, redirect: true, hsts: false }], ['localhost']);
    assert.equal(s?.host, '127.0.0.1');
    assert.equal(s?.issuer, 'acme');
    assert.equal(s?.challenge, undefined);
  });
  it('a site with an IP host and challenge: dns-01 is refused with its reason, even when a DNS zone would match its text', () => {
    assert.throws(
      () => staticSites([{ host: '192.0.2.7', upstream: 'http://127.0.0.1:8080', https: true, redirect: true, hsts: false, challenge: 'dns-01' }], ['localhost'], 'padlock.yaml', undefined, () => true),
      (err: unknown) => err instanceof PadlockError && err.code === 'CONFIG_INVALID'
        && err.message.includes('padlock.yaml: sites.0.challenge: 192.0.2.7 is an IP address, which can only be validated over http-01 or tls-alpn-01 (RFC 8738), never dns-01; remove challenge: dns-01'),
    );
  });
  it('an unusable address in sites is refused with its reason', () => {
    assert.throws(() => staticSites([{ host: '0.0.0.0', upstream: 'http://127.0.0.1:8080', https: true, redirect: true, hsts: false }], ['localhost']), /sites\.0\.host "0\.0\.0\.0": 0\.0\.0\.0 is the unspecified address/);
  });
});
