/**
 * The route grace period: a name whose last container went away keeps its
 * route and certificate for a while, so a redeploy or a restart never turns
 * into a TLS failure. Pure: the caller passes the clock's `now` and keeps the
 * returned book for the next step.
 *
 * Each discovered state is one step. For every name the last step served
 * and this one does not:
 * - **stopped** (grace): a container that served it still exists (exited,
 *   created, restarting, dead), by id or by container name (a replacement
 *   created by `docker compose up -d` has the old one's name), or a running
 *   one by that id or name still asks for the name but cannot be routed
 *   (unhealthy, a bad label). The name stays, with no upstream and
 *   `graceUntil`, until the grace period ends;
 * - **removed** (no grace): no container by that id or name exists any more
 *   (`docker rm -f`, `docker compose down`), or `graceMs` is 0. The name
 *   goes at once, as before grace periods existed;
 * - **relabelled** (no grace, or the grace ends): a running container by
 *   that name no longer asks for the name (it was recreated with other
 *   labels, or with `padlock.enable=false`).
 *
 * A name in its grace period comes back as soon as any container serves it
 * again, and it ends when `graceUntil` passes or the name is relabelled. A
 * name already in grace stays there when its stopped container is then
 * removed (`docker stop` then `docker rm` then `docker run`: one redeploy).
 * A source that reports no `containers` list (tests, other sources) counts
 * every loss as "stopped".
 */
import type { ContainerPresence, DesiredState, SiteSpec } from './desired-state.js';

/** One name in its grace period. */
export interface GraceEntry {
  /** The site as it was last served, with no upstream and `graceUntil` set. */
  readonly site: SiteSpec;
  /** Ids and names of the containers that served it last. */
  readonly claimantIds: readonly string[];
  readonly claimantNames: readonly string[];
  /** When the last container went away (ISO 8601). */
  readonly since: string;
}

/** What one step keeps for the next. Treat as opaque; start from `EMPTY_GRACE_BOOK`. */
export interface GraceBook {
  /** The sites served (with upstreams) after the last step, by host. */
  readonly live: ReadonlyMap<string, SiteSpec>;
  readonly grace: ReadonlyMap<string, GraceEntry>;
}

export const EMPTY_GRACE_BOOK: GraceBook = Object.freeze({ live: new Map(), grace: new Map() });

/** Why a name entered or left its grace period, for the log. */
export type GraceChange =
  | { host: string; kind: 'started'; until: string; containers: string[] }
  | { host: string; kind: 'back' | 'expired' | 'relabelled' }
  | { host: string; kind: 'removed'; reason: 'destroyed' | 'relabelled' | 'no-grace' };

export interface GraceStep {
  book: GraceBook;
  /** The discovered state plus every name in its grace period (sites sorted by host). */
  state: DesiredState;
  changes: GraceChange[];
  /** The earliest `graceUntil` still ahead, when a grace period is running. */
  nextExpiry?: Date;
}

/** Applies one discovered state: see the module comment for the rules. */
export function graceStep(book: GraceBook, discovered: DesiredState, now: Date, graceMs: number): GraceStep {
  const live = new Map(discovered.sites.map((s) => [s.host, s]));
  const grace = new Map<string, GraceEntry>();
  const changes: GraceChange[] = [];
  const containers = discovered.containers;

  for (const [host, entry] of book.grace) {
    if (live.has(host)) {
      changes.push({ host, kind: 'back' });
      continue;
    }
    if (Date.parse(entry.site.graceUntil!) <= now.getTime()) {
      changes.push({ host, kind: 'expired' });
      continue;
    }
    if (containers && relabelled(host, entry.claimantNames, containers)) {
      changes.push({ host, kind: 'relabelled' });
      continue;
    }
    grace.set(host, entry);
  }

  for (const [host, site] of book.live) {
    if (live.has(host) || grace.has(host)) continue;
    const ids = site.upstreams.flatMap((u) => (u.containerId ? [u.containerId] : []));
    const names = site.upstreams.flatMap((u) => (u.containerName ? [u.containerName] : []));
    if (graceMs <= 0) {
      changes.push({ host, kind: 'removed', reason: 'no-grace' });
      continue;
    }
    if (containers) {
      if (relabelled(host, names, containers)) {
        changes.push({ host, kind: 'removed', reason: 'relabelled' });
        continue;
      }
      if (!containers.some((c) => ids.includes(c.id) || names.includes(c.name))) {
        changes.push({ host, kind: 'removed', reason: 'destroyed' });
        continue;
      }
    }
    const until = new Date(now.getTime() + graceMs).toISOString();
    const { upstreams: _gone, ...rest } = site;
    grace.set(host, { site: { ...rest, upstreams: [], graceUntil: until }, claimantIds: ids, claimantNames: names, since: now.toISOString() });
    changes.push({ host, kind: 'started', until, containers: names });
  }

  const sites = [...discovered.sites, ...[...grace.values()].map((e) => e.site)].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  let next: number | undefined;
  for (const e of grace.values()) {
    const t = Date.parse(e.site.graceUntil!);
    if (next === undefined || t < next) next = t;
  }
  return {
    book: { live, grace },
    state: { ...discovered, sites },
    changes,
    ...(next !== undefined ? { nextExpiry: new Date(next) } : {}),
  };
}

/** True when a running container named like one that served `host` no longer asks for it. */
function relabelled(host: string, names: readonly string[], containers: readonly ContainerPresence[]): boolean {
  return containers.some((c) => c.running && c.asks !== undefined && names.includes(c.name) && !c.asks.includes(host));
}
