/**
 * `padlock status` against a real AdminServer on 127.0.0.1 port 0, through
 * the command's own `runStatus` (output injected). Once the command is
 * registered in cli/index.ts, the same cases can spawn bin/padlock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AdminServer } from '../../src/observe/admin.js';
import { buildStatusDocument, type StatusDocument } from '../../src/observe/status.js';
import { adminUrl, formatStatus, runStatus } from '../../src/cli/status.js';

const NOW = new Date('2026-11-26T12:00:00Z');
const TOKEN = 'status-cli-token-0123456789abcdef';

function fixture(): StatusDocument {
  return buildStatusDocument({
    now: NOW,
    ready: true,
    listeners: { http: 80, https: 443, admin: 9180 },
    docker: { connected: true, since: '2026-11-26T11:00:00Z' },
    sites: [
      { host: 'app.example.com', upstreams: [{ url: 'http://10.0.0.1:80', containerName: 'app-1' }], https: true, redirect: true, issuer: 'acme' },
      { host: 'shop.example.com', upstreams: [{ url: 'http://10.0.0.2:80', containerName: 'shop-1' }], https: true, redirect: true, issuer: 'acme' },
    ],
    problems: [{ code: 'LABEL_INVALID_PORT', message: 'padlock.port on container web-9: "eighty" is not a port; set it to the port the app listens on', containerName: 'web-9' }],
    certificates: [
      { name: 'app.example.com', state: 'valid', issuer: 'acme', notAfter: '2027-01-30T00:00:00.000Z', renewAt: '2026-12-31T00:00:00.000Z' },
      {
        name: 'shop.example.com', state: 'waiting', issuer: 'acme', nextAttemptAt: '2026-11-26T13:40:00.000Z',
        lastError: { code: 'ACME_CHALLENGE_FAILED', message: 'the CA could not validate shop.example.com (unauthorized): 404. Make sure port 80 reaches padlock.', acmeType: 'unauthorized' },
      },
    ],
  });
}

const io = () => {
  const out = { stdout: '', stderr: '' };
  return { out, io: { stdout: (s: string) => (out.stdout += s), stderr: (s: string) => (out.stderr += s), color: false } };
};

describe('padlock status: the table', () => {
  it('prints the summary, problems first with their fix hint, then one row per name', () => {
    const text = formatStatus(fixture(), { color: false });
    const lines = text.split('\n');
    assert.match(lines[0]!, /^padlock: ready, 2 names, 2 problems, docker connected/);
    const attention = text.indexOf('Needs attention');
    const table = text.indexOf('NAME');
    assert.ok(attention > 0 && table > attention, 'problems come before the table');
    assert.match(text, /✗ shop\.example\.com: no certificate: obtaining failed \(unauthorized\)\n {6}the CA could not validate .* Make sure port 80 reaches padlock\.\n {6}next attempt in 2 h \(2026-11-26 13:40 UTC\)/);
    assert.match(text, /✗ web-9: route refused \(LABEL_INVALID_PORT\)\n {6}padlock\.port on container web-9/);
    const shop = lines.findIndex((l) => l.startsWith('shop.example.com'));
    const app = lines.findIndex((l) => l.startsWith('app.example.com'));
    assert.ok(shop > lines.findIndex((l) => l.startsWith('NAME')) && app > shop, 'the failing name is listed first');
    assert.match(lines[app]!, /app-1 +valid +2027-01-30 \(64 d\) +in 35 days: the renewal policy/);
    assert.doesNotMatch(text, /\x1b\[/, 'no colour when not on a TTY');
  });

  it('colours only when asked (a TTY)', () => {
    assert.match(formatStatus(fixture(), { color: true }), /\x1b\[31m/);
  });

  it('says so when nothing is routed', () => {
    assert.match(formatStatus({ ready: true, time: NOW.toISOString(), routes: [], attention: [], docker: 'disabled' }, { color: false }), /No routes yet/);
  });

  it('maps a wildcard admin address to loopback and brackets IPv6', () => {
    assert.equal(adminUrl('0.0.0.0:9180'), 'http://127.0.0.1:9180');
    assert.equal(adminUrl('[::1]:9180'), 'http://[::1]:9180');
  });
});

describe('padlock status against a running admin API', () => {
  let open: AdminServer;
  let locked: AdminServer;
  let openPort: number;
  let lockedPort: number;
  before(async () => {
    open = new AdminServer({ listen: '127.0.0.1:0', status: fixture, ready: () => true });
    locked = new AdminServer({ listen: '127.0.0.1:0', status: fixture, ready: () => true, token: TOKEN, requireToken: true });
    openPort = (await open.listen()).port;
    lockedPort = (await locked.listen()).port;
  });
  after(async () => {
    await open.close();
    await locked.close();
  });

  it('prints the table and exits 0', async () => {
    const { out, io: o } = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${openPort}`, json: false }, o), 0);
    assert.match(out.stdout, /^padlock: ready, 2 names/);
    assert.match(out.stdout, /shop\.example\.com/);
    assert.equal(out.stderr, '');
  });

  it('--json prints the document exactly as the API sent it', async () => {
    const { out, io: o } = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${openPort}`, json: true }, o), 0);
    assert.deepEqual(JSON.parse(out.stdout), JSON.parse(JSON.stringify(fixture())));
  });

  it('sends the token, and says what to do when it is missing or wrong', async () => {
    const ok = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${lockedPort}`, token: TOKEN, json: false }, ok.io), 0);
    const missing = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${lockedPort}`, json: false }, missing.io), 1);
    assert.match(missing.out.stderr, /requires a token: pass --admin-token or set PADLOCK_ADMIN_TOKEN/);
    const wrong = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${lockedPort}`, token: 'wrong-token-wrong-token', json: false }, wrong.io), 1);
    assert.match(wrong.out.stderr, /refused the token/);
    assert.doesNotMatch(wrong.out.stderr + missing.out.stderr, new RegExp(TOKEN));
  });

  it('exits 1 with a clear message when nothing listens there', async () => {
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const { out, io: o } = io();
    assert.equal(await runStatus({ adminListen: `127.0.0.1:${port}`, json: false }, o), 1);
    assert.match(out.stderr, new RegExp(`^padlock: cannot reach padlock's admin API at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)\\. Is "padlock run" running\\? .*--admin-listen ADDR:PORT`));
    assert.equal(out.stdout, '');
  });

  it('exits 64 on a malformed --admin-listen', async () => {
    const { out, io: o } = io();
    assert.equal(await runStatus({ adminListen: 'nine-one-eighty', json: false }, o), 64);
    assert.match(out.stderr, /must be ADDR:PORT/);
  });
});
