import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { prepareRequestHeaders, stripHopByHop, viaNamesPadlock, type ForwardFacts } from '../../src/proxy/headers.js';

const FACTS: ForwardFacts = { proto: 'https', client: '198.51.100.7', port: 8443, httpVersion: '1.1', trusted: false };

/** What a client (a proxy in front of padlock, or someone pretending to be one) sends. */
const CLAIMS = {
  host: 'app.example.com',
  'x-forwarded-for': '203.0.113.9',
  'x-forwarded-proto': 'http',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-port': '1234',
  'x-real-ip': '203.0.113.9',
  forwarded: 'for=203.0.113.9;proto=http',
};

function prepared(headers: http.IncomingHttpHeaders, facts: Partial<ForwardFacts> = {}, upgrade = false): http.IncomingHttpHeaders {
  const h = { ...headers };
  prepareRequestHeaders(h, { ...FACTS, ...facts }, upgrade);
  return h;
}

describe('forwarding headers: trusted / untrusted x each header', () => {
  const table: Array<{ desc: string; headers: http.IncomingHttpHeaders; facts?: Partial<ForwardFacts>; header: string; want: string | undefined }> = [
    // an untrusted client's claims are replaced
    { desc: 'untrusted: X-Forwarded-For is the client address only', headers: CLAIMS, header: 'x-forwarded-for', want: '198.51.100.7' },
    { desc: 'untrusted: X-Real-IP is the client address', headers: CLAIMS, header: 'x-real-ip', want: '198.51.100.7' },
    { desc: 'untrusted: X-Forwarded-Proto is the scheme padlock was reached by', headers: CLAIMS, header: 'x-forwarded-proto', want: 'https' },
    { desc: 'untrusted: X-Forwarded-Host is the Host header', headers: CLAIMS, header: 'x-forwarded-host', want: 'app.example.com' },
    { desc: 'untrusted: X-Forwarded-Port is the listener port', headers: CLAIMS, header: 'x-forwarded-port', want: '8443' },
    { desc: 'untrusted: Forwarded is one element of padlock\'s', headers: CLAIMS, header: 'forwarded', want: 'for=198.51.100.7;host=app.example.com;proto=https' },
    { desc: 'untrusted: X-Forwarded-Port never comes from the Host header', headers: { host: 'app.example.com:9999' }, header: 'x-forwarded-port', want: '8443' },
    { desc: 'untrusted: a Host with a port is quoted in Forwarded', headers: { host: 'app.example.com:9999' }, header: 'forwarded', want: 'for=198.51.100.7;host="app.example.com:9999";proto=https' },
    { desc: 'untrusted: an IPv6 client is bracketed and quoted in Forwarded (RFC 7239 section 6)', headers: CLAIMS, facts: { client: '2001:db8::7' }, header: 'forwarded', want: 'for="[2001:db8::7]";host=app.example.com;proto=https' },
    { desc: 'untrusted: an IPv6 client is bare in X-Forwarded-For', headers: CLAIMS, facts: { client: '2001:db8::7' }, header: 'x-forwarded-for', want: '2001:db8::7' },
    { desc: 'untrusted: a client already gone is "unknown" in Forwarded', headers: { host: 'a.example.com' }, facts: { client: '' }, header: 'forwarded', want: 'for=unknown;host=a.example.com;proto=https' },
    { desc: 'plain HTTP: X-Forwarded-Proto http', headers: CLAIMS, facts: { proto: 'http', port: 8080 }, header: 'x-forwarded-proto', want: 'http' },
    { desc: 'plain HTTP: X-Forwarded-Port is the HTTP listener port', headers: CLAIMS, facts: { proto: 'http', port: 8080 }, header: 'x-forwarded-port', want: '8080' },
    // a trusted proxy's are kept and appended to
    { desc: 'trusted: X-Forwarded-For is appended to', headers: CLAIMS, facts: { trusted: true }, header: 'x-forwarded-for', want: '203.0.113.9, 198.51.100.7' },
    { desc: 'trusted: Forwarded gets padlock\'s element appended', headers: CLAIMS, facts: { trusted: true }, header: 'forwarded', want: 'for=203.0.113.9;proto=http, for=198.51.100.7;host=app.example.com;proto=https' },
    { desc: 'trusted: X-Real-IP is kept', headers: CLAIMS, facts: { trusted: true }, header: 'x-real-ip', want: '203.0.113.9' },
    { desc: 'trusted: X-Forwarded-Proto is kept', headers: CLAIMS, facts: { trusted: true }, header: 'x-forwarded-proto', want: 'http' },
    { desc: 'trusted: X-Forwarded-Host is kept', headers: CLAIMS, facts: { trusted: true }, header: 'x-forwarded-host', want: 'evil.example' },
    { desc: 'trusted: X-Forwarded-Port is kept', headers: CLAIMS, facts: { trusted: true }, header: 'x-forwarded-port', want: '1234' },
    { desc: 'trusted but sent none: X-Forwarded-For is the client address', headers: { host: 'a.example.com' }, facts: { trusted: true }, header: 'x-forwarded-for', want: '198.51.100.7' },
    { desc: 'trusted but sent none: X-Real-IP is the client address', headers: { host: 'a.example.com' }, facts: { trusted: true }, header: 'x-real-ip', want: '198.51.100.7' },
    { desc: 'trusted but sent none: X-Forwarded-Proto is set', headers: { host: 'a.example.com' }, facts: { trusted: true }, header: 'x-forwarded-proto', want: 'https' },
    { desc: 'trusted but sent none: X-Forwarded-Host is set', headers: { host: 'a.example.com' }, facts: { trusted: true }, header: 'x-forwarded-host', want: 'a.example.com' },
    { desc: 'trusted but sent none: X-Forwarded-Port is set', headers: { host: 'a.example.com' }, facts: { trusted: true }, header: 'x-forwarded-port', want: '8443' },
    { desc: 'trusted but sent an empty X-Forwarded-Proto: set by padlock', headers: { host: 'a.example.com', 'x-forwarded-proto': '' }, facts: { trusted: true }, header: 'x-forwarded-proto', want: 'https' },
    { desc: 'trusted: repeated X-Forwarded-For lines are joined, then appended to', headers: { host: 'a.example.com', 'x-forwarded-for': ['1.1.1.1', '2.2.2.2'] as unknown as string }, facts: { trusted: true }, header: 'x-forwarded-for', want: '1.1.1.1, 2.2.2.2, 198.51.100.7' },
    // Via, both ways
    { desc: 'Via gets "1.1 padlock"', headers: { host: 'a.example.com' }, header: 'via', want: '1.1 padlock' },
    { desc: 'Via: an HTTP/1.0 request gets "1.0 padlock"', headers: { host: 'a.example.com' }, facts: { httpVersion: '1.0' }, header: 'via', want: '1.0 padlock' },
    { desc: 'Via is appended to, trusted or not (it is a hop list)', headers: { host: 'a.example.com', via: '1.1 cdn' }, header: 'via', want: '1.1 cdn, 1.1 padlock' },
    { desc: 'Via survives a client that names it in Connection', headers: { host: 'a.example.com', connection: 'via', via: '1.1 cdn' }, header: 'via', want: '1.1 padlock' },
    // the rest is untouched
    { desc: 'Host is passed unchanged', headers: CLAIMS, header: 'host', want: 'app.example.com' },
  ];
  for (const c of table) it(c.desc, () => assert.equal(prepared(c.headers, c.facts)[c.header], c.want));
});

describe('hop-by-hop headers', () => {
  it('strips the fixed list, the headers Connection names and Expect, but never Host or Content-Length', () => {
    const h = prepared({
      host: 'a.example.com',
      connection: 'keep-alive, x-hop, host, content-length',
      'x-hop': '1',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic eDp5',
      te: 'trailers',
      trailer: 'x',
      upgrade: 'websocket',
      expect: '100-continue',
      'content-length': '4',
      'x-end': 'kept',
    });
    for (const name of ['connection', 'x-hop', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'expect']) assert.equal(h[name], undefined, name);
    assert.equal(h.host, 'a.example.com');
    assert.equal(h['content-length'], '4');
    assert.equal(h['x-end'], 'kept');
  });

  it('an upgrade keeps Connection: upgrade and its Upgrade header', () => {
    const h = prepared({ host: 'a.example.com', connection: 'Upgrade, x-hop', upgrade: 'websocket', 'x-hop': '1' }, {}, true);
    assert.equal(h.connection, 'upgrade');
    assert.equal(h.upgrade, 'websocket');
    assert.equal(h['x-hop'], undefined);
  });

  it('stripHopByHop reads repeated Connection headers (an array, as undici gives them)', () => {
    const h: http.IncomingHttpHeaders = { connection: ['x-a', 'x-b'] as unknown as string, 'x-a': '1', 'x-b': '2', 'x-c': '3' };
    stripHopByHop(h);
    assert.deepEqual(h, { 'x-c': '3' });
  });
});

describe('viaNamesPadlock: the admin API\'s test for a proxied request', () => {
  const table: Array<{ desc: string; via: string | string[] | undefined; padlock: boolean }> = [
    { desc: 'no Via', via: undefined, padlock: false },
    { desc: 'padlock\'s own element', via: '1.1 padlock', padlock: true },
    { desc: 'padlock after another hop', via: '1.0 fred, 1.1 padlock', padlock: true },
    { desc: 'padlock with a comment', via: 'HTTP/1.1 padlock (edge)', padlock: true },
    { desc: 'any case', via: '1.1 PadLock', padlock: true },
    { desc: 'repeated Via headers', via: ['1.1 cdn', '1.1 padlock'], padlock: true },
    { desc: 'another proxy only', via: '1.1 nginx, 1.1 varnish', padlock: false },
    { desc: 'a name that only contains padlock', via: '1.1 padlock.example.com', padlock: false },
    { desc: 'padlock as the protocol, not the hop', via: 'padlock 1.1', padlock: false },
  ];
  for (const c of table) it(`${c.desc}: ${c.padlock ? 'proxied' : 'direct'}`, () => assert.equal(viaNamesPadlock(c.via), c.padlock));
});
