/**
 * What the user wants served, as one complete value.
 *
 * Sources (the Docker watcher, a static config file) always produce a whole
 * DesiredState, never a patch. Consumers compare it with the last one
 * (`sameDesiredState`) and replace theirs whole when it changed. That is
 * level-triggered: a missed event heals on the next listing.
 */
import type { LabelCode } from '../errors.js';

/** How often an upstream's `healthcheck` runs once it passes, unless the label or config says otherwise. */
export const DEFAULT_HEALTHCHECK_INTERVAL_MS = 5_000;

/** One place a site's requests can go. */
export interface Upstream {
  /** `http://127.0.0.1:8080` or `https://10.0.0.5:8443`; no path. */
  url: string;
  /** Where it came from, for status and logs. */
  containerId?: string;
  containerName?: string;
  /**
   * An active health check (`padlock.healthcheck`): the upstream gets no
   * requests until a GET of `path` answers 2xx or 3xx, and none again while
   * it answers anything else.
   */
  healthcheck?: { path: string; intervalMs: number };
}

/** Everything padlock needs to serve one host name. */
export interface SiteSpec {
  /** The normalised host name (lowercase, no trailing dot). */
  host: string;
  /** At least one; requests are spread round robin over the ones that answer. */
  upstreams: Upstream[];
  /**
   * Serve HTTPS with a certificate (padlock labels always do). False only for
   * nginx-proxy's VIRTUAL_HOST without LETSENCRYPT_HOST, which nginx-proxy
   * serves over plain HTTP; padlock keeps that meaning.
   */
  https: boolean;
  /** Redirect plain HTTP to HTTPS with a 308 (default true; ignored when `https` is false). */
  redirect: boolean;
  /** HSTS max-age in seconds when on; undefined means no HSTS header (the default). */
  hstsMaxAge?: number;
  /** Contact email for this name's certificate and alerts. */
  email?: string;
  /** ACME profile to ask for (draft-ietf-acme-profiles); the CA's default when absent or not offered. */
  profile?: string;
  /** `dns-01`: the certificate is validated over DNS-01 (wildcards, `padlock.challenge=dns-01`); absent: HTTP-01. */
  challenge?: 'dns-01';
  /** Names padlock can never get a public certificate for (localhost, *.internal...) use the local CA. */
  issuer: 'acme' | 'local';
  /** Seconds a request may wait for an upstream when none is up (`padlock.upstream-wait`); absent: the daemon's `--upstream-wait`. */
  upstreamWait?: number;
  /**
   * Set only on a site in its grace period (state/grace.ts): its last
   * container went away at some point, and the name keeps its certificate
   * and route, with no upstream, until this ISO 8601 time.
   */
  graceUntil?: string;
}

/**
 * A container as the grace period sees it: every container that exists,
 * running or not. `asks` (running containers only) lists the names its
 * labels and env ask for, valid or not; a stopped container's env is not
 * read, so it has none.
 */
export interface ContainerPresence {
  id: string;
  name: string;
  running: boolean;
  asks?: string[];
}

/** A container (or config entry) whose route padlock refused, and why. Only that route is disabled. */
export interface RouteProblem {
  /** A stable code from the ErrorCode union (errors.ts), e.g. LABEL_INVALID_HOST, LABEL_INVALID_PORT, LABEL_CONFLICT. */
  code: LabelCode;
  /** One line a person can act on: what is wrong, on which container, what to do. */
  message: string;
  containerId?: string;
  containerName?: string;
  /** The label or env var at fault, e.g. `padlock.port` or `VIRTUAL_HOST`. */
  source?: string;
  host?: string;
}

export interface DesiredState {
  /** Sorted by host, one entry per host. */
  sites: SiteSpec[];
  /** Sorted by container name, then code. */
  problems: RouteProblem[];
  /**
   * Every container the source saw, for the grace period's choice between
   * "stopped" and "removed" (state/grace.ts). Not part of what is served:
   * `sameDesiredState` ignores it.
   */
  containers?: ContainerPresence[];
}

export const EMPTY_DESIRED_STATE: DesiredState = Object.freeze({ sites: [], problems: [] }) as DesiredState;

/** Deep equality of the sites and problems of two states, so an unchanged listing is dropped (`containers` is not compared). */
export function sameDesiredState(a: DesiredState, b: DesiredState): boolean {
  return JSON.stringify(a.sites) === JSON.stringify(b.sites) && JSON.stringify(a.problems) === JSON.stringify(b.problems);
}
