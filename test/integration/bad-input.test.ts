/**
 * Bad input gets a clear error before any order is placed, and loses nothing.
 * Every case here checks the message a person would read and that the CA saw no order.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { writeFile, readdir, mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { runCli } from '../support/cli.js';
import { pebbleFlags, tempConfigDir, uniqueName } from '../support/padlock.js';

let pebble: Pebble;
let cfg: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  pebble = await startPebble();
  cfg = await tempConfigDir();
});
after(async () => {
  await pebble?.stop();
  await cfg?.cleanup();
});

/** The progress lines show an order step only once padlock has asked the CA for one. */
const assertNoOrder = (stderr: string) => assert.doesNotMatch(stderr, /^ {2}(account|order) /m, 'no account or order step ran');
const lineages = async (dir: string) => (await readdir(join(dir, 'live')).catch(() => [] as string[])).filter((f) => f !== 'README');

describe('padlock issue refuses bad input before ordering', () => {
  it('lists every invalid name at once: empty, too long, bad label, wildcard without DNS-01 (an IP address is valid since IP certificates)', async () => {
    const r = await runCli(['issue', '-d', '', '-d', `${'a'.repeat(250)}.example.com`, '-d', 'bad_label.example.com', '-d', '192.0.2.7', '-d', '*.example.com', ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"": the name is empty/);
    assert.match(r.stderr, /the limit is 253/);
    assert.match(r.stderr, /"bad_label\.example\.com": the label "bad_label" may hold only letters, digits and inner hyphens/);
    assert.doesNotMatch(r.stderr, /192\.0\.2\.7/, 'an IP address is a valid identifier');
    assert.match(r.stderr, /"\*\.example\.com": wildcard names need the DNS-01 challenge/);
    assert.match(r.stderr, /\[CONFIG_INVALID\]/);
    assertNoOrder(r.stderr);
    assert.deepEqual(await lineages(cfg.dir), []);
  });

  it('normalises uppercase and a trailing dot instead of refusing them', async () => {
    const name = uniqueName('norm');
    const r = await runCli(['issue', '-d', `${name.toUpperCase()}.`, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await lineages(cfg.dir)).includes(name));
  });

  it('reports several bad options together', async () => {
    const r = await runCli(['issue', '-d', 'ok.example.com', '--email', 'not-an-email', '--eab-kid', 'kid-only', '--http-01-port', '70000', '--webroot', ...pebbleFlags(pebble).filter((f, i, a) => f !== '--http-01-port' && a[i - 1] !== '--http-01-port' && f !== '--email' && a[i - 1] !== '--email'), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /4 problems/);
    assert.match(r.stderr, /--email "not-an-email" is not an email address/);
    assert.match(r.stderr, /needs both --eab-kid and --eab-hmac-key/);
    assert.match(r.stderr, /--http-01-port 70000 is not a port/);
    assert.match(r.stderr, /--webroot needs -w DIR/);
  });

  it('says when the config dir cannot be used', async () => {
    const file = join(cfg.dir, 'not-a-dir');
    await writeFile(file, 'x');
    const r = await runCli(['issue', '-d', uniqueName('cfg'), ...pebbleFlags(pebble), '--config-dir', join(file, 'sub')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not-a-dir\/sub.*\[CONFIG_DIR_UNUSABLE\]/);
  });

  it('says when the HTTP-01 port is already taken, before any order', async () => {
    const blocker = http.createServer((_q, s) => s.end('someone else'));
    await new Promise<void>((res) => blocker.listen(pebble.httpPort, '127.0.0.1', res));
    try {
        const name = uniqueName('busy');
      const r = await runCli(['issue', '-d', name, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`port 127\\.0\\.0\\.1:${pebble.httpPort} is already in use.*\\[CHALLENGE_PORT_IN_USE\\]`));
      assertNoOrder(r.stderr);
      assert.ok(!(await lineages(cfg.dir)).includes(name));
    } finally {
      await new Promise((res) => blocker.close(res));
    }
  });

  it('says when the webroot cannot be written, before any order', async () => {
    const root = await mkdtemp(join(tmpdir(), 'padlock-www-'));
    after(() => rm(root, { recursive: true, force: true }));
    await writeFile(join(root, '.well-known'), 'a file where a folder should be');
    const r = await runCli(['issue', '-d', uniqueName('webroot'), '--webroot', '-w', root, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot write challenge files in .*\.well-known\/acme-challenge .*\[CHALLENGE_WEBROOT_UNWRITABLE\]/);
  });

  it('says when the CA cannot be reached', async () => {
    const closed = await new Promise<number>((res) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => res(p));
      });
    });
    const flags = pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? `https://127.0.0.1:${closed}/dir` : f));
    const r = await runCli(['issue', '-d', uniqueName('unreach'), ...flags, '--config-dir', cfg.dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot reach the CA at https://127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\).*\\[ACME_UNREACHABLE\\]`));
  });

  it('gives up on a CA that never answers, within the timeout', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const flags = pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? `https://127.0.0.1:${port}/dir` : f));
      const r = await runCli(['issue', '-d', uniqueName('hang'), ...flags, '--timeout', '1', '--config-dir', cfg.dir], { timeoutMs: 20_000 });
      assert.equal(r.code, 1, 'it exited on its own');
      assert.match(r.stderr, /did not answer .* within 1 s.*\[ACME_UNREACHABLE\]/);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((res) => silent.close(res));
    }
  });

  it('says when the URL is not an ACME directory', async () => {
    const notAcme = http.createServer((_q, s) => s.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    await new Promise<void>((res) => notAcme.listen(0, '127.0.0.1', res));
    try {
      const port = (notAcme.address() as net.AddressInfo).port;
      const flags = pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? `http://127.0.0.1:${port}/directory` : f));
      const r = await runCli(['issue', '-d', uniqueName('notacme'), ...flags, '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`http://127\\.0\\.0\\.1:${port}/directory is not an ACME directory .*\\[ACME_BAD_DIRECTORY\\]`));
    } finally {
      await new Promise((res) => notAcme.close(res));
    }
  });

  it('treats a rate-limited directory as "try later", honouring its Retry-After', async () => {
    const busy = http.createServer((_q, res) => res.writeHead(429, { 'retry-after': '7200', 'content-type': 'text/plain' }).end('slow down'));
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', res));
    try {
      const port = (busy.address() as net.AddressInfo).port;
      const name = uniqueName('busyca');
      const flags = pebbleFlags(pebble).map((f) => (f === pebble.directoryUrl ? `http://127.0.0.1:${port}/dir` : f));
      const r = await runCli(['issue', '-d', name, ...flags, '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      // Busy, not unreachable: the code says so, and the message says when padlock will try again.
      assert.match(r.stderr, new RegExp(`reading the directory: the CA at http://127\\.0\\.0\\.1:${port}/dir is rate limiting \\(HTTP 429\\); padlock will try again after \\S+, as the CA asked \\[ACME_CA_UNAVAILABLE\\]`));
      const state = JSON.parse(await readFile(join(cfg.dir, 'state', `${name}.json`), 'utf8'));
      assert.ok(Date.parse(state.failure.nextAttemptAt) > Date.now() + 7000_000, 'the next attempt waits for the Retry-After');
    } finally {
      await new Promise((res) => busy.close(res));
    }
  });

  it('asks for --agree-tos when the CA has terms of service', async () => {
    const r = await runCli(['issue', '-d', uniqueName('tos'), ...pebbleFlags(pebble).filter((f) => f !== '--agree-tos'), '--config-dir', (await tempConfigDir()).dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /requires agreeing to its terms of service .*pass --agree-tos \[ACME_TOS_NOT_AGREED\]/);
  });

  it('explains a failed validation with the CA words and what to check', async () => {
    // Something else answers on the HTTP-01 port with the wrong content, as a misrouted server would.
    const impostor = http.createServer((_q, s) => s.writeHead(200).end('not the key authorization'));
    await new Promise<void>((res) => impostor.listen(pebble.httpPort, '127.0.0.1', res));
    try {
      const name = uniqueName('wrong');
      const webroot = await mkdtemp(join(tmpdir(), 'padlock-www-'));
      after(() => rm(webroot, { recursive: true, force: true }));
      const r = await runCli(['issue', '-d', name, '-d', `www.${name}`, '--webroot', '-w', webroot, ...pebbleFlags(pebble), '--config-dir', cfg.dir]);
      assert.equal(r.code, 1);
      assert.deepEqual(await readdir(webroot), [], 'every challenge file is removed, for both names');
      // Both names fail; whichever the CA reports first is named.
      assert.match(r.stderr, new RegExp(`the CA could not validate (www\\.)?${name} \\(unauthorized\\): .*The CA fetched http://(www\\.)?${name}/\\.well-known/acme-challenge/… but got the wrong answer.*\\[ACME_CHALLENGE_FAILED\\]`));
      assert.ok(!(await lineages(cfg.dir)).includes(name), 'nothing was stored');
    } finally {
      await new Promise((res) => impostor.close(res));
    }
  });
});

describe('padlock run refuses bad upstream options and forbidden static upstreams before it listens', () => {
  const ports = async () => ({ http: await freePort(), https: await freePort(), admin: await freePort() });
  const runFlags = (p: { http: number; https: number; admin: number }) =>
    ['run', '--docker', 'false', '--config-dir', cfg.dir, '--http-port', String(p.http), '--https-port', String(p.https), '--bind', '127.0.0.1', '--admin-listen', `127.0.0.1:${p.admin}`];

  it('lists every bad --allow-upstream and --trusted-proxies entry at once', async () => {
    const r = await runCli([...runFlags(await ports()), '--allow-upstream', '10.0.0.0/33,bogus', '--trusted-proxies', '127.0.0.1/32,fe80::/129'], { timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /3 configuration problems/);
    assert.match(r.stderr, /--allow-upstream: "10\.0\.0\.0\/33" has a bad prefix length: an IPv4 CIDR takes \/0 to \/32/);
    assert.match(r.stderr, /--allow-upstream: "bogus" is not an IP address or CIDR/);
    assert.match(r.stderr, /--trusted-proxies: "fe80::\/129" has a bad prefix length: an IPv6 CIDR takes \/0 to \/128/);
    assert.match(r.stderr, /\[CONFIG_INVALID\]/);
  });

  it("lists every static site whose upstream is padlock's own listener or a metadata address; --allow-upstream lifts only the latter", async () => {
    const p = await ports();
    const file = join(cfg.dir, 'forbidden-sites.yaml');
    await writeFile(file, [
      'sites:',
      '  - host: a.example.com',
      `    upstream: http://127.0.0.1:${p.admin}`,
      '  - host: b.example.com',
      '    upstream: http://169.254.169.254',
      '  - host: c.example.com',
      `    upstream: [http://127.0.0.1:3000, "https://localhost:${p.https}"]`,
    ].join('\n'));
    const r = await runCli([...runFlags(p), '--config', file], { timeoutMs: 20_000 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /3 problem\(s\) in sites/);
    assert.match(r.stderr, new RegExp(`sites\\.0\\.upstream: http://127\\.0\\.0\\.1:${p.admin} goes to padlock's own listener \\(127\\.0\\.0\\.1 port ${p.admin}\\)`));
    assert.match(r.stderr, /sites\.1\.upstream: http:\/\/169\.254\.169\.254:80 goes to 169\.254\.169\.254, a cloud metadata service address; padlock refuses it unless --allow-upstream covers it/);
    assert.match(r.stderr, new RegExp(`sites\\.2\\.upstream: https://localhost:${p.https} goes to padlock's own listener`));
    assert.match(r.stderr, /\[CONFIG_INVALID\]/);

    const allowed = await runCli([...runFlags(p), '--config', file, '--allow-upstream', '169.254.169.254/32'], { timeoutMs: 20_000 });
    assert.equal(allowed.code, 1);
    assert.match(allowed.stderr, /2 problem\(s\) in sites/);
    assert.doesNotMatch(allowed.stderr, /sites\.1\./);
  });
});
