/**
 * Companion mode beside nginx: the files nginx-proxy reads, and the reload,
 * through a real private dockerd (signal) and a real shell (command).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDockerd, type Dockerd } from '../support/dockerd.js';
import { TestPki, DAY } from '../support/certs.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Companion } from '../../src/companion/companion.js';
import { companionConfigProblems, companionConfigSchema } from '../../src/companion/config.js';
import { companionChallenge, companionFromConfig, companionInitial } from '../../src/companion/wiring.js';
import { createReloadDocker } from '../../src/companion/docker-reload.js';
import type { CompanionCertificate } from '../../src/companion/writer.js';
import type { ReloadOutcome } from '../../src/companion/reloader.js';

let dockerd: Dockerd;
let pki: TestPki;
let work: string;
const certs: CompanionCertificate[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function lines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean);
}
/** Polls until `test` holds, at most `ms`. */
async function until(what: string, test: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await test()) return;
    await sleep(50);
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

/** A busybox "nginx": traps SIGHUP and appends a line to /out/log in a bind-mounted folder. */
async function fakeNginx(name: string, labels: Record<string, string>, out: string): Promise<void> {
  const c = await dockerd.docker.createContainer({
    name,
    Image: dockerd.image,
    Cmd: ['/bin/sh', '-c', 'trap "echo reloaded >> /out/log" HUP; echo ready >> /out/log; while true; do sleep 1 & wait $!; done'],
    Labels: labels,
    StopTimeout: 1,
    HostConfig: { NetworkMode: 'host', Binds: [`${out}:/out`] },
  });
  await c.start();
  await until(`${name} to trap SIGHUP`, async () => (await lines(join(out, 'log'))).includes('ready'));
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'padlock-companion-'));
  pki = await TestPki.create();
  const now = Date.now();
  const root = await pki.issue({ cn: 'Companion Test Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
  const inter = await pki.issue({ cn: 'Companion Test Intermediate', kind: 'ca', issuer: root, notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) });
  for (const [name, ...more] of [['app.example.com', 'www.app.example.com'], ['api.example.com']]) {
    const leaf = await pki.issue({ cn: name!, kind: 'leaf', names: [name!, ...more], issuer: inter, notBefore: new Date(now - DAY), notAfter: new Date(now + 20 * DAY) });
    certs.push({ name: name!, domains: [name!, ...more], fullchainPem: leaf.cert + inter.cert, chainPem: inter.cert, keyPem: leaf.key, certPem: leaf.cert });
  }
  dockerd = await startDockerd();
});

after(async () => {
  await dockerd?.stop();
  await pki?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Companion', () => {
  it('writes the nginx-proxy layout and sends one SIGHUP through Docker for two certificates at once', async () => {
    const dir = join(work, 'certs');
    const nginxOut = await mkdtemp(join(work, 'nginx-'));
    const otherOut = await mkdtemp(join(work, 'other-'));
    const proxyOut = await mkdtemp(join(work, 'proxy-'));
    await fakeNginx('nginx', { 'padlock.nginx': 'true' }, nginxOut);
    await fakeNginx('nginx-proxy', { 'com.github.nginx-proxy.nginx': '' }, proxyOut);
    await fakeNginx('unrelated', { 'padlock.nginx': 'false' }, otherOut);

    const companion = new Companion({
      dir,
      debounceMs: 300,
      reload: { kind: 'signal', labels: ['padlock.nginx=true', 'com.github.nginx-proxy.nginx'], signal: 'SIGHUP', docker: createReloadDocker({ dockerHost: dockerd.dockerHost }) },
    });
    const reloads: ReloadOutcome[] = [];
    companion.on('reloaded', (o) => reloads.push(o));
    companion.on('reload_failed', (o) => reloads.push(o));

    const results = await Promise.all(certs.map((c) => companion.onCertificate(c)));
    assert.ok(results.every((r) => r.ok && r.changed), JSON.stringify(results));

    const [app, api] = certs;
    assert.equal(await readFile(join(dir, 'app.example.com.crt'), 'utf8'), app!.fullchainPem);
    assert.equal(await readFile(join(dir, 'app.example.com.key'), 'utf8'), app!.keyPem);
    assert.equal(await readFile(join(dir, 'app.example.com.chain.pem'), 'utf8'), app!.chainPem);
    assert.equal(await readFile(join(dir, 'api.example.com.crt'), 'utf8'), api!.fullchainPem);
    assert.equal((await stat(join(dir, 'app.example.com.key'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'app.example.com.crt'))).mode & 0o777, 0o644);
    assert.equal((await stat(join(dir, 'app.example.com.chain.pem'))).mode & 0o777, 0o644);
    // The second name on a certificate: relative links, as nginx-proxy looks up by VIRTUAL_HOST.
    assert.ok((await lstat(join(dir, 'www.app.example.com.crt'))).isSymbolicLink());
    assert.equal(await readlink(join(dir, 'www.app.example.com.key')), 'app.example.com.key');
    assert.equal(await readFile(join(dir, 'www.app.example.com.crt'), 'utf8'), app!.fullchainPem);

    await companion.flush();
    await until('the labelled containers to log the reload', async () =>
      (await lines(join(nginxOut, 'log'))).includes('reloaded') && (await lines(join(proxyOut, 'log'))).includes('reloaded'));
    await sleep(800); // a second (wrong) reload would land by now
    assert.deepEqual(await lines(join(nginxOut, 'log')), ['ready', 'reloaded'], 'exactly one SIGHUP for two certificates');
    assert.deepEqual(await lines(join(proxyOut, 'log')), ['ready', 'reloaded'], "nginx-proxy's own label works too");
    assert.deepEqual(await lines(join(otherOut, 'log')), ['ready'], 'a container without the label gets nothing');
    assert.equal(reloads.length, 1);
    assert.equal(reloads[0]!.ok, true);
    assert.deepEqual([...reloads[0]!.targets].sort(), ['nginx', 'nginx-proxy']);

    // Unchanged content: nothing rewritten, no reload.
    const same = await companion.onCertificate(app!);
    assert.equal(same.changed, false);
    assert.equal(companion.status().reloadPending, false);
    await companion.close();
    assert.equal(companion.status().reloads, 1);
  });

  it('exec mode runs the reload command once inside each labelled container (nginx-proxy)', async () => {
    const out = await mkdtemp(join(work, 'exec-'));
    await fakeNginx('nginx-proxy-exec', { 'padlock.test-exec': 'true' }, out);
    const docker = createReloadDocker({ dockerHost: dockerd.dockerHost });
    const companion = new Companion({
      dir: join(work, 'certs-exec'),
      debounceMs: 200,
      reload: { kind: 'exec', labels: ['padlock.test-exec=true'], command: 'echo exec-reload >> /out/log', timeoutMs: 5_000, docker },
    });
    await Promise.all(certs.map((c) => companion.onCertificate(c)));
    await companion.flush();
    await sleep(300);
    assert.deepEqual(await lines(join(out, 'log')), ['ready', 'exec-reload'], 'one exec for two certificates, and no signal');
    assert.deepEqual(companion.status().lastReload?.targets, ['nginx-proxy-exec']);
    assert.equal(companion.status().lastReload?.ok, true);
    await companion.close();

    const failing = new Companion({
      dir: join(work, 'certs-exec-fail'),
      debounceMs: 0,
      reload: { kind: 'exec', labels: ['padlock.test-exec=true'], command: 'echo "nginx: [emerg] bad config" >&2; exit 1', timeoutMs: 5_000, docker },
    });
    assert.equal((await failing.onCertificate(certs[0]!)).ok, true);
    await failing.close();
    const last = failing.status().lastReload!;
    assert.equal(last.ok, false);
    assert.match(last.error!, /could not run the reload command in nginx-proxy-exec: exit status 1: .*bad config/);
  });

  it('reports a reload with no labelled container as a failure, without throwing', async () => {
    const companion = new Companion({
      dir: join(work, 'certs-nolabel'),
      debounceMs: 0,
      reload: { kind: 'signal', labels: ['padlock.test-nobody=true'], signal: 'SIGHUP', docker: createReloadDocker({ dockerHost: dockerd.dockerHost }) },
    });
    const r = await companion.onCertificate(certs[1]!);
    assert.equal(r.ok, true);
    await companion.close();
    const last = companion.status().lastReload!;
    assert.equal(last.ok, false);
    assert.match(last.error!, /no running container carries/);
  });
});

describe('Companion with a reload command', () => {
  it('runs the command once for several certificates', async () => {
    const out = join(work, 'command.log');
    const companion = new Companion({ dir: join(work, 'certs-cmd'), debounceMs: 200, reload: { kind: 'command', command: `echo reload >> ${out}`, timeoutMs: 5_000 } });
    await Promise.all(certs.map((c) => companion.onCertificate(c)));
    await companion.flush();
    await sleep(400);
    assert.deepEqual(await lines(out), ['reload']);
    await companion.close();
  });

  it('reports a failing or hanging command and keeps going', async () => {
    const failing = new Companion({ dir: join(work, 'certs-fail'), debounceMs: 0, reload: { kind: 'command', command: 'echo broken >&2; exit 3', timeoutMs: 5_000 } });
    const failed: ReloadOutcome[] = [];
    failing.on('reload_failed', (o) => failed.push(o));
    assert.equal((await failing.onCertificate(certs[0]!)).ok, true);
    await failing.close();
    assert.equal(failed.length, 1);
    assert.match(failed[0]!.error!, /exit status 3.*broken/);

    const hanging = new Companion({ dir: join(work, 'certs-hang'), debounceMs: 0, reload: { kind: 'command', command: 'sleep 30', timeoutMs: 300 } });
    const t0 = Date.now();
    await hanging.onCertificate(certs[0]!);
    await hanging.close();
    assert.ok(Date.now() - t0 < 5_000, 'the timeout bounds the reload');
    assert.match(hanging.status().lastReload!.error!, /did not finish within 0.3 s/);
  });

  it('reports an unwritable folder without throwing', async () => {
    const file = join(work, 'not-a-folder');
    await writeFile(file, 'x');
    const companion = new Companion({ dir: file, reload: { kind: 'none' } });
    const r = await companion.onCertificate(certs[0]!);
    assert.equal(r.ok, false);
    assert.match(r.error!, /not a folder/);
    assert.equal(companion.status().writeErrors, 1);
  });
});

describe('companionInitial', () => {
  it('writes every stored lineage at start, then nothing when unchanged', async () => {
    const store = new MemoryStore();
    const [app] = certs;
    await store.putVersion('app.example.com', { cert: app!.certPem!, chain: app!.chainPem, fullchain: app!.fullchainPem, privkey: app!.keyPem }, {
      name: 'app.example.com', domains: app!.domains, server: 'https://ca.example/dir', keyType: 'ecdsa', challenge: { type: 'standalone', port: 80 }, updatedAt: new Date().toISOString(),
    });
    const out = join(work, 'initial.log');
    const companion = new Companion({ dir: join(work, 'certs-initial'), debounceMs: 0, reload: { kind: 'command', command: `echo reload >> ${out}`, timeoutMs: 5_000 } });
    const first = await companionInitial(store, companion);
    assert.deepEqual(first.map((r) => [r.name, r.ok, r.changed]), [['app.example.com', true, true]]);
    await companion.flush();
    const second = await companionInitial(store, companion);
    assert.deepEqual(second.map((r) => [r.name, r.ok, r.changed]), [['app.example.com', true, false]]);
    await companion.close();
    assert.deepEqual(await lines(out), ['reload'], 'a restart with nothing new does not reload nginx');
    assert.equal(await readFile(join(work, 'certs-initial', 'app.example.com.crt'), 'utf8'), app!.fullchainPem);
  });
});

describe('companion configuration', () => {
  it('defaults to off, with reloads opt-in and the nginx labels', () => {
    const c = companionConfigSchema.parse({});
    assert.equal(c.companionDir, undefined);
    assert.equal(c.companionReload, 'none');
    assert.deepEqual(c.companionLabels, ['padlock.nginx=true', 'com.github.nginx-proxy.nginx']);
    assert.equal(c.companionSignal, 'SIGHUP');
    assert.match(c.companionExec, /docker-gen .*nginx -s reload/);
    assert.equal(companionFromConfig(c), null);
    assert.deepEqual(companionConfigProblems(c), []);
  });

  it('names every cross-key problem', () => {
    const c = companionConfigSchema.parse({ companionReload: 'command', companionWebroot: '/srv/html' });
    const problems = companionConfigProblems(c);
    assert.equal(problems.length, 3, problems.join('\n'));
    assert.ok(problems.some((p) => /needs companionDir/.test(p)));
    assert.ok(problems.some((p) => /needs companionCommand/.test(p)));
    assert.ok(!companionConfigSchema.safeParse({ companionSignal: 'hup' }).success);
    assert.ok(!companionConfigSchema.safeParse({ companionReload: 'restart' }).success);
  });

  it('answers HTTP-01 through the shared webroot when asked', async () => {
    const webroot = join(work, 'html');
    const ch = await companionChallenge({ companionWebroot: webroot });
    assert.deepEqual(ch!.challenge, { type: 'webroot', webroot });
    await ch!.responder.present('tok_1', 'tok_1.thumb');
    assert.equal(await readFile(join(webroot, '.well-known/acme-challenge/tok_1'), 'utf8'), 'tok_1.thumb');
    await ch!.responder.close();
    assert.equal(await companionChallenge({}), undefined);
  });
});
