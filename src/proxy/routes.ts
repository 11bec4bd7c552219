/**
 * The routing table: Host header -> site and its upstreams.
 *
 * A `RouteTable` is built once from the whole `SiteSpec[]` and never changes;
 * a new desired state builds a new table that replaces the old one in one
 * assignment. A request that already picked its upstream keeps it.
 *
 * Passive health lives outside the table, in an `UpstreamHealth` shared by
 * successive tables, so a route reload does not forget that an upstream just
 * refused connections. An upstream that failed to connect (or reset a fresh
 * connection) is skipped for `downMs`; when every upstream of a host is down,
 * one is still tried (the least recently failed), because refusing outright
 * would turn a blip into an outage (unless the forwarder holds the request
 * until one comes back: proxy/hold.ts).
 *
 * Active health (`padlock.healthcheck`, proxy/health-check.ts) is kept in the
 * same `UpstreamHealth`, keyed per container and path (`checkKey`): an
 * upstream with a health check is never picked until its check has passed,
 * not even as the last resort.
 *
 * A site in its grace period (`graceUntil`, state/grace.ts) is in the table
 * with no upstream at all: its name is known, and `pick()` finds nothing.
 */
import { canonicalIp, isIP } from '../ip.js';
import type { SiteSpec, Upstream } from '../state/desired-state.js';
import { systemClock, type Clock } from '../clock.js';

/**
 * One upstream as the forwarder needs it. `key` identifies it for health and
 * status: the URL origin (`http://10.0.0.5:8080`), or `h2c://10.0.0.5:50051`.
 */
export interface UpstreamTarget {
  readonly key: string;
  /** Where to connect. For an h2c upstream, the `http:` URL of the same address (the URL parser knows no `h2c:` origin). */
  readonly url: URL;
  /** Spoken to in cleartext HTTP/2 with prior knowledge (proxy/h2c-upstream.ts) rather than HTTP/1.1. */
  readonly h2c: boolean;
  readonly containerName?: string;
  /** With a health check: its path and interval, and the key its result is kept under (container, origin, path). */
  readonly healthcheck?: { readonly path: string; readonly intervalMs: number };
  readonly checkKey?: string;
}

/** Down-marks shared across route tables. Keyed by upstream origin (`http://10.0.0.5:8080`). */
export class UpstreamHealth {
  private readonly downUntil = new Map<string, number>();
  /** checkKey -> the last active check passed. Absent: not checked yet (not ready). */
  private readonly ready = new Map<string, boolean>();

  constructor(
    /** How long an upstream is skipped after a connect error or reset. */
    readonly downMs = 10_000,
    private readonly clock: Clock = systemClock,
  ) {}

  markDown(key: string): void {
    this.downUntil.set(key, this.clock.now().getTime() + this.downMs);
  }

  markUp(key: string): void {
    this.downUntil.delete(key);
  }

  /** True while `key` is inside its down window. Expired marks are forgotten here. */
  isDown(key: string): boolean {
    const until = this.downUntil.get(key);
    if (until === undefined) return false;
    if (until > this.clock.now().getTime()) return true;
    this.downUntil.delete(key);
    return false;
  }

  /** When `key` comes back (ms since epoch), or 0 when it is up. */
  downUntilMs(key: string): number {
    return this.isDown(key) ? this.downUntil.get(key)! : 0;
  }

  /** Records an active health check's result for `checkKey`. */
  setReady(checkKey: string, ready: boolean): void {
    this.ready.set(checkKey, ready);
  }

  /** True once the last active check of `checkKey` passed; false before the first one. */
  isReady(checkKey: string): boolean {
    return this.ready.get(checkKey) === true;
  }

  /** Forgets the check results of keys not in `keep` (containers that left every route). */
  forgetChecksExcept(keep: ReadonlySet<string>): void {
    for (const key of [...this.ready.keys()]) if (!keep.has(key)) this.ready.delete(key);
  }

  /** How many upstreams are marked down now. */
  downCount(): number {
    let n = 0;
    for (const key of [...this.downUntil.keys()]) if (this.isDown(key)) n++;
    return n;
  }
}

/** One host's route: its site settings and a round-robin cursor over its upstreams. */
export class HostRoute {
  readonly upstreams: readonly UpstreamTarget[];
  private cursor = 0;

  constructor(readonly site: Readonly<SiteSpec>, private readonly health: UpstreamHealth) {
    this.upstreams = Object.freeze(site.upstreams.map((u) => toTarget(u)));
  }

  /** True when an upstream could take a request now: neither in its down window nor failing its health check. */
  available(): boolean {
    return this.upstreams.some((u) => this.usable(u) && !this.health.isDown(u.key));
  }

  /** False only for an upstream whose health check has not passed (yet, or any more). */
  usable(target: UpstreamTarget): boolean {
    return target.checkKey === undefined || this.health.isReady(target.checkKey);
  }

  /**
   * The next upstream, round robin, skipping those marked down, those whose
   * health check has not passed, and any in `exclude` (the one a retry is
   * moving away from). When all candidates are down, the one whose down mark
   * ends first. Undefined when the site has no upstream left after `exclude`
   * and the health checks (a site in its grace period has none at all).
   */
  pick(exclude?: ReadonlySet<string>): UpstreamTarget | undefined {
    const n = this.upstreams.length;
    let fallback: UpstreamTarget | undefined;
    let fallbackUntil = Infinity;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      const up = this.upstreams[idx]!;
      if (exclude?.has(up.key) || !this.usable(up)) continue;
      const until = this.health.downUntilMs(up.key);
      if (until === 0) {
        this.cursor = (idx + 1) % n;
        return up;
      }
      if (until < fallbackUntil) {
        fallback = up;
        fallbackUntil = until;
      }
    }
    if (fallback) this.cursor = (this.upstreams.indexOf(fallback) + 1) % n;
    return fallback;
  }

  /** Marks `target` down for the health window (connect refused, connect timeout, fresh connection reset). */
  markDown(target: UpstreamTarget): void {
    this.health.markDown(target.key);
  }

  /** Clears a down mark after a successful response. */
  markUp(target: UpstreamTarget): void {
    this.health.markUp(target.key);
  }
}

/** A last label of digits only: an IPv4 address (no DNS name has one). */
const NUMERIC_LAST_LABEL = /\.[0-9]+$/;

/** Host -> route, immutable. Exact hosts first, then one-label wildcard sites (`*.example.com`). */
export class RouteTable {
  private readonly routes: ReadonlyMap<string, HostRoute>;

  constructor(sites: readonly SiteSpec[], readonly health: UpstreamHealth = new UpstreamHealth()) {
    const routes = new Map<string, HostRoute>();
    for (const site of sites) {
      const host = site.host.toLowerCase().replace(/\.$/, '');
      // No upstream is a route only in its grace period: the name stays known (and answered 503).
      if ((site.upstreams.length === 0 && site.graceUntil === undefined) || routes.has(host)) continue;
      routes.set(host, new HostRoute(Object.freeze({ ...site, host }), health));
    }
    this.routes = routes;
  }

  /**
   * The route for a Host header value (`App.Example.com:8443`, `example.com.`,
   * `[::1]:443`), normalised by `hostFromHeader`. Undefined for an unknown
   * host or a missing/empty header. An IP address matches only its own route,
   * never a wildcard.
   */
  lookup(hostHeader: string | undefined): HostRoute | undefined {
    const host = hostFromHeader(hostHeader);
    return host === undefined ? undefined : this.get(host);
  }

  /**
   * The route for a host already normalised (`hostFromHeader`'s output, or a
   * site's `host`): `::1` here is an address, where a Host header must write
   * `[::1]`. Exact first, then the one-label wildcard.
   */
  get(host: string): HostRoute | undefined {
    const exact = this.routes.get(host);
    if (exact) return exact;
    const dot = host.indexOf('.');
    // Wildcards never match an IP address (an IPv6 one has no dot; an IPv4 one ends in a numeric label).
    if (dot <= 0 || host.indexOf('.', dot + 1) < 0 || NUMERIC_LAST_LABEL.test(host)) return undefined;
    return this.routes.get(`*${host.slice(dot)}`);
  }

  /** Every route, sorted by host (for status pages). */
  all(): HostRoute[] {
    return [...this.routes.values()].sort((a, b) => a.site.host.localeCompare(b.site.host));
  }

  /** Every routed host (normalised), sorted. */
  hosts(): string[] {
    return [...this.routes.keys()].sort();
  }

  get size(): number {
    return this.routes.size;
  }
}

/**
 * The host part of a Host header (or `:authority`), normalised: lowercase, no
 * port, no trailing dot, and an IPv6 literal without its brackets in its
 * canonical text (`[0:0::1]:443` -> `::1`), as sites, certificates and a
 * socket's local address write it. Undefined when empty or malformed
 * (brackets around anything but an IPv6 address, a bad port).
 */
export function hostFromHeader(value: string | undefined): string | undefined {
  if (!value) return undefined;
  let host = value.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    const rest = host.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return undefined;
    const inner = host.slice(1, end);
    // A zone (`%25eth0`) is no address a certificate or route can hold (canonicalIp refuses it); IPvFuture (`v1.x`) and IPv4 are not IPv6.
    return isIP(inner) === 6 ? canonicalIp(inner) : undefined;
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.length > 0 ? host : undefined;
}

/** A host as it goes into a URL: an IPv6 address in brackets (`[::1]`), anything else as it is. */
export function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function toTarget(u: Upstream): UpstreamTarget {
  const h2c = u.url.startsWith('h2c://');
  const parsed = new URL(h2c ? `http://${u.url.slice(6)}` : u.url);
  const check = u.healthcheck;
  const key = h2c ? `h2c://${parsed.host}` : parsed.origin;
  return Object.freeze({
    key,
    url: parsed,
    h2c,
    ...(u.containerName ? { containerName: u.containerName } : {}),
    // Per container: a replacement on the same address starts unchecked, not with its predecessor's result.
    ...(check ? { healthcheck: Object.freeze({ ...check }), checkKey: `${u.containerId ?? ''} ${key} ${check.path}` } : {}),
  });
}
