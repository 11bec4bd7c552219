/**
 * Docker host addresses, read the way the docker CLI reads them. Apart from
 * the dockerode adapter so that reading one does not load dockerode.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { PadlockError, errorMessage } from '../errors.js';

/** What `parseDockerHost` gives dockerode. */
export interface DockerConnection {
  socketPath?: string;
  host?: string;
  port?: number;
  protocol?: 'http' | 'https';
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * Reads a Docker host address the way the docker CLI does: `unix:///path`,
 * `tcp://host:port` (TLS when `DOCKER_TLS_VERIFY` is set, with `ca.pem`,
 * `cert.pem`, `key.pem` from `DOCKER_CERT_PATH` or `~/.docker`), or a bare
 * socket path. Throws CONFIG_INVALID for anything else, naming the value.
 */
export function parseDockerHost(dockerHost: string | undefined, env: Record<string, string | undefined> = process.env): DockerConnection {
  const value = (dockerHost ?? env.DOCKER_HOST ?? '').trim();
  if (value === '') return { socketPath: DEFAULT_DOCKER_SOCKET };
  if (value.startsWith('/')) return { socketPath: value };
  if (value.startsWith('unix://')) {
    const path = value.slice('unix://'.length);
    if (!path.startsWith('/')) throw invalid(value, 'a unix socket address needs an absolute path, as in unix:///var/run/docker.sock');
    return { socketPath: path };
  }
  const m = /^(tcp|http|https):\/\/([^/:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(value);
  if (!m) throw invalid(value, 'use unix:///PATH or tcp://HOST:PORT');
  const [, scheme, host = '', portText] = m;
  const port = Number(portText);
  if (!(port >= 1 && port <= 65535)) throw invalid(value, `${portText} is not a port (1-65535)`);
  const tlsVerify = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '' && env.DOCKER_TLS_VERIFY !== '0';
  const conn: DockerConnection = { host: host.replace(/^\[|\]$/g, ''), port, protocol: tlsVerify || scheme === 'https' ? 'https' : 'http' };
  if (tlsVerify) {
    const dir = env.DOCKER_CERT_PATH || join(homedir(), '.docker');
    try {
      conn.ca = readFileSync(join(dir, 'ca.pem'));
      conn.cert = readFileSync(join(dir, 'cert.pem'));
      conn.key = readFileSync(join(dir, 'key.pem'));
    } catch (e) {
      throw new PadlockError('CONFIG_INVALID', `DOCKER_TLS_VERIFY is set but the TLS files in ${dir} cannot be read (${errorMessage(e)}); set DOCKER_CERT_PATH to the folder holding ca.pem, cert.pem and key.pem`, { cause: e });
    }
  }
  return conn;
}

function invalid(value: string, what: string): PadlockError<'CONFIG_INVALID'> {
  return new PadlockError('CONFIG_INVALID', `docker host "${value}" is not usable: ${what}`, { details: { dockerHost: value } });
}
