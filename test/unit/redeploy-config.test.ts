import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envLayer, parseRunConfig, type RunConfig } from '../../src/config/schema.js';
import { staticSites } from '../../src/config/static-sites.js';

describe('redeploy options: --route-grace, --upstream-wait, --held-requests-max', () => {
  const ok: Array<{ desc: string; layers: Parameters<typeof parseRunConfig>[0]; want: Partial<RunConfig> }> = [
    { desc: 'defaults: five minutes of grace, five seconds of wait, a thousand held requests', layers: {}, want: { routeGrace: 300, upstreamWait: 5, heldRequestsMax: 1000 } },
    { desc: 'env vars PADLOCK_ROUTE_GRACE, PADLOCK_UPSTREAM_WAIT, PADLOCK_HELD_REQUESTS_MAX', layers: { env: envLayer({ PADLOCK_ROUTE_GRACE: '60', PADLOCK_UPSTREAM_WAIT: '2.5', PADLOCK_HELD_REQUESTS_MAX: '50' }) }, want: { routeGrace: 60, upstreamWait: 2.5, heldRequestsMax: 50 } },
    { desc: 'a flag beats the env var and the config file', layers: { file: { routeGrace: 10 }, env: envLayer({ PADLOCK_ROUTE_GRACE: '20' }), flags: { routeGrace: 0 } }, want: { routeGrace: 0 } },
  ];
  for (const c of ok) {
    it(c.desc, () => {
      const config = parseRunConfig(c.layers);
      for (const [k, v] of Object.entries(c.want)) assert.equal(config[k as keyof RunConfig], v, k);
    });
  }

  const bad: Array<{ desc: string; layers: Parameters<typeof parseRunConfig>[0]; message: RegExp }> = [
    { desc: 'a negative grace period', layers: { flags: { routeGrace: -1 } }, message: /--route-grace: routeGrace must be 0 or more seconds/ },
    { desc: 'a grace period over a day', layers: { env: envLayer({ PADLOCK_ROUTE_GRACE: '90000' }) }, message: /PADLOCK_ROUTE_GRACE: routeGrace must be at most 86400 seconds/ },
    { desc: 'an upstream wait over five minutes', layers: { flags: { upstreamWait: 301 } }, message: /--upstream-wait: upstreamWait must be at most 300 seconds/ },
    { desc: 'zero held requests', layers: { flags: { heldRequestsMax: 0 } }, message: /--held-requests-max: heldRequestsMax must be at least 1/ },
    { desc: 'a wait that is not a number', layers: { env: envLayer({ PADLOCK_UPSTREAM_WAIT: 'soon' }) }, message: /PADLOCK_UPSTREAM_WAIT: .*"soon"/ },
  ];
  for (const c of bad) {
    it(`refuses ${c.desc}, naming where it came from`, () => {
      assert.throws(() => parseRunConfig(c.layers), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && c.message.test(e.message));
    });
  }
});

describe('static sites: upstreamWait and healthcheck', () => {
  it('carries the wait to the site and the health check to every upstream', () => {
    const config = parseRunConfig({ file: { sites: [{ host: 'app.example.com', upstream: ['127.0.0.1:8080', '127.0.0.1:8081'], upstreamWait: 12, healthcheck: '/ready', healthcheckInterval: 2 }] } });
    const [s] = staticSites(config.sites, config.localSuffixes);
    assert.equal(s!.upstreamWait, 12);
    assert.deepEqual(s!.upstreams.map((u) => u.healthcheck), [{ path: '/ready', intervalMs: 2_000 }, { path: '/ready', intervalMs: 2_000 }]);
  });

  it('defaults the interval to 5 s and leaves both out when not set', () => {
    const config = parseRunConfig({ file: { sites: [{ host: 'a.example.com', upstream: '127.0.0.1:1', healthcheck: '/h' }, { host: 'b.example.com', upstream: '127.0.0.1:2' }] } });
    const [a, b] = staticSites(config.sites, config.localSuffixes);
    assert.deepEqual(a!.upstreams[0]!.healthcheck, { path: '/h', intervalMs: 5_000 });
    assert.equal('healthcheck' in b!.upstreams[0]!, false);
    assert.equal('upstreamWait' in b!, false);
  });

  it('refuses a health check that is not a path', () => {
    assert.throws(() => parseRunConfig({ file: { sites: [{ host: 'a.example.com', upstream: '127.0.0.1:1', healthcheck: 'ready' }] } }), /healthcheck must be a path such as \/healthz/);
  });
});
