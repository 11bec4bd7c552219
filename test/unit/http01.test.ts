import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, readFile, stat, writeFile, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StandaloneResponder, TokenMap, WebrootResponder } from '../../src/acme/http01.js';
import { generatePrivateKey, jwkThumbprint } from '../../src/tls/keys.js';
import { createPublicKey } from 'node:crypto';
import acme from 'acme-client';
import { PadlockError } from '../../src/errors.js';

function get(port: number, path: string, host = 'app.example.com'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('standalone HTTP-01 responder', () => {
  it('answers a presented token with its key authorization, and 404 once removed', async () => {
    const port = await freePort();
    const r = new StandaloneResponder(port, '127.0.0.1');
    await r.prepare();
    try {
      await r.present('tok_-123', 'tok_-123.thumb');
      assert.deepEqual(await get(port, '/.well-known/acme-challenge/tok_-123'), { status: 200, body: 'tok_-123.thumb' });
      assert.equal((await get(port, '/.well-known/acme-challenge/other')).status, 404);
      assert.equal((await get(port, '/')).status, 404);
      await r.remove('tok_-123');
      assert.equal((await get(port, '/.well-known/acme-challenge/tok_-123')).status, 404);
    } finally {
      await r.close();
    }
  });

  it('binds once when several renewals prepare it at the same time', async () => {
    const port = await freePort();
    const r = new StandaloneResponder(port, '127.0.0.1');
    try {
      const results = await Promise.allSettled([r.prepare(), r.prepare(), r.prepare()]);
      assert.deepEqual(results.map((x) => x.status), ['fulfilled', 'fulfilled', 'fulfilled']);
      await r.present('tok', 'tok.k');
      assert.deepEqual(await get(port, '/.well-known/acme-challenge/tok'), { status: 200, body: 'tok.k' });
    } finally {
      await r.close();
    }
  });

  it('fails before any order with a clear error when the port is taken', async () => {
    const blocker = http.createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res));
    after(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const r = new StandaloneResponder(port, '127.0.0.1');
    await assert.rejects(r.prepare(), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'CHALLENGE_PORT_IN_USE');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
      assert.match(err.message, /--webroot/);
      return true;
    });
  });
});

describe('webroot HTTP-01 responder', () => {
  it('writes a world-readable token file under .well-known and removes it and its folders afterwards', async () => {
    const root = await mkdtemp(join(tmpdir(), 'padlock-webroot-'));
    after(() => rm(root, { recursive: true, force: true }));
    const r = new WebrootResponder(root);
    await r.prepare();
    await r.present('abc', 'abc.thumb');
    const file = join(root, '.well-known', 'acme-challenge', 'abc');
    assert.equal(await readFile(file, 'utf8'), 'abc.thumb');
    assert.equal((await stat(file)).mode & 0o777, 0o644);
    await r.close();
    assert.deepEqual(await readdir(root), []);
  });

  it('keeps folders that existed before', async () => {
    const root = await mkdtemp(join(tmpdir(), 'padlock-webroot-'));
    after(() => rm(root, { recursive: true, force: true }));
    const r1 = new WebrootResponder(root);
    await r1.prepare();
    await writeFile(join(root, '.well-known', 'keep.txt'), 'x');
    await r1.close();
    const r2 = new WebrootResponder(root);
    await r2.prepare();
    await r2.present('t', 't.k');
    await r2.close();
    assert.deepEqual(await readdir(join(root, '.well-known')), ['keep.txt']);
  });

  it('fails before any order when the document root cannot be written', async () => {
    const root = await mkdtemp(join(tmpdir(), 'padlock-webroot-'));
    after(() => rm(root, { recursive: true, force: true }));
    const notADir = join(root, 'file');
    await writeFile(notADir, 'x');
    await assert.rejects(new WebrootResponder(notADir).prepare(), (err: unknown) => {
      assert.ok(err instanceof PadlockError);
      assert.equal(err.code, 'CHALLENGE_WEBROOT_UNWRITABLE');
      assert.match(err.message, /cannot write challenge files in .*file\/\.well-known\/acme-challenge/);
      return true;
    });
  });
});

describe('stateless HTTP-01 answers (several replicas sharing one account)', () => {
  it("answer a token nobody presented here with token.thumbprint, and a presented token exactly", () => {
    const tokens = new TokenMap();
    assert.equal(tokens.get('abc_DEF-123'), undefined, 'off by default: an unknown token is unknown');
    tokens.setStateless('THUMB');
    assert.equal(tokens.get('abc_DEF-123'), 'abc_DEF-123.THUMB');
    tokens.set('known', 'known.OTHER-ACCOUNT');
    assert.equal(tokens.get('known'), 'known.OTHER-ACCOUNT', 'what this process presented wins');
    assert.equal(tokens.get('../etc/passwd'), undefined, 'only token-shaped strings');
    assert.equal(tokens.get('x'.repeat(200)), undefined, 'no huge echoes');
    tokens.setStateless(undefined);
    assert.equal(tokens.get('abc_DEF-123'), undefined);
  });

  it("computes the account key's JWK thumbprint as RFC 7638 section 3.1 does", () => {
    // The RFC's example RSA key (public half); padlock computes the same thumbprint from a PEM.
    const n = '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
    const pem = createPublicKey({ key: { kty: 'RSA', n, e: 'AQAB' }, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
    assert.equal(jwkThumbprint(pem), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
  });

  it('matches the key authorization acme-client computes for an EC account key', async () => {
    const key = await generatePrivateKey({ keyType: 'ecdsa', ellipticCurve: 'P-256' });
    const client = new acme.Client({ directoryUrl: 'https://127.0.0.1:1/dir', accountKey: key });
    const ka = await client.getChallengeKeyAuthorization({ type: 'http-01', url: 'https://127.0.0.1:1/chall', status: 'pending', token: 'tok' } as never);
    assert.equal(ka, `tok.${jwkThumbprint(key)}`);
  });
});
