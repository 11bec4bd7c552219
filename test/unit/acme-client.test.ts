/**
 * padlock's ACME transport against small loopback servers that misbehave
 * in ways a CA can: answers cut in the middle.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { AcmeClient } from '../../src/acme/client.js';
import { generatePrivateKey } from '../../src/tls/keys.js';
import { PadlockError } from '../../src/errors.js';

/** A server that sends the head and half a body, then closes the connection. */
async function cutServer(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = net.createServer((sock) => {
    sock.once('data', () => {
      sock.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"newNonce":"http://');
      setTimeout(() => sock.destroy(), 50);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return { url: `http://127.0.0.1:${port}/dir`, close: () => new Promise((r) => server.close(() => r())) };
}

describe('the ACME transport when an answer is cut off', () => {
  it('reports an answer cut off in the middle as ACME_UNREACHABLE naming the step, never an untyped error', async () => {
    const s = await cutServer();
    const client = await AcmeClient.create({ directoryUrl: s.url, accountKey: await generatePrivateKey({ keyType: 'ecdsa' }), timeoutMs: 5_000 });
    try {
      for (const attempt of [() => client.directory(), () => client.get(s.url)]) {
        await assert.rejects(attempt(), (err: unknown) => {
          assert.ok(err instanceof PadlockError, String(err));
          assert.equal(err.code, 'ACME_UNREACHABLE');
          assert.equal(err.retryable, true);
          assert.match(err.message, /^reading the directory: .*\(ECONNRESET\): the connection was cut; padlock tries again later$|^fetching renewal information: .*\(ECONNRESET\): the connection was cut; padlock tries again later$/);
          return true;
        });
      }
    } finally {
      client.close();
      await s.close();
    }
  });
});
