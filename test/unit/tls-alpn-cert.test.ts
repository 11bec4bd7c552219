import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { acmeTlsServerName, createChallengeCertificate, ID_PE_ACME_IDENTIFIER } from '../../src/acme/tls-alpn-cert.js';
import { PadlockError } from '../../src/errors.js';

describe('acmeTlsServerName: the SNI name a CA sends for an identifier', () => {
  const table: Array<{ desc: string; id: string; want: string }> = [
    { desc: 'a DNS name, lowercased, trailing dot dropped', id: 'App.Example.COM.', want: 'app.example.com' },
    { desc: 'an IPv4 address: its in-addr.arpa name (RFC 8738 section 6)', id: '192.0.2.10', want: '10.2.0.192.in-addr.arpa' },
    { desc: 'IPv6 with ::', id: '2001:db8::1', want: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa' },
    { desc: 'IPv6 loopback', id: '::1', want: `1.${'0.'.repeat(31)}ip6.arpa` },
    { desc: 'IPv6 with an embedded IPv4 tail', id: '::ffff:1.2.3.4', want: `4.0.3.0.2.0.1.0.f.f.f.f.${'0.'.repeat(20)}ip6.arpa` },
    { desc: 'IPv6 written in full, uppercase', id: '2001:DB8:0:0:0:0:0:1', want: '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa' },
  ];
  for (const c of table) it(c.desc, () => assert.equal(acmeTlsServerName(c.id), c.want));

  const refused: Array<{ desc: string; id: string }> = [
    { desc: 'a wildcard (the CA never offers TLS-ALPN-01 for one)', id: '*.example.com' },
    { desc: 'an empty identifier', id: '' },
    { desc: 'a name with a slash', id: 'evil.com/x' },
    { desc: 'a name with a NUL byte', id: 'evil.com\u0000.example.com' },
    { desc: 'a label over 63 bytes', id: `${'a'.repeat(64)}.com` },
  ];
  for (const c of refused) {
    it(`refuses ${c.desc}`, () => assert.throws(() => acmeTlsServerName(c.id), (e: unknown) => e instanceof PadlockError && e.code === 'ACME_PROBLEM'));
  }
});

describe('createChallengeCertificate (RFC 8737 section 3)', () => {
  const keyAuthorization = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI';
  const table: Array<{ desc: string; id: string; san: string }> = [
    { desc: 'for a DNS name: one dNSName', id: 'app.example.com', san: 'DNS:app.example.com' },
    { desc: 'for an IP address (RFC 8738): one iPAddress', id: '127.0.0.1', san: 'IP Address:127.0.0.1' },
  ];
  for (const c of table) {
    it(`${c.desc}, the critical acmeIdentifier extension holding SHA-256 of the key authorization, self-signed with its own P-256 key`, async () => {
      const now = new Date('2026-12-03T12:00:00Z');
      const { certPem, keyPem } = await createChallengeCertificate(c.id, keyAuthorization, now);
      const cert = new X509Certificate(certPem);
      assert.equal(cert.subjectAltName, c.san);
      assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
      assert.ok(cert.verify(cert.publicKey), 'self-signed');
      assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
      assert.ok(new Date(cert.validFrom) < now && new Date(cert.validTo) > now);
      const ext = new x509.X509Certificate(certPem).getExtension(ID_PE_ACME_IDENTIFIER);
      assert.ok(ext, 'the extension is there');
      assert.equal(ext.critical, true);
      // An OCTET STRING (tag 4, length 32) of the digest, computed here independently.
      const digest = createHash('sha256').update(keyAuthorization).digest();
      assert.deepEqual(Buffer.from(ext.value), Buffer.concat([Buffer.from([4, 32]), digest]));
    });
  }

  it('makes a new key for every challenge', async () => {
    const [a, b] = await Promise.all([createChallengeCertificate('a.example', 'x.y'), createChallengeCertificate('a.example', 'x.y')]);
    assert.notEqual(a.keyPem, b.keyPem);
  });

  it('refuses an identifier that is neither a DNS name nor an IP address, before making a key', async () => {
    await assert.rejects(createChallengeCertificate('a b', 'x.y'), (e: unknown) => e instanceof PadlockError && e.code === 'ACME_PROBLEM');
  });
});
