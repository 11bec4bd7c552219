import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildDesiredState, type DiscoveryOptions } from '../../src/docker/labels.js';
import { isLocalName } from '../../src/config/names.js';
import { UpstreamGuard } from '../../src/proxy/upstream-guard.js';
import { fromInspect, type ContainerInfo } from '../../src/docker/container.js';
import { sameDesiredState, type DesiredState, type RouteProblem, type SiteSpec } from '../../src/state/desired-state.js';
import type { LabelCode } from '../../src/errors.js';
import type Dockerode from 'dockerode';

const OPTS: DiscoveryOptions = { exposedByDefault: true, localSuffixes: ['localhost', 'internal', 'home.arpa'] };

/** A running host-network container exposing 8080, created at `t` minutes past the hour. */
function ctr(name: string, over: Partial<ContainerInfo> = {}, t = 0): ContainerInfo {
  return {
    id: `id-${name}`,
    name,
    labels: {},
    env: {},
    running: true,
    networkMode: 'host',
    networks: { host: {} },
    exposedPorts: [8080],
    createdAt: `2026-01-01T00:${String(t).padStart(2, '0')}:00Z`,
    ...over,
  };
}

/** A container on a user network (bridge-like), with the given addresses. */
function netCtr(name: string, networks: Record<string, string | undefined>, over: Partial<ContainerInfo> = {}): ContainerInfo {
  const nets: ContainerInfo['networks'] = {};
  for (const [n, ip] of Object.entries(networks)) nets[n] = ip ? { ip } : {};
  return ctr(name, { networkMode: Object.keys(networks)[0] ?? 'none', networks: nets, ...over });
}

function site(host: string, urls: Array<[container: string, url: string]>, over: Partial<SiteSpec> = {}): SiteSpec {
  return {
    host,
    upstreams: urls.map(([c, url]) => ({ url, containerId: `id-${c}`, containerName: c })),
    https: true,
    redirect: true,
    issuer: 'acme',
    ...over,
  };
}

function prob(code: LabelCode, container: string, message: string, extra: Partial<RouteProblem> = {}): RouteProblem {
  return { code, message, containerId: `id-${container}`, containerName: container, ...extra };
}

interface Case {
  desc: string;
  containers: ContainerInfo[];
  options?: Partial<DiscoveryOptions>;
  expected: DesiredState;
}

const cases: Case[] = [
  // --- padlock labels ---
  {
    desc: 'padlock.host on a host-network container with one exposed port routes to 127.0.0.1:that port',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'a comma-separated padlock.host gives one site per name, normalised and de-duplicated',
    containers: [ctr('web-1', { labels: { 'padlock.host': ' B.example.com , a.example.com., b.example.com,' } })],
    expected: {
      sites: [site('a.example.com', [['web-1', 'http://127.0.0.1:8080']]), site('b.example.com', [['web-1', 'http://127.0.0.1:8080']])],
      problems: [],
    },
  },
  {
    desc: 'a container without host labels or env vars is not routed and not reported',
    containers: [ctr('db', { labels: { 'com.example.role': 'db' } })],
    expected: { sites: [], problems: [] },
  },
  {
    desc: 'padlock.port picks the port when the container exposes several',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '9000' }, exposedPorts: [8080, 9000] })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:9000']])], problems: [] },
  },
  {
    desc: 'padlock.port wins over the one exposed port',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '3000' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:3000']])], problems: [] },
  },
  {
    desc: 'several exposed ports including 80 and no padlock.port use 80, as nginx-proxy does',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' }, exposedPorts: [80, 443] })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:80']])], problems: [] },
  },
  {
    desc: 'padlock.upstream overrides address and port resolution, with the default port spelled out',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.upstream': 'https://backend.internal' }, exposedPorts: [] })],
    expected: { sites: [site('app.example.com', [['web-1', 'https://backend.internal:443']])], problems: [] },
  },
  {
    desc: 'padlock.email sets the contact and wins over the default email',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.email': 'ops@example.com' } })],
    options: { defaultEmail: 'default@example.com' },
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { email: 'ops@example.com' })], problems: [] },
  },
  {
    desc: 'the default email applies when the container sets none',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' } })],
    options: { defaultEmail: 'default@example.com' },
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { email: 'default@example.com' })], problems: [] },
  },
  {
    desc: 'padlock.redirect=false turns the HTTP to HTTPS redirect off',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.redirect': 'False' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { redirect: false })], problems: [] },
  },
  {
    desc: 'padlock.hsts=true sends HSTS for one year',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.hsts': 'true' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { hstsMaxAge: 31536000 })], problems: [] },
  },
  {
    desc: 'padlock.hsts with a number uses it as the max-age',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.hsts': '600' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { hstsMaxAge: 600 })], problems: [] },
  },
  {
    desc: 'padlock.hsts=1 reads as true, like the other booleans, not as a one-second max-age',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.hsts': '1' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { hstsMaxAge: 31536000 })], problems: [] },
  },
  {
    desc: 'padlock.hsts=0 and padlock.hsts=false both mean no HSTS',
    containers: [
      ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.hsts': '0' } }),
      ctr('web-2', { labels: { 'padlock.host': 'b.example.com', 'padlock.hsts': 'false' } }),
    ],
    expected: {
      sites: [site('a.example.com', [['web-1', 'http://127.0.0.1:8080']]), site('b.example.com', [['web-2', 'http://127.0.0.1:8080']])],
      problems: [],
    },
  },

  // --- padlock.enable and exposedByDefault ---
  {
    desc: 'padlock.enable=false excludes the container even when exposed by default',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.enable': 'false' } })],
    expected: { sites: [], problems: [] },
  },
  {
    desc: 'with exposedByDefault off, a container without padlock.enable=true is ignored',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' } })],
    options: { exposedByDefault: false },
    expected: { sites: [], problems: [] },
  },
  {
    desc: 'with exposedByDefault off, padlock.enable=true routes the container',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.enable': 'true' } })],
    options: { exposedByDefault: false },
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'with exposedByDefault off, padlock.enable=false still excludes',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.enable': 'false' } })],
    options: { exposedByDefault: false },
    expected: { sites: [], problems: [] },
  },
  {
    desc: 'padlock.enable=true without any host is reported',
    containers: [ctr('web-1', { labels: { 'padlock.enable': 'true' } })],
    expected: {
      sites: [],
      problems: [prob('LABEL_NO_HOST', 'web-1', 'label padlock.enable on container web-1: the container is enabled but names no host; set padlock.host', { source: 'padlock.enable' })],
    },
  },

  // --- nginx-proxy / acme-companion env vars ---
  {
    desc: 'VIRTUAL_HOST alone is served over plain HTTP, as nginx-proxy does',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'app.example.com' } })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']], { https: false, redirect: false })], problems: [] },
  },
  {
    desc: 'LETSENCRYPT_HOST gives the listed VIRTUAL_HOST names HTTPS; the others stay plain HTTP',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com,b.example.com', LETSENCRYPT_HOST: 'a.example.com', LETSENCRYPT_EMAIL: 'le@example.com' } })],
    expected: {
      sites: [
        site('a.example.com', [['web-1', 'http://127.0.0.1:8080']], { email: 'le@example.com' }),
        site('b.example.com', [['web-1', 'http://127.0.0.1:8080']], { https: false, redirect: false, email: 'le@example.com' }),
      ],
      problems: [],
    },
  },
  {
    desc: 'ACME_HOST is an alias of LETSENCRYPT_HOST',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com', ACME_HOST: 'a.example.com' } })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'VIRTUAL_PORT picks the port and VIRTUAL_PROTO=https the upstream scheme',
    containers: [
      ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com', VIRTUAL_PORT: '8443', VIRTUAL_PROTO: 'https' }, exposedPorts: [8080, 8443] }),
    ],
    expected: { sites: [site('a.example.com', [['web-1', 'https://127.0.0.1:8443']])], problems: [] },
  },
  {
    desc: 'a LETSENCRYPT_HOST name missing from VIRTUAL_HOST is not routed and is reported',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com,b.example.com' } })],
    expected: {
      sites: [site('a.example.com', [['web-1', 'http://127.0.0.1:8080']])],
      problems: [
        prob(
          'LABEL_HOST_NOT_ROUTED',
          'web-1',
          'env LETSENCRYPT_HOST on container web-1: b.example.com is not in VIRTUAL_HOST, so nothing routes it and padlock gets no certificate for it; add it to VIRTUAL_HOST',
          { source: 'LETSENCRYPT_HOST', host: 'b.example.com' },
        ),
      ],
    },
  },
  {
    desc: 'padlock labels win over env vars: padlock.host replaces VIRTUAL_HOST, padlock.port VIRTUAL_PORT, padlock.email LETSENCRYPT_EMAIL',
    containers: [
      ctr('web-1', {
        labels: { 'padlock.host': 'label.example.com', 'padlock.port': '9000', 'padlock.email': 'label@example.com' },
        env: { VIRTUAL_HOST: 'env.example.com', LETSENCRYPT_HOST: 'env.example.com', VIRTUAL_PORT: '7000', LETSENCRYPT_EMAIL: 'env@example.com' },
      }),
    ],
    expected: { sites: [site('label.example.com', [['web-1', 'http://127.0.0.1:9000']], { email: 'label@example.com' })], problems: [] },
  },
  {
    desc: 'padlock.upstream wins over VIRTUAL_PROTO',
    containers: [ctr('web-1', { labels: { 'padlock.upstream': 'http://10.1.2.3:81' }, env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com', VIRTUAL_PROTO: 'https' } })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://10.1.2.3:81']])], problems: [] },
  },
  // --- padlock.proto and VIRTUAL_PROTO=grpc: h2c upstreams (gRPC) ---
  {
    desc: 'padlock.proto=h2c makes the inferred upstream h2c:// (cleartext HTTP/2, gRPC)',
    containers: [ctr('grpc-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.proto': 'H2C', 'padlock.port': '50051' } })],
    expected: { sites: [site('a.example.com', [['grpc-1', 'h2c://127.0.0.1:50051']])], problems: [] },
  },
  {
    desc: 'padlock.proto=https and =http pick those schemes',
    containers: [
      ctr('tls-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.proto': 'https' }, exposedPorts: [8443] }),
      ctr('plain-1', { labels: { 'padlock.host': 'b.example.com', 'padlock.proto': 'http' } }),
    ],
    expected: { sites: [site('a.example.com', [['tls-1', 'https://127.0.0.1:8443']]), site('b.example.com', [['plain-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'VIRTUAL_PROTO=grpc (nginx-proxy\'s cleartext gRPC) is an h2c upstream',
    containers: [ctr('grpc-1', { env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com', VIRTUAL_PROTO: 'grpc', VIRTUAL_PORT: '50051' } })],
    expected: { sites: [site('a.example.com', [['grpc-1', 'h2c://127.0.0.1:50051']])], problems: [] },
  },
  {
    desc: 'padlock.proto wins over VIRTUAL_PROTO',
    containers: [ctr('grpc-1', { labels: { 'padlock.proto': 'h2c' }, env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com', VIRTUAL_PROTO: 'https' } })],
    expected: { sites: [site('a.example.com', [['grpc-1', 'h2c://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'padlock.upstream may name an h2c:// URL, and padlock.proto beside it may repeat its scheme',
    containers: [ctr('grpc-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.upstream': 'h2c://GRPC-App:50051/', 'padlock.proto': 'h2c' } })],
    expected: { sites: [site('a.example.com', [['grpc-1', 'h2c://grpc-app:50051']])], problems: [] },
  },
  {
    desc: 'a bad padlock.proto, VIRTUAL_PROTO=grpcs, and a padlock.proto that disagrees with padlock.upstream each disable only their container, with a reason',
    containers: [
      ctr('bad-proto', { labels: { 'padlock.host': 'a.example.com', 'padlock.proto': 'grpc' } }),
      ctr('grpcs', { env: { VIRTUAL_HOST: 'b.example.com', LETSENCRYPT_HOST: 'b.example.com', VIRTUAL_PROTO: 'grpcs' } }),
      ctr('mixed', { labels: { 'padlock.host': 'c.example.com', 'padlock.proto': 'h2c', 'padlock.upstream': 'http://10.1.2.3:81' } }),
      ctr('fine', { labels: { 'padlock.host': 'd.example.com', 'padlock.proto': 'h2c' } }),
    ],
    expected: {
      sites: [site('d.example.com', [['fine', 'h2c://127.0.0.1:8080']])],
      problems: [
        prob('LABEL_INVALID_VALUE', 'bad-proto', 'label padlock.proto on container bad-proto: "grpc" is not a protocol padlock speaks to upstreams (http, https, or h2c for cleartext HTTP/2 such as gRPC); the container is not routed until it is fixed', { source: 'padlock.proto' }),
        prob('LABEL_INVALID_VALUE', 'grpcs', 'env VIRTUAL_PROTO on container grpcs: "grpcs" (gRPC over TLS to the upstream) is not supported; serve cleartext gRPC in the container and set VIRTUAL_PROTO=grpc (padlock still terminates TLS for clients); the container is not routed until it is fixed', { source: 'VIRTUAL_PROTO' }),
        prob('LABEL_INVALID_VALUE', 'mixed', 'label padlock.proto on container mixed: padlock.proto=h2c disagrees with padlock.upstream http://10.1.2.3:81; write the scheme in padlock.upstream (h2c://HOST:PORT) and drop padlock.proto; the container is not routed until it is fixed', { source: 'padlock.proto' }),
      ],
    },
  },
  {
    desc: 'padlock.redirect and padlock.hsts apply to names from VIRTUAL_HOST too',
    containers: [ctr('web-1', { labels: { 'padlock.redirect': 'no', 'padlock.hsts': 'yes' }, env: { VIRTUAL_HOST: 'a.example.com', LETSENCRYPT_HOST: 'a.example.com' } })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://127.0.0.1:8080']], { redirect: false, hstsMaxAge: 31536000 })], problems: [] },
  },

  // --- upstream address ---
  {
    desc: 'on a container network, its address on the first network by name, port 80 when none is exposed',
    containers: [netCtr('web-1', { zeta: '10.0.9.2', alpha: '10.0.1.2' }, { labels: { 'padlock.host': 'a.example.com' }, exposedPorts: [] })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://10.0.1.2:80']])], problems: [] },
  },
  {
    desc: 'the first network without an address is skipped',
    containers: [netCtr('web-1', { alpha: undefined, beta: '10.0.2.2' }, { labels: { 'padlock.host': 'a.example.com' } })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://10.0.2.2:8080']])], problems: [] },
  },
  {
    desc: 'a network shared with padlock (selfNetworks) wins over the first network',
    containers: [netCtr('web-1', { alpha: '10.0.1.2', proxy: '10.0.5.2' }, { labels: { 'padlock.host': 'a.example.com' } })],
    options: { selfNetworks: ['proxy'] },
    expected: { sites: [site('a.example.com', [['web-1', 'http://10.0.5.2:8080']])], problems: [] },
  },
  {
    desc: 'with no shared network, the first network by name is used',
    containers: [netCtr('web-1', { beta: '10.0.2.2', alpha: '10.0.1.2' }, { labels: { 'padlock.host': 'a.example.com' } })],
    options: { selfNetworks: ['proxy'] },
    expected: { sites: [site('a.example.com', [['web-1', 'http://10.0.1.2:8080']])], problems: [] },
  },
  {
    desc: 'an IPv6-only network address is bracketed in the URL',
    containers: [netCtr('web-1', { v6net: 'fd00::2' }, { labels: { 'padlock.host': 'a.example.com' } })],
    expected: { sites: [site('a.example.com', [['web-1', 'http://[fd00::2]:8080']])], problems: [] },
  },
  {
    desc: 'padlock.upstream wins over the host network and over container networks',
    containers: [
      ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.upstream': 'http://192.0.2.10:8000/' } }),
      netCtr('web-2', { proxy: '10.0.5.2' }, { labels: { 'padlock.host': 'b.example.com', 'padlock.upstream': 'http://192.0.2.11:8000' } }),
    ],
    options: { selfNetworks: ['proxy'] },
    expected: {
      sites: [site('a.example.com', [['web-1', 'http://192.0.2.10:8000']]), site('b.example.com', [['web-2', 'http://192.0.2.11:8000']])],
      problems: [],
    },
  },

  // --- several containers, one name ---
  {
    desc: 'two containers with one name give one site with both upstreams, sorted by container name',
    containers: [
      ctr('web-2', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '8082' } }, 1),
      ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '8081' } }, 2),
    ],
    expected: {
      sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8081'], ['web-2', 'http://127.0.0.1:8082']])],
      problems: [],
    },
  },
  {
    desc: 'conflicting settings: the container created first keeps the name, the later one is reported and adds nothing',
    containers: [
      ctr('web-b', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '8082', 'padlock.hsts': 'true' } }, 5),
      ctr('web-a', { labels: { 'padlock.host': 'app.example.com,other.example.com', 'padlock.port': '8081' } }, 9),
    ],
    expected: {
      sites: [
        site('app.example.com', [['web-b', 'http://127.0.0.1:8082']], { hstsMaxAge: 31536000 }),
        site('other.example.com', [['web-a', 'http://127.0.0.1:8081']]),
      ],
      problems: [
        prob(
          'LABEL_CONFLICT',
          'web-a',
          'container web-a claims app.example.com with different settings (hsts off vs 31536000) than container web-b, which was created first and keeps it; give both the same settings or remove the name from one',
          { host: 'app.example.com' },
        ),
      ],
    },
  },
  {
    desc: 'conflict between HTTPS (padlock.host) and plain HTTP (VIRTUAL_HOST) for one name; same creation time: name decides',
    containers: [
      ctr('web-b', { env: { VIRTUAL_HOST: 'app.example.com' } }, 3),
      ctr('web-a', { labels: { 'padlock.host': 'app.example.com', 'padlock.email': 'a@example.com' } }, 3),
    ],
    expected: {
      sites: [site('app.example.com', [['web-a', 'http://127.0.0.1:8080']], { email: 'a@example.com' })],
      problems: [
        prob(
          'LABEL_CONFLICT',
          'web-b',
          'container web-b claims app.example.com with different settings (https false vs true, redirect false vs true, email none vs a@example.com) than container web-a, which was created first and keeps it; give both the same settings or remove the name from one',
          { host: 'app.example.com' },
        ),
      ],
    },
  },

  // --- running and health ---
  {
    desc: 'a stopped container contributes nothing',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' }, running: false })],
    expected: { sites: [], problems: [] },
  },
  {
    desc: 'an unhealthy container contributes no upstream and is reported; its healthy twin still serves',
    containers: [
      ctr('web-1', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '8081' }, health: 'unhealthy' }),
      ctr('web-2', { labels: { 'padlock.host': 'app.example.com', 'padlock.port': '8082' }, health: 'healthy' }),
    ],
    expected: {
      sites: [site('app.example.com', [['web-2', 'http://127.0.0.1:8082']])],
      problems: [
        prob('CONTAINER_UNHEALTHY', 'web-1', 'container web-1 is unhealthy (its health check fails); padlock sends it no requests until the check passes'),
      ],
    },
  },
  {
    desc: 'a container whose health check is still starting is routed',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.example.com' }, health: 'starting' })],
    expected: { sites: [site('app.example.com', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },

  // --- local names ---
  {
    desc: '*.localhost, *.internal and *.home.arpa names use the local CA',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.localhost,db.internal,nas.home.arpa,app.example.com' } })],
    expected: {
      sites: [
        site('app.example.com', [['web-1', 'http://127.0.0.1:8080']]),
        site('app.localhost', [['web-1', 'http://127.0.0.1:8080']], { issuer: 'local' }),
        site('db.internal', [['web-1', 'http://127.0.0.1:8080']], { issuer: 'local' }),
        site('nas.home.arpa', [['web-1', 'http://127.0.0.1:8080']], { issuer: 'local' }),
      ],
      problems: [],
    },
  },
  {
    desc: 'a configured local suffix makes its names local',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'app.lan' } })],
    options: { localSuffixes: ['lan'] },
    expected: { sites: [site('app.lan', [['web-1', 'http://127.0.0.1:8080']], { issuer: 'local' })], problems: [] },
  },

  // --- bad labels ---
  {
    desc: 'a port that is not a number disables the container and names the label',
    containers: [
      ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.port': 'eighty' } }),
      ctr('web-2', { labels: { 'padlock.host': 'b.example.com' } }),
    ],
    expected: {
      sites: [site('b.example.com', [['web-2', 'http://127.0.0.1:8080']])],
      problems: [
        prob('LABEL_INVALID_PORT', 'web-1', 'label padlock.port on container web-1: "eighty" is not a port (1-65535); the container is not routed until it is fixed', {
          source: 'padlock.port',
        }),
      ],
    },
  },
  {
    desc: 'a port out of range in VIRTUAL_PORT names the env var',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com', VIRTUAL_PORT: '70000' } })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_PORT', 'web-1', 'env VIRTUAL_PORT on container web-1: "70000" is not a port (1-65535); the container is not routed until it is fixed', {
          source: 'VIRTUAL_PORT',
        }),
      ],
    },
  },
  {
    desc: 'an invalid name disables only that name; the container\'s other names still route',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'good.example.com,bad_name.example.com' } })],
    expected: {
      sites: [site('good.example.com', [['web-1', 'http://127.0.0.1:8080']])],
      problems: [
        prob(
          'LABEL_INVALID_HOST',
          'web-1',
          'label padlock.host on container web-1: "bad_name.example.com" is not a usable host name: the label "bad_name" may hold only letters, digits and inner hyphens; the container\'s other names still route',
          { source: 'padlock.host', host: 'bad_name.example.com' },
        ),
      ],
    },
  },
  {
    desc: 'a wildcard is refused because HTTP-01 cannot validate it',
    containers: [ctr('web-1', { labels: { 'padlock.host': '*.example.com' } })],
    expected: {
      sites: [],
      problems: [
        prob(
          'LABEL_WILDCARD',
          'web-1',
          'label padlock.host on container web-1: "*.example.com" is not a usable host name: wildcard names need the DNS-01 challenge, and no DNS provider in the config covers example.com: add one to the config file\'s dns.providers with zones: [example.com] (see "DNS-01" in the README), or list each name; the container\'s other names still route',
          { source: 'padlock.host', host: '*.example.com' },
        ),
      ],
    },
  },
  {
    desc: 'a single-label name that is not local is refused',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'intranet' } })],
    expected: {
      sites: [],
      problems: [
        prob(
          'LABEL_INVALID_HOST',
          'web-1',
          'env VIRTUAL_HOST on container web-1: "intranet" is not a usable host name: it has a single label; a public certificate needs a registered domain such as example.com; the container\'s other names still route',
          { source: 'VIRTUAL_HOST', host: 'intranet' },
        ),
      ],
    },
  },
  {
    desc: 'an empty padlock.host is reported',
    containers: [ctr('web-1', { labels: { 'padlock.host': ' , ' } })],
    expected: {
      sites: [],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', 'label padlock.host on container web-1: no host name given; set a comma-separated list such as app.example.com', { source: 'padlock.host' })],
    },
  },
  {
    desc: 'bad boolean, hsts, email and upstream values are each reported with their label',
    containers: [
      ctr('a-redirect', { labels: { 'padlock.host': 'a.example.com', 'padlock.redirect': 'maybe' } }),
      ctr('b-hsts', { labels: { 'padlock.host': 'b.example.com', 'padlock.hsts': 'forever' } }),
      ctr('c-email', { labels: { 'padlock.host': 'c.example.com', 'padlock.email': 'not-an-email' } }),
      ctr('d-upstream', { labels: { 'padlock.host': 'd.example.com', 'padlock.upstream': 'ftp://10.0.0.1:21' } }),
      ctr('e-enable', { labels: { 'padlock.host': 'e.example.com', 'padlock.enable': 'sure' } }),
      ctr('f-proto', { env: { VIRTUAL_HOST: 'f.example.com', VIRTUAL_PROTO: 'uwsgi' } }),
      ctr('g-path', { labels: { 'padlock.host': 'g.example.com', 'padlock.upstream': 'http://10.0.0.1:80/app' } }),
    ],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_VALUE', 'a-redirect', 'label padlock.redirect on container a-redirect: "maybe" is not a boolean (true or false); the container is not routed until it is fixed', { source: 'padlock.redirect' }),
        prob('LABEL_INVALID_VALUE', 'b-hsts', 'label padlock.hsts on container b-hsts: "forever" is neither true, false nor a max-age in seconds; the container is not routed until it is fixed', { source: 'padlock.hsts' }),
        prob('LABEL_INVALID_VALUE', 'c-email', 'label padlock.email on container c-email: "not-an-email" is not an email address; the container is not routed until it is fixed', { source: 'padlock.email' }),
        prob(
          'LABEL_INVALID_VALUE',
          'd-upstream',
          'label padlock.upstream on container d-upstream: "ftp://10.0.0.1" is not an upstream URL (the scheme ftp is not http, https or h2c); use http://HOST:PORT, https://HOST:PORT or h2c://HOST:PORT; the container is not routed until it is fixed',
          { source: 'padlock.upstream' },
        ),
        prob('LABEL_INVALID_VALUE', 'e-enable', 'label padlock.enable on container e-enable: "sure" is not a boolean (true or false); the container is not routed until it is fixed', { source: 'padlock.enable' }),
        prob('LABEL_INVALID_VALUE', 'f-proto', 'env VIRTUAL_PROTO on container f-proto: "uwsgi" is not supported; padlock forwards http, https or grpc (cleartext gRPC); the container is not routed until it is fixed', { source: 'VIRTUAL_PROTO' }),
        prob(
          'LABEL_INVALID_VALUE',
          'g-path',
          'label padlock.upstream on container g-path: "http://10.0.0.1/…" is not an upstream URL (it has a path, query or fragment); use http://HOST:PORT, https://HOST:PORT or h2c://HOST:PORT; the container is not routed until it is fixed',
          { source: 'padlock.upstream' },
        ),
      ],
    },
  },
  {
    desc: 'a host-network container exposing no port and naming none is reported LABEL_NO_PORT',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.example.com' }, exposedPorts: [] })],
    expected: {
      sites: [],
      problems: [
        prob(
          'LABEL_NO_PORT',
          'web-1',
          'label padlock.port on container web-1: the container uses the host network and exposes no port; set padlock.port to the port the app listens on; the container is not routed until it is fixed',
          { source: 'padlock.port' },
        ),
      ],
    },
  },
  {
    desc: 'several exposed ports without 80 and no padlock.port is reported LABEL_NO_PORT',
    containers: [netCtr('web-1', { alpha: '10.0.1.2' }, { labels: { 'padlock.host': 'a.example.com' }, exposedPorts: [3000, 9229] })],
    expected: {
      sites: [],
      problems: [
        prob(
          'LABEL_NO_PORT',
          'web-1',
          'label padlock.port on container web-1: the container exposes ports 3000, 9229; set padlock.port to the one to use; the container is not routed until it is fixed',
          { source: 'padlock.port' },
        ),
      ],
    },
  },
  {
    desc: 'a container with no address on any network is reported LABEL_NO_ADDRESS',
    containers: [netCtr('web-1', { alpha: undefined }, { labels: { 'padlock.host': 'a.example.com' }, networkMode: 'none' })],
    options: { selfNetworks: ['proxy'] },
    expected: {
      sites: [],
      problems: [
        prob(
          'LABEL_NO_ADDRESS',
          'web-1',
          "label padlock.upstream on container web-1: the container has no address on a network shared with padlock (proxy) or any other (network mode none); connect it to padlock's network or set padlock.upstream; the container is not routed until it is fixed",
          { source: 'padlock.upstream' },
        ),
      ],
    },
  },
];


const STILL_ROUTE = "; the container's other names still route";
const NOT_ROUTED = '; the container is not routed until it is fixed';
const LOCALHOST = "localhost is this machine's own name, so a container may not claim it; use a name under it, such as app.localhost";
const LOOPBACK = "it is a loopback address, this machine's own, so a container may not claim it (it would get what local clients send to https://127.0.0.1); use a name such as app.localhost, or route the address from the config file's sites";

/** The attack, and every other way a label could claim this machine's own name. */
const localhostCases: Case[] = [
  {
    desc: 'the bare name localhost is refused with the reason and the name to use; the container\'s other names still route',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'localhost,app.localhost' } })],
    expected: {
      sites: [site('app.localhost', [['web-1', 'http://127.0.0.1:8080']], { issuer: 'local' })],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "localhost" is not a usable host name: ${LOCALHOST}${STILL_ROUTE}`, { source: 'padlock.host', host: 'localhost' })],
    },
  },
  {
    desc: 'localhost in any case and with a trailing dot is refused too',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'LocalHost.' } })],
    expected: {
      sites: [],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "LocalHost." is not a usable host name: ${LOCALHOST}${STILL_ROUTE}`, { source: 'padlock.host', host: 'LocalHost.' })],
    },
  },
  {
    desc: 'VIRTUAL_HOST=localhost is refused like the label',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'localhost', LETSENCRYPT_HOST: 'localhost' } })],
    expected: {
      sites: [],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', `env VIRTUAL_HOST on container web-1: "localhost" is not a usable host name: ${LOCALHOST}${STILL_ROUTE}`, { source: 'VIRTUAL_HOST', host: 'localhost' })],
    },
  },
  ...['127.0.0.1', '127.8.9.10', '::1', '[::1]', '::ffff:127.0.0.1'].map((ip): Case => ({
    desc: `the loopback address ${ip} is refused with the loopback reason`,
    containers: [ctr('web-1', { labels: { 'padlock.host': ip } })],
    expected: {
      sites: [],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "${ip}" is not a usable host name: ${LOOPBACK}${STILL_ROUTE}`, { source: 'padlock.host', host: ip })],
    },
  })),
  {
    desc: 'another IP address is routed as an IP host over HTTP-01 (an IP certificate, RFC 8738)',
    containers: [ctr('web-1', { labels: { 'padlock.host': '192.0.2.7' } })],
    expected: { sites: [site('192.0.2.7', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'an IPv6 host, bracketed or written out in full, is routed under its canonical text',
    containers: [ctr('web-1', { labels: { 'padlock.host': '[2001:DB8::7],2001:db8:0:0:0:0:0:8' } })],
    expected: { sites: [site('2001:db8::7', [['web-1', 'http://127.0.0.1:8080']]), site('2001:db8::8', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  {
    desc: 'VIRTUAL_HOST with LETSENCRYPT_HOST routes an IP address with HTTPS',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: '192.0.2.7', LETSENCRYPT_HOST: '192.0.2.7' } })],
    expected: { sites: [site('192.0.2.7', [['web-1', 'http://127.0.0.1:8080']])], problems: [] },
  },
  ...[
    { ip: '0.0.0.0', reason: '0.0.0.0 is the unspecified address, not one a client can connect to' },
    { ip: '::', reason: ':: is the unspecified address, not one a client can connect to' },
    { ip: '224.0.0.1', reason: 'it is a multicast address' },
    { ip: 'fe80::1%eth0', reason: 'an IPv6 zone (%interface) names a network interface and cannot be on a certificate; give the address alone' },
    { ip: '::ffff:192.0.2.7', reason: 'it is an IPv4-mapped IPv6 address; clients and padlock see it as 192.0.2.7, so write that' },
  ].map(({ ip, reason }): Case => ({
    desc: `an address no client can reach as a host is refused: ${ip}`,
    containers: [ctr('web-1', { labels: { 'padlock.host': `${ip},ok.example.com` } })],
    expected: {
      sites: [site('ok.example.com', [['web-1', 'http://127.0.0.1:8080']])],
      problems: [prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "${ip}" is not a usable host name: ${reason}${STILL_ROUTE}`, { source: 'padlock.host', host: ip })],
    },
  })),
];

/** One listing reports every problem of a container; what each disables is unchanged. */
const allAtOnceCases: Case[] = [
  {
    desc: 'a bad name on a host-network container with no port reports both the name and the missing port',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'not a host!!' }, exposedPorts: [] })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "not a host!!" is not a usable host name: it is not a valid domain name${STILL_ROUTE}`, { source: 'padlock.host', host: 'not a host!!' }),
        prob('LABEL_NO_PORT', 'web-1', `label padlock.port on container web-1: the container uses the host network and exposes no port; set padlock.port to the port the app listens on${NOT_ROUTED}`, { source: 'padlock.port' }),
      ],
    },
  },
  {
    desc: 'every bad label of one container is reported together: name, port, upstream, email, profile, redirect, hsts, enable',
    containers: [
      ctr('web-1', {
        labels: {
          'padlock.host': 'good.example.com,bad_name.example.com',
          'padlock.port': 'eighty',
          'padlock.upstream': 'ftp://10.0.0.1',
          'padlock.email': 'nope',
          'padlock.profile': 'no spaces',
          'padlock.redirect': 'maybe',
          'padlock.hsts': 'forever',
          'padlock.enable': 'sure',
        },
      }),
    ],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_HOST', 'web-1', `label padlock.host on container web-1: "bad_name.example.com" is not a usable host name: the label "bad_name" may hold only letters, digits and inner hyphens${STILL_ROUTE}`, {
          source: 'padlock.host',
          host: 'bad_name.example.com',
        }),
        prob('LABEL_INVALID_PORT', 'web-1', `label padlock.port on container web-1: "eighty" is not a port (1-65535)${NOT_ROUTED}`, { source: 'padlock.port' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.email on container web-1: "nope" is not an email address${NOT_ROUTED}`, { source: 'padlock.email' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.enable on container web-1: "sure" is not a boolean (true or false)${NOT_ROUTED}`, { source: 'padlock.enable' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.hsts on container web-1: "forever" is neither true, false nor a max-age in seconds${NOT_ROUTED}`, { source: 'padlock.hsts' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.profile on container web-1: "no spaces" is not a profile name (letters, digits, ".", "_", "-")${NOT_ROUTED}`, { source: 'padlock.profile' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.redirect on container web-1: "maybe" is not a boolean (true or false)${NOT_ROUTED}`, { source: 'padlock.redirect' }),
        prob(
          'LABEL_INVALID_VALUE',
          'web-1',
          `label padlock.upstream on container web-1: "ftp://10.0.0.1" is not an upstream URL (the scheme ftp is not http, https or h2c); use http://HOST:PORT, https://HOST:PORT or h2c://HOST:PORT${NOT_ROUTED}`,
          { source: 'padlock.upstream' },
        ),
      ],
    },
  },
  {
    desc: 'nginx-proxy env vars: a bad name, VIRTUAL_PORT and VIRTUAL_PROTO are reported together',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com,*.example.com', VIRTUAL_PORT: '0', VIRTUAL_PROTO: 'uwsgi' } })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_PORT', 'web-1', `env VIRTUAL_PORT on container web-1: "0" is not a port (1-65535)${NOT_ROUTED}`, { source: 'VIRTUAL_PORT' }),
        prob('LABEL_INVALID_VALUE', 'web-1', `env VIRTUAL_PROTO on container web-1: "uwsgi" is not supported; padlock forwards http, https or grpc (cleartext gRPC)${NOT_ROUTED}`, { source: 'VIRTUAL_PROTO' }),
        prob(
          'LABEL_WILDCARD',
          'web-1',
          `env VIRTUAL_HOST on container web-1: "*.example.com" is not a usable host name: wildcard names need the DNS-01 challenge, and no DNS provider in the config covers example.com: add one to the config file's dns.providers with zones: [example.com] (see "DNS-01" in the README), or list each name${STILL_ROUTE}`,
          { source: 'VIRTUAL_HOST', host: '*.example.com' },
        ),
      ],
    },
  },
  {
    desc: 'a bad port and no address on any network are both reported',
    containers: [netCtr('web-1', { alpha: undefined }, { labels: { 'padlock.host': 'a.example.com', 'padlock.port': '99999' }, networkMode: 'none' })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_PORT', 'web-1', `label padlock.port on container web-1: "99999" is not a port (1-65535)${NOT_ROUTED}`, { source: 'padlock.port' }),
        prob(
          'LABEL_NO_ADDRESS',
          'web-1',
          `label padlock.upstream on container web-1: the container has no address on a network (network mode none); connect it to padlock's network or set padlock.upstream${NOT_ROUTED}`,
          { source: 'padlock.upstream' },
        ),
      ],
    },
  },
  {
    desc: 'an unhealthy container with a bad label hears about both',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.hsts': 'forever' }, health: 'unhealthy' })],
    expected: {
      sites: [],
      problems: [
        prob('CONTAINER_UNHEALTHY', 'web-1', 'container web-1 is unhealthy (its health check fails); padlock sends it no requests until the check passes'),
        prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.hsts on container web-1: "forever" is neither true, false nor a max-age in seconds${NOT_ROUTED}`, { source: 'padlock.hsts' }),
      ],
    },
  },
  {
    desc: 'padlock.enable=true without a host on the host network reports the missing host and the missing port',
    containers: [ctr('web-1', { labels: { 'padlock.enable': 'true' }, exposedPorts: [] })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_NO_HOST', 'web-1', 'label padlock.enable on container web-1: the container is enabled but names no host; set padlock.host', { source: 'padlock.enable' }),
        prob('LABEL_NO_PORT', 'web-1', `label padlock.port on container web-1: the container uses the host network and exposes no port; set padlock.port to the port the app listens on${NOT_ROUTED}`, { source: 'padlock.port' }),
      ],
    },
  },
  {
    desc: 'a container with only LETSENCRYPT_HOST asks for no route: only the unrouted name is reported, no port or address',
    containers: [ctr('mail', { env: { LETSENCRYPT_HOST: 'mail.example.com', VIRTUAL_PORT: 'x' }, exposedPorts: [] })],
    expected: {
      sites: [],
      problems: [
        prob('LABEL_HOST_NOT_ROUTED', 'mail', 'env LETSENCRYPT_HOST on container mail: mail.example.com is not in VIRTUAL_HOST, so nothing routes it and padlock gets no certificate for it; add it to VIRTUAL_HOST', {
          source: 'LETSENCRYPT_HOST',
          host: 'mail.example.com',
        }),
      ],
    },
  },
];

/** padlock's own ports in these cases: 80, 443 and the admin API's 9180; 10.1.2.3 is one of this host's addresses. */
const GUARD = new UpstreamGuard({ ownPorts: [80, 443, 9180], localAddresses: ['10.1.2.3'] });
const OWN = (url: string, ip: string, port: number) => `the upstream ${url} goes to padlock's own listener (${ip} port ${port}); padlock never forwards a request to itself${NOT_ROUTED}`;
const METADATA = (url: string, ip: string, bits = 32) =>
  `the upstream ${url} goes to ${ip}, a cloud metadata service address; padlock refuses it unless --allow-upstream covers it (--allow-upstream ${ip}/${bits})${NOT_ROUTED}`;
const LINK_LOCAL = (url: string, ip: string, bits = 32) =>
  `the upstream ${url} goes to ${ip}, a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services live; padlock refuses it unless --allow-upstream covers it (--allow-upstream ${ip}/${bits})${NOT_ROUTED}`;
const upstreamLabel = (name: string, upstream: string, host = `${name}.example.com`) => ctr(name, { labels: { 'padlock.host': host, 'padlock.upstream': upstream } });
const forbidden = (name: string, message: string, source = 'padlock.upstream', kind = 'label') =>
  prob('LABEL_UPSTREAM_FORBIDDEN', name, `${kind} ${source} on container ${name}: ${message}`, { source });

/** Upstreams whose address needs no DNS are judged when the labels are read. */
const forbiddenCases: Case[] = [
  {
    desc: 'the issue\'s attack: padlock.host=localhost to padlock\'s admin port is refused twice over, and nothing routes',
    containers: [upstreamLabel('attack', 'http://127.0.0.1:9180', 'localhost')],
    options: { upstreamGuard: GUARD },
    expected: {
      sites: [],
      problems: [
        prob('LABEL_INVALID_HOST', 'attack', `label padlock.host on container attack: "localhost" is not a usable host name: ${LOCALHOST}${STILL_ROUTE}`, { source: 'padlock.host', host: 'localhost' }),
        forbidden('attack', OWN('http://127.0.0.1:9180', '127.0.0.1', 9180)),
      ],
    },
  },
  {
    desc: 'a *.localhost name to padlock\'s admin port is refused',
    containers: [upstreamLabel('evil', 'http://127.0.0.1:9180', 'evil.localhost')],
    options: { upstreamGuard: GUARD },
    expected: { sites: [], problems: [forbidden('evil', OWN('http://127.0.0.1:9180', '127.0.0.1', 9180))] },
  },
  ...([
    ['http://localhost:9180', 'http://localhost:9180', '127.0.0.1', 9180],
    ['http://[::1]:443', 'http://[::1]:443', '::1', 443],
    ['http://0.0.0.0', 'http://0.0.0.0:80', '0.0.0.0', 80],
    ['https://127.9.9.9', 'https://127.9.9.9:443', '127.9.9.9', 443],
    ['http://app.localhost:9180', 'http://app.localhost:9180', '127.0.0.1', 9180],
    ['http://10.1.2.3:9180', 'http://10.1.2.3:9180', '10.1.2.3', 9180],
  ] as const).map(([label, url, ip, port]): Case => ({
    desc: `padlock.upstream=${label} (padlock's own listener) is refused`,
    containers: [upstreamLabel('self', label)],
    options: { upstreamGuard: GUARD },
    expected: { sites: [], problems: [forbidden('self', OWN(url, ip, port))] },
  })),
  {
    desc: 'a host-network container whose one exposed port is padlock\'s HTTPS port is refused, naming padlock.port',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.example.com' }, exposedPorts: [443] })],
    options: { upstreamGuard: GUARD },
    expected: { sites: [], problems: [forbidden('web-1', OWN('http://127.0.0.1:443', '127.0.0.1', 443), 'padlock.port')] },
  },
  {
    desc: 'VIRTUAL_PORT pointing a host-network container at padlock\'s HTTP port is refused, naming VIRTUAL_PORT',
    containers: [ctr('web-1', { env: { VIRTUAL_HOST: 'a.example.com', VIRTUAL_PORT: '80' } })],
    options: { upstreamGuard: GUARD },
    expected: { sites: [], problems: [forbidden('web-1', OWN('http://127.0.0.1:80', '127.0.0.1', 80), 'VIRTUAL_PORT', 'env')] },
  },
  ...([
    ['http://169.254.169.254/', METADATA('http://169.254.169.254:80', '169.254.169.254')],
    ['http://169.254.170.2', METADATA('http://169.254.170.2:80', '169.254.170.2')],
    ['http://100.100.100.200', METADATA('http://100.100.100.200:80', '100.100.100.200')],
    ['http://[fd00:ec2::254]', METADATA('http://[fd00:ec2::254]:80', 'fd00:ec2::254', 128)],
    ['http://[::ffff:169.254.169.254]', METADATA('http://[::ffff:a9fe:a9fe]:80', '::ffff:a9fe:a9fe', 128)],
    ['http://169.254.1.2:8080', LINK_LOCAL('http://169.254.1.2:8080', '169.254.1.2')],
    ['https://[fe80::1]:8443', LINK_LOCAL('https://[fe80::1]:8443', 'fe80::1', 128)],
  ] as const).map(([label, message]): Case => ({
    desc: `padlock.upstream=${label} is refused with the --allow-upstream override named`,
    containers: [upstreamLabel('meta', label)],
    options: { upstreamGuard: GUARD },
    expected: { sites: [], problems: [forbidden('meta', message)] },
  })),
  {
    desc: '--allow-upstream covering a metadata address lets the route through',
    containers: [upstreamLabel('meta', 'http://169.254.169.254/')],
    options: { upstreamGuard: new UpstreamGuard({ ownPorts: [80, 443, 9180], allow: ['169.254.169.254/32'] }) },
    expected: { sites: [site('meta.example.com', [['meta', 'http://169.254.169.254:80']])], problems: [] },
  },
  {
    desc: '--allow-upstream never opens padlock\'s own listeners',
    containers: [upstreamLabel('self', 'http://127.0.0.1:9180')],
    options: { upstreamGuard: new UpstreamGuard({ ownPorts: [9180], allow: ['127.0.0.0/8', '0.0.0.0/0'] }) },
    expected: { sites: [], problems: [forbidden('self', OWN('http://127.0.0.1:9180', '127.0.0.1', 9180))] },
  },
  {
    desc: 'loopback and this host\'s addresses on other ports, private addresses and names route: names are judged when the proxy connects',
    containers: [
      upstreamLabel('a', 'http://127.0.0.1:3000'),
      upstreamLabel('b', 'http://10.1.2.3:8080'),
      upstreamLabel('c', 'http://192.168.1.5:9180'),
      upstreamLabel('d', 'http://metadata.internal'),
    ],
    options: { upstreamGuard: GUARD },
    expected: {
      sites: [
        site('a.example.com', [['a', 'http://127.0.0.1:3000']]),
        site('b.example.com', [['b', 'http://10.1.2.3:8080']]),
        site('c.example.com', [['c', 'http://192.168.1.5:9180']]),
        site('d.example.com', [['d', 'http://metadata.internal:80']]),
      ],
      problems: [],
    },
  },
];

/** A DNS provider covers example.com (the config's dns.providers zones). */
const DNS: Partial<DiscoveryOptions> = { dnsCovers: (name) => name === 'example.com' || name.endsWith('.example.com') };
const U = 'http://127.0.0.1:8080';

const dnsCases: Case[] = [
  {
    desc: 'a wildcard is routed, over DNS-01, when a DNS provider covers its base',
    containers: [ctr('web-1', { labels: { 'padlock.host': '*.example.com,www.example.com' } })],
    options: DNS,
    expected: { sites: [site('*.example.com', [['web-1', U]], { challenge: 'dns-01' }), site('www.example.com', [['web-1', U]])], problems: [] },
  },
  {
    desc: 'a wildcard outside every provider\'s zones is refused, saying which zone to add',
    containers: [ctr('web-1', { labels: { 'padlock.host': '*.example.org' } })],
    options: DNS,
    expected: {
      sites: [],
      problems: [prob('LABEL_WILDCARD', 'web-1', `label padlock.host on container web-1: "*.example.org" is not a usable host name: wildcard names need the DNS-01 challenge, and no DNS provider in the config covers example.org: add one to the config file's dns.providers with zones: [example.org] (see "DNS-01" in the README), or list each name${STILL_ROUTE}`, { source: 'padlock.host', host: '*.example.org' })],
    },
  },
  {
    desc: 'a wildcard of more than the first label is refused',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.*.example.com' } })],
    options: DNS,
    expected: {
      sites: [],
      problems: [prob('LABEL_WILDCARD', 'web-1', `label padlock.host on container web-1: "a.*.example.com" is not a usable host name: only a whole first label may be a wildcard (*.example.com)${STILL_ROUTE}`, { source: 'padlock.host', host: 'a.*.example.com' })],
    },
  },
  {
    desc: 'padlock.challenge=dns-01 validates an internal name over DNS-01',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'intranet.example.com', 'padlock.challenge': 'DNS-01' } })],
    options: DNS,
    expected: { sites: [site('intranet.example.com', [['web-1', U]], { challenge: 'dns-01' })], problems: [] },
  },
  {
    desc: 'padlock.challenge=dns-01 refuses only the names no provider covers',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.example.com,b.example.org', 'padlock.challenge': 'dns-01' } })],
    options: DNS,
    expected: {
      sites: [site('a.example.com', [['web-1', U]], { challenge: 'dns-01' })],
      problems: [prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.challenge on container web-1: b.example.org asks for dns-01, but no DNS provider in the config covers it: add one to the config file's dns.providers with its zone; the container's other names still route`, { source: 'padlock.challenge', host: 'b.example.org' })],
    },
  },
  {
    desc: 'padlock.challenge=dns-01 refuses an IP address (DNS-01 cannot validate one), even where a zone would match its text, and only that address',
    containers: [ctr('web-1', { labels: { 'padlock.host': '192.0.2.7,a.example.com', 'padlock.challenge': 'dns-01' } })],
    options: { dnsCovers: () => true },
    expected: {
      sites: [site('a.example.com', [['web-1', U]], { challenge: 'dns-01' })],
      problems: [prob('LABEL_INVALID_VALUE', 'web-1', 'label padlock.challenge on container web-1: 192.0.2.7 is an IP address, which can only be validated over http-01 or tls-alpn-01 (RFC 8738), never dns-01: remove padlock.challenge=dns-01 or give this address its own container; the container\'s other names still route', { source: 'padlock.challenge', host: '192.0.2.7' })],
    },
  },
  {
    desc: 'an unknown padlock.challenge disables the container',
    containers: [ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.challenge': 'tls-alpn' } })],
    options: DNS,
    expected: {
      sites: [],
      problems: [prob('LABEL_INVALID_VALUE', 'web-1', `label padlock.challenge on container web-1: "tls-alpn" is not a challenge padlock answers for containers (dns-01 or http-01)${NOT_ROUTED}`, { source: 'padlock.challenge' })],
    },
  },
  {
    desc: 'two containers claiming one name with different challenges conflict',
    containers: [
      ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.challenge': 'dns-01' } }, 1),
      ctr('web-2', { labels: { 'padlock.host': 'a.example.com' } }, 2),
    ],
    options: DNS,
    expected: {
      sites: [site('a.example.com', [['web-1', U]], { challenge: 'dns-01' })],
      problems: [prob('LABEL_CONFLICT', 'web-2', 'container web-2 claims a.example.com with different settings (challenge http-01 vs dns-01) than container web-1, which was created first and keeps it; give both the same settings or remove the name from one', { host: 'a.example.com' })],
    },
  },
];

describe('buildDesiredState', () => {
  for (const c of [...cases, ...localhostCases, ...allAtOnceCases, ...forbiddenCases, ...dnsCases]) {
    it(c.desc, () => {
      // What is served; the presence list for the grace period has its own tests.
      const { containers: _presence, ...got } = buildDesiredState(c.containers, { ...OPTS, ...c.options });
      assert.deepEqual(got, c.expected);
    });
  }

  it('gives the same state, byte for byte, whatever the listing order', () => {
    const containers = [
      ctr('web-3', { labels: { 'padlock.host': 'b.example.com,a.example.com', 'padlock.port': '8083' } }, 3),
      ctr('web-1', { labels: { 'padlock.host': 'a.example.com', 'padlock.port': '8081' } }, 1),
      ctr('web-2', { labels: { 'padlock.host': 'b.example.com', 'padlock.port': 'x' } }, 2),
      ctr('web-4', { labels: { 'padlock.host': 'a.example.com', 'padlock.redirect': 'false' } }, 4),
    ];
    const first = buildDesiredState(containers, OPTS);
    for (const order of [[3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]]) {
      const again = buildDesiredState(order.map((i) => containers[i]!), OPTS);
      assert.equal(JSON.stringify(again), JSON.stringify(first));
      assert.ok(sameDesiredState(again, first));
    }
    assert.deepEqual(first.sites.map((s) => s.host), ['a.example.com', 'b.example.com']);
    assert.deepEqual(first.problems.map((p) => `${p.containerName}:${p.code}`), ['web-2:LABEL_INVALID_PORT', 'web-4:LABEL_CONFLICT']);
  });
});

describe('isLocalName', () => {
  const table = [
    { desc: 'localhost itself', name: 'localhost', local: true },
    { desc: 'a subdomain of localhost', name: 'a.b.localhost', local: true },
    { desc: 'a suffix given with a leading dot', name: 'x.corp', suffixes: ['.corp'], local: true },
    { desc: 'a public name', name: 'example.com', local: false },
    { desc: 'a name that only ends in the same letters', name: 'notinternal', local: false },
  ];
  for (const c of table) {
    it(c.desc, () => assert.equal(isLocalName(c.name, c.suffixes ?? OPTS.localSuffixes), c.local));
  }
});

describe('fromInspect', () => {
  it('reduces an inspect answer, tolerating the nulls the API sends', () => {
    const inspect = {
      Id: 'abc',
      Name: '/web-1',
      Created: '2026-01-01T00:00:00Z',
      State: { Running: true, Health: { Status: 'healthy' } },
      Config: { Labels: null, Env: ['A=1', 'B=x=y', 'UNSET', 'A=2'], ExposedPorts: { '8080/tcp': {}, '53/udp': {}, '80/tcp': {} } },
      HostConfig: { NetworkMode: 'mynet' },
      NetworkSettings: { Networks: { mynet: { IPAddress: '10.0.0.2' }, v6: { IPAddress: '', GlobalIPv6Address: 'fd00::3' }, none: { IPAddress: '' } } },
    } as unknown as Dockerode.ContainerInspectInfo;
    assert.deepEqual(fromInspect(inspect), {
      id: 'abc',
      name: 'web-1',
      labels: {},
      env: { A: '2', B: 'x=y' },
      running: true,
      health: 'healthy',
      networkMode: 'mynet',
      networks: { mynet: { ip: '10.0.0.2' }, v6: { ip: 'fd00::3' }, none: {} },
      exposedPorts: [80, 8080],
      createdAt: '2026-01-01T00:00:00Z',
    });
  });
});

describe('messages never repeat a secret', () => {
  it('an upstream label with credentials is refused without showing them', () => {
    const state = buildDesiredState([{
      id: 'c1c1c1c1c1c1', name: 'creds', labels: { 'padlock.host': 'c.example.com', 'padlock.upstream': 'http://admin:hunter2@127.0.0.1:8080' },
      env: {}, running: true, networkMode: 'host', networks: {}, exposedPorts: [], createdAt: new Date(0).toISOString(),
    }], { exposedByDefault: true, localSuffixes: [] });
    assert.equal(state.problems[0]?.code, 'LABEL_INVALID_VALUE');
    assert.match(state.problems[0]!.message, /holds credentials/);
    assert.doesNotMatch(JSON.stringify(state), /hunter2|admin:/);
  });
});


describe('labels for redeploys: padlock.upstream-wait, padlock.healthcheck', () => {
  const routed = (labels: Record<string, string>) => buildDesiredState([ctr('web', { labels: { 'padlock.host': 'a.example.com', ...labels } })], OPTS);
  const cases: Array<{ desc: string; labels: Record<string, string>; wait?: number; check?: { path: string; intervalMs: number }; problem?: RegExp }> = [
    { desc: 'padlock.upstream-wait in seconds', labels: { 'padlock.upstream-wait': '10' }, wait: 10 },
    { desc: 'padlock.upstream-wait with a unit', labels: { 'padlock.upstream-wait': '1500ms' }, wait: 1.5 },
    { desc: 'padlock.upstream-wait=0 turns holding off for the name', labels: { 'padlock.upstream-wait': '0' }, wait: 0 },
    { desc: 'padlock.upstream-wait that is not a duration disables the container', labels: { 'padlock.upstream-wait': 'soon' }, problem: /label padlock\.upstream-wait on container web: "soon" is not a wait of 0 to 300 seconds/ },
    { desc: 'padlock.upstream-wait over 300 s disables the container', labels: { 'padlock.upstream-wait': '6m' }, problem: /"6m" is not a wait of 0 to 300 seconds/ },
    { desc: 'padlock.healthcheck with the default interval', labels: { 'padlock.healthcheck': '/healthz' }, check: { path: '/healthz', intervalMs: 5_000 } },
    { desc: 'padlock.healthcheck with an interval and a query', labels: { 'padlock.healthcheck': '/ready?full=1', 'padlock.healthcheck-interval': '2s' }, check: { path: '/ready?full=1', intervalMs: 2_000 } },
    { desc: 'padlock.healthcheck that is not a path disables the container', labels: { 'padlock.healthcheck': 'healthz' }, problem: /label padlock\.healthcheck on container web: "healthz" is not a path such as \/healthz/ },
    { desc: 'padlock.healthcheck with a space disables the container', labels: { 'padlock.healthcheck': '/a b' }, problem: /"\/a b" is not a path/ },
    { desc: 'padlock.healthcheck-interval under 0.1 s disables the container', labels: { 'padlock.healthcheck': '/h', 'padlock.healthcheck-interval': '50ms' }, problem: /label padlock\.healthcheck-interval on container web: "50ms" is not an interval of 0\.1 s to 1 h/ },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const s = routed(c.labels);
      if (c.problem) {
        assert.deepEqual(s.sites, [], 'not routed');
        assert.equal(s.problems.length, 1);
        assert.equal(s.problems[0]!.code, 'LABEL_INVALID_VALUE');
        assert.match(s.problems[0]!.message, c.problem);
        return;
      }
      assert.deepEqual(s.problems, []);
      assert.equal(s.sites[0]!.upstreamWait, c.wait);
      assert.deepEqual(s.sites[0]!.upstreams[0]!.healthcheck, c.check);
    });
  }

  it('two containers of one name with different upstream waits conflict: the first created keeps it', () => {
    const s = buildDesiredState([
      ctr('one', { labels: { 'padlock.host': 'a.example.com', 'padlock.upstream-wait': '10' } }, 1),
      ctr('two', { labels: { 'padlock.host': 'a.example.com' } }, 2),
    ], OPTS);
    assert.deepEqual(s.sites.map((x) => x.upstreams.map((u) => u.containerName)), [['one']]);
    assert.equal(s.problems[0]?.code, 'LABEL_CONFLICT');
    assert.match(s.problems[0]!.message, /upstream-wait default vs 10/);
  });

  it('lists every container for the grace period: stopped ones by name, running ones with the names they ask for (valid or not)', () => {
    const s = buildDesiredState([
      ctr('web', { labels: { 'padlock.host': 'A.example.com, bad_name!' } }),
      ctr('old', { running: false, labels: { 'padlock.host': 'b.example.com' } }),
      ctr('plain'),
      ctr('off', { labels: { 'padlock.host': 'c.example.com', 'padlock.enable': 'false' } }),
      ctr('vhost', { env: { VIRTUAL_HOST: 'd.example.com' } }),
    ], OPTS);
    assert.deepEqual(s.containers, [
      { id: 'id-off', name: 'off', running: true, asks: [] },
      { id: 'id-old', name: 'old', running: false },
      { id: 'id-plain', name: 'plain', running: true, asks: [] },
      { id: 'id-vhost', name: 'vhost', running: true, asks: ['d.example.com'] },
      { id: 'id-web', name: 'web', running: true, asks: ['a.example.com', 'bad_name!'] },
    ]);
  });

  it('a change in the container list alone is not a new state (nothing served changed)', () => {
    const a = buildDesiredState([ctr('web', { labels: { 'padlock.host': 'a.example.com' } })], OPTS);
    const b = buildDesiredState([ctr('web', { labels: { 'padlock.host': 'a.example.com' } }), ctr('exited', { running: false })], OPTS);
    assert.notDeepEqual(a.containers, b.containers);
    assert.equal(sameDesiredState(a, b), true);
  });
});
