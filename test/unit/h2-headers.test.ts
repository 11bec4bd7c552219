import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import type http2 from 'node:http2';
import { endToEndTrailers } from '../../src/proxy/forward.js';
import { h1RequestFromH2, h2ResponseHeaders, headerListSize } from '../../src/proxy/h2-headers.js';

const GET = { ':method': 'GET', ':scheme': 'https', ':path': '/p?q=1', ':authority': 'app.example.com' };

describe('h1RequestFromH2: an HTTP/2 request head as padlock forwards it over HTTP/1.1', () => {
  const table: Array<{ desc: string; in: http2.IncomingHttpHeaders; want: ReturnType<typeof h1RequestFromH2> }> = [
    {
      desc: 'pseudo-header fields go; Host comes from :authority (port kept for the upstream); routing uses the bare host',
      in: { ...GET, ':authority': 'App.Example.com:443', accept: 'text/html', cookie: 'a=1; b=2' },
      want: { method: 'GET', path: '/p?q=1', host: 'app.example.com', headers: { accept: 'text/html', cookie: 'a=1; b=2', host: 'App.Example.com:443' } },
    },
    {
      desc: 'no :authority: the Host header names the host',
      in: { ':method': 'GET', ':scheme': 'https', ':path': '/', host: 'app.example.com' },
      want: { method: 'GET', path: '/', host: 'app.example.com', headers: { host: 'app.example.com' } },
    },
    {
      desc: 'a Host that agrees with :authority is replaced by it',
      in: { ...GET, host: 'APP.example.com.' },
      want: { method: 'GET', path: '/p?q=1', host: 'app.example.com', headers: { host: 'app.example.com' } },
    },
    { desc: 'a Host that names another host than :authority is malformed', in: { ...GET, host: 'other.example.com' }, want: 'authority-mismatch' },
    { desc: 'neither :authority nor Host', in: { ':method': 'GET', ':scheme': 'https', ':path': '/' }, want: 'no-authority' },
    { desc: 'a malformed :authority', in: { ...GET, ':authority': 'app.example.com:http' }, want: 'no-authority' },
    { desc: 'CONNECT is refused (padlock is no tunnel)', in: { ':method': 'CONNECT', ':authority': 'app.example.com:443' }, want: 'connect' },
    { desc: 'a :path that is not origin form', in: { ...GET, ':path': 'http://app.example.com/' }, want: 'bad-path' },
    { desc: 'a * :path for anything but OPTIONS', in: { ...GET, ':path': '*' }, want: 'bad-path' },
    {
      desc: 'OPTIONS * is kept (padlock answers it)',
      in: { ...GET, ':method': 'OPTIONS', ':path': '*' },
      want: { method: 'OPTIONS', path: '*', host: 'app.example.com', headers: { host: 'app.example.com' } },
    },
    {
      desc: 'connection-specific fields are dropped even if a parser let them through; TE: trailers is kept',
      in: { ...GET, connection: 'x', 'keep-alive': '1', 'proxy-connection': 'keep-alive', 'transfer-encoding': 'chunked', upgrade: 'websocket', te: 'trailers', 'x-kept': 'y' },
      want: { method: 'GET', path: '/p?q=1', host: 'app.example.com', headers: { te: 'trailers', 'x-kept': 'y', host: 'app.example.com' } },
    },
    {
      desc: 'TE with anything but trailers is dropped',
      in: { ...GET, te: 'gzip' },
      want: { method: 'GET', path: '/p?q=1', host: 'app.example.com', headers: { host: 'app.example.com' } },
    },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(h1RequestFromH2(c.in), c.want));
});

describe("h2ResponseHeaders: the upstream's answer for an HTTP/2 client", () => {
  const table: Array<{ desc: string; status: number; in: Record<string, string | string[]>; want: http2.OutgoingHttpHeaders }> = [
    { desc: ':status first, end-to-end fields kept', status: 200, in: { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] }, want: { ':status': 200, 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'] } },
    {
      desc: 'every connection-specific field dropped (Node refuses to send them)',
      status: 502,
      in: { connection: 'close', 'keep-alive': 'timeout=5', 'proxy-connection': 'x', 'transfer-encoding': 'chunked', upgrade: 'h2c', te: 'trailers', 'x-kept': '1' },
      want: { ':status': 502, 'x-kept': '1' },
    },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(h2ResponseHeaders(c.status, c.in), c.want));

  it('does not change its input', () => {
    const input = { connection: 'close', 'x-a': '1' };
    h2ResponseHeaders(200, input);
    assert.deepEqual(input, { connection: 'close', 'x-a': '1' });
  });
});

describe('headerListSize: SETTINGS_MAX_HEADER_LIST_SIZE accounting (RFC 9113 section 6.5.2)', () => {
  const table = [
    { desc: 'name + value + 32 per field', in: { ':path': '/', a: 'bc' }, want: 5 + 1 + 32 + 1 + 2 + 32 },
    { desc: 'every value of a repeated field counts', in: { 'set-cookie': ['x', 'yy'] }, want: 10 + 1 + 32 + 10 + 2 + 32 },
    { desc: 'values are counted in bytes, not characters', in: { a: 'é' }, want: 1 + 2 + 32 },
  ];
  for (const c of table) it(c.desc, () => assert.equal(headerListSize(c.in as http2.IncomingHttpHeaders), c.want));
});

describe("endToEndTrailers: the upstream's trailer fields padlock passes on", () => {
  const table: Array<{ desc: string; in: Record<string, string | string[]>; want: Record<string, string> | undefined }> = [
    { desc: 'gRPC status and a checksum pass', in: { 'grpc-status': '0', 'grpc-message': 'ok', 'x-checksum': 'abc' }, want: { 'grpc-status': '0', 'grpc-message': 'ok', 'x-checksum': 'abc' } },
    {
      desc: 'framing, routing, authentication and hop-by-hop fields never pass in a trailer (RFC 9110 section 6.5.1)',
      in: { 'content-length': '5', 'transfer-encoding': 'chunked', host: 'x', authorization: 'y', 'set-cookie': 'z', connection: 'close', ':status': '200', 'x-ok': '1' },
      want: { 'x-ok': '1' },
    },
    { desc: 'nothing left: none', in: { 'content-length': '5' }, want: undefined },
    { desc: 'no trailers: none', in: {}, want: undefined },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(endToEndTrailers(c.in as http.IncomingHttpHeaders), c.want));
});
