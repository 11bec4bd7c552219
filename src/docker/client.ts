/**
 * The Docker port padlock needs (list, watch, ping) and its dockerode adapter.
 *
 * padlock only reads from Docker: it lists and inspects containers and
 * follows the event stream. Nothing here writes, so a read-only socket proxy
 * in front of the daemon is enough.
 */
import { Agent as HttpAgent } from '../node-http.js';
import { Agent as HttpsAgent } from 'node:https';
import Docker from 'dockerode';
import { fromInspect, fromSummary, type ContainerInfo } from './container.js';
import { parseDockerHost } from './host.js';

/** One event from the Engine API's `/events` stream, reduced to what the watcher needs. */
export interface DockerEvent {
  /** `container`, `network`, ... */
  type: string;
  /** `start`, `die`, `health_status: healthy`, `connect`, ... */
  action: string;
  /** The container (or network) ID. */
  id: string;
  /** Seconds since the epoch (the daemon's clock); what `since` takes. */
  time: number;
  /** Nanoseconds since the epoch, for de-duplication after a resubscribe. */
  timeNano: number;
  /** Labels and names; for network events, `container` is the container ID. */
  attributes: Record<string, string>;
}

/** Read access to one Docker daemon. */
export interface DockerSource {
  /**
   * Every container. Running ones are inspected (env is only in inspect); the
   * others come from the listing's summary (`fromSummary`: name and labels,
   * `running: false`), so that the grace period can tell a stopped container
   * from a removed one. A container that disappears between the listing and
   * its inspect is left out. Rejects
   * when the daemon fails or does not answer within the adapter's timeout,
   * or when `signal` aborts; safe to call concurrently.
   */
  list(signal?: AbortSignal): Promise<ContainerInfo[]>;
  /**
   * Follows container and network events from `since` (seconds; the daemon
   * replays events from that second on, so the caller dedupes) or from now.
   * `onOpen` runs once the daemon has accepted the subscription, so a listing
   * made after it cannot miss an event. Resolves when the stream ends or
   * `signal` aborts, rejects when it fails; it never reconnects by itself.
   */
  events(
    opts: { since?: number; signal: AbortSignal; onOpen?: () => void },
    onEvent: (e: DockerEvent) => void,
  ): Promise<void>;
  /** Resolves when the daemon answers `/_ping` within the timeout. */
  ping(): Promise<void>;
  /** Closes idle connections. Calls in flight are not cancelled; abort them with their signal. */
  close(): void;
}

export interface DockerSourceOptions {
  /** `unix:///var/run/docker.sock`, `tcp://host:2376`; default `DOCKER_HOST`, then the default socket. */
  dockerHost?: string;
  /** Environment to read `DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH` from (default process.env). */
  env?: Record<string, string | undefined>;
  /** Upper bound on one list (listing plus every inspect) or ping, in ms (default 10 000). */
  timeoutMs?: number;
}

export { DEFAULT_DOCKER_SOCKET, parseDockerHost, type DockerConnection } from './host.js';

/** Runs `fn` with at most `limit` in flight. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const RELEVANT_TYPES = ['container', 'network'];

/** The dockerode adapter for DockerSource. Throws CONFIG_INVALID for an unusable `dockerHost`. */
export function createDockerSource(options: DockerSourceOptions = {}): DockerSource {
  const conn = parseDockerHost(options.dockerHost, options.env ?? process.env);
  const timeoutMs = options.timeoutMs ?? 10_000;
  // A private agent, so close() can drop our keep-alive sockets without touching anyone else's.
  const agent = conn.protocol === 'https' ? new HttpsAgent({ keepAlive: true, ca: conn.ca, cert: conn.cert, key: conn.key }) : new HttpAgent({ keepAlive: true });
  // No modem `timeout`: it is an idle timeout and would cut a quiet event stream. Calls get abort signals instead.
  const docker = new Docker({ ...conn, agent } as Docker.DockerOptions);
  const where = conn.socketPath ?? `${conn.protocol}://${conn.host}:${conn.port}`;

  const withTimeout = async <T>(what: string, fn: (signal: AbortSignal) => Promise<T>, caller?: AbortSignal): Promise<T> => {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = caller ? AbortSignal.any([timeout, caller]) : timeout;
    try {
      return await fn(signal);
    } catch (e) {
      if (timeout.aborted) throw new Error(`docker ${what} at ${where}: no answer within ${timeoutMs} ms`, { cause: e });
      throw e;
    }
  };

  return {
    list: (callerSignal) =>
      withTimeout('list', async (signal) => {
        const summaries = await docker.listContainers({ all: true, abortSignal: signal });
        const infos = await mapLimit(summaries, 8, async (s) => {
          // Paused counts as running, as before (inspect says Running, and listing without `all` includes it).
          if (s.State !== 'running' && s.State !== 'paused') return fromSummary(s);
          try {
            return fromInspect(await docker.getContainer(s.Id).inspect({ abortSignal: signal } as object));
          } catch (e) {
            // Gone between the listing and the inspect: its destroy event triggers another listing anyway.
            if ((e as { statusCode?: number }).statusCode === 404) return undefined;
            throw e;
          }
        });
        return infos.filter((i): i is ContainerInfo => i !== undefined);
      }, callerSignal),

    ping: () =>
      withTimeout('ping', async (signal) => {
        await docker.ping({ abortSignal: signal } as never);
      }),

    events: (opts, onEvent) =>
      new Promise<void>((resolve, reject) => {
        const { signal } = opts;
        if (signal.aborted) return resolve();
        let stream: NodeJS.ReadableStream | undefined;
        let settled = false;
        const finish = (err?: unknown): void => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          (stream as { destroy?: () => void } | undefined)?.destroy?.();
          if (err && !signal.aborted) reject(err);
          else resolve();
        };
        const onAbort = (): void => finish();
        signal.addEventListener('abort', onAbort, { once: true });
        const query: Docker.GetEventsOptions = { filters: { type: RELEVANT_TYPES } as Docker.GetEventsOptions['filters'] };
        if (opts.since !== undefined) query.since = opts.since;
        docker.getEvents({ ...query, abortSignal: signal } as Docker.GetEventsOptions, (err, s) => {
          if (err || !s) return finish(err ?? new Error('docker events: no stream'));
          if (settled) {
            (s as { destroy?: () => void }).destroy?.();
            return;
          }
          stream = s;
          let buf = '';
          s.on('data', (chunk: Buffer | string) => {
            buf += chunk.toString();
            let nl: number;
            // The stream is JSON objects separated by newlines, split across chunks at random.
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              if (!line) continue;
              const e = toEvent(line);
              if (e) onEvent(e);
            }
          });
          s.on('error', (e: unknown) => finish(e));
          s.on('end', () => finish());
          s.on('close', () => finish());
          opts.onOpen?.();
        });
      }),

    close: () => agent.destroy(),
  };
}

function toEvent(line: string): DockerEvent | undefined {
  try {
    const raw = JSON.parse(line) as {
      Type?: string;
      Action?: string;
      id?: string;
      time?: number;
      timeNano?: number;
      Actor?: { ID?: string; Attributes?: Record<string, string> };
    };
    const time = raw.time ?? 0;
    return {
      type: raw.Type ?? '',
      action: raw.Action ?? '',
      id: raw.Actor?.ID ?? raw.id ?? '',
      time,
      timeNano: raw.timeNano ?? time * 1e9,
      attributes: raw.Actor?.Attributes ?? {},
    };
  } catch {
    return undefined;
  }
}
