/**
 * DockerWatcher against a real private dockerd (Debian `docker.io`): the
 * whole path from container labels through the Engine API's listing and
 * event stream to the emitted DesiredState, including a daemon restart.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startDockerd, type Dockerd, type TestContainer } from '../support/dockerd.js';
import { freePort } from '../support/pebble.js';
import { createDockerSource, type DockerSource } from '../../src/docker/client.js';
import { DockerWatcher } from '../../src/docker/watcher.js';
import type { DesiredState } from '../../src/state/desired-state.js';

const WAIT_MS = 10_000;
const DISCOVERY = { exposedByDefault: true, localSuffixes: ['localhost', 'internal', 'home.arpa'] };

let dockerd: Dockerd;

before(async () => {
  const t0 = performance.now();
  dockerd = await startDockerd();
  console.log(`# dockerd ready in ${Math.round(performance.now() - t0)} ms (ping after ${Math.round(dockerd.lastStartMs)} ms), image imported`);
});

after(async () => {
  await dockerd?.stop();
});

/** A watcher with fast timings, recording everything it emits. */
function watch(): {
  watcher: DockerWatcher;
  source: DockerSource;
  states: DesiredState[];
  log: string[];
  until(what: string, pred: (s: DesiredState) => boolean): Promise<DesiredState>;
  close(): Promise<void>;
} {
  const source = createDockerSource({ dockerHost: dockerd.dockerHost, timeoutMs: 5_000 });
  const watcher = new DockerWatcher({ source, discovery: DISCOVERY, debounceMs: 100, backoffInitialMs: 100, backoffMaxMs: 1_000 });
  const states: DesiredState[] = [];
  const log: string[] = [];
  watcher.on('state', (s) => {
    states.push(s);
    log.push(`state: ${s.sites.map((x) => x.host).join(',') || '(no sites)'}; problems: ${s.problems.map((p) => p.code).join(',')}`);
  });
  watcher.on('connected', () => log.push('connected'));
  watcher.on('disconnected', (e) => log.push(`disconnected: ${e.message}`));
  const until = (what: string, pred: (s: DesiredState) => boolean): Promise<DesiredState> =>
    new Promise((resolve, reject) => {
      const last = states.at(-1);
      if (last && pred(last)) return resolve(last);
      const timer = setTimeout(() => {
        watcher.off('state', on);
        reject(new Error(`no state with ${what} within ${WAIT_MS} ms; watcher log:\n${log.join('\n')}`));
      }, WAIT_MS);
      const on = (s: DesiredState): void => {
        if (!pred(s)) return;
        clearTimeout(timer);
        watcher.off('state', on);
        resolve(s);
      };
      watcher.on('state', on);
    });
  watcher.start();
  return {
    watcher,
    source,
    states,
    log,
    until,
    close: async () => {
      await watcher.stop();
      source.close();
    },
  };
}

const hosts = (s: DesiredState): string[] => s.sites.map((x) => x.host);

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function removeAll(cs: Array<TestContainer | undefined>): Promise<void> {
  await Promise.all(cs.map((c) => c?.remove().catch(() => {})));
}

describe('DockerWatcher with a real dockerd', () => {
  it('routes a labelled container within seconds, to an upstream that answers, and drops it when the container stops', async () => {
    const w = watch();
    let c: TestContainer | undefined;
    try {
      await w.until('the first (empty) listing', () => true);
      const port = await freePort();
      const started = Date.now();
      c = await dockerd.runContainer({ name: 'lbl-web-1', port, labels: { 'padlock.host': 'app1.example.com' } });
      const s = await w.until('app1.example.com', (x) => hosts(x).includes('app1.example.com'));
      assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
      const siteSpec = s.sites.find((x) => x.host === 'app1.example.com')!;
      assert.deepEqual(siteSpec, {
        host: 'app1.example.com',
        upstreams: [{ url: `http://127.0.0.1:${port}`, containerId: c.id, containerName: 'lbl-web-1' }],
        https: true,
        redirect: true,
        issuer: 'acme',
      });
      assert.match(await httpGet(siteSpec.upstreams[0]!.url), /lbl-web-1/);

      await c.stop();
      await w.until('app1.example.com gone', (x) => !hosts(x).includes('app1.example.com'));
      // Unchanged listings are dropped: no two consecutive emitted states are equal.
      for (let i = 1; i < w.states.length; i++) assert.notDeepEqual(w.states[i], w.states[i - 1]);
    } finally {
      await w.close();
      await removeAll([c]);
    }
  });

  it('reports a container with bad labels while another container is unaffected', async () => {
    const w = watch();
    let bad: TestContainer | undefined;
    let good: TestContainer | undefined;
    try {
      const [p1, p2] = await Promise.all([freePort(), freePort()]);
      bad = await dockerd.runContainer({ name: 'bad-web', port: p1, labels: { 'padlock.host': 'bad.example.com,ok-too.example.com', 'padlock.port': 'eighty' } });
      good = await dockerd.runContainer({ name: 'good-web', port: p2, labels: { 'padlock.host': 'good.example.com' } });
      const s = await w.until('good.example.com and a problem for bad-web', (x) => hosts(x).includes('good.example.com') && x.problems.some((p) => p.containerName === 'bad-web'));
      assert.deepEqual(hosts(s), ['good.example.com']);
      assert.deepEqual(
        s.problems.map((p) => ({ code: p.code, containerName: p.containerName, source: p.source })),
        [{ code: 'LABEL_INVALID_PORT', containerName: 'bad-web', source: 'padlock.port' }],
      );
      assert.match(s.problems[0]!.message, /^label padlock\.port on container bad-web: "eighty" is not a port \(1-65535\)/);
    } finally {
      await w.close();
      await removeAll([bad, good]);
    }
  });

  it('turns nginx-proxy env vars into the same SiteSpecs nginx-proxy would serve', async () => {
    const w = watch();
    let c: TestContainer | undefined;
    try {
      const port = await freePort();
      c = await dockerd.runContainer({
        name: 'nginx-proxy-app',
        port,
        expose: false,
        env: { VIRTUAL_HOST: 'secure.example.com,plain.example.com', VIRTUAL_PORT: String(port), LETSENCRYPT_HOST: 'secure.example.com', LETSENCRYPT_EMAIL: 'app@example.com' },
      });
      const s = await w.until('the nginx-proxy names', (x) => hosts(x).includes('secure.example.com'));
      const up = [{ url: `http://127.0.0.1:${port}`, containerId: c.id, containerName: 'nginx-proxy-app' }];
      // (The listing's `containers`, for the grace period, is checked in the unit tests.)
      assert.deepEqual({ sites: s.sites, problems: s.problems }, {
        sites: [
          { host: 'plain.example.com', upstreams: up, https: false, redirect: false, email: 'app@example.com', issuer: 'acme' },
          { host: 'secure.example.com', upstreams: up, https: true, redirect: true, email: 'app@example.com', issuer: 'acme' },
        ],
        problems: [],
      });
    } finally {
      await w.close();
      await removeAll([c]);
    }
  });

  it('excludes a container once its health check fails, and routes it while the check is starting', async () => {
    const w = watch();
    let c: TestContainer | undefined;
    try {
      const port = await freePort();
      // The check fails from the start; until the first result Docker says `starting`.
      c = await dockerd.runContainer({ name: 'sick-web', port, labels: { 'padlock.host': 'sick.example.com' }, healthcheck: { test: ['/bin/busybox', 'false'], intervalMs: 1_000 } });
      const s = await w.until('a CONTAINER_UNHEALTHY problem', (x) => x.problems.some((p) => p.code === 'CONTAINER_UNHEALTHY'));
      assert.deepEqual(hosts(s), []);
      assert.ok(w.states.some((x) => hosts(x).includes('sick.example.com')), `expected the site while starting; log:\n${w.log.join('\n')}`);
    } finally {
      await w.close();
      await removeAll([c]);
    }
  });

  it('keeps the last state through a dockerd restart, reconnects, and sees a container started after it', async () => {
    const w = watch();
    let a: TestContainer | undefined;
    let b: TestContainer | undefined;
    try {
      const [pa, pb] = await Promise.all([freePort(), freePort()]);
      a = await dockerd.runContainer({ name: 'survivor', port: pa, labels: { 'padlock.host': 'survivor.example.com' } });
      await w.until('survivor.example.com', (x) => hosts(x).includes('survivor.example.com'));
      const before = w.states.length;

      let disconnected = false;
      const reconnected = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reconnect within ${WAIT_MS} ms; log:\n${w.log.join('\n')}`)), WAIT_MS);
        w.watcher.on('disconnected', () => (disconnected = true));
        w.watcher.on('connected', () => {
          if (!disconnected) return;
          clearTimeout(timer);
          resolve();
        });
      });
      const t0 = performance.now();
      await dockerd.restart();
      const restartMs = performance.now() - t0;
      await reconnected;
      console.log(`# dockerd restart took ${Math.round(restartMs)} ms (ping after ${Math.round(dockerd.lastStartMs)} ms); watcher reconnected after ${Math.round(performance.now() - t0)} ms`);
      assert.ok(disconnected, 'the watcher should have noticed the daemon going away');
      // live-restore kept the container running: the upstream still answers.
      assert.match(await httpGet(`http://127.0.0.1:${pa}/`), /survivor/);

      b = await dockerd.runContainer({ name: 'newcomer', port: pb, labels: { 'padlock.host': 'newcomer.example.com' } });
      await w.until('newcomer.example.com', (x) => hosts(x).includes('newcomer.example.com'));
      const since = w.states.slice(before);
      for (const s of since) assert.ok(hosts(s).includes('survivor.example.com'), `a state without survivor was emitted during the restart; log:\n${w.log.join('\n')}`);
      assert.equal(w.watcher.status().connected, true);
    } finally {
      await w.close();
      await removeAll([a, b]);
    }
  });
});
