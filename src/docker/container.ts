/**
 * The few facts padlock reads about a container, as a plain value. Pure.
 *
 * The Engine API's inspect answer is large and loosely typed (fields go
 * missing across API versions, `Labels` may be null). `fromInspect` turns it
 * into a small, total value so that `labels.ts` can be table-tested without
 * Docker and never meets an `undefined` where it expects a map.
 */
import type Dockerode from 'dockerode';

/** What discovery needs to know about one container. */
export interface ContainerInfo {
  id: string;
  /** Without Docker's leading slash: `web-1`. */
  name: string;
  labels: Record<string, string>;
  /** From `Config.Env`; a later duplicate key wins, as in the container's own environment. */
  env: Record<string, string>;
  running: boolean;
  /** Only when the container has a health check. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  /** `host`, `none`, `bridge`, `default`, a network name, or `container:ID`. */
  networkMode: string;
  /** Network name -> the container's address on it (IPv4 first, else global IPv6). */
  networks: Record<string, { ip?: string }>;
  /** TCP ports from `Config.ExposedPorts` (EXPOSE or `--expose`), ascending, no duplicates. */
  exposedPorts: number[];
  /** RFC 3339 time the container was created; orders conflicting claims (first created wins). */
  createdAt: string;
}

const HEALTH = new Set(['starting', 'healthy', 'unhealthy']);

/**
 * Reduces an inspect answer to a ContainerInfo. Pure; never throws on missing
 * or null fields (they become empty maps, `false`, or are left out).
 */
export function fromInspect(inspect: Dockerode.ContainerInspectInfo): ContainerInfo {
  // The API sends null for empty maps and lists; the typings don't say so.
  const config = (inspect.Config ?? {}) as Partial<Dockerode.ContainerInspectInfo['Config']>;
  const state = (inspect.State ?? {}) as Partial<Dockerode.ContainerInspectInfo['State']>;
  const labels: Record<string, string> = { ...(config.Labels ?? {}) };

  const env: Record<string, string> = {};
  for (const entry of config.Env ?? []) {
    const eq = entry.indexOf('=');
    // `FOO` without `=` means "unset" to Docker; it never reaches the process.
    if (eq <= 0) continue;
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }

  const networks: Record<string, { ip?: string }> = {};
  for (const [netName, settings] of Object.entries(inspect.NetworkSettings?.Networks ?? {})) {
    const ip = settings?.IPAddress || settings?.GlobalIPv6Address || undefined;
    networks[netName] = ip ? { ip } : {};
  }

  const ports = new Set<number>();
  for (const key of Object.keys(config.ExposedPorts ?? {})) {
    const [num, proto = 'tcp'] = key.split('/');
    const port = Number(num);
    if (proto === 'tcp' && Number.isInteger(port) && port >= 1 && port <= 65535) ports.add(port);
  }

  const healthStatus = state.Health?.Status;
  const info: ContainerInfo = {
    id: inspect.Id,
    name: (inspect.Name ?? '').replace(/^\//, ''),
    labels,
    env,
    running: state.Running === true,
    networkMode: inspect.HostConfig?.NetworkMode || 'default',
    networks,
    exposedPorts: [...ports].sort((a, b) => a - b),
    createdAt: inspect.Created ?? '',
  };
  if (healthStatus && HEALTH.has(healthStatus)) info.health = healthStatus as NonNullable<ContainerInfo['health']>;
  return info;
}

/**
 * A container that is not running, from the listing's summary alone (no
 * inspect: a host may keep hundreds of exited containers, and discovery only
 * needs to know that this one still exists, for the grace period). Its env,
 * networks and ports are left empty: it routes nothing. Pure.
 */
export function fromSummary(summary: Pick<Dockerode.ContainerInfo, 'Id' | 'Names' | 'Labels' | 'Created'>): ContainerInfo {
  return {
    id: summary.Id,
    name: (summary.Names?.[0] ?? '').replace(/^\//, ''),
    labels: { ...(summary.Labels ?? {}) },
    env: {},
    running: false,
    networkMode: 'default',
    networks: {},
    exposedPorts: [],
    createdAt: Number.isFinite(summary.Created) ? new Date(summary.Created * 1000).toISOString() : '',
  };
}
