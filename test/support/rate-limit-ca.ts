/**
 * A small fake, standing in for what Pebble 2.4 cannot do: answer newOrder
 * with `429 rateLimited` and a `Retry-After` (Let's Encrypt does both).
 *
 * It serves a copy of a real Pebble's directory whose `newOrder` points here;
 * every other URL (nonces, accounts) still goes to the real Pebble. It counts
 * the newOrder requests it refused, so a test can prove padlock did not ask again.
 */
import http from 'node:http';
import https from 'node:https';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Pebble } from './pebble.js';

export interface RateLimitCa {
  directoryUrl: string;
  newOrderRequests: () => number;
  close: () => Promise<void>;
}

export async function startRateLimitCa(pebble: Pebble, retryAfterSeconds: number): Promise<RateLimitCa> {
  const ca = await readFile(pebble.serverCaFile, 'utf8');
  const upstream = await new Promise<Record<string, unknown>>((resolve, reject) => {
    https.get(pebble.directoryUrl, { ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
  let refused = 0;
  const server = http.createServer((req, res) => {
    const port = (server.address() as AddressInfo).port;
    if (req.url === '/dir') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...upstream, newOrder: `http://127.0.0.1:${port}/new-order` }));
      return;
    }
    if (req.url === '/new-order' && req.method === 'POST') {
      refused += 1;
      req.resume();
      res.writeHead(429, { 'content-type': 'application/problem+json', 'retry-after': String(retryAfterSeconds) }).end(JSON.stringify({
        type: 'urn:ietf:params:acme:error:rateLimited',
        detail: 'too many new orders (300) from this account in the last 3h0m0s',
        status: 429,
      }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    directoryUrl: `http://127.0.0.1:${port}/dir`,
    newOrderRequests: () => refused,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
