import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseUpstreamUrl, upstreamProto } from '../../src/config/upstream.js';
import { parseUpstream, staticSites } from '../../src/config/static-sites.js';
import { staticSiteSchema } from '../../src/config/schema.js';
import { RouteTable } from '../../src/proxy/routes.js';
import { h2cRequestHeaders, isGrpcRequest } from '../../src/proxy/h2c-upstream.js';
import { teAcceptsTrailers } from '../../src/proxy/headers.js';
import { grpcMessage, grpcStatusFor } from '../../src/proxy/forward.js';

describe('h2c upstream URLs (parseUpstreamUrl)', () => {
  const cases: Array<{ desc: string; input: string; expected: string | RegExp }> = [
    { desc: 'h2c:// with a port is kept, host lowercased', input: 'h2c://GRPC-App:50051', expected: 'h2c://grpc-app:50051' },
    { desc: 'h2c:// without a port gets 80, as http://', input: 'h2c://10.0.0.5', expected: 'h2c://10.0.0.5:80' },
    { desc: 'an IPv6 h2c upstream keeps its brackets', input: 'h2c://[::1]:50051/', expected: 'h2c://[::1]:50051' },
    { desc: 'the scheme is case-insensitive', input: 'H2C://app:1', expected: 'h2c://app:1' },
    { desc: 'http stays http', input: 'http://app:8080', expected: 'http://app:8080' },
    { desc: 'h2c with a path is refused like http with one', input: 'h2c://app:1/svc', expected: /path, query or fragment/ },
    { desc: 'h2c with credentials is refused', input: 'h2c://u:p@app:1', expected: /credentials/ },
    { desc: 'h2c with a bad port is refused', input: 'h2c://app:99999', expected: /does not parse/ },
    { desc: 'another scheme names the three padlock speaks', input: 'grpc://app:1', expected: /the scheme grpc is not http, https or h2c/ },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const r = parseUpstreamUrl(c.input);
      if (typeof c.expected === 'string') assert.equal(r, c.expected);
      else assert.match(typeof r === 'string' ? r : r.reason, c.expected);
    });
  }

  it('upstreamProto reads the scheme back', () => {
    assert.deepEqual(['h2c://a:1', 'https://a:1', 'http://a:1'].map(upstreamProto), ['h2c', 'https', 'http']);
  });
});

describe('the config file\'s proto key', () => {
  const entry = (over: Record<string, unknown>) => staticSiteSchema.parse({ host: 'grpc.example.com', upstream: '127.0.0.1:50051', ...over });

  it('proto: h2c makes host:port upstreams h2c', () => {
    const [s] = staticSites([entry({ proto: 'h2c', upstream: ['127.0.0.1:50051', '127.0.0.2:50051'] })], ['localhost']);
    assert.deepEqual(s!.upstreams.map((u) => u.url), ['h2c://127.0.0.1:50051', 'h2c://127.0.0.2:50051']);
  });

  it('an h2c:// upstream needs no proto key', () => {
    const [s] = staticSites([entry({ upstream: 'h2c://127.0.0.1:50051' })], ['localhost']);
    assert.equal(s!.upstreams[0]!.url, 'h2c://127.0.0.1:50051');
  });

  it('an upstream whose scheme disagrees with proto is refused with the reason', () => {
    assert.deepEqual(parseUpstream('http://127.0.0.1:1', 'h2c'), { reason: '"http://127.0.0.1:1" is http, but proto is h2c; write HOST:PORT alone, or drop proto' });
    assert.throws(() => staticSites([entry({ proto: 'h2c', upstream: 'https://127.0.0.1:1' })], ['localhost'], 'padlock.yaml'), /sites\.0\.upstream: "https:\/\/127\.0\.0\.1:1" is https, but proto is h2c/);
  });

  it('any other proto value is refused by the schema', () => {
    assert.equal(staticSiteSchema.safeParse({ host: 'a.example.com', upstream: 'a:1', proto: 'grpc' }).success, false);
  });
});

describe('h2c routes', () => {
  it('an h2c upstream is a target with h2c set, keyed h2c://, connecting to the same address over http:', () => {
    const table = new RouteTable([{ host: 'a.example.com', upstreams: [{ url: 'h2c://10.0.0.5:50051' }, { url: 'http://10.0.0.5:50051' }], https: true, redirect: true, issuer: 'acme' }]);
    const [h2c, h1] = table.get('a.example.com')!.upstreams;
    assert.equal(h2c!.h2c, true);
    assert.equal(h2c!.key, 'h2c://10.0.0.5:50051');
    assert.equal(h2c!.url.href, 'http://10.0.0.5:50051/');
    assert.equal(h1!.h2c, false);
    assert.notEqual(h1!.key, h2c!.key, 'health marks of one do not apply to the other');
  });
});

describe('h2c request heads', () => {
  it('carries the method, path and Host as pseudo-headers, drops connection-specific fields, and adds te: trailers only when the client sent it', () => {
    const headers = { host: 'a.example.com', 'content-type': 'application/grpc', connection: 'x', 'keep-alive': '5', 'transfer-encoding': 'chunked', upgrade: 'h2c', 'http2-settings': 'AAA', 'x-forwarded-for': '192.0.2.1' };
    assert.deepEqual(h2cRequestHeaders({ method: 'POST', path: '/svc/Call', headers, acceptsTrailers: true }), {
      ':method': 'POST', ':path': '/svc/Call', ':scheme': 'http', ':authority': 'a.example.com',
      'content-type': 'application/grpc', 'x-forwarded-for': '192.0.2.1', te: 'trailers',
    });
    assert.equal(h2cRequestHeaders({ method: 'GET', path: '/', headers: { host: 'a' }, acceptsTrailers: false }).te, undefined);
  });

  const te: Array<[string | undefined, boolean]> = [['trailers', true], ['gzip, Trailers', true], ['trailers;q=0.5', true], ['gzip', false], [undefined, false], ['trailersx', false]];
  for (const [value, expected] of te) {
    it(`TE ${JSON.stringify(value)} ${expected ? 'accepts' : 'does not accept'} trailers`, () => assert.equal(teAcceptsTrailers(value), expected));
  }

  const grpc: Array<[string | undefined, boolean]> = [['application/grpc', true], ['application/grpc+proto', true], ['application/GRPC;charset=utf-8', true], ['application/grpc-web', false], ['text/plain', false], [undefined, false]];
  for (const [type, expected] of grpc) {
    it(`content-type ${JSON.stringify(type)} ${expected ? 'is' : 'is not'} a gRPC call`, () => assert.equal(isGrpcRequest(type === undefined ? {} : { 'content-type': type }), expected));
  }
});

describe('padlock\'s own errors as gRPC statuses', () => {
  it('maps HTTP statuses as the gRPC project\'s table does (Envoy too)', () => {
    assert.deepEqual([400, 401, 403, 404, 429, 502, 503, 504, 421, 408].map(grpcStatusFor), [13, 16, 7, 12, 14, 14, 14, 14, 2, 2]);
  });

  it('percent-encodes a grpc-message only outside visible ASCII and space, and % itself', () => {
    assert.equal(grpcMessage('padlock: 502 Bad Gateway'), 'padlock: 502 Bad Gateway');
    assert.equal(grpcMessage('50% ü'), '50%25 %C3%BC');
  });
});
