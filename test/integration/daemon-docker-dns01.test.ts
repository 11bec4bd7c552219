/**
 * Wildcards from Docker labels, end to end: a real private dockerd, a real
 * Knot server that padlock updates over RFC 2136 and Pebble validates
 * against, and `padlock run` with a `dns:` section. A container's
 * `padlock.host=*.BASE` label is accepted because a provider covers BASE;
 * another container's names under it share the wildcard's certificate (no
 * lineage of their own); a wildcard no provider covers is refused with
 * LABEL_WILDCARD, alone: the same container's other name still routes; and
 * padlock.challenge=dns-01 gets an internal name (no wildcard) over DNS-01.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { rfc2136DnsSection, startKnot, type Knot } from '../support/knot.js';
import { startDockerd, type Dockerd, type TestContainer } from '../support/dockerd.js';
import { tempConfigDir, pebbleRunFlags } from '../support/padlock.js';
import { startPadlockRun, httpsGet, waitFor, stopRunTest, type RunningDaemon } from '../support/daemon.js';
import { runCli } from '../support/cli.js';

let knot: Knot;
let pebble: Pebble;
let dockerd: Dockerd;
let cfg: { dir: string; cleanup: () => Promise<void> };
let daemon: RunningDaemon;
const containers: TestContainer[] = [];
const base = `dk-${process.pid}.example.com`;
const uncovered = `dk-${process.pid}.example.net`;

async function run(name: string, labels: Record<string, string>): Promise<TestContainer> {
  const c = await dockerd.runContainer({ name, port: await freePort(), labels });
  containers.push(c);
  return c;
}

/** HTTPS for `name` once it answers 200 with `text` (the container's name) in the body. */
const served = (name: string, text: string) => waitFor(`${name} to serve "${text}"`, async () => {
  const r = await httpsGet(daemon.httpsPort, name, pebble.rootPem).catch(() => undefined);
  return r && r.status === 200 && r.body.includes(text) ? r : undefined;
}, 60_000).catch((err: Error) => { throw new Error(`${err.message}\n${daemon.output().slice(-4000)}`); });

type Route = { host: string; upstreams: Array<{ containerName?: string }>; certificate: { name: string } | null; health: string };
type Problem = { code: string; message: string; containerName?: string; host?: string };

before(async () => {
  knot = await startKnot({ zones: ['example.com'] });
  [pebble, dockerd, cfg] = await Promise.all([startPebble({ dnsServer: `${knot.address}:53` }), startDockerd(), tempConfigDir()]);
  const creds = join(cfg.dir, 'rfc2136.ini');
  await writeFile(creds, knot.credentials(), { mode: 0o600 });
  const file = join(cfg.dir, 'padlock.yaml');
  await writeFile(file, [
    ...rfc2136DnsSection(knot, creds),
  ].join('\n'));
  daemon = await startPadlockRun(['--config', file, '--docker-host', dockerd.dockerHost, '--config-dir', join(cfg.dir, 'store'), ...pebbleRunFlags(pebble)], { httpPort: pebble.httpPort });
});
after(async () => {
  await stopRunTest({ daemon, containers, dockerd, pebble, cfg });
  await knot?.stop();
});

describe('padlock run: wildcard labels with a DNS provider (Docker)', () => {
  it('serves a container\'s several names under a wildcard label from the one wildcard certificate, with no lineage per name', async () => {
    await run('wild', { 'padlock.host': `*.${base}` });
    // The wildcard's route first, so the names below are under a wanted wildcard from the moment they appear.
    await waitFor('the wildcard route', async () => ((await daemon.status())['routes'] as Route[]).some((r) => r.host === `*.${base}`));
    await run('multi', { 'padlock.host': `a.${base},b.${base}` });

    const a = await served(`a.${base}`, 'multi');
    const b = await served(`b.${base}`, 'multi');
    const other = await served(`z.${base}`, 'wild');
    assert.equal(a.peer.subjectaltname, `DNS:*.${base}`, 'a wildcard certificate, not one for a.* itself');
    assert.equal(a.peer.serialNumber, b.peer.serialNumber, 'both names of the container share one certificate');
    assert.equal(a.peer.serialNumber, other.peer.serialNumber, 'the one the wildcard route serves');

    const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
    assert.equal(list.code, 0, list.stderr);
    const names = (JSON.parse(list.stdout).certificates as Array<{ name: string }>).map((c) => c.name);
    assert.deepEqual(names, [`wildcard_.${base}`], 'one lineage: the wildcard\'s');
    assert.match(daemon.output(), new RegExp(`"msg":"obtaining certificate".*"name":"wildcard_\\.${base.replace(/\./g, '\\.')}"`));
    assert.doesNotMatch(daemon.output(), new RegExp(`"name":"[ab]\\.${base.replace(/\./g, '\\.')}"`), 'no order for a.* or b.* on their own');

    // The status shows the exact routes with the wildcard's certificate, healthy rather than waiting for one of their own.
    const routes = (await daemon.status())['routes'] as Route[];
    for (const host of [`a.${base}`, `b.${base}`]) {
      const r = routes.find((x) => x.host === host);
      assert.deepEqual(r?.upstreams.map((u) => u.containerName), ['multi'], host);
      assert.equal(r?.certificate?.name, `wildcard_.${base}`, `${host}'s certificate in /api/status`);
      assert.equal(r?.health, 'ok', host);
    }
  });

  it('refuses a wildcard label no DNS provider covers with LABEL_WILDCARD saying how to configure DNS-01, and routes the container\'s other name', async () => {
    await run('stray', { 'padlock.host': `*.${uncovered},c.${base}` });
    const problem = await waitFor('the stray container\'s problem', async () =>
      ((await daemon.status())['problems'] as Problem[]).find((p) => p.containerName === 'stray'));
    assert.equal(problem.code, 'LABEL_WILDCARD');
    assert.match(problem.message, new RegExp(`no DNS provider in the config covers ${uncovered.replace(/\./g, '\\.')}: add one to the config file's dns\\.providers with zones: \\[${uncovered.replace(/\./g, '\\.')}\\] \\(see "DNS-01" in the README\\)`));

    // Only that name is refused: c.* routes to the same container, from the wildcard certificate.
    const c = await served(`c.${base}`, 'stray');
    const a = await httpsGet(daemon.httpsPort, `a.${base}`, pebble.rootPem);
    assert.equal(c.peer.serialNumber, a.peer.serialNumber);
    const routes = (await daemon.status())['routes'] as Route[];
    assert.ok(!routes.some((r) => r.host.endsWith(uncovered)), 'no route for the refused wildcard');
    const refused = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: daemon.httpsPort, servername: `x.${uncovered}`, rejectUnauthorized: false });
      s.once('secureConnect', () => { s.destroy(); resolve('completed'); });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    assert.equal(refused, 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', 'a name under the refused wildcard gets no certificate');
    // The other containers keep serving.
    assert.equal((await httpsGet(daemon.httpsPort, `b.${base}`, pebble.rootPem)).status, 200);
    assert.equal((await httpsGet(daemon.httpsPort, `z.${base}`, pebble.rootPem)).status, 200);
  });

  it('obtains a name with no wildcard over DNS-01 when its container asks with padlock.challenge=dns-01 (an internal service)', async () => {
    // Knot has no address for this name, so HTTP-01 could not work: only the TXT record can prove it.
    const internal = `intranet-${process.pid}.example.com`;
    await run('intranet', { 'padlock.host': internal, 'padlock.challenge': 'dns-01' });
    const r = await served(internal, 'intranet');
    assert.equal(r.peer.subjectaltname, `DNS:${internal}`);
    const list = await runCli(['certificates', '--json', '--config-dir', join(cfg.dir, 'store')]);
    const names = (JSON.parse(list.stdout).certificates as Array<{ name: string }>).map((c) => c.name).sort();
    assert.deepEqual(names, [internal, `wildcard_.${base}`].sort());
    assert.match(daemon.output(), new RegExp(`"msg":"TXT record visible on every authoritative server".*"fqdn":"_acme-challenge\\.${internal.replace(/\./g, '\\.')}"`));
  });
});
