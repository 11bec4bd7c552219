/**
 * How each ACME client is invoked for one issuance against the bench's Pebble.
 *
 * Every tool uses HTTP-01 with its own standalone server on Pebble's httpPort
 * (127.0.0.1 only), keeps its account in its own state dir (so the account is
 * reused after the warm-up), and trusts Pebble's listener CA explicitly.
 * All default to ECDSA P-256 keys (lego ec256, certbot >= 2.0 ecdsa).
 */
import { join } from 'node:path';
import type { Pebble } from '../../test/support/pebble.js';

export type ToolName = 'lego' | 'certbot' | 'padlock';

export interface ToolInvocation {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

export interface Tool {
  name: ToolName;
  /** The command line that issues one certificate for all of `names`. */
  issue(names: string[]): ToolInvocation;
  /** Where that invocation leaves the certificate (leaf first), so the bench can check it really issued. */
  certFile(names: string[]): string;
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
    certFile: (names) => join(stateDir, 'lego', 'certificates', `${names[0] ?? ''}.crt`),
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
    certFile: (names) => join(stateDir, 'certbot', 'config', 'live', names[0] ?? 'bench', 'fullchain.pem'),
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
    certFile: (names) => join(stateDir, 'padlock', 'live', names[0] ?? '', 'fullchain.pem'),
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
