/**
 * The Docker adapter for the companion's `exec` and `signal` reloads.
 *
 * **`exec` and `signal` are the only padlock features that need Docker write
 * access** (`POST /containers/{id}/exec` and `/exec/{id}/start`, or
 * `POST /containers/{id}/kill`). Everything else only lists, inspects and
 * watches events, so a read-only socket proxy suffices. For these reloads
 * give padlock a socket that allows those calls (or the Docker socket
 * itself, which is as powerful as root on the Docker host).
 */
import type Docker from 'dockerode';
import { parseDockerHost } from '../docker/host.js';
import type { ReloadDocker } from './reloader.js';

/**
 * The dockerode adapter for `exec` and `signal` reloads. Each call is bounded by
 * `timeoutMs` (default 10 s); an exec by the timeout it is given.
 */
export function createReloadDocker(opts: { dockerHost?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): ReloadDocker {
  const connection = parseDockerHost(opts.dockerHost, opts.env ?? process.env);
  // dockerode is loaded on the first reload, not when the companion starts.
  let client: Promise<Docker> | undefined;
  const dockerClient = (): Promise<Docker> => (client ??= import('dockerode').then(({ default: Dockerode }) => new Dockerode(connection as Docker.DockerOptions)));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    listByLabel: async (label) => {
      const list = await (await dockerClient()).listContainers({ filters: { label: [label] }, abortSignal: AbortSignal.timeout(timeoutMs) } as Docker.ContainerListOptions);
      return list.map((c) => ({ id: c.Id, name: (c.Names?.[0] ?? c.Id.slice(0, 12)).replace(/^\//, '') }));
    },
    kill: async (id, signal) => {
      await (await dockerClient()).getContainer(id).kill({ signal, abortSignal: AbortSignal.timeout(timeoutMs) } as object);
    },
    exec: async (id, cmd, execTimeoutMs) => {
      const abort = AbortSignal.timeout(execTimeoutMs);
      const ex = await (await dockerClient()).getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, abortSignal: abort } as Docker.ExecCreateOptions);
      const stream = await ex.start({ hijack: true, stdin: false, abortSignal: abort } as Docker.ExecStartOptions);
      let output = '';
      await new Promise<void>((resolveRun, rejectRun) => {
        const timer = setTimeout(() => {
          (stream as { destroy?: () => void }).destroy?.();
          rejectRun(new Error(`the reload command did not finish within ${execTimeoutMs / 1000} s`));
        }, execTimeoutMs);
        // The stream multiplexes stdout and stderr with 8-byte frame headers; only the text is kept, for messages.
        stream.on('data', (chunk: Buffer) => {
          output = (output + chunk.toString('utf8').replace(/[\x00-\x08]/g, '')).slice(-2000);
        });
        stream.on('end', () => { clearTimeout(timer); resolveRun(); });
        stream.on('close', () => { clearTimeout(timer); resolveRun(); });
        stream.on('error', (e: Error) => { clearTimeout(timer); rejectRun(e); });
      });
      const info = await ex.inspect({ abortSignal: AbortSignal.timeout(timeoutMs) } as object);
      return { exitCode: info.ExitCode ?? null, output };
    },
  };
}
