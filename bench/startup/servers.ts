/**
 * The servers the start-up bench starts, and their config files: padlock with
 * every fixture name as a static site, padlock with one site, Caddy and nginx
 * serving every name from the same `live/NAME/{fullchain,privkey}.pem` files.
 *
 * Everything binds 127.0.0.1 only. Caddy: admin off, no automatic HTTPS
 * (no ACME, no redirects), certificates only from files, storage and HOME in
 * the bench's temp dir; Caddy 2 has no telemetry. nginx: a private prefix,
 * no daemon. Every process runs under `timeout` (bench/proxy/procs.ts) in its
 * own process group.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../proxy/procs.js';
import { benchName } from './fixture.js';

export const SCENARIOS = ['padlock-all', 'padlock-one', 'padlock-all-redis', 'padlock-one-redis', 'caddy', 'nginx'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const DEFAULT_SCENARIOS: readonly Scenario[] = ['padlock-all', 'padlock-one', 'caddy'];

/** Human labels for tables. */
export const LABEL: Record<Scenario, string> = {
  'padlock-all': 'padlock, all N sites',
  'padlock-one': 'padlock, 1 site',
  'padlock-all-redis': 'padlock on Redis, all N sites',
  'padlock-one-redis': 'padlock on Redis, 1 site',
  caddy: 'Caddy, all N sites',
  nginx: 'nginx, all N sites',
};

/** Whether a scenario is padlock's, and whether it reads its certificates from Redis. */
export const isPadlock = (s: Scenario): boolean => s.startsWith('padlock');
export const usesRedis = (s: Scenario): boolean => s.endsWith('-redis');
/** The scenarios that route one name only (the last). */
export const routesOne = (s: Scenario): boolean => s.startsWith('padlock-one');

export interface Ports {
  https: number;
  http: number;
  admin: number;
}

export interface StartContext {
  /** The folder store holding the fixture (padlock's --config-dir; Caddy and nginx read its live/). */
  storeDir: string;
  names: number;
  /** Scratch folder for this scenario's config files. */
  dir: string;
  upstreamPort: number;
  ports: Ports;
  capSeconds: number;
  padlockBin: string;
  /** Extra environment for padlock (NODE_OPTIONS=--cpu-prof ...). */
  padlockEnv?: Record<string, string>;
  /** The Redis store holding a copy of the fixture, for the `*-redis` scenarios. */
  redis?: { url: string; keyFile: string; prefix: string };
  onOutput?: (chunk: string, stream: 'stdout' | 'stderr') => void;
}

/** The names a scenario routes (in fixture order). */
export function routedNames(scenario: Scenario, names: number): string[] {
  if (routesOne(scenario)) return [benchName(names)];
  return Array.from({ length: names }, (_, i) => benchName(i + 1));
}

/** The environment without proxy variables and without PADLOCK_* settings from the caller's shell. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(https?|all|no|ftp)_proxy$/i.test(k) && !k.startsWith('PADLOCK_')) env[k] = v;
  return { ...env, ...extra };
}

/** padlock's static-sites YAML: one `sites:` entry per routed name, all to one upstream. */
export function padlockYaml(hosts: readonly string[], upstreamPort: number): string {
  const lines = ['sites:'];
  for (const h of hosts) lines.push(`  - host: ${h}`, `    upstream: http://127.0.0.1:${upstreamPort}`);
  return `${lines.join('\n')}\n`;
}

/** Caddy's JSON config: every certificate via `load_files`, one route matching every host. */
export function caddyJson(storeDir: string, hosts: readonly string[], ports: Ports, upstreamPort: number, dataDir: string): unknown {
  return {
    admin: { disabled: true },
    logging: { logs: { default: { level: 'ERROR' } } },
    storage: { module: 'file_system', root: join(dataDir, 'storage') },
    apps: {
      tls: {
        // Caddy's certificate cache holds 10,000 by default and evicts beyond that.
        cache: { capacity: hosts.length + 16 },
        certificates: {
          load_files: hosts.map((h) => ({ certificate: join(storeDir, 'live', h, 'fullchain.pem'), key: join(storeDir, 'live', h, 'privkey.pem') })),
        },
      },
      http: {
        http_port: ports.http,
        https_port: ports.https,
        servers: {
          bench: {
            listen: [`127.0.0.1:${ports.https}`],
            // No automatic HTTPS: nothing to obtain, no HTTP->HTTPS redirect server on :80.
            automatic_https: { disable: true },
            // One empty policy turns TLS on for the listener; the certificate is chosen by SNI from the cache.
            tls_connection_policies: [{}],
            routes: [{ match: [{ host: hosts }], handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${upstreamPort}` }] }], terminal: true }],
          },
        },
      },
    },
  };
}

/** nginx: one `server` block per name with its own `ssl_certificate`, one worker. */
export function nginxConf(storeDir: string, hosts: readonly string[], ports: Ports, upstreamPort: number): string {
  const servers = hosts.map(
    (h) => `  server {
    listen 127.0.0.1:${ports.https} ssl;
    server_name ${h};
    ssl_certificate ${join(storeDir, 'live', h, 'fullchain.pem')};
    ssl_certificate_key ${join(storeDir, 'live', h, 'privkey.pem')};
    location / { proxy_pass http://app; }
  }`,
  );
  return `worker_processes 1;
events { worker_connections 1024; }
http {
  access_log off;
  server_names_hash_max_size ${Math.max(512, hosts.length * 2)};
  server_names_hash_bucket_size 128;
  ssl_protocols TLSv1.2 TLSv1.3;
  upstream app { server 127.0.0.1:${upstreamPort}; }
${servers.join('\n')}
}
`;
}

/** Writes the scenario's config and starts it. */
export async function startScenario(scenario: Scenario, ctx: StartContext): Promise<Daemon> {
  await mkdir(ctx.dir, { recursive: true });
  const hosts = routedNames(scenario, ctx.names);
  if (isPadlock(scenario)) {
    const conf = join(ctx.dir, 'padlock.yaml');
    await writeFile(conf, padlockYaml(hosts, ctx.upstreamPort));
    let storeEnv: Record<string, string> = {};
    let configDir = ctx.storeDir;
    if (usesRedis(scenario)) {
      if (!ctx.redis) throw new Error(`${scenario} needs a Redis store`);
      // Through the environment, so the URL's password is not in the process list.
      storeEnv = { PADLOCK_STORE: ctx.redis.url, PADLOCK_STORE_KEY_FILE: ctx.redis.keyFile, PADLOCK_STORE_PREFIX: ctx.redis.prefix };
      configDir = join(ctx.dir, 'config');
    }
    return startDaemon(
      scenario,
      ctx.padlockBin,
      [
        'run', '--docker', 'false', '--config', conf, '--config-dir', configDir,
        '--http-port', String(ctx.ports.http), '--https-port', String(ctx.ports.https), '--bind', '127.0.0.1',
        '--admin-listen', `127.0.0.1:${ctx.ports.admin}`, '--log-format', 'json', '--log-level', 'info', '--drain-seconds', '1',
      ],
      { env: cleanEnv({ ...storeEnv, ...ctx.padlockEnv }), capSeconds: ctx.capSeconds, ...(ctx.onOutput ? { onOutput: ctx.onOutput } : {}) },
    );
  }
  if (scenario === 'caddy') {
    const home = join(ctx.dir, 'home');
    await mkdir(home, { recursive: true });
    const conf = join(ctx.dir, 'caddy.json');
    await writeFile(conf, JSON.stringify(caddyJson(ctx.storeDir, hosts, ctx.ports, ctx.upstreamPort, ctx.dir)));
    const env = cleanEnv({ HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') });
    return startDaemon('caddy', '/usr/bin/caddy', ['run', '--config', conf], { env, capSeconds: ctx.capSeconds, ...(ctx.onOutput ? { onOutput: ctx.onOutput } : {}) });
  }
  await mkdir(join(ctx.dir, 'logs'), { recursive: true });
  const conf = join(ctx.dir, 'nginx.conf');
  await writeFile(conf, nginxConf(ctx.storeDir, hosts, ctx.ports, ctx.upstreamPort));
  return startDaemon(
    'nginx',
    '/usr/sbin/nginx',
    ['-p', ctx.dir, '-c', conf, '-g', `daemon off; pid ${join(ctx.dir, 'nginx.pid')}; error_log ${join(ctx.dir, 'error.log')} warn;`],
    { env: cleanEnv(), capSeconds: ctx.capSeconds, ...(ctx.onOutput ? { onOutput: ctx.onOutput } : {}) },
  );
}
