/**
 * From containers to the whole DesiredState. Pure: no Docker, no clock, no I/O.
 *
 * `buildDesiredState` reads every running container's labels and environment
 * and returns all sites and all problems at once. A bad label disables only
 * that container's route (or only that one name, see below); every other
 * route is unaffected.
 *
 * ## padlock labels
 *
 * | label | meaning | default |
 * |---|---|---|
 * | `padlock.host` | comma-separated host names (or IP addresses) to route to this container; each gets HTTPS | none (not routed) |
 * | `padlock.port` | the container port to send requests to | the one exposed port; else see "port" below |
 * | `padlock.upstream` | an explicit `http(s)://host[:port]` URL; overrides address and port resolution | none |
 * | `padlock.email` | contact email for the certificate of these names | `defaultEmail` |
 * | `padlock.profile` | ACME profile to ask for (e.g. `shortlived`); the CA default when it doesn't offer it | `defaultProfile` |
 * | `padlock.redirect` | redirect plain HTTP to HTTPS (308) | `true` |
 * | `padlock.hsts` | `true` (or `1`, `yes`, `on`) = max-age 31536000, another number = that max-age, `false`/`0` = off | off |
 * | `padlock.enable` | `false` always excludes; with exposedByDefault off, only `true` includes | (exposedByDefault) |
 * | `padlock.upstream-wait` | how long a request waits for an upstream when none is up: seconds, or `500ms`, `10s`, `1m` (at most 300 s; `0` answers at once) | `upstreamWait` (`--upstream-wait`) |
 * | `padlock.healthcheck` | a path (`/healthz`) padlock GETs on this container; it gets requests only while the answer is 2xx or 3xx | none |
 * | `padlock.healthcheck-interval` | how often that check runs once it passes: seconds, or `500ms`, `10s`, `1m` (0.1 s to 1 h) | `5s` |
 * | `padlock.challenge` | `dns-01` (needs a DNS provider covering each name, `dnsCovers`) or `http-01` | `http-01`; wildcards always `dns-01` |
 * | `padlock.proto` | how padlock speaks to the upstream: `http`, `https`, or `h2c` (cleartext HTTP/2, for gRPC apps) | `http` |
 *
 * A wildcard host (`*.example.com`) is accepted when a DNS provider covers
 * `example.com`; it routes every one-label name under it that has no route
 * of its own, from one wildcard certificate (proxy/routes.ts). Otherwise it
 * is refused with LABEL_WILDCARD, whose message says how to configure DNS-01.
 *
 * Booleans accept `true/false`, `1/0`, `yes/no`, `on/off` (any case).
 *
 * ## nginx-proxy / acme-companion environment variables
 *
 * | env var | nginx-proxy / acme-companion meaning | padlock |
 * |---|---|---|
 * | `VIRTUAL_HOST` | comma-separated names to route to this container | the names routed; served over HTTP only (`https: false`) unless also in `LETSENCRYPT_HOST`/`ACME_HOST` |
 * | `VIRTUAL_PORT` | the container port when it exposes several | same as `padlock.port` |
 * | `VIRTUAL_PROTO` | `http`, `https`, `grpc` (cleartext gRPC) to the upstream | the upstream URL scheme; `grpc` is `h2c` (`uwsgi`, `fastcgi`, `grpcs` are refused) |
 * | `LETSENCRYPT_HOST` | names (of `VIRTUAL_HOST`) that get a certificate | those names get `https: true` and a certificate |
 * | `ACME_HOST` | acme-companion's alias of `LETSENCRYPT_HOST` | merged with `LETSENCRYPT_HOST` |
 * | `LETSENCRYPT_EMAIL` | contact email for the certificate | same as `padlock.email` |
 *
 * Precedence: a padlock label wins over the env var with the same job.
 * When `padlock.host` is present, `VIRTUAL_HOST`, `LETSENCRYPT_HOST` and
 * `ACME_HOST` are ignored entirely (every `padlock.host` name gets HTTPS);
 * `padlock.port` wins over `VIRTUAL_PORT`, `padlock.email` over
 * `LETSENCRYPT_EMAIL`, `padlock.proto` over `VIRTUAL_PROTO`, `padlock.upstream` over
 * `VIRTUAL_PROTO`. `padlock.proto` beside `padlock.upstream` must name the
 * same scheme as the URL (else LABEL_INVALID_VALUE: which one was meant?).
 * `padlock.redirect`, `padlock.hsts` and `padlock.enable` also apply to
 * containers routed by env vars. A `LETSENCRYPT_HOST` name missing from
 * `VIRTUAL_HOST` is not routed (nginx-proxy would not route it either) and is
 * reported as LABEL_HOST_NOT_ROUTED. Differences from nginx-proxy: no
 * wildcard or regex `VIRTUAL_HOST` (LABEL_WILDCARD / LABEL_INVALID_HOST), no
 * HSTS unless `padlock.hsts` (nginx-proxy sends it by default on HTTPS), and
 * `HTTPS_METHOD` is not read (padlock.redirect does that job).
 *
 * ## Port
 * `padlock.port`, else `VIRTUAL_PORT`, else the only exposed TCP port. With
 * several exposed ports, 80 if it is one of them (what nginx-proxy picks),
 * else LABEL_NO_PORT. With none exposed: 80 on a container network
 * (nginx-proxy's default), LABEL_NO_PORT on the host network (80 on the host
 * is most likely padlock itself).
 *
 * ## Address
 * `padlock.upstream` wins. Host network: `127.0.0.1`. Otherwise the
 * container's address on a network it shares with padlock (`selfNetworks`,
 * first by name), else on its first network by name that has an address;
 * none: LABEL_NO_ADDRESS.
 *
 * ## Names a container cannot claim
 * The bare name `localhost` (any case, trailing dot) and loopback addresses
 * are refused (LABEL_INVALID_HOST): they name this machine, and a container
 * that claimed them would receive what local clients send to
 * `https://localhost`. Names under it (`app.localhost`) route as usual.
 *
 * ## IP address hosts
 * A host may be an IP address (`padlock.host=203.0.113.10`, `[2001:db8::10]`,
 * `VIRTUAL_HOST` likewise): it gets an IP certificate over HTTP-01 or
 * TLS-ALPN-01 (RFC 8738) and is served to clients that connect to that very
 * address (proxy/ip-hosts.ts). Loopback addresses stay refused (above).
 * With `padlock.challenge=dns-01` an address is refused (LABEL_INVALID_VALUE:
 * DNS-01 cannot validate an IP), and only that address: the container's
 * other names still route.
 *
 * ## Upstreams a container cannot use
 * With `upstreamGuard`, an upstream whose address needs no DNS (an IP
 * literal, `localhost`, or the host network's 127.0.0.1) is checked against
 * the proxy's rules (proxy/upstream-guard.ts): padlock's own listeners,
 * link-local and cloud metadata addresses (unless `--allow-upstream` covers
 * them) give LABEL_UPSTREAM_FORBIDDEN.
 *
 * ## What a problem disables
 * Every problem of a container is reported at once, in one listing.
 * - An invalid name in a host list (LABEL_INVALID_HOST, LABEL_WILDCARD)
 *   disables that one name; the container's other names still route. One
 *   typo in a list of five should not take four working sites down.
 * - Any other bad label or env var (port, upstream, protocol, email,
 *   profile, redirect, hsts, enable) and an upstream that cannot be found or
 *   is forbidden disable every route of that container: those settings apply
 *   to all its names, so no name can be served correctly.
 * - LABEL_CONFLICT: several containers claim one name with different
 *   per-site settings (https, redirect, hsts, email). The container created
 *   first (then by name) wins; each later one contributes nothing for that
 *   name and gets the problem.
 *
 * ## Health
 * A container whose health check says `unhealthy` contributes nothing and is
 * reported as CONTAINER_UNHEALTHY (Traefik also drops unhealthy containers).
 * One whose check is still `starting` is routed: see the comment in the code.
 */
import { isIpHost, isLocalName, normaliseName, normaliseSiteHost } from '../config/names.js';
import { isLoopbackAddress, type UpstreamGuard } from '../proxy/upstream-guard.js';
import { shownUrl } from '../config/shown.js';
import { parseUpstreamUrl, upstreamProto, type UpstreamProto } from '../config/upstream.js';
import { DEFAULT_HEALTHCHECK_INTERVAL_MS, type ContainerPresence, type DesiredState, type RouteProblem, type SiteSpec, type Upstream } from '../state/desired-state.js';
import { parseDurationMs } from '../config/duration.js';
import type { LabelCode } from '../errors.js';
import type { ContainerInfo } from './container.js';

/** How discovery treats containers; from `padlock run`'s config. */
export interface DiscoveryOptions {
  /** Route any container with a host label/env var unless `padlock.enable=false` (default in `padlock run`: true). */
  exposedByDefault: boolean;
  /** Networks padlock's own container is on, when padlock runs in a container. */
  selfNetworks?: string[];
  /** Names ending in one of these (or equal to `localhost`) get `issuer: 'local'`, e.g. `['localhost','internal','home.arpa']`. */
  localSuffixes: string[];
  /** Email for names whose container sets none. */
  defaultEmail?: string;
  /** ACME profile for names whose container sets no `padlock.profile`. */
  defaultProfile?: string;
  /**
   * The upstream rules, for upstreams that need no DNS (IP literals,
   * `localhost`): a refused one disables the container (LABEL_UPSTREAM_FORBIDDEN).
   * Names are checked when the proxy connects.
   */
  upstreamGuard?: Pick<UpstreamGuard, 'checkUrl'>;
  /**
   * Whether a configured DNS provider covers a name (the config's `dns:`
   * section). Wildcards and `padlock.challenge=dns-01` need one; absent: none does.
   */
  dnsCovers?: (name: string) => boolean;
}

/** The label keys padlock reads. */
export const LABELS = {
  host: 'padlock.host',
  port: 'padlock.port',
  upstream: 'padlock.upstream',
  email: 'padlock.email',
  profile: 'padlock.profile',
  redirect: 'padlock.redirect',
  hsts: 'padlock.hsts',
  enable: 'padlock.enable',
  upstreamWait: 'padlock.upstream-wait',
  healthcheck: 'padlock.healthcheck',
  healthcheckInterval: 'padlock.healthcheck-interval',
  challenge: 'padlock.challenge',
  proto: 'padlock.proto',
} as const;

/** The longest `padlock.upstream-wait` (the same bound as `--upstream-wait`). */
export const MAX_UPSTREAM_WAIT_MS = 300_000;

/** The nginx-proxy / acme-companion env vars padlock honours. */
export const ENV = {
  virtualHost: 'VIRTUAL_HOST',
  virtualPort: 'VIRTUAL_PORT',
  virtualProto: 'VIRTUAL_PROTO',
  letsencryptHost: 'LETSENCRYPT_HOST',
  acmeHost: 'ACME_HOST',
  letsencryptEmail: 'LETSENCRYPT_EMAIL',
} as const;

/** `padlock.proto` values. */
const LABEL_PROTOS: Readonly<Record<string, UpstreamProto>> = { http: 'http', https: 'https', h2c: 'h2c' };
/** `VIRTUAL_PROTO` values, as nginx-proxy names them: `grpc` is cleartext gRPC, which is HTTP/2 with prior knowledge. */
const ENV_PROTOS: Readonly<Record<string, UpstreamProto>> = { http: 'http', https: 'https', grpc: 'h2c' };

/** HSTS max-age for `padlock.hsts=true`: one year, the common preload minimum. */
export const DEFAULT_HSTS_MAX_AGE = 31_536_000;

/** One container's claim on one host, before merging. */
interface Claim {
  host: string;
  container: ContainerInfo;
  settings: { https: boolean; redirect: boolean; hstsMaxAge?: number; email?: string; profile?: string; upstreamWait?: number; challenge?: 'dns-01' };
  upstream: Upstream;
}

/** A label or env var as read, with where it came from, for messages. */
interface Source {
  kind: 'label' | 'env';
  key: string;
  value: string;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

/**
 * Builds the whole desired state from a listing. Pure and deterministic: the
 * same containers, in any order, give the same value (sites sorted by host,
 * upstreams by container name then URL, problems by container name, code,
 * host, message), so `sameDesiredState` drops an unchanged listing.
 */
export function buildDesiredState(containers: readonly ContainerInfo[], options: DiscoveryOptions): DesiredState {
  const problems: RouteProblem[] = [];
  const claims: Claim[] = [];
  const present: ContainerPresence[] = [];
  for (const c of containers) {
    if (!c.running) {
      present.push({ id: c.id, name: c.name, running: false });
      continue;
    }
    const r = readContainer(c, options);
    problems.push(...r.problems);
    claims.push(...r.claims);
    present.push({ id: c.id, name: c.name, running: true, asks: r.asks });
  }

  // First created wins a conflicting claim; name breaks ties so the result never depends on listing order.
  claims.sort((a, b) => cmp(a.container.createdAt, b.container.createdAt) || cmp(a.container.name, b.container.name) || cmp(a.container.id, b.container.id));
  const sites = new Map<string, { spec: SiteSpec; winner: ContainerInfo }>();
  for (const claim of claims) {
    const existing = sites.get(claim.host);
    if (!existing) {
      const spec: SiteSpec = {
        host: claim.host,
        upstreams: [claim.upstream],
        https: claim.settings.https,
        redirect: claim.settings.redirect,
        ...(claim.settings.hstsMaxAge !== undefined ? { hstsMaxAge: claim.settings.hstsMaxAge } : {}),
        ...(claim.settings.email !== undefined ? { email: claim.settings.email } : {}),
        ...(claim.settings.profile !== undefined ? { profile: claim.settings.profile } : {}),
        ...(claim.settings.challenge !== undefined ? { challenge: claim.settings.challenge } : {}),
        issuer: isLocalName(claim.host, options.localSuffixes) ? 'local' : 'acme',
        ...(claim.settings.upstreamWait !== undefined ? { upstreamWait: claim.settings.upstreamWait } : {}),
      };
      sites.set(claim.host, { spec, winner: claim.container });
      continue;
    }
    const diff = settingDifferences(existing.spec, claim.settings);
    if (diff.length > 0) {
      problems.push(
        problem(
          'LABEL_CONFLICT',
          claim.container,
          `container ${claim.container.name} claims ${claim.host} with different settings (${diff.join(', ')}) than container ${existing.winner.name}, which was created first and keeps it; give both the same settings or remove the name from one`,
          { host: claim.host },
        ),
      );
      continue;
    }
    if (!existing.spec.upstreams.some((u) => u.url === claim.upstream.url && u.containerId === claim.upstream.containerId)) {
      existing.spec.upstreams.push(claim.upstream);
    }
  }

  const out = [...sites.values()].map((s) => s.spec);
  for (const s of out) s.upstreams.sort((a, b) => cmp(a.containerName ?? '', b.containerName ?? '') || cmp(a.url, b.url));
  out.sort((a, b) => cmp(a.host, b.host));
  problems.sort(
    (a, b) =>
      cmp(a.containerName ?? '', b.containerName ?? '') || cmp(a.code, b.code) || cmp(a.host ?? '', b.host ?? '') || cmp(a.message, b.message),
  );
  present.sort((a, b) => cmp(a.name, b.name) || cmp(a.id, b.id));
  return { sites: out, problems, containers: present };
}

/** Code-point order, so the result does not depend on the locale. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function settingDifferences(spec: SiteSpec, s: Claim['settings']): string[] {
  const d: string[] = [];
  if (spec.https !== s.https) d.push(`https ${s.https} vs ${spec.https}`);
  if (spec.redirect !== s.redirect) d.push(`redirect ${s.redirect} vs ${spec.redirect}`);
  if (spec.hstsMaxAge !== s.hstsMaxAge) d.push(`hsts ${s.hstsMaxAge ?? 'off'} vs ${spec.hstsMaxAge ?? 'off'}`);
  if (spec.email !== s.email) d.push(`email ${s.email ?? 'none'} vs ${spec.email ?? 'none'}`);
  if (spec.profile !== s.profile) d.push(`profile ${s.profile ?? 'default'} vs ${spec.profile ?? 'default'}`);
  if (spec.upstreamWait !== s.upstreamWait) d.push(`upstream-wait ${s.upstreamWait ?? 'default'} vs ${spec.upstreamWait ?? 'default'}`);
  if (spec.challenge !== s.challenge) d.push(`challenge ${s.challenge ?? 'http-01'} vs ${spec.challenge ?? 'http-01'}`);
  return d;
}

function problem(
  code: LabelCode,
  c: ContainerInfo,
  message: string,
  extra: { source?: string; host?: string } = {},
): RouteProblem {
  return { code, message, containerId: c.id, containerName: c.name, ...extra };
}

function where(s: Source, c: ContainerInfo): string {
  return `${s.kind} ${s.key} on container ${c.name}`;
}

/** A label if set, else the env var if set. */
function pick(c: ContainerInfo, label: string | undefined, env: string | undefined): Source | undefined {
  if (label !== undefined && c.labels[label] !== undefined) return { kind: 'label', key: label, value: c.labels[label] };
  if (env !== undefined && c.env[env] !== undefined) return { kind: 'env', key: env, value: c.env[env] };
  return undefined;
}

function parseBool(s: Source): boolean | undefined {
  const v = s.value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  return undefined;
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((x) => x.trim())
    // A trailing comma (`a.example.com,`) is a harmless slip, not a bad name.
    .filter((x) => x !== '');
}

/**
 * Validates one host name for HTTP-01 or local issuance. Single-label names
 * pass only when they are local (normaliseName refuses single labels because
 * no public CA issues for them, but the local CA can), except `localhost`
 * itself and loopback addresses: a container must not claim this machine's
 * own name (see LOCALHOST_REASON). The config file's sites keep the plain
 * rules: they are the operator's, not whoever can start a container.
 */
function checkHost(
  raw: string,
  localSuffixes: readonly string[],
  dnsCovers?: (name: string) => boolean,
): { name: string } | { code: 'LABEL_WILDCARD' | 'LABEL_INVALID_HOST'; reason: string } {
  if (raw.includes('*')) {
    // A one-label wildcard (RFC 8555 section 7.1.3) is served when a DNS provider covers its base: DNS-01 can validate it.
    const w = normaliseName(raw, { allowWildcard: true });
    if (!('name' in w) || !w.name.startsWith('*.')) return { code: 'LABEL_WILDCARD', reason: 'only a whole first label may be a wildcard (*.example.com)' };
    if (isLocalName(w.name.slice(2), localSuffixes)) return { code: 'LABEL_WILDCARD', reason: 'local names get one certificate each from the local CA; list each name' };
    if (dnsCovers?.(w.name.slice(2))) return { name: w.name };
    return { code: 'LABEL_WILDCARD', reason: `wildcard names need the DNS-01 challenge, and no DNS provider in the config covers ${w.name.slice(2)}: add one to the config file's dns.providers with zones: [${w.name.slice(2)}] (see "DNS-01" in the README), or list each name` };
  }
  if (raw.startsWith('~')) return { code: 'LABEL_INVALID_HOST', reason: 'regular-expression hosts (nginx-proxy\'s ~) are not supported; list each name' };
  const lowered = raw.trim().toLowerCase().replace(/\.$/, '');
  if (lowered === 'localhost') return { code: 'LABEL_INVALID_HOST', reason: LOCALHOST_REASON };
  if (isLoopbackAddress(lowered)) return { code: 'LABEL_INVALID_HOST', reason: LOOPBACK_REASON };
  const r = normaliseSiteHost(raw, localSuffixes);
  if ('reason' in r) return { code: 'LABEL_INVALID_HOST', reason: r.reason };
  return { name: r.name };
}

/**
 * A client that asks for `localhost` means this machine. Letting a container
 * claim the name would hand it whatever a local client sends to
 * `https://localhost` (the route that published padlock's admin API).
 */
const LOCALHOST_REASON = 'localhost is this machine\'s own name, so a container may not claim it; use a name under it, such as app.localhost';
const LOOPBACK_REASON = 'it is a loopback address, this machine\'s own, so a container may not claim it (it would get what local clients send to https://127.0.0.1); use a name such as app.localhost, or route the address from the config file\'s sites';

/** Which names a container asks for, and the problems found reading them. */
interface Wanted {
  names: Array<{ raw: string; https: boolean; src: Source }>;
  hostLabel: Source | undefined;
}

function wantedNames(c: ContainerInfo, options: DiscoveryOptions, bad: (code: LabelCode, s: Source, text: string, host?: string) => void): Wanted {
  const hostLabel = pick(c, LABELS.host, undefined);
  const names: Wanted['names'] = [];
  if (hostLabel) {
    for (const raw of splitList(hostLabel.value)) names.push({ raw, https: true, src: hostLabel });
    if (names.length === 0) bad('LABEL_INVALID_HOST', hostLabel, 'no host name given; set a comma-separated list such as app.example.com');
    return { names, hostLabel };
  }
  const vhost = pick(c, undefined, ENV.virtualHost);
  const certSrcs = [pick(c, undefined, ENV.letsencryptHost), pick(c, undefined, ENV.acmeHost)].filter((s): s is Source => s !== undefined);
  const certNames = new Map<string, Source>();
  for (const s of certSrcs) {
    for (const raw of splitList(s.value)) {
      const key = hostKey(raw, options);
      if (!certNames.has(key)) certNames.set(key, s);
    }
  }
  const routed = new Set<string>();
  if (vhost) {
    for (const raw of splitList(vhost.value)) {
      const key = hostKey(raw, options);
      routed.add(key);
      names.push({ raw, https: certNames.has(key), src: vhost });
    }
  }
  for (const [name, s] of certNames) {
    if (!routed.has(name)) {
      bad('LABEL_HOST_NOT_ROUTED', s, `${name} is not in VIRTUAL_HOST, so nothing routes it and padlock gets no certificate for it; add it to VIRTUAL_HOST`, name);
    }
  }
  return { names, hostLabel: undefined };
}

/** A name as VIRTUAL_HOST and LETSENCRYPT_HOST are matched: normalised when valid, else as written. */
function hostKey(raw: string, options: DiscoveryOptions): string {
  const r = checkHost(raw, options.localSuffixes, options.dnsCovers);
  return 'name' in r ? r.name : raw;
}

/**
 * One container's claims and every problem with it, found in one pass: a
 * container with a bad name, a bad port and a bad email hears about all
 * three at once. What a problem disables is unchanged by reporting them
 * together (see the module comment): a bad name only itself, a bad shared
 * setting every name of the container.
 */
function readContainer(c: ContainerInfo, options: DiscoveryOptions): { claims: Claim[]; problems: RouteProblem[]; asks: string[] } {
  const problems: RouteProblem[] = [];
  const bad = (code: LabelCode, s: Source, text: string, host?: string): void => {
    problems.push(problem(code, c, `${where(s, c)}: ${text}`, { source: s.key, ...(host ? { host } : {}) }));
  };
  // Settings shared by all of the container's names: any error disables them all.
  let broken = false;
  const fail = (code: LabelCode, s: Source, text: string): void => {
    bad(code, s, `${text}; the container is not routed until it is fixed`);
    broken = true;
  };

  // --- should padlock look at this container at all? ---
  const enableSrc = pick(c, LABELS.enable, undefined);
  const enabled = enableSrc ? parseBool(enableSrc) : undefined;
  if (enabled === false) return { claims: [], problems, asks: [] };
  // An unreadable padlock.enable still asks for padlock's attention: everything is read and reported, nothing routed.
  const unreadableEnable = enableSrc !== undefined && enabled === undefined;
  if (!options.exposedByDefault && enabled !== true && !unreadableEnable) return { claims: [], problems, asks: [] };
  if (unreadableEnable) fail('LABEL_INVALID_VALUE', enableSrc, `"${enableSrc.value}" is not a boolean (true or false)`);

  // --- which names, and which of them get HTTPS ---
  const { names: wanted, hostLabel } = wantedNames(c, options, bad);
  // What the grace period compares with the names a stopped container of the same name had (state/grace.ts).
  const asks = [...new Set(wanted.map((w) => hostKey(w.raw, options)))].sort(cmp);
  if (wanted.length === 0 && enabled === true && !hostLabel) {
    problems.push(
      problem('LABEL_NO_HOST', c, `label ${LABELS.enable} on container ${c.name}: the container is enabled but names no host; set ${LABELS.host}`, { source: LABELS.enable }),
    );
  }
  // Only a container that asks for a route hears about its other settings.
  if (wanted.length === 0 && !hostLabel && enableSrc === undefined) return { claims: [], problems, asks };

  // --- settings shared by all of the container's names ---
  const redirectSrc = pick(c, LABELS.redirect, undefined);
  let redirect = true;
  if (redirectSrc) {
    const v = parseBool(redirectSrc);
    if (v === undefined) fail('LABEL_INVALID_VALUE', redirectSrc, `"${redirectSrc.value}" is not a boolean (true or false)`);
    else redirect = v;
  }

  const hstsSrc = pick(c, LABELS.hsts, undefined);
  let hstsMaxAge: number | undefined;
  if (hstsSrc) {
    const v = hstsSrc.value.trim().toLowerCase();
    // `1` reads as "on", like every other boolean here; a one-second max-age would be HSTS in name only.
    if (TRUE.has(v)) hstsMaxAge = DEFAULT_HSTS_MAX_AGE;
    else if (FALSE.has(v)) hstsMaxAge = undefined;
    else if (/^\d{1,10}$/.test(v) && Number(v) <= 2 ** 31 - 1) hstsMaxAge = Number(v) === 0 ? undefined : Number(v);
    else fail('LABEL_INVALID_VALUE', hstsSrc, `"${hstsSrc.value}" is neither true, false nor a max-age in seconds`);
  }

  const emailSrc = pick(c, LABELS.email, ENV.letsencryptEmail);
  let email = options.defaultEmail;
  if (emailSrc) {
    const v = emailSrc.value.trim();
    if (!/^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/.test(v)) fail('LABEL_INVALID_VALUE', emailSrc, `"${emailSrc.value}" is not an email address`);
    else email = v;
  }

  const profileSrc = pick(c, LABELS.profile, undefined);
  let profile = options.defaultProfile;
  if (profileSrc) {
    const v = profileSrc.value.trim();
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(v)) fail('LABEL_INVALID_VALUE', profileSrc, `"${profileSrc.value}" is not a profile name (letters, digits, ".", "_", "-")`);
    else profile = v;
  }

  const waitSrc = pick(c, LABELS.upstreamWait, undefined);
  let upstreamWait: number | undefined;
  if (waitSrc) {
    const ms = parseDurationMs(waitSrc.value);
    if (ms === undefined || ms > MAX_UPSTREAM_WAIT_MS) fail('LABEL_INVALID_VALUE', waitSrc, `"${waitSrc.value}" is not a wait of 0 to 300 seconds (write 10, 10s or 500ms)`);
    else upstreamWait = ms / 1000;
  }

  const healthcheck = readHealthcheck(c, fail);
  // padlock.challenge: dns-01 for names the internet cannot reach over HTTP (internal services).
  const challengeSrc = pick(c, LABELS.challenge, undefined);
  let wantDns = false;
  if (challengeSrc) {
    const v = challengeSrc.value.trim().toLowerCase();
    if (v === 'dns-01') wantDns = true;
    else if (v !== 'http-01') fail('LABEL_INVALID_VALUE', challengeSrc, `"${challengeSrc.value}" is not a challenge padlock answers for containers (dns-01 or http-01)`);
  }

  const upstream = resolveUpstream(c, options, fail);

  // --- the names; a bad name disables only itself ---
  const valid: Array<{ name: string; https: boolean }> = [];
  const seen = new Set<string>();
  for (const w of wanted) {
    const r = checkHost(w.raw, options.localSuffixes, options.dnsCovers);
    if ('reason' in r) {
      bad(r.code, w.src, `"${w.raw}" is not a usable host name: ${r.reason}; the container's other names still route`, w.raw);
      continue;
    }
    if (seen.has(r.name)) continue;
    seen.add(r.name);
    if (wantDns && isIpHost(r.name)) {
      bad('LABEL_INVALID_VALUE', challengeSrc!, `${r.name} is an IP address, which can only be validated over http-01 or tls-alpn-01 (RFC 8738), never dns-01: remove ${LABELS.challenge}=dns-01 or give this address its own container; the container's other names still route`, r.name);
      continue;
    }
    if (wantDns && !r.name.startsWith('*.') && !isLocalName(r.name, options.localSuffixes) && !options.dnsCovers?.(r.name)) {
      bad('LABEL_INVALID_VALUE', challengeSrc!, `${r.name} asks for dns-01, but no DNS provider in the config covers it: add one to the config file's dns.providers with its zone; the container's other names still route`, r.name);
      continue;
    }
    valid.push({ name: r.name, https: w.https });
  }

  // `starting` counts: Docker reports it until the first check passes, which with the default
  // 30 s interval would hide every fresh deploy for half a minute (and a daemon restored with
  // live-restore can leave it `starting` for good). The proxy skips an upstream that does not answer anyway.
  if (c.health === 'unhealthy') {
    problems.push(
      problem('CONTAINER_UNHEALTHY', c, `container ${c.name} is unhealthy (its health check fails); padlock sends it no requests until the check passes`),
    );
    return { claims: [], problems, asks };
  }
  if (broken || upstream === undefined) return { claims: [], problems, asks };

  const claims = valid.map((v): Claim => ({
    host: v.name,
    container: c,
    // Redirecting is meaningless without HTTPS; pin it so it cannot cause a spurious conflict.
    settings: {
      https: v.https,
      redirect: v.https ? redirect : false,
      ...(hstsMaxAge !== undefined && v.https ? { hstsMaxAge } : {}),
      ...(email !== undefined ? { email } : {}),
      ...(profile !== undefined && v.https ? { profile } : {}),
      ...(upstreamWait !== undefined ? { upstreamWait } : {}),
      // Wildcards can only be validated over DNS-01; local names never need it (the local CA signs them).
      ...(v.https && (v.name.startsWith('*.') || (wantDns && !isLocalName(v.name, options.localSuffixes))) ? { challenge: 'dns-01' as const } : {}),
    },
    upstream: { url: upstream, containerId: c.id, containerName: c.name, ...(healthcheck ? { healthcheck } : {}) },
  }));
  return { claims, problems, asks };
}

/** `padlock.healthcheck` and its interval, or undefined (after `fail` for a bad value, or when there is none). */
function readHealthcheck(c: ContainerInfo, fail: (code: LabelCode, s: Source, text: string) => void): Upstream['healthcheck'] {
  const pathSrc = pick(c, LABELS.healthcheck, undefined);
  const intervalSrc = pick(c, LABELS.healthcheckInterval, undefined);
  let intervalMs = DEFAULT_HEALTHCHECK_INTERVAL_MS;
  if (intervalSrc) {
    const ms = parseDurationMs(intervalSrc.value);
    if (ms === undefined || ms < 100 || ms > 3_600_000) {
      fail('LABEL_INVALID_VALUE', intervalSrc, `"${intervalSrc.value}" is not an interval of 0.1 s to 1 h (write 5, 5s or 500ms)`);
      return undefined;
    }
    intervalMs = ms;
  }
  if (!pathSrc) return undefined;
  const path = pathSrc.value.trim();
  // Visible ASCII only: it goes into a request line as is.
  if (!/^\/[\x21-\x7e]{0,1023}$/.test(path)) {
    fail('LABEL_INVALID_VALUE', pathSrc, `"${pathSrc.value}" is not a path such as /healthz (it must start with / and hold no spaces)`);
    return undefined;
  }
  return { path, intervalMs };
}

/**
 * The upstream URL, or undefined after reporting through `fail` every reason
 * why not: a bad port, a bad padlock.upstream or VIRTUAL_PROTO, no port or
 * address to infer, and an address padlock refuses (LABEL_UPSTREAM_FORBIDDEN).
 */
function resolveUpstream(
  c: ContainerInfo,
  options: DiscoveryOptions,
  fail: (code: LabelCode, s: Source, text: string) => void,
): string | undefined {
  let ok = true;
  // Validate both port sources even when padlock.upstream makes them moot: a typo should be seen.
  const portSrc = pick(c, LABELS.port, ENV.virtualPort);
  let explicitPort: number | undefined;
  if (portSrc) {
    const v = portSrc.value.trim();
    const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
    if (n >= 1 && n <= 65535) explicitPort = n;
    else {
      fail('LABEL_INVALID_PORT', portSrc, `"${portSrc.value}" is not a port (1-65535)`);
      ok = false;
    }
  }

  const upSrc = pick(c, LABELS.upstream, undefined);
  // padlock.upstream wins over VIRTUAL_PROTO, which is then not even read (as before padlock.proto existed).
  const protoSrc = pick(c, LABELS.proto, upSrc ? undefined : ENV.virtualProto);
  let scheme: UpstreamProto = 'http';
  if (protoSrc) {
    const v = protoSrc.value.trim().toLowerCase();
    const proto = protoSrc.kind === 'label' ? LABEL_PROTOS[v] : ENV_PROTOS[v];
    if (proto) scheme = proto;
    else {
      fail('LABEL_INVALID_VALUE', protoSrc, protoSrc.kind === 'label'
        ? `"${protoSrc.value}" is not a protocol padlock speaks to upstreams (http, https, or h2c for cleartext HTTP/2 such as gRPC)`
        : v === 'grpcs'
          ? `"${protoSrc.value}" (gRPC over TLS to the upstream) is not supported; serve cleartext gRPC in the container and set ${ENV.virtualProto}=grpc (padlock still terminates TLS for clients)`
          : `"${protoSrc.value}" is not supported; padlock forwards http, https or grpc (cleartext gRPC)`);
      ok = false;
    }
  }

  if (upSrc) {
    const url = parseUpstreamUrl(upSrc.value);
    if (typeof url !== 'string') {
      fail('LABEL_INVALID_VALUE', upSrc, `"${shownUrl(upSrc.value)}" is not an upstream URL (${url.reason}); use http://HOST:PORT, https://HOST:PORT or h2c://HOST:PORT`);
      return undefined;
    }
    // A padlock.proto that disagrees with padlock.upstream is a mistake to show, not to guess about.
    if (protoSrc && ok && upstreamProto(url) !== scheme) {
      fail('LABEL_INVALID_VALUE', protoSrc, `${LABELS.proto}=${scheme} disagrees with ${LABELS.upstream} ${shownUrl(url)}; write the scheme in ${LABELS.upstream} (${scheme}://HOST:PORT) and drop ${LABELS.proto}`);
      return undefined;
    }
    return ok ? allowedUpstream(url, upSrc, options, fail) : undefined;
  }

  const hostNet = c.networkMode === 'host';
  const portLabel: Source = portSrc ?? { kind: 'label', key: LABELS.port, value: '' };
  let port = explicitPort;
  // A bad explicit port was reported above; guessing another would only add noise.
  if (port === undefined && portSrc === undefined) {
    const exposed = c.exposedPorts;
    if (exposed.length === 1) port = exposed[0];
    else if (exposed.length > 1 && exposed.includes(80)) port = 80;
    else if (exposed.length > 1) fail('LABEL_NO_PORT', portLabel, `the container exposes ports ${exposed.join(', ')}; set ${LABELS.port} to the one to use`);
    else if (!hostNet) port = 80;
    else fail('LABEL_NO_PORT', portLabel, `the container uses the host network and exposes no port; set ${LABELS.port} to the port the app listens on`);
  }

  let ip: string | undefined;
  if (hostNet) ip = '127.0.0.1';
  else {
    const names = Object.keys(c.networks).sort(cmp);
    const shared = options.selfNetworks ? names.filter((n) => options.selfNetworks!.includes(n) && c.networks[n]?.ip) : [];
    const chosen = shared[0] ?? names.find((n) => c.networks[n]?.ip);
    ip = chosen ? c.networks[chosen]?.ip : undefined;
  }
  if (!ip) {
    const shared = options.selfNetworks?.length ? ` shared with padlock (${options.selfNetworks.join(', ')}) or any other` : '';
    fail(
      'LABEL_NO_ADDRESS',
      { kind: 'label', key: LABELS.upstream, value: '' },
      `the container has no address on a network${shared} (network mode ${c.networkMode}); connect it to padlock's network or set ${LABELS.upstream}`,
    );
    return undefined;
  }
  if (!ok || port === undefined) return undefined;
  return allowedUpstream(`${scheme}://${ip.includes(':') ? `[${ip}]` : ip}:${port}`, portLabel, options, fail);
}

/** `url`, or undefined after LABEL_UPSTREAM_FORBIDDEN when the guard refuses its address. */
function allowedUpstream(url: string, src: Source, options: DiscoveryOptions, fail: (code: LabelCode, s: Source, text: string) => void): string | undefined {
  const refusal = options.upstreamGuard?.checkUrl(url);
  if (!refusal) return url;
  fail('LABEL_UPSTREAM_FORBIDDEN', src, `the upstream ${url} ${refusal.reason}`);
  return undefined;
}
