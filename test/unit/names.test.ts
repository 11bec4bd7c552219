import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normaliseName, normaliseNames } from '../../src/config/names.js';
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
    { desc: 'an IPv4 address', input: '192.0.2.1', reason: /IP addresses/ },
    { desc: 'an IPv6 address', input: '::1', reason: /IP addresses/ },
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
      assert.match(err.message, /"10\.0\.0\.1": IP addresses/);
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
