/**
 * The parts of DNS-01 below the real DNS server: the RFC 2136 message, TSIG,
 * credentials (files and environment), server lists, the leftover rule, the
 * propagation check (fake servers and a fake clock), which provider covers a
 * name, and one exchange and the RFC 2136 answers against a loopback UDP
 * server that answers what each test says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import packet from 'dns-packet';
import { encodeUpdate, encodeName, lastRecordOffset, u16 } from '../../src/dns/wire.js';
import { signMessage, verifyAnswer, parseTsigAlgorithm, type TsigKey } from '../../src/dns/tsig.js';
import { parseCredentials, credentialsFromEnv } from '../../src/dns/credentials.js';
import { parseServers, exchange } from '../../src/dns/transport.js';
import { Rfc2136Provider } from '../../src/dns/providers/rfc2136.js';
import { isLeftover, dns01Value, type LedgerRecord } from '../../src/acme/dns01.js';
import { waitForPropagation } from '../../src/dns/propagation.js';
import { dnsSettingsProblems } from '../../src/dns/settings.js';
import { dnsSettingsFor, dnsConfigProblems, dnsConfigSchema } from '../../src/config/dns-config.js';
import { PadlockError } from '../../src/errors.js';

const KEY: TsigKey = { name: 'padlock-key', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const NOW = new Date('2026-06-01T12:00:00Z');

describe('RFC 2136 update message', () => {
  it('adds with class IN and the TTL, deletes one value with class NONE and TTL 0, under the zone\'s SOA', () => {
    const msg = encodeUpdate(0x1234, 'example.com', [
      { op: 'add', name: '_acme-challenge.example.com', value: 'v-add', ttl: 60 },
      { op: 'delete', name: '_acme-challenge.example.com', value: 'v-del', ttl: 60 },
    ]);
    assert.equal(msg.readUInt16BE(2) >> 11, 5, 'opcode UPDATE');
    const d = packet.decode(msg);
    assert.deepEqual(d.questions, [{ name: 'example.com', type: 'SOA', class: 'IN' }]);
    const [add, del] = (d.authorities ?? []) as unknown as Array<{ name: string; type: string; class: string; ttl: number; data: Buffer[] }>;
    assert.deepEqual([add?.class, add?.ttl, add?.data.map(String)], ['IN', 60, ['v-add']]);
    assert.deepEqual([del?.class, del?.ttl, del?.data.map(String)], ['UNKNOWN_254', 0, ['v-del']]);
  });
});

/** The server side of RFC 8945 section 4.3.1, written independently: signs `answer` (which covers the request MAC). */
function serverSign(answer: Buffer, key: TsigKey, requestMac: Buffer, error = 0, withMac = true): Buffer {
  const time = Buffer.alloc(6);
  time.writeUIntBE(Math.floor(NOW.getTime() / 1000), 0, 6);
  const vars = Buffer.concat([encodeName(key.name), u16(255), Buffer.alloc(4), encodeName(key.algorithm), time, u16(300), u16(error), u16(0)]);
  const mac = withMac ? createHmac('sha256', key.secret).update(Buffer.concat([u16(requestMac.length), requestMac, answer, vars])).digest() : Buffer.alloc(0);
  const rdata = Buffer.concat([encodeName(key.algorithm), time, u16(300), u16(mac.length), mac, u16(answer.readUInt16BE(0)), u16(error), u16(0)]);
  const out = Buffer.concat([answer, encodeName(key.name), u16(250), u16(255), Buffer.alloc(4), u16(rdata.length), rdata]);
  out.writeUInt16BE(answer.readUInt16BE(10) + 1, 10);
  return out;
}

describe('TSIG (RFC 8945)', () => {
  const request = encodeUpdate(7, 'example.com', [{ op: 'add', name: 'a.example.com', value: 'x', ttl: 60 }]);
  const { signed, requestMac } = signMessage(request, KEY, NOW);
  const answer = Buffer.from(request.subarray(0, 12));
  answer.writeUInt16BE(0xa800, 2); // QR, opcode UPDATE, NOERROR
  answer.writeUInt16BE(0, 4);
  answer.writeUInt16BE(0, 8);

  it('appends one TSIG record as the last additional record', () => {
    assert.equal(signed.readUInt16BE(10), 1);
    assert.equal(lastRecordOffset(signed)?.type, 250);
    assert.equal(requestMac.length, 32);
  });

  const cases: Array<{ desc: string; answer: () => Buffer; signed: boolean; verified: boolean; error: number }> = [
    { desc: 'a correctly signed answer verifies', answer: () => serverSign(answer, KEY, requestMac), signed: true, verified: true, error: 0 },
    { desc: 'an answer changed after signing does not verify', answer: () => { const b = serverSign(answer, KEY, requestMac); b.writeUInt8(b.readUInt8(3) ^ 0x01, 3); return b; }, signed: true, verified: false, error: 0 },
    { desc: 'an answer signed with another key does not verify', answer: () => serverSign(answer, { ...KEY, secret: Buffer.from('another key, another key, another') }, requestMac), signed: true, verified: false, error: 0 },
    { desc: 'an answer that covers another request MAC does not verify', answer: () => serverSign(answer, KEY, Buffer.alloc(32, 1)), signed: true, verified: false, error: 0 },
    { desc: 'a BADSIG answer with an empty MAC reports the error', answer: () => serverSign(answer, KEY, requestMac, 16, false), signed: true, verified: false, error: 16 },
    { desc: 'an unsigned answer says so', answer: () => answer, signed: false, verified: false, error: 0 },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      assert.deepEqual(verifyAnswer(c.answer(), KEY, requestMac), { signed: c.signed, verified: c.verified, error: c.error });
    });
  }

  it('names the algorithms it signs with when given another', () => {
    assert.equal(parseTsigAlgorithm('HMAC-SHA512.', 'x'), 'hmac-sha512');
    assert.throws(() => parseTsigAlgorithm('hmac-md5', 'rfc2136'), /hmac-sha1, hmac-sha224, hmac-sha256, hmac-sha384, hmac-sha512/);
  });
});

describe('the DNS-01 value', () => {
  it('is base64url(SHA-256(key authorization)) without padding, RFC 8555 section 8.4', () => {
    // SHA-256("abc") is the FIPS 180-2 test vector ba7816bf...f20015ad.
    assert.equal(dns01Value('abc'), Buffer.from('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'hex').toString('base64url'));
    assert.equal(dns01Value('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
  });
});

describe('credentials files', () => {
  const cases = [
    { desc: 'key = value lines, comments and blank lines', text: '# TSIG\nserver = 192.0.2.53\n\nname=padlock\n', expect: { server: '192.0.2.53', name: 'padlock' } },
    { desc: "certbot's dns_PROVIDER_ prefix is dropped", text: 'dns_rfc2136_server = 192.0.2.53\ndns_rfc2136_secret = "abc="', expect: { server: '192.0.2.53', secret: 'abc=' } },
    { desc: 'acme-dns keys keep their names with the dns_acmedns_ prefix gone', text: 'dns_acmedns_api_url: https://auth.example.org', expect: { api_url: 'https://auth.example.org' } },
    { desc: 'keys are lowercased and "-" becomes "_"', text: 'API-Token = t', expect: { api_token: 't' } },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual({ ...parseCredentials(c.text, c.desc.includes('acme-dns') ? 'acme-dns' : 'rfc2136', 'f') }, c.expect));
  it('names the line that is not key = value', () => {
    assert.throws(() => parseCredentials('server 1.2.3.4', 'rfc2136', '--dns-credentials f'), /--dns-credentials f line 1: expected "key = value"/);
  });
});

describe('credentials from the environment (no credentials file)', () => {
  const cases = [
    { desc: "rfc2136 reads lego's RFC2136_* names", kind: 'rfc2136' as const, env: { RFC2136_NAMESERVER: '192.0.2.53', RFC2136_TSIG_KEY: 'k', RFC2136_TSIG_SECRET: 's=', RFC2136_TSIG_ALGORITHM: 'hmac-sha512' }, expect: { server: '192.0.2.53', name: 'k', secret: 's=', algorithm: 'hmac-sha512' } },
    { desc: 'cloudflare prefers CLOUDFLARE_DNS_API_TOKEN over CF_DNS_API_TOKEN', kind: 'cloudflare' as const, env: { CF_DNS_API_TOKEN: 'old', CLOUDFLARE_DNS_API_TOKEN: 'new' }, expect: { api_token: 'new' } },
    { desc: 'an empty variable counts as unset', kind: 'cloudflare' as const, env: { CLOUDFLARE_DNS_API_TOKEN: '', CF_DNS_API_TOKEN: 'tok' }, expect: { api_token: 'tok' } },
    { desc: "another provider's variables are not read", kind: 'acme-dns' as const, env: { RFC2136_TSIG_SECRET: 's=', CLOUDFLARE_DNS_API_TOKEN: 't' }, expect: {} },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual({ ...credentialsFromEnv(c.kind, c.env) }, c.expect));
});

describe('DNS server lists (--dns-resolvers)', () => {
  const cases = [
    { desc: 'an IPv4 address gets port 53', input: ['192.0.2.1'], expect: [{ host: '192.0.2.1', port: 53 }] },
    { desc: 'a port after a colon', input: ['127.0.0.1:5353'], expect: [{ host: '127.0.0.1', port: 5353 }] },
    { desc: 'IPv6 bare and in brackets with a port, comma-separated', input: ['2001:db8::1,[::1]:5300'], expect: [{ host: '2001:db8::1', port: 53 }, { host: '::1', port: 5300 }] },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual(parseServers(c.input, 'x'), c.expect));
  it('refuses a name, which would need a resolver to reach the resolver', () => {
    assert.throws(() => parseServers(['dns.example.com'], '--dns-resolvers'), /--dns-resolvers: "dns.example.com" is not an IP address/);
  });
});

/** A UDP server on 127.0.0.1 that answers each query as `reply` says (nothing when it returns undefined). */
async function server(reply: (query: Buffer) => Buffer[] | undefined): Promise<{ port: number; seen: Buffer[]; sock: Socket }> {
  const sock = createSocket('udp4');
  const seen: Buffer[] = [];
  sock.on('message', (q, from) => {
    seen.push(q);
    for (const a of reply(q) ?? []) sock.send(a, from.port, from.address);
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return { port: sock.address().port, seen, sock };
}

describe('RFC 2136 answers other than success (a loopback server)', () => {
  /** The update sent back as its answer (same ID, QR set) with this RCODE, unsigned: what a server without the key answers. */
  const answering = (rcode: number) => (q: Buffer) => {
    const a = Buffer.from(q);
    a[2] = a[2]! | 0x80;
    a[3] = (a[3]! & 0xf0) | rcode;
    return [a];
  };
  const cases = [
    { desc: 'REFUSED names the provider and the zone and points at the ACL, and is not retried', rcode: 5, message: /^DNS provider rfc2136 at 127\.0\.0\.1:\d+ for the zone example\.com: adding the TXT record _acme-challenge\.a\.example\.com: the server answered REFUSED: the server does not allow this key to update this zone/, retryable: false },
    { desc: 'NOTZONE says the name is not in the zone', rcode: 10, message: /the server answered NOTZONE: the name is not in the zone$/, retryable: false },
    { desc: 'SERVFAIL may be retried', rcode: 2, message: /the server answered SERVFAIL$/, retryable: true },
  ];
  for (const c of cases) {
    it(c.desc, async () => {
      const s = await server(answering(c.rcode));
      try {
        const p = new Rfc2136Provider({ server: { host: '127.0.0.1', port: s.port }, clock: { now: () => NOW }, timeoutMs: 2_000 });
        await assert.rejects(p.present({ fqdn: '_acme-challenge.a.example.com', zone: 'example.com', value: 'v' }),
          (err: PadlockError) => err.code === 'DNS_PROVIDER_FAILED' && c.message.test(err.message) && err.retryable === c.retryable);
      } finally {
        s.sock.close();
      }
    });
  }
});

describe('one DNS exchange over UDP (a loopback server)', () => {
  const query = packet.encode({ type: 'query', id: 4242, questions: [{ type: 'TXT', name: 'example.com' }] });
  const answerWithId = (id: number) => packet.encode({ type: 'response', id, questions: [{ type: 'TXT', name: 'example.com' }], answers: [{ type: 'TXT', name: 'example.com', data: `id ${id}` }] });

  it('fails with DNS_QUERY_FAILED naming the server when it never answers', async () => {
    const s = await server(() => undefined);
    try {
      await assert.rejects(exchange({ host: '127.0.0.1', port: s.port }, query, { timeoutMs: 150 }),
        (err: PadlockError) => err.code === 'DNS_QUERY_FAILED' && err.message === `the DNS server 127.0.0.1:${s.port} did not answer within 150 ms (UDP)`);
    } finally {
      s.sock.close();
    }
  });

  it('ignores an answer with another message ID and returns the one with its own', async () => {
    const s = await server(() => [answerWithId(1), answerWithId(4242)]);
    try {
      const answer = packet.decode(await exchange({ host: '127.0.0.1', port: s.port }, query, { timeoutMs: 2_000 }));
      assert.equal(answer.id, 4242);
    } finally {
      s.sock.close();
    }
  });

  it('sends nothing and rejects with the reason when its signal is already aborted', async () => {
    const s = await server(() => [answerWithId(4242)]);
    try {
      await assert.rejects(exchange({ host: '127.0.0.1', port: s.port }, query, { timeoutMs: 2_000, signal: AbortSignal.abort(new Error('shutting down')) }), /shutting down/);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(s.seen.length, 0);
    } finally {
      s.sock.close();
    }
  });
});

describe('leftover records (crash safety)', () => {
  const me = { host: 'web1', pid: 100, instance: 'me' };
  const rec = (over: Partial<LedgerRecord>): LedgerRecord => ({
    fqdn: '_acme-challenge.a.example.com', zone: 'example.com', value: 'v', provider: 'p', host: 'web1', pid: 200, instance: 'other',
    createdAt: NOW.toISOString(), expiresAt: new Date(NOW.getTime() + 60_000).toISOString(), ...over,
  });
  const cases = [
    { desc: 'this process\'s own record is never a leftover', r: rec({ instance: 'me', pid: 100 }), alive: false, expect: false },
    { desc: 'a record of a dead process on this host is', r: rec({}), alive: false, expect: true },
    { desc: 'a record of a live process on this host is not', r: rec({}), alive: true, expect: false },
    { desc: 'a record with our pid but another instance is (PID 1 in a restarted container)', r: rec({ pid: 100 }), alive: true, expect: true },
    { desc: 'a record of another host is not, before its deadline', r: rec({ host: 'web2' }), alive: false, expect: false },
    { desc: 'a record of another host is, after its deadline', r: rec({ host: 'web2', expiresAt: new Date(NOW.getTime() - 1).toISOString() }), alive: true, expect: true },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(isLeftover(c.r, me, NOW, () => c.alive), c.expect));
});

describe('propagation check', () => {
  const servers = [{ name: 'ns1.example.com', host: '192.0.2.1', port: 53 }, { name: 'ns2.example.com', host: '192.0.2.2', port: 53 }];
  const clockFrom = () => {
    let t = NOW.getTime();
    return { clock: { now: () => new Date(t) }, sleep: async (ms: number) => void (t += ms) };
  };

  it('resolves once every authoritative server answers the value among others', async () => {
    const { clock, sleep } = clockFrom();
    let round = 0;
    const r = await waitForPropagation({
      fqdn: '_acme-challenge.example.com', zone: 'example.com', value: 'mine', servers, provider: 'test', clock, sleep, intervalMs: 1000,
      txtAt: async (s) => ({ rcode: 0, values: s.host === '192.0.2.2' && ++round < 3 ? [] : ['the wildcard\'s', 'mine'] }),
    });
    assert.equal(r.rounds, 3);
    assert.equal(r.ms, 2000);
  });

  it('times out naming the server that never sees the record and what it answered', async () => {
    const { clock, sleep } = clockFrom();
    await assert.rejects(waitForPropagation({
      fqdn: '_acme-challenge.example.com', zone: 'example.com', value: 'mine', servers, provider: 'rfc2136 at 192.0.2.1:53', clock, sleep, timeoutMs: 10_000, intervalMs: 2_000,
      txtAt: async (s) => (s.host === '192.0.2.1' ? { rcode: 0, values: ['mine'] } : { rcode: 3, values: [] }),
    }), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'DNS_PROPAGATION_TIMEOUT');
      assert.equal(err.message, "the TXT record _acme-challenge.example.com (zone example.com, written by rfc2136 at 192.0.2.1:53) did not reach every authoritative server within 10 s; still missing on ns2.example.com (192.0.2.2:53): NXDOMAIN. Check that these servers get the zone's updates (zone transfers, NOTIFY), or raise --dns-propagation-timeout");
      assert.deepEqual(err.details['missing'], ['192.0.2.2:53']);
      return true;
    });
  });
});

describe('DNS-01 settings and the dns: config section', () => {
  const where = { provider: '--dns', credentials: '--dns-credentials', exec: '--dns-exec', resolvers: '--dns-resolvers', timeout: '--dns-propagation-timeout', interval: '--dns-propagation-interval' };
  const cases = [
    { desc: 'rfc2136 with credentials is fine', s: { provider: 'rfc2136' as const, credentials: '/f' }, expect: [] as string[] },
    { desc: 'an unknown provider names the ones padlock has', s: { provider: 'godaddy' as never }, expect: ['--dns "godaddy" is not a DNS provider padlock has (rfc2136, cloudflare, route53, acme-dns, exec)'] },
    { desc: 'exec needs its program', s: { provider: 'exec' as const }, expect: ['the exec DNS provider needs --dns-exec PROGRAM (called as PROGRAM present|cleanup FQDN VALUE)'] },
    { desc: 'a program without exec is a mistake', s: { provider: 'cloudflare' as const, exec: '/bin/x' }, expect: ['--dns-exec goes with the exec DNS provider only'] },
    { desc: 'a propagation timeout past an hour is refused', s: { provider: 'rfc2136' as const, propagationTimeout: 7200 }, expect: ['--dns-propagation-timeout 7200 must be between 0 and 3600 seconds'] },
  ];
  for (const c of cases) it(c.desc, () => assert.deepEqual(dnsSettingsProblems({ type: 'dns-01', ...c.s }, where), c.expect));

  const dns = dnsConfigSchema.parse({
    resolvers: ['192.0.2.53'],
    providers: [
      { provider: 'cloudflare', credentials: '/etc/padlock/cf.ini', zones: ['example.com'] },
      { provider: 'rfc2136', credentials: '/etc/padlock/home.ini', zones: ['home.example.com'] },
    ],
  });
  it('picks the provider with the longest zone covering the name, a wildcard by its base', () => {
    assert.equal(dnsSettingsFor(dns, 'app.example.com')?.provider, 'cloudflare');
    assert.equal(dnsSettingsFor(dns, '*.home.example.com')?.provider, 'rfc2136');
    assert.deepEqual(dnsSettingsFor(dns, 'nas.home.example.com'), {
      type: 'dns-01', provider: 'rfc2136', credentials: '/etc/padlock/home.ini', resolvers: ['192.0.2.53'], propagationTimeout: 120, propagationInterval: 2,
    });
    assert.equal(dnsSettingsFor(dns, 'example.org'), undefined);
  });
  it('reports a zone two providers claim', () => {
    const twice = dnsConfigSchema.parse({ providers: [{ provider: 'cloudflare', zones: ['example.com'] }, { provider: 'exec', exec: '/x', zones: ['Example.com.'] }] });
    assert.deepEqual(dnsConfigProblems(twice), ['dns.providers.1.zones: example.com is already covered by dns.providers.0']);
  });
});
