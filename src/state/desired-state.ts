/**
 * What the user wants served, as one complete value.
 *
 * Sources (the Docker watcher, a static config file) always produce a whole
 * DesiredState, never a patch. Consumers compare it with the last one
 * (`sameDesiredState`) and replace theirs whole when it changed. That is
 * level-triggered: a missed event heals on the next listing.
 */
import type { LabelCode } from '../errors.js';

/** One place a site's requests can go. */
export interface Upstream {
  /** `http://127.0.0.1:8080` or `https://10.0.0.5:8443`; no path. */
  url: string;
  /** Where it came from, for status and logs. */
  containerId?: string;
  containerName?: string;
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
}

export const EMPTY_DESIRED_STATE: DesiredState = Object.freeze({ sites: [], problems: [] }) as DesiredState;

/** Deep equality of two states, so an unchanged listing is dropped. */
export function sameDesiredState(a: DesiredState, b: DesiredState): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
