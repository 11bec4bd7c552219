/**
 * Docker discovery as the daemon sees it: the DockerWatcher behind the
 * Discovery interface main.ts wires.
 *
 * When padlock itself runs in a container, upstreams are reached on a
 * network the two share. padlock finds its own container in each listing by
 * its hostname, which Docker sets to the short container id unless
 * `--hostname` overrides it (then the first network of each app is used).
 */
import { hostname } from 'node:os';
import { DockerWatcher } from './watcher.js';
import { createDockerSource } from './client.js';
import { buildDesiredState, type DiscoveryOptions } from './labels.js';
import type { ContainerInfo } from './container.js';
import type { Discovery } from '../main.js';
import type { Logger } from '../log.js';
import { systemClock } from '../clock.js';

export interface DockerDiscoveryOptions extends Omit<DiscoveryOptions, 'selfNetworks'> {
  dockerHost?: string;
  logger?: Logger;
  /** This process's hostname (injected by tests). */
  selfHostname?: string;
}

/** The networks of padlock's own container, if it is one of those listed. */
export function selfNetworks(containers: readonly ContainerInfo[], host: string): string[] | undefined {
  if (!/^[0-9a-f]{12,64}$/.test(host)) return undefined;
  const self = containers.find((c) => c.id.startsWith(host));
  return self ? Object.keys(self.networks).sort() : undefined;
}

export function dockerDiscovery(options: DockerDiscoveryOptions): Discovery {
  const { dockerHost, logger, selfHostname, ...discovery } = options;
  const me = selfHostname ?? hostname();
  const source = createDockerSource(dockerHost ? { dockerHost } : {});
  const watcher = new DockerWatcher({
    source,
    discovery,
    ...(logger ? { logger } : {}),
    build: (containers, opts) => {
      const nets = selfNetworks(containers, me);
      return buildDesiredState(containers, nets ? { ...opts, selfNetworks: nets } : opts);
    },
  });
  return {
    start(onState, onStatus) {
      watcher.on('state', onState);
      watcher.on('connected', () => onStatus({ connected: true, since: systemClock.now().toISOString() }));
      watcher.on('disconnected', (error) => onStatus({ connected: false, error: error.message, since: systemClock.now().toISOString() }));
      watcher.start();
    },
    stop: async () => {
      await watcher.stop();
      source.close();
    },
  };
}
