import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { MAX_ALPN_ENTRIES, MAX_CLIENT_HELLO, MAX_PEEK_BYTES, readClientHello, type ClientHelloVerdict } from '../../src/proxy/client-hello.js';
import { seededRandom } from '../support/seeded.js';

// ---- a ClientHello builder, so each hostile variant changes exactly one thing ----

const u16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const sniExt = (name: string) => {
  const entry = Buffer.concat([Buffer.from([0]), u16(Buffer.byteLength(name)), Buffer.from(name, 'latin1')]);
  return ext(0, Buffer.concat([u16(entry.length), entry]));
};
const alpnExt = (protocols: string[]) => {
  const list = Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([Buffer.byteLength(p)]), Buffer.from(p, 'latin1')])));
  return ext(16, Buffer.concat([u16(list.length), list]));
};
/** A ClientHello body: TLS 1.2 version, zero random, a 32-byte session id, two suites, null compression, then `extensions`. */
const body = (extensions: Buffer[] | null, fixed: { suites?: Buffer; compression?: Buffer } = {}) => {
  const parts = [u16(0x0303), Buffer.alloc(32), Buffer.from([32]), Buffer.alloc(32, 7), fixed.suites ?? Buffer.concat([u16(4), u16(0x1301), u16(0xc02f)]), fixed.compression ?? Buffer.from([1, 0])];
  if (extensions) {
    const all = Buffer.concat(extensions);
    parts.push(u16(all.length), all);
  }
  return Buffer.concat(parts);
};
const handshake = (b: Buffer, type = 1) => Buffer.concat([Buffer.from([type]), u24(b.length), b]);
const record = (fragment: Buffer, type = 0x16) => Buffer.concat([Buffer.from([type, 3, 1]), u16(fragment.length), fragment]);
/** A whole first flight: one record holding one ClientHello. */
const flight = (extensions: Buffer[] | null) => record(handshake(body(extensions)));

const hello = (serverName: string | undefined, alpn: string[]): ClientHelloVerdict => ({ kind: 'hello', serverName, alpn });
const ACME = alpnExt(['acme-tls/1']);

describe('readClientHello: SNI and ALPN from well-formed hellos', () => {
  const split = handshake(body([sniExt('app.example.com'), ACME]));
  const table: Array<{ desc: string; bytes: Buffer; want: ClientHelloVerdict }> = [
    { desc: 'the CA\'s hello: one name, ALPN acme-tls/1', bytes: flight([sniExt('app.example.com'), ACME]), want: hello('app.example.com', ['acme-tls/1']) },
    { desc: 'a browser\'s hello: h2 then http/1.1, other extensions skipped', bytes: flight([ext(0xff01, Buffer.from([0])), sniExt('App.Example.COM.'), alpnExt(['h2', 'http/1.1']), ext(43, Buffer.from([2, 3, 4]))]), want: hello('app.example.com', ['h2', 'http/1.1']) },
    { desc: 'no SNI (a client that connects by IP address)', bytes: flight([ACME]), want: hello(undefined, ['acme-tls/1']) },
    { desc: 'no extensions at all (an old client)', bytes: flight(null), want: hello(undefined, []) },
    { desc: 'an empty extensions block', bytes: flight([]), want: hello(undefined, []) },
    { desc: 'a reverse-mapping name for an IP identifier (RFC 8738)', bytes: flight([sniExt('1.0.0.127.in-addr.arpa'), ACME]), want: hello('1.0.0.127.in-addr.arpa', ['acme-tls/1']) },
    { desc: 'an unknown name type in server_name is skipped', bytes: flight([ext(0, (() => { const e = Buffer.concat([Buffer.from([9]), u16(2), Buffer.from('xx'), Buffer.from([0]), u16(5), Buffer.from('a.com')]); return Buffer.concat([u16(e.length), e]); })()), ACME]), want: hello('a.com', ['acme-tls/1']) },
    { desc: 'the hello split over three records (RFC 8446 section 5.1)', bytes: Buffer.concat([record(split.subarray(0, 3)), record(split.subarray(3, 50)), record(split.subarray(50))]), want: hello('app.example.com', ['acme-tls/1']) },
    { desc: 'bytes after the hello (a pipelined record) are not read', bytes: Buffer.concat([flight([sniExt('a.example'), ACME]), record(Buffer.from([1]), 0x14)]), want: hello('a.example', ['acme-tls/1']) },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(readClientHello(c.bytes), c.want));

  it("reads Node's own ClientHello (TLS 1.3 key shares, many extensions)", async () => {
    const bytes = await capture({ servername: 'app.example.com', ALPNProtocols: ['acme-tls/1'] });
    assert.deepEqual(readClientHello(bytes), hello('app.example.com', ['acme-tls/1']));
  });
});

describe('readClientHello: incomplete input asks for more, never more than MAX_PEEK_BYTES', () => {
  const whole = flight([sniExt('app.example.com'), ACME]);
  it('every strict prefix of a hello is incomplete', () => {
    for (let n = 0; n < whole.length; n++) assert.deepEqual(readClientHello(whole.subarray(0, n)), { kind: 'incomplete' }, `prefix of ${n} bytes`);
  });
  it('a hello of the largest size read is read whole, within MAX_PEEK_BYTES', () => {
    const pad = MAX_CLIENT_HELLO - body([ACME, ext(21, Buffer.alloc(0))]).length;
    const big = flight([ACME, ext(21, Buffer.alloc(pad))]);
    assert.ok(big.length > MAX_CLIENT_HELLO);
    // One record holds at most 2^14 bytes: this one needs two.
    const hs = handshake(body([ACME, ext(21, Buffer.alloc(pad))]));
    const two = Buffer.concat([record(hs.subarray(0, 16_000)), record(hs.subarray(16_000))]);
    assert.ok(two.length <= MAX_PEEK_BYTES);
    assert.deepEqual(readClientHello(two), hello(undefined, ['acme-tls/1']));
  });
});

describe('readClientHello: hostile and foreign bytes are "other", never a throw', () => {
  const good = body([sniExt('app.example.com'), ACME]);
  const table: Array<{ desc: string; bytes: Buffer; reason: RegExp }> = [
    { desc: 'an HTTP request on :443', bytes: Buffer.from('GET / HTTP/1.1\r\n'), reason: /not a TLS handshake record/ },
    { desc: 'one byte that is not a handshake record', bytes: Buffer.from([0x47]), reason: /not a TLS handshake record/ },
    { desc: 'an SSLv2-style hello', bytes: Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]), reason: /not a TLS handshake record/ },
    { desc: 'a record version with major 2', bytes: Buffer.from([0x16, 2, 0, 0, 5, 1, 0, 0, 1, 0]), reason: /record version/ },
    { desc: 'a record length of 0', bytes: Buffer.from([0x16, 3, 1, 0, 0]), reason: /record length of 0/ },
    { desc: 'a record length over 2^14', bytes: Buffer.from([0x16, 3, 1, 0x40, 0x01]), reason: /record length of 16385/ },
    { desc: 'a handshake that is not a ClientHello', bytes: record(handshake(good, 2)), reason: /not a ClientHello/ },
    { desc: 'a ClientHello that claims 16 MiB', bytes: record(Buffer.concat([Buffer.from([1]), u24(0xffffff), Buffer.alloc(10)])), reason: /16777215 bytes/ },
    { desc: 'a ClientHello shorter than its fixed fields', bytes: record(handshake(Buffer.alloc(20))), reason: /too short/ },
    { desc: 'a session id over 32 bytes', bytes: record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), Buffer.from([255]), Buffer.alloc(10)]))), reason: /session id of 255 bytes/ },
    { desc: 'a session id length past the end', bytes: record(handshake(Buffer.concat([u16(0x0303), Buffer.alloc(32), Buffer.from([32]), Buffer.alloc(10)]))), reason: /fixed fields/ },
    { desc: 'an odd cipher_suites length', bytes: record(handshake(body(null, { suites: Buffer.concat([u16(3), Buffer.alloc(3)]) }))), reason: /cipher_suites/ },
    { desc: 'no compression methods', bytes: record(handshake(body(null, { compression: Buffer.from([0]) }))), reason: /compression/ },
    { desc: 'an extensions length longer than the hello', bytes: record(handshake(Buffer.concat([body(null), u16(500), ACME]))), reason: /extensions length/ },
    { desc: 'bytes after the extensions block', bytes: record(handshake(Buffer.concat([body([ACME]), Buffer.from([0])]))), reason: /extensions length/ },
    { desc: 'an extension longer than its block', bytes: record(handshake(Buffer.concat([body(null), u16(6), u16(16), u16(100), u16(0)]))), reason: /runs past/ },
    { desc: 'the same extension twice', bytes: flight([ACME, ACME]), reason: /appears twice/ },
    { desc: 'a server_name list length that lies', bytes: flight([ext(0, Buffer.concat([u16(50), Buffer.from([0]), u16(1), Buffer.from('a')]))]), reason: /server_name list/ },
    { desc: 'a host name longer than its list', bytes: flight([ext(0, Buffer.concat([u16(4), Buffer.from([0]), u16(200), Buffer.from('a')]))]), reason: /runs past its list/ },
    { desc: 'two host names', bytes: flight([ext(0, (() => { const e = Buffer.concat([Buffer.from([0]), u16(1), Buffer.from('a'), Buffer.from([0]), u16(1), Buffer.from('b')]); return Buffer.concat([u16(e.length), e]); })())]), reason: /two host names/ },
    { desc: 'an empty host name', bytes: flight([sniExt('')]), reason: /bad length/ },
    { desc: 'a host name over 255 bytes', bytes: flight([sniExt('a'.repeat(256))]), reason: /bad length/ },
    { desc: 'a host name with a NUL byte', bytes: flight([sniExt('evil.com\u0000.example.com')]), reason: /printable ASCII/ },
    { desc: 'a host name with a space', bytes: flight([sniExt('a b')]), reason: /printable ASCII/ },
    { desc: 'an empty ALPN protocol', bytes: flight([alpnExt(['h2', ''])]), reason: /empty ALPN protocol/ },
    { desc: 'an empty ALPN list', bytes: flight([ext(16, u16(0))]), reason: /empty ALPN list/ },
    { desc: 'an ALPN entry longer than its list', bytes: flight([ext(16, Buffer.concat([u16(3), Buffer.from([200, 0x61, 0x62])]))]), reason: /runs past its list/ },
    { desc: `more than ${MAX_ALPN_ENTRIES} ALPN protocols`, bytes: flight([alpnExt(Array.from({ length: MAX_ALPN_ENTRIES + 1 }, (_, i) => `p${i}`))]), reason: /more than 32/ },
    { desc: 'an alert record where the hello should continue', bytes: Buffer.concat([record(handshake(good).subarray(0, 10)), record(Buffer.from([2, 40]), 0x15)]), reason: /non-handshake record/ },
    { desc: 'a hello split into 1-byte records, 34 of them', bytes: Buffer.concat([...handshake(good).subarray(0, 40)].map((b) => record(Buffer.from([b])))), reason: /too many records/ },
  ];
  for (const c of table) {
    it(c.desc, () => {
      const v = readClientHello(c.bytes);
      assert.equal(v.kind, 'other', JSON.stringify(v));
      assert.match((v as { reason: string }).reason, c.reason);
    });
  }

  it('5,000 random mutations of a real hello never throw, and each verdict is one of the three kinds', () => {
    const base = flight([sniExt('app.example.com'), ACME, alpnExt(['h2'])].slice(0, 2));
    const rand = seededRandom(8737);
    for (let i = 0; i < 5_000; i++) {
      const bytes = Buffer.from(base);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      const cut = rand() < 0.3 ? bytes.subarray(0, Math.floor(rand() * bytes.length)) : bytes;
      const v = readClientHello(cut);
      assert.ok(['incomplete', 'hello', 'other'].includes(v.kind));
      if (v.kind === 'hello') assert.ok(v.alpn.every((p) => p.length > 0) && (v.serverName === undefined || v.serverName.length <= 255));
    }
  });
});

/** The first bytes Node's TLS client sends with these options, read by a loopback server that never answers. */
function capture(options: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.once('data', (d: Buffer) => {
        resolve(d);
        socket.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const client = tls.connect({ ...options, port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
      client.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}
