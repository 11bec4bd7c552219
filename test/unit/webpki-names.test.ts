/**
 * The pure pieces under the WebPKI rules, in tables: DNS name syntax and
 * matching (RFC 9525, BR 7.1.2.7.12), subtree membership for name
 * constraints (RFC 5280 section 4.2.1.10), IP literals as bytes, and the two
 * RFC 5280 time forms (section 4.1.2.5).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DerError, TAG, readTime } from '../../src/tls/webpki/der.js';
import { hostWithin } from '../../src/tls/webpki/name-constraints.js';
import { commonNameAsHost, dnsNameMatches, ipBytes, presentedDnsNameProblem, referenceName } from '../../src/tls/webpki/names.js';

describe('DNS names in a certificate (BR 7.1.2.7.12)', () => {
  const cases: { desc: string; name: string; problem?: RegExp }[] = [
    { desc: 'a host name', name: 'app.example.com' },
    { desc: 'capitals and digits', name: 'API2.Example.com' },
    { desc: 'a punycode label', name: 'xn--bcher-kva.example' },
    { desc: 'a whole left-most wildcard', name: '*.apps.example.com' },
    { desc: 'a single label (localhost)', name: 'localhost' },
    { desc: 'an underscore', name: '_acme.example.com', problem: /"_"/ },
    { desc: 'a leading dot', name: '.example.com', problem: /starts with a dot/ },
    { desc: 'a trailing dot', name: 'example.com.', problem: /ends with a dot/ },
    { desc: 'an empty label', name: 'a..example.com', problem: /empty label/ },
    { desc: 'a partial wildcard', name: 'w*.example.com', problem: /whole left-most label/ },
    { desc: 'a wildcard not left-most', name: 'a.*.example.com', problem: /not the left-most/ },
    { desc: 'a wildcard over a top-level domain', name: '*.com', problem: /top-level domain/ },
    { desc: 'a label starting with a hyphen', name: '-a.example.com', problem: /starts or ends with "-"/ },
    { desc: 'a space', name: 'a b.example.com', problem: /character other than/ },
    { desc: 'a NUL byte', name: 'bank.com\u0000.evil.example', problem: /character other than/ },
    { desc: 'an IPv4 address as a name', name: '192.0.2.1', problem: /all digits/ },
    { desc: 'a 64-character label', name: `${'a'.repeat(64)}.example.com`, problem: /longer than 63/ },
  ];
  for (const c of cases) {
    it(`${c.problem ? 'refuses' : 'accepts'} ${c.desc}`, () => {
      const problem = presentedDnsNameProblem(c.name);
      if (c.problem) assert.match(problem ?? '', c.problem);
      else assert.equal(problem, undefined);
    });
  }
});

describe('matching a requested name (RFC 9525 section 6.3)', () => {
  const cases: { desc: string; presented: string; requested: string; match: boolean }[] = [
    { desc: 'the same name in other case', presented: 'App.Example.com', requested: 'app.example.com', match: true },
    { desc: 'one label under a wildcard', presented: '*.example.com', requested: 'a.example.com', match: true },
    { desc: 'the wildcard\'s own parent', presented: '*.example.com', requested: 'example.com', match: false },
    { desc: 'two labels under a wildcard', presented: '*.example.com', requested: 'a.b.example.com', match: false },
    { desc: 'a requested wildcard by the same wildcard', presented: '*.example.com', requested: '*.example.com', match: true },
    { desc: 'a requested wildcard by a plain name', presented: 'a.example.com', requested: '*.example.com', match: false },
  ];
  for (const c of cases) {
    it(`${c.match ? 'matches' : 'does not match'} ${c.desc}`, () => {
      const ref = referenceName(c.requested);
      assert.equal(ref.kind, 'dns');
      assert.equal(dnsNameMatches(c.presented, ref.kind === 'dns' ? ref.name : ''), c.match);
    });
  }

  it('reads IP literals, bracketed IPv6 and a trailing dot', () => {
    assert.deepEqual(referenceName('[2001:db8::1]'), { kind: 'ip', bytes: ipBytes('2001:db8::1'), text: '2001:db8::1' });
    assert.deepEqual(referenceName('App.Example.COM.'), { kind: 'dns', name: 'app.example.com' });
    assert.deepEqual(Array.from(ipBytes('::ffff:192.0.2.1')!), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    assert.equal(ipBytes('example.com'), undefined);
  });

  it('treats a common name as a host only when it looks like one', () => {
    assert.deepEqual(commonNameAsHost('www.example.com'), { kind: 'dns', name: 'www.example.com' });
    assert.equal(commonNameAsHost('Padlock Test Root')?.kind, undefined);
    assert.equal(commonNameAsHost('R3'), undefined);
    assert.equal(commonNameAsHost('192.0.2.7')?.kind, 'ip');
  });
});

describe('DNS subtrees (RFC 5280 section 4.2.1.10)', () => {
  const cases: { desc: string; host: string; constraint: string; within: boolean }[] = [
    { desc: 'the domain itself', host: 'example.com', constraint: 'example.com', within: true },
    { desc: 'a name under it', host: 'a.b.example.com', constraint: 'example.com', within: true },
    { desc: 'a name that only ends in the same letters', host: 'badexample.com', constraint: 'example.com', within: false },
    { desc: 'the domain against a leading-dot constraint', host: 'example.com', constraint: '.example.com', within: false },
    { desc: 'a name under a leading-dot constraint', host: 'a.example.com', constraint: '.example.com', within: true },
    { desc: 'anything against the empty constraint', host: 'anything.example', constraint: '', within: true },
  ];
  for (const c of cases) {
    it(`${c.within ? 'holds' : 'does not hold'} ${c.desc}`, () => assert.equal(hostWithin(c.host, c.constraint), c.within));
  }
});

describe('certificate times (RFC 5280 section 4.1.2.5)', () => {
  const tlv = (tag: number, text: string): [Uint8Array, { tag: number; start: number; valueStart: number; end: number }] => {
    const bytes = Uint8Array.from([tag, text.length, ...Buffer.from(text, 'latin1')]);
    return [bytes, { tag, start: 0, valueStart: 2, end: bytes.length }];
  };
  const cases: { desc: string; tag: number; text: string; iso?: string }[] = [
    { desc: 'UTCTime 49 is 2049', tag: TAG.UTC_TIME, text: '491231235959Z', iso: '2049-12-31T23:59:59.000Z' },
    { desc: 'UTCTime 50 is 1950', tag: TAG.UTC_TIME, text: '500101000000Z', iso: '1950-01-01T00:00:00.000Z' },
    { desc: 'GeneralizedTime after 2049', tag: TAG.GENERALIZED_TIME, text: '20500101000000Z', iso: '2050-01-01T00:00:00.000Z' },
    { desc: 'a leap day', tag: TAG.UTC_TIME, text: '240229120000Z', iso: '2024-02-29T12:00:00.000Z' },
    { desc: 'GeneralizedTime before year 100', tag: TAG.GENERALIZED_TIME, text: '00500101000000Z', iso: '0050-01-01T00:00:00.000Z' },
    { desc: 'a non-leap February 29', tag: TAG.UTC_TIME, text: '230229120000Z' },
    { desc: 'fractional seconds', tag: TAG.GENERALIZED_TIME, text: '20500101000000.5Z' },
    { desc: 'a time zone offset', tag: TAG.UTC_TIME, text: '2401010000+0100' },
    { desc: 'no seconds', tag: TAG.UTC_TIME, text: '2401010000Z' },
  ];
  for (const c of cases) {
    it(`${c.iso ? 'reads' : 'refuses'} ${c.desc}`, () => {
      const [bytes, t] = tlv(c.tag, c.text);
      if (c.iso) assert.equal(new Date(readTime(bytes, t)).toISOString(), c.iso);
      else assert.throws(() => readTime(bytes, t), DerError);
    });
  }
});
