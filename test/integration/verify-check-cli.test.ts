/**
 * `padlock verify` and `padlock check` as a user runs them: the built CLI,
 * real files, and real TLS servers on 127.0.0.1 port 0. Trust is always passed
 * with --roots / --trusted-roots; names are never resolved (--connect-to).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliResult } from '../support/cli.js';
import { DAY, TestPki, newKey, type TestCert } from '../support/certs.js';

const now = Date.now();
const rel = (days: number): Date => new Date(now + days * DAY);

let pki: TestPki;
let root: TestCert;
let inter: TestCert;
let leaf: TestCert;
let soon: TestCert;
let strangerRoot: TestCert;
const files: Record<string, string> = {};
const servers: Server[] = [];
let goodPort = 0;
let soonPort = 0;
let closedPort = 0;

function listen(cert: TestCert): Promise<number> {
  const server = createServer({ key: cert.key, cert: cert.cert + inter.cert, ALPNProtocols: ['http/1.1'] }, (s) => s.end());
  server.on('tlsClientError', () => {}); // clients that hang up early are expected
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

function closedLoopbackPort(): Promise<number> {
  const srv = createNetServer();
  return new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    }),
  );
}

/** stdout must be exactly one line; returns it. */
function oneLine(res: CliResult): string {
  const lines = res.stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one line on stdout, got:\n${res.stdout}\nstderr:\n${res.stderr}`);
  return lines[0]!;
}

before(async () => {
  pki = await TestPki.create();
  const long = { notBefore: rel(-365), notAfter: rel(3650) };
  root = await pki.issue({ cn: 'Padlock CLI Root', kind: 'ca', ...long });
  inter = await pki.issue({ cn: 'Padlock CLI Intermediate', kind: 'ca', issuer: root, ...long });
  leaf = await pki.issue({ cn: 'app.example.com', kind: 'leaf', issuer: inter, names: ['app.example.com', 'www.example.com'], notBefore: rel(-1), notAfter: rel(60) });
  soon = await pki.issue({ cn: 'soon.example.com', kind: 'leaf', issuer: inter, names: ['soon.example.com'], notBefore: rel(-80), notAfter: rel(5) });
  strangerRoot = await pki.issue({ cn: 'Stranger Root', kind: 'ca', ...long });
  files.root = root.certFile;
  files.inter = inter.certFile;
  files.leaf = leaf.certFile;
  files.key = leaf.keyFile;
  files.otherKey = await pki.file('other-key.pem', newKey());
  files.fullchain = await pki.file('fullchain.pem', leaf.cert + inter.cert);
  files.stranger = strangerRoot.certFile;
  goodPort = await listen(leaf);
  soonPort = await listen(soon);
  closedPort = await closedLoopbackPort();
});

after(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await pki?.cleanup();
});

describe('padlock verify', () => {
  it('exits 0 with one OK line naming the names, issuer and days left', async () => {
    const res = await runCli(['verify', '--cert', files.leaf!, '--chain', files.inter!, '--key', files.key!, '--name', 'app.example.com', '--roots', files.root!]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(
      oneLine(res),
      /^OK: app\.example\.com \(names: app\.example\.com, www\.example\.com\) issued by Padlock CLI Intermediate, valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((59|60) days left\)$/,
    );
  });

  it('accepts a fullchain file with the intermediate after the leaf', async () => {
    const res = await runCli(['verify', '--cert', files.fullchain!, '--roots', files.root!]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('adds --trusted-roots to the system store', async () => {
    const res = await runCli(['verify', '--cert', files.fullchain!, '--trusted-roots', files.root!], { env: { SSL_CERT_FILE: undefined, SSL_CERT_DIR: undefined } });
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('exits 1 with one INVALID line when --at is after the certificate expired', async () => {
    const at = rel(90).toISOString();
    const res = await runCli(['verify', '--cert', files.fullchain!, '--roots', files.root!, '--at', at]);
    assert.equal(res.code, 1);
    assert.match(oneLine(res), /^INVALID: certificate for app\.example\.com expired on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('exits 1 naming the missing intermediate when no chain is given', async () => {
    const res = await runCli(['verify', '--cert', files.leaf!, '--roots', files.root!]);
    assert.equal(res.code, 1);
    assert.match(oneLine(res), /^INVALID: .*app\.example\.com.*"Padlock CLI Intermediate"/);
  });

  it('exits 1 when the key belongs to another certificate', async () => {
    const res = await runCli(['verify', '--cert', files.fullchain!, '--key', files.otherKey!, '--roots', files.root!]);
    assert.equal(res.code, 1);
    assert.match(oneLine(res), /^INVALID: .*private key does not match.*app\.example\.com/);
  });

  it('prints one JSON object with the path on success (--json)', async () => {
    const res = await runCli(['verify', '--cert', files.leaf!, '--chain', files.inter!, '--roots', files.root!, '--json']);
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(oneLine(res)) as { ok: boolean; leaf: { subject: string; names: string[]; keyType: string }; path: { subject: string }[] };
    assert.equal(out.ok, true);
    assert.deepEqual(out.leaf.names, ['app.example.com', 'www.example.com']);
    assert.equal(out.leaf.keyType, 'ecdsa P-256');
    assert.deepEqual(out.path.map((p) => p.subject), ['app.example.com', 'Padlock CLI Intermediate', 'Padlock CLI Root']);
  });

  it('prints one JSON object with the code and reason on failure (--json)', async () => {
    const res = await runCli(['verify', '--cert', files.fullchain!, '--roots', files.stranger!, '--json']);
    assert.equal(res.code, 1);
    const out = JSON.parse(oneLine(res)) as { ok: boolean; code: string; reason: string };
    assert.equal(out.ok, false);
    assert.equal(out.code, 'CHAIN_UNTRUSTED');
    assert.match(out.reason, /app\.example\.com.*Padlock CLI Root/);
  });

  it('lists each path tried with its reason code when no path is valid (--json)', async () => {
    const res = await runCli(['verify', '--cert', files.fullchain!, '--roots', files.stranger!, '--json']);
    assert.equal(res.code, 1);
    const out = JSON.parse(oneLine(res)) as { reasonCode: string; clause: string; paths: { path: { subject: string }[]; anchored: boolean; reasonCode: string; message: string }[] };
    assert.equal(out.reasonCode, 'untrusted-issuer');
    assert.match(out.clause, /RFC 5280/);
    assert.deepEqual(out.paths.map((p) => [p.path.map((c) => c.subject), p.anchored, p.reasonCode]), [
      [['app.example.com', 'Padlock CLI Intermediate'], false, 'untrusted-issuer'],
    ]);
  });

  it('verifies without any openssl program on PATH', async () => {
    // bin/padlock needs only sh, dirname and readlink; openssl is left out on purpose.
    const bin = await mkdtemp(join(tmpdir(), 'padlock-no-openssl-'));
    try {
      for (const tool of ['dirname', 'readlink']) await symlink(`/usr/bin/${tool}`, join(bin, tool));
      const res = await runCli(['verify', '--cert', files.fullchain!, '--roots', files.root!, '--name', 'www.example.com'], { env: { PATH: bin } });
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.match(oneLine(res), /^OK: app\.example\.com/);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });

  for (const [desc, args] of [
    ['exits 64 on an --at that is not ISO 8601', ['--cert', 'x.pem', '--at', 'next tuesday']],
    ['exits 64 without --cert', ['--roots', 'x.pem']],
    ['exits 64 when --cert cannot be read', ['--cert', '/nonexistent/cert.pem', '--roots', '/nonexistent/root.pem']],
  ] as const) {
    it(desc, async () => {
      const res = await runCli(['verify', ...args.map((a) => (a === 'x.pem' ? files.leaf! : a))]);
      assert.equal(res.code, 64, res.stdout + res.stderr);
      assert.match(res.stderr, /padlock: /);
    });
  }
});

describe('padlock check', () => {
  const check = (target: string, ...args: string[]) => runCli(['check', target, '--connect-to', '127.0.0.1', ...args]);

  it('exits 0 for a server sending leaf and intermediate, printing issuer and days left', async () => {
    const res = await check(`app.example.com:${goodPort}`, '--roots', files.root!);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const line = oneLine(res);
    assert.match(line, /^OK: app\.example\.com:\d+ \(at 127\.0\.0\.1\): /);
    assert.match(line, /issued by Padlock CLI Intermediate/);
    assert.match(line, /\((59|60) days left\)/);
  });

  it('exits 2 when the certificate expires within --warn-days', async () => {
    const res = await check(`soon.example.com:${soonPort}`, '--roots', files.root!, '--warn-days', '14');
    assert.equal(res.code, 2, res.stdout + res.stderr);
    assert.match(oneLine(res), /soon\.example\.com.*\b[45] days left.*--warn-days 14/);
  });

  it('exits 0 for the same certificate when --warn-days is lower than its days left', async () => {
    const res = await check(`soon.example.com:${soonPort}`, '--roots', files.root!, '--warn-days', '3');
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('exits 1 when the servername is not covered by the certificate', async () => {
    const res = await check(`app.example.com:${goodPort}`, '--servername', 'other.example.com', '--roots', files.root!);
    assert.equal(res.code, 1);
    assert.match(oneLine(res), /^INVALID: .*does not cover other\.example\.com/);
  });

  it('exits 1 and says unreachable for a closed port', async () => {
    const res = await check(`app.example.com:${closedPort}`, '--roots', files.root!, '--timeout', '5');
    assert.equal(res.code, 1);
    const line = oneLine(res);
    assert.match(line, /unreachable/i);
    assert.ok(line.includes(`app.example.com:${closedPort}`), line);
    assert.match(line, /ECONNREFUSED/);
  });

  it('exits 1 and says unreachable when the server never answers the handshake (--timeout)', async () => {
    // A loopback TCP server that accepts and stays silent.
    const held = new Set<Socket>();
    const silent = createNetServer((sock) => {
      held.add(sock);
      sock.on('error', () => {});
      sock.on('close', () => held.delete(sock));
    });
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    try {
      const res = await check(`app.example.com:${port}`, '--roots', files.root!, '--timeout', '1');
      assert.equal(res.code, 1);
      assert.match(oneLine(res), /^UNREACHABLE: app\.example\.com:\d+ \(at 127\.0\.0\.1\) is unreachable: no TLS handshake within 1 s$/);
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('exits 1 as untrusted when --roots leaves out the server\'s root', async () => {
    const res = await check(`app.example.com:${goodPort}`, '--roots', files.stranger!, '--json');
    assert.equal(res.code, 1);
    const out = JSON.parse(oneLine(res)) as { ok: boolean; status: string; code: string; reason: string };
    assert.deepEqual([out.ok, out.status, out.code], [false, 'invalid', 'CHAIN_UNTRUSTED']);
    assert.match(out.reason, /Padlock CLI Root/);
  });

  it('connects to an IP literal target and checks the name given by --servername', async () => {
    const res = await runCli(['check', `127.0.0.1:${goodPort}`, '--servername', 'www.example.com', '--roots', files.root!]);
    assert.equal(res.code, 0, res.stdout + res.stderr);
  });

  it('parses an IPv6 literal target', async () => {
    // Nothing listens on [::1] here; what matters is that the target parses and the error names it.
    const res = await runCli(['check', `[::1]:${closedPort}`, '--roots', files.root!, '--timeout', '5']);
    assert.equal(res.code, 1, res.stderr);
    assert.ok(oneLine(res).includes(`[::1]:${closedPort}`), res.stdout);
  });

  it('judges the chain as of --at: expired after its notAfter, and expiring soon before it', async () => {
    const expired = await check(`app.example.com:${goodPort}`, '--roots', files.root!, '--at', rel(61).toISOString(), '--json');
    assert.equal(expired.code, 1, expired.stdout + expired.stderr);
    const out = JSON.parse(oneLine(expired)) as { status: string; code: string; reasonCode: string; reason: string };
    assert.deepEqual([out.status, out.code, out.reasonCode], ['invalid', 'CERT_EXPIRED', 'expired']);
    assert.match(out.reason, /certificate for app\.example\.com expired on/);
    const soon = await check(`app.example.com:${goodPort}`, '--roots', files.root!, '--at', rel(50).toISOString(), '--warn-days', '14');
    assert.equal(soon.code, 2, soon.stdout + soon.stderr);
    assert.match(oneLine(soon), /^EXPIRING: .*\((9|10) days left\)/);
  });

  it('exits 64 on an --at that is not ISO 8601', async () => {
    const res = await check(`app.example.com:${goodPort}`, '--roots', files.root!, '--at', 'soon');
    assert.equal(res.code, 64);
    assert.match(res.stderr, /--at "soon" is not an ISO 8601 time/);
  });

  it('exits 64 on a target with a bad port', async () => {
    const res = await runCli(['check', 'app.example.com:99999', '--connect-to', '127.0.0.1']);
    assert.equal(res.code, 64);
    assert.match(res.stderr, /port "99999"/);
  });
});
