/**
 * The upstream and the three proxies of the proxy bench: config files and
 * command lines. Everything listens on 127.0.0.1 only; nothing is configured
 * to reach anything else (Caddy: admin off, auto_https off, no OCSP stapling,
 * explicit `tls cert key`, storage and HOME in the bench's temp dir).
 */
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, type Daemon } from './procs.js';

export type ProxyName = 'nginx' | 'caddy' | 'padlock' | 'padlock-1w' | 'padlock-h1' | 'padlock-base' | 'node-hello';
/**
 * `padlock` runs with `--workers 2` (or `BENCH_PADLOCK_WORKERS`), `padlock-1w`
 * as one process. `node-hello` is not a proxy: a reference row (Node's own TLS
 * + HTTP/1.1 server answering the body itself; it has no HTTP/2 row).
 */
export const PROXIES: readonly ProxyName[] = ['nginx', 'caddy', 'padlock', 'padlock-1w', 'node-hello'];
/**
 * Rows only on request (`--proxies`), for A/B runs: `padlock-h1` is
 * `padlock-1w` with `--http2 false`; `padlock-base` is another padlock build
 * (`BENCH_PADLOCK_BASE_BIN`, e.g. main before a change) with `--workers 1`.
 */
export const EXTRA_PROXIES: readonly ProxyName[] = ['padlock-h1', 'padlock-base'];
/** The rows that speak HTTP/2 (the h2load phase). `padlock-base` is measured too: a base build without HTTP/2 gets a row that says h2 was not negotiated. */
export const SPEAKS_H2: ReadonlySet<ProxyName> = new Set(['nginx', 'caddy', 'padlock', 'padlock-1w', 'padlock-base']);

export const HOST = 'localhost';
/** The upstream's whole response body. */
export const BODY = 'hello from upstream\n';

/** nginx serving a fixed tiny body from its config: the same upstream for all proxies. */
export async function startUpstream(dir: string, port: number, capSeconds: number): Promise<Daemon> {
  await mkdir(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'upstream.conf');
  await writeFile(
    conf,
    `worker_processes 1;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port};
    default_type text/plain;
    location / { return 200 ${JSON.stringify(BODY)}; }
  }
}
`,
  );
  return startDaemon('upstream', '/usr/sbin/nginx', ['-p', dir, '-c', conf, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} warn;`], {
    env: process.env,
    capSeconds,
  });
}

export interface ProxyPlan {
  name: ProxyName;
  port: number;
  start(): Promise<Daemon>;
}

export interface CertFiles {
  fullchain: string;
  privkey: string;
}

/**
 * nginx: 2 workers (one per core), upstream keepalive, no access log, TLS
 * 1.2/1.3, HTTP/2 on. (`listen ... ssl http2`: Debian 12's nginx 1.22 predates
 * the `http2 on` directive of 1.25.1; both switch on the same module.)
 */
export function nginxPlan(dir: string, port: number, upstreamPort: number, cert: CertFiles, capSeconds: () => number): ProxyPlan {
  return {
    name: 'nginx',
    port,
    async start() {
      await mkdir(join(dir, 'logs'), { recursive: true });
      const conf = join(dir, 'nginx.conf');
      await writeFile(
        conf,
        `worker_processes 2;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 32;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port} ssl http2;
    server_name ${HOST};
    ssl_certificate ${cert.fullchain};
    ssl_certificate_key ${cert.privkey};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`,
      );
      return startDaemon('nginx', '/usr/sbin/nginx', ['-p', dir, '-c', conf, '-g', `daemon off; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} warn;`], {
        env: process.env,
        capSeconds: capSeconds(),
      });
    },
  };
}

/**
 * Caddy: the same certificate via `tls`, logs discarded, nothing automatic.
 * HTTP/2 is on by default. `site` changes the name (default HOST) and adds
 * lines inside `reverse_proxy { }` (bench/redeploy: `lb_try_duration`).
 */
export function caddyPlan(
  dir: string, port: number, httpPort: number, upstreamPort: number, cert: CertFiles, capSeconds: () => number,
  site: { host?: string; proxyOptions?: string[] } = {},
): ProxyPlan {
  const options = site.proxyOptions?.length ? ` {\n${site.proxyOptions.map((o) => `\t\t${o}\n`).join('')}\t}` : '';
  return {
    name: 'caddy',
    port,
    async start() {
      await mkdir(join(dir, 'home'), { recursive: true });
      const conf = join(dir, 'Caddyfile');
      // http_port is never opened (auto_https off, no http:// site); it only keeps Caddy off :80 in its config.
      await writeFile(
        conf,
        `{
	admin off
	auto_https off
	skip_install_trust
	ocsp_stapling off
	default_bind 127.0.0.1
	http_port ${httpPort}
	https_port ${port}
	storage file_system ${join(dir, 'storage')}
	log {
		output discard
	}
}

https://${site.host ?? HOST}:${port} {
	bind 127.0.0.1
	tls ${cert.fullchain} ${cert.privkey}
	reverse_proxy 127.0.0.1:${upstreamPort}${options}
}
`,
      );
      const home = join(dir, 'home');
      const env = { ...process.env, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
      return startDaemon('caddy', '/usr/bin/caddy', ['run', '--config', conf, '--adapter', 'caddyfile'], { env, capSeconds: capSeconds() });
    },
  };
}

/**
 * padlock's data-plane processes in the bench: `--workers N` (node:cluster),
 * 2 by default (one per core, like nginx's workers); `BENCH_PADLOCK_WORKERS=1`
 * measures the single-process data plane.
 */
export const PADLOCK_WORKERS = Math.max(1, Math.floor(Number(process.env['BENCH_PADLOCK_WORKERS'] ?? 2)) || 2);

/** padlock run with one static site; its local CA issues `localhost` on first start. */
export function padlockPlan(
  bin: string,
  dir: string,
  ports: { https: number; http: number; admin: number },
  upstreamPort: number,
  capSeconds: () => number,
  extraEnv: Record<string, string> = {},
  workers: number = PADLOCK_WORKERS,
  name: 'padlock' | 'padlock-1w' | 'padlock-h1' | 'padlock-base' = 'padlock',
  extraArgs: string[] = [],
): ProxyPlan & { configDir: string } {
  const configDir = join(dir, 'config');
  return {
    name,
    port: ports.https,
    configDir,
    async start() {
      await mkdir(dir, { recursive: true });
      const conf = join(dir, 'padlock.yaml');
      await writeFile(conf, `sites:\n  - host: ${HOST}\n    upstream: http://127.0.0.1:${upstreamPort}\n`);
      const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv };
      for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k) || k.startsWith('PADLOCK_')) delete env[k];
      return startDaemon(
        'padlock',
        bin,
        [
          'run', '--docker', 'false', '--config', conf,
          '--http-port', String(ports.http), '--https-port', String(ports.https), '--bind', '127.0.0.1',
          '--admin-listen', `127.0.0.1:${ports.admin}`, '--config-dir', configDir, '--log-level', 'warn',
          '--workers', String(workers), ...extraArgs,
        ],
        { env, capSeconds: capSeconds() },
      );
    },
  };
}

/** Reference, not a proxy: bare Node HTTPS (padlock's Node) answering the same body with the same certificate. */
export function nodeHelloPlan(nodeBin: string, script: string, port: number, cert: CertFiles, capSeconds: () => number): ProxyPlan {
  return {
    name: 'node-hello',
    port,
    async start() {
      return startDaemon('node-hello', nodeBin, [script, String(port), cert.fullchain, cert.privkey, BODY], { env: process.env, capSeconds: capSeconds() });
    },
  };
}
