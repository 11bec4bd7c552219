/**
 * How each ACME client is invoked for one issuance against the bench's Pebble.
 *
 * Every tool uses HTTP-01 with its own server on Pebble's httpPort
 * (127.0.0.1 only), keeps its account in its own state dir (so the account is
 * reused after the warm-up), and trusts Pebble's listener CA explicitly.
 * All default to ECDSA P-256 keys (lego ec256, certbot >= 2.0 ecdsa, Caddy p256).
 *
 * lego, certbot and padlock are one-shot clients: timed from spawn to exit.
 * Caddy is a server: timed from spawn until every certificate file is in its
 * storage, then stopped (see `caddy`).
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, type Pebble } from '../../test/support/pebble.js';
import type { UntilOptions } from './child.js';

export const TOOL_NAMES = ['lego', 'certbot', 'padlock', 'caddy'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

export interface ToolInvocation {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Untimed set-up before the spawn (Caddy: write its config, clear its certificates). */
  prepare?: () => Promise<void>;
  /** For a server that does not exit by itself: when the work is done (see runTimed). */
  until?: UntilOptions;
}

/** One certificate file an invocation must leave, and the names its SAN must list. */
export interface ExpectedCert {
  file: string;
  names: string[];
}

export interface Tool {
  name: ToolName;
  /** The command line that issues certificates for all of `names` (one certificate, or one per name for Caddy). */
  issue(names: string[]): ToolInvocation;
  /** Where that invocation leaves its certificate(s) (leaf first), so the bench can check it really issued. */
  certs(names: string[]): ExpectedCert[];
  /** The command line that prints the version (or help, to check availability). */
  probe: ToolInvocation;
}

export const EMAIL = 'bench@example.com';

/** The environment for every tool: no proxies, and no global CA bundles standing in for explicit trust. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(https?|all|no|ftp)_proxy$/i.test(k)) continue;
    if (/^(REQUESTS_CA_BUNDLE|SSL_CERT_FILE|SSL_CERT_DIR|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|LEGO_CA_CERTIFICATES)$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function lego(pebble: Pebble, stateDir: string): Tool {
  const env = cleanEnv({ LEGO_CA_CERTIFICATES: pebble.serverCaFile });
  return {
    name: 'lego',
    probe: { cmd: 'lego', args: ['--version'], env },
    certs: (names) => [{ file: join(stateDir, 'lego', 'certificates', `${names[0] ?? ''}.crt`), names }],
    issue: (names) => ({
      cmd: 'lego',
      args: [
        '--server', pebble.directoryUrl, '--accept-tos', '--email', EMAIL,
        ...names.flatMap((n) => ['--domains', n]),
        '--http', '--http.port', `127.0.0.1:${pebble.httpPort}`,
        '--path', join(stateDir, 'lego'),
        'run',
      ],
      env,
    }),
  };
}

export function certbot(pebble: Pebble, stateDir: string): Tool {
  const env = cleanEnv({ REQUESTS_CA_BUNDLE: pebble.serverCaFile });
  const dirs = ['--config-dir', join(stateDir, 'certbot', 'config'), '--work-dir', join(stateDir, 'certbot', 'work'), '--logs-dir', join(stateDir, 'certbot', 'logs')];
  return {
    name: 'certbot',
    probe: { cmd: 'certbot', args: ['--version', ...dirs], env },
    certs: (names) => [{ file: join(stateDir, 'certbot', 'config', 'live', names[0] ?? 'bench', 'fullchain.pem'), names }],
    issue: (names) => ({
      cmd: 'certbot',
      args: [
        'certonly', '--standalone',
        '--http-01-port', String(pebble.httpPort), '--http-01-address', '127.0.0.1',
        '--server', pebble.directoryUrl,
        '--non-interactive', '--agree-tos', '-m', EMAIL, '--no-eff-email',
        ...dirs,
        // One lineage per invocation, named after the first name.
        '--cert-name', names[0] ?? 'bench',
        ...names.flatMap((n) => ['-d', n]),
      ],
      env,
    }),
  };
}

export function padlock(pebble: Pebble, stateDir: string, bin: string): Tool {
  const env = cleanEnv({});
  return {
    name: 'padlock',
    probe: { cmd: bin, args: ['issue', '--help'], env },
    certs: (names) => [{ file: join(stateDir, 'padlock', 'live', names[0] ?? '', 'fullchain.pem'), names }],
    issue: (names) => ({
      cmd: bin,
      args: [
        'issue',
        ...names.flatMap((n) => ['-d', n]),
        '--standalone', '--http-01-port', String(pebble.httpPort), '--http-01-address', '127.0.0.1',
        '--server', pebble.directoryUrl, '--server-ca', pebble.serverCaFile, '--trusted-roots', pebble.rootsFile,
        '--config-dir', join(stateDir, 'padlock'),
        '--agree-tos', '--email', EMAIL, '--non-interactive',
      ],
      env,
    }),
  };
}

export const CADDY_BIN = '/usr/bin/caddy';

/**
 * The folder certmagic (Caddy 2.6) names after an ACME directory under
 * `certificates/`: host, port and path with ':' and '/' turned into '-'
 * (`https://127.0.0.1:14000/dir` -> `127.0.0.1-14000-dir`).
 */
export function caddyIssuerFolder(directoryUrl: string): string {
  const u = new URL(directoryUrl);
  const path = u.pathname.replace(/[/\\]/g, '-').replace(/^-+|-+$/g, '');
  return `${u.host}${path ? `-${path}` : ''}`.toLowerCase().replace(/:/g, '-');
}

/**
 * Caddy's config for one run: Pebble as its only CA, HTTP-01 only, every
 * listener on 127.0.0.1, no admin API, no OCSP, and one site per name.
 * TLS-ALPN-01 is turned off because Pebble validates it on its own `tlsPort`,
 * not on Caddy's HTTPS port; the other tools use HTTP-01 too.
 */
export function caddyfile(o: { directoryUrl: string; caFile: string; httpPort: number; httpsPort: number; storage: string; names: string[] }): string {
  const sites = o.names.map((n) => `${n} {\n\trespond "ok"\n}\n`).join('\n');
  return `{
\tadmin off
\temail ${EMAIL}
\tacme_ca ${o.directoryUrl}
\tacme_ca_root ${o.caFile}
\tcert_issuer acme {
\t\tdisable_tlsalpn_challenge
\t}
\thttp_port ${o.httpPort}
\thttps_port ${o.httpsPort}
\tdefault_bind 127.0.0.1
\tstorage file_system ${o.storage}
\tocsp_stapling off
\tskip_install_trust
}

${sites}`;
}

/** True when `file` holds a PEM certificate (a file still being written does not parse). */
async function holdsCertificate(file: string): Promise<boolean> {
  try {
    new X509Certificate(await readFile(file));
    return true;
  } catch {
    return false;
  }
}

/**
 * Caddy 2.6 (`caddy run` with a Caddyfile, see `caddyfile`). Timed from spawn
 * until the certificate of every name is in its storage (polled every 10 ms),
 * then stopped with SIGTERM. Its account (storage `acme/`) is kept between
 * runs, so only the warm-up registers it; everything else in storage
 * (certificates, locks) is removed before each run.
 */
export function caddy(pebble: Pebble, stateDir: string): Tool {
  const dir = join(stateDir, 'caddy');
  const storage = join(dir, 'storage');
  const home = join(dir, 'home');
  const conf = join(dir, 'Caddyfile');
  // Caddy writes autosave.json and its default storage under HOME/XDG dirs: keep them in the run's temp dir.
  const env = cleanEnv({ HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') });
  const issuerDir = join(storage, 'certificates', caddyIssuerFolder(pebble.directoryUrl));
  const certFile = (n: string): string => join(issuerDir, n, `${n}.crt`);
  return {
    name: 'caddy',
    probe: { cmd: CADDY_BIN, args: ['version'], env },
    certs: (names) => names.map((n) => ({ file: certFile(n), names: [n] })),
    issue: (names) => {
      const pending = new Set(names);
      return {
        cmd: CADDY_BIN,
        args: ['run', '--config', conf, '--adapter', 'caddyfile'],
        env,
        prepare: async () => {
          await mkdir(storage, { recursive: true });
          await mkdir(home, { recursive: true });
          for (const entry of await readdir(storage)) {
            if (entry !== 'acme') await rm(join(storage, entry), { recursive: true, force: true });
          }
          const httpsPort = await freePort();
          await writeFile(conf, caddyfile({ directoryUrl: pebble.directoryUrl, caFile: pebble.serverCaFile, httpPort: pebble.httpPort, httpsPort, storage, names }));
        },
        until: {
          done: async () => {
            for (const n of [...pending]) {
              if (await holdsCertificate(certFile(n))) pending.delete(n);
            }
            return pending.size === 0;
          },
          pollMs: 10,
          stopGraceMs: 5_000,
        },
      };
    },
  };
}
