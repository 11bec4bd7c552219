/**
 * Combines the static sites from the config file with a discovered state.
 * Pure. A static site wins its host; a container that claims the same host
 * gets a LABEL_CONFLICT problem and adds nothing to it.
 */
import type { DesiredState, SiteSpec } from './desired-state.js';

export function mergeDesiredState(staticSites: readonly SiteSpec[], discovered: DesiredState): DesiredState {
  const byHost = new Map(staticSites.map((s) => [s.host, s]));
  const problems = [...discovered.problems];
  for (const site of discovered.sites) {
    if (!byHost.has(site.host)) {
      byHost.set(site.host, site);
      continue;
    }
    for (const u of site.upstreams) {
      problems.push({
        code: 'LABEL_CONFLICT',
        message: `container ${u.containerName ?? u.url} claims ${site.host}, which the config file already routes; remove its label or the config entry`,
        host: site.host,
        ...(u.containerId ? { containerId: u.containerId } : {}),
        ...(u.containerName ? { containerName: u.containerName } : {}),
      });
    }
  }
  return {
    sites: [...byHost.values()].sort((a, b) => a.host.localeCompare(b.host)),
    problems: problems.sort((a, b) => (a.containerName ?? '').localeCompare(b.containerName ?? '') || a.code.localeCompare(b.code)),
  };
}
