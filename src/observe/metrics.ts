/**
 * Prometheus metrics (`GET /metrics`), on a private prom-client Registry
 * (never the global one, so two daemons in one process, as in tests, do not
 * share counters).
 *
 * Two kinds of families:
 * - read at scrape time from a `MetricsSource` (certificate timestamps, rate
 *   limits, open connections, WebSockets): always the current value, nothing
 *   to keep in sync;
 * - fed by hooks the other parts call (renewal outcomes, ACME request
 *   latency, proxy requests, upstream errors).
 *
 * Label cardinality is bounded: `host` is a routed host or `_unknown`;
 * `name` is a certificate name padlock manages; `reason`, `error` and
 * `status` pass through `labelValue`, which folds anything unexpected into
 * `other`.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProxyObserver, ProxyStats } from '../proxy/server.js';
import { isRateLimitedStatus, type CertificateInput } from './status.js';

/** What /metrics reads at scrape time. Called on every scrape (several times per scrape): keep it cheap. */
export interface MetricsSource {
  certificates(): readonly CertificateInput[];
  proxy?(): ProxyStats | undefined;
  now?(): Date;
}

export interface MetricsOptions {
  source?: MetricsSource;
  /** Buckets (seconds) of the proxy request-duration histogram. */
  requestBuckets?: number[];
  /** Buckets (seconds) of the ACME request-latency histogram. */
  acmeBuckets?: number[];
}

/** The host label for requests that matched no route. */
export const UNKNOWN_HOST = '_unknown';

const DEFAULT_REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DEFAULT_ACME_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const HOLD_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60];
const STATES = ['valid', 'obtaining', 'renewing', 'waiting', 'missing', 'retired'] as const;

/** A safe label value: short identifier-like text, else `other`. */
export function labelValue(value: string | undefined, fallback = 'other'): string {
  if (!value) return fallback;
  return /^[A-Za-z0-9_.:-]{1,48}$/.test(value) ? value : 'other';
}

/**
 * The failure reason label for a certificate error: the short ACME problem
 * type when the CA sent one (`rateLimited`, `unauthorized`, ...), else
 * padlock's error code (`ACME_UNREACHABLE`, `CHAIN_UNTRUSTED`, ...).
 */
export function failureReason(error: { code?: string; acmeType?: string; details?: Record<string, unknown> }): string {
  const acmeType = error.acmeType ?? (typeof error.details?.['acmeType'] === 'string' ? (error.details['acmeType'] as string) : undefined);
  return labelValue(acmeType && !acmeType.includes(':') ? acmeType : error.code, 'unknown');
}

/**
 * padlock's metric families and the hooks that feed them. One instance per
 * daemon; hooks are cheap and never throw.
 */
export class Metrics {
  readonly registry = new Registry();
  private source: MetricsSource | undefined;
  private readonly attempts: Counter<'outcome'>;
  private readonly failures: Counter<'reason'>;
  private readonly acmeLatency: Histogram<'status'>;
  private readonly requests: Counter<'host' | 'status'>;
  private readonly duration: Histogram<'host'>;
  private readonly upstreamErrors: Counter<'host' | 'error'>;
  private readonly heldTotal: Counter<'host' | 'outcome'>;
  private readonly holdDuration: Histogram<'outcome'>;
  private readonly unavailableTotal: Counter<'host' | 'reason'>;
  /** The label values each host has in the per-host families, so they can be removed with the route. */
  private readonly hosts = new Map<string, { statuses: Set<string>; errors: Set<string>; outcomes: Set<string>; reasons: Set<string> }>();

  /** Pass this to `new ProxyServer({ observer })`. */
  readonly proxyObserver: ProxyObserver = {
    request: (host, status, seconds) => this.proxyRequest(host, status, seconds),
    upstreamError: (host, error) => this.upstreamError(host, error),
    held: (host, outcome, seconds) => this.held(host, outcome, seconds),
    unavailable: (host, reason) => this.unavailable(host, reason),
  };

  constructor(options: MetricsOptions = {}) {
    this.source = options.source;
    const registers = [this.registry];
    const self = this;
    const now = () => (this.source?.now?.() ?? new Date()).getTime();

    new Gauge({
      name: 'padlock_certificate_not_after_timestamp_seconds',
      help: 'When each certificate expires (Unix seconds).',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const c of self.certificates()) if (c.notAfter) this.set({ name: c.name }, Date.parse(c.notAfter) / 1000);
      },
    });
    new Gauge({
      name: 'padlock_certificate_next_renewal_timestamp_seconds',
      help: 'When padlock next acts on each certificate: its renewal time, or the end of a failure backoff (Unix seconds).',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        const t = now();
        for (const c of self.certificates()) {
          const waiting = c.nextAttemptAt && Date.parse(c.nextAttemptAt) > t ? c.nextAttemptAt : undefined;
          const at = waiting ?? c.renewAt;
          if (at) this.set({ name: c.name }, Date.parse(at) / 1000);
        }
      },
    });
    new Gauge({
      name: 'padlock_certificate_rate_limited_until_timestamp_seconds',
      help: "When the CA's rate limit on a certificate ends (Unix seconds); only names rate-limited now.",
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        const t = now();
        for (const c of self.certificates()) {
          if (c.nextAttemptAt && Date.parse(c.nextAttemptAt) > t && isRateLimitedStatus(c)) this.set({ name: c.name }, Date.parse(c.nextAttemptAt) / 1000);
        }
      },
    });
    new Gauge({
      name: 'padlock_certificate_state',
      help: 'Each certificate\'s state: 1 for the current one (valid, obtaining, renewing, waiting, missing, retired).',
      labelNames: ['name', 'state'],
      registers,
      collect() {
        this.reset();
        for (const c of self.certificates()) for (const s of STATES) this.set({ name: c.name, state: s }, c.state === s ? 1 : 0);
      },
    });
    new Gauge({
      name: 'padlock_certificate_failing',
      help: '1 when the last attempt for a certificate failed and no success came since.',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const c of self.certificates()) this.set({ name: c.name }, c.lastError ? 1 : 0);
      },
    });

    this.attempts = new Counter({
      name: 'padlock_certificate_renewal_attempts_total',
      help: 'Finished certificate orders (first issuance and renewals) by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.failures = new Counter({
      name: 'padlock_certificate_renewal_failures_total',
      help: 'Failed certificate orders by reason: the ACME problem type, else padlock\'s error code.',
      labelNames: ['reason'],
      registers,
    });
    this.acmeLatency = new Histogram({
      name: 'padlock_acme_request_duration_seconds',
      help: 'Latency of each HTTP request to the ACME CA, by response status (0: no response).',
      labelNames: ['status'],
      buckets: options.acmeBuckets ?? DEFAULT_ACME_BUCKETS,
      registers,
    });
    this.requests = new Counter({
      name: 'padlock_proxy_requests_total',
      help: `Proxied requests by routed host (${UNKNOWN_HOST} when no route matched) and status (0: cut before an answer).`,
      labelNames: ['host', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'padlock_proxy_request_duration_seconds',
      help: 'Time from request to the end of the response, by routed host.',
      labelNames: ['host'],
      buckets: options.requestBuckets ?? DEFAULT_REQUEST_BUCKETS,
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'padlock_proxy_upstream_errors_total',
      help: 'Failed upstream attempts (refused, timed out, reset) by host and error.',
      labelNames: ['host', 'error'],
      registers,
    });

    this.heldTotal = new Counter({
      name: 'padlock_proxy_held_requests_total',
      help: 'Requests that found no upstream up and asked to wait for one, by host and how the wait ended: released (an upstream came up), unavailable (the wait ran out: 503), full (a hold limit was reached: 503 at once), gone (the client left), closed (padlock stopped).',
      labelNames: ['host', 'outcome'],
      registers,
    });
    this.holdDuration = new Histogram({
      name: 'padlock_proxy_hold_duration_seconds',
      help: 'How long requests were held waiting for an upstream, by how the wait ended.',
      labelNames: ['outcome'],
      buckets: HOLD_BUCKETS,
      registers,
    });
    this.unavailableTotal = new Counter({
      name: 'padlock_proxy_unavailable_total',
      help: 'Requests padlock answered 503 itself because no upstream could take them, by host and reason: wait-elapsed (held until the wait ran out), hold-full (a hold limit was reached), no-upstream (no wait configured, or every health check failing).',
      labelNames: ['host', 'reason'],
      registers,
    });

    const fromProxy = (name: string, help: string, pick: (s: ProxyStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = self.proxyStats();
          if (s) this.set(pick(s));
        },
      });
    fromProxy('padlock_proxy_open_connections', 'Client TCP connections open now (both fronts, WebSockets included).', (s) => s.openConnections);
    fromProxy('padlock_proxy_websockets', 'WebSockets proxied now.', (s) => s.websockets);
    fromProxy('padlock_proxy_requests_in_flight', 'Requests being answered now.', (s) => s.inFlight);
    fromProxy('padlock_proxy_routes', 'Routed hosts.', (s) => s.routes);
    fromProxy('padlock_proxy_upstreams_down', 'Upstreams inside their down window after a failed connect.', (s) => s.upstreamsDown);
    fromProxy('padlock_proxy_held_requests', 'Requests held now, waiting for an upstream to come up.', (s) => s.held ?? 0);
    // Monotonic counts kept by the proxy itself: exposed as counters, set from the source at scrape.
    for (const [name, help, pick] of [
      ['padlock_proxy_upstream_connections_opened_total', 'Upstream connections opened (not reused).', (s: ProxyStats) => s.upstreamConnectionsOpened],
      ['padlock_proxy_upstream_retries_total', 'Requests retried on another (or a fresh) upstream connection.', (s: ProxyStats) => s.upstreamRetries],
    ] as const) {
      new Counter({
        name,
        help,
        registers,
        collect() {
          const s = self.proxyStats();
          if (!s) return;
          this.reset();
          this.inc(pick(s));
        },
      });
    }
  }

  /** Sets (or replaces) what scrapes read, when it exists only after the Metrics object. */
  setSource(source: MetricsSource): void {
    this.source = source;
  }

  /**
   * Hook: one certificate order finished (the manager's `cert_obtained` is
   * `success`, `cert_failed` is `failure` with `failureReason(error)`).
   */
  renewal(outcome: 'success' | 'failure', reason?: string): void {
    this.attempts.inc({ outcome });
    if (outcome === 'failure') this.failures.inc({ reason: labelValue(reason, 'unknown') });
  }

  /** Hook: one HTTP request to the ACME CA took `ms`; `status` 0 when no response came. */
  acmeRequest(ms: number, status: number): void {
    this.acmeLatency.observe({ status: statusLabel(status) }, ms / 1000);
  }

  /** Hook (via `proxyObserver`): one finished proxied request. */
  proxyRequest(host: string | undefined, status: number, seconds: number): void {
    const h = host ?? UNKNOWN_HOST;
    const label = statusLabel(status);
    this.requests.inc({ host: h, status: label });
    this.duration.observe({ host: h }, seconds);
    this.seenHost(h).statuses.add(label);
  }

  /** Hook (via `proxyObserver`): one failed upstream attempt. */
  upstreamError(host: string, error: string): void {
    const h = host || UNKNOWN_HOST;
    const label = labelValue(error);
    this.upstreamErrors.inc({ host: h, error: label });
    this.seenHost(h).errors.add(label);
  }

  /** Hook (via `proxyObserver`): a request's wait for an upstream ended. */
  held(host: string, outcome: string, seconds: number): void {
    const h = host || UNKNOWN_HOST;
    const label = labelValue(outcome);
    this.heldTotal.inc({ host: h, outcome: label });
    this.holdDuration.observe({ outcome: label }, seconds);
    this.seenHost(h).outcomes.add(label);
  }

  /** Hook (via `proxyObserver`): padlock answered 503 itself. */
  unavailable(host: string, reason: string): void {
    const h = host || UNKNOWN_HOST;
    const label = labelValue(reason);
    this.unavailableTotal.inc({ host: h, reason: label });
    this.seenHost(h).reasons.add(label);
  }

  /**
   * Drops the per-host series of every host not in `routed` (and not
   * `_unknown`), so the families follow the route table rather than every
   * host ever routed: a daemon that sees containers come and go for months
   * must not grow its metrics without bound. Call it when the routes change.
   */
  forgetHostsExcept(routed: Iterable<string>): void {
    const keep = new Set(routed);
    keep.add(UNKNOWN_HOST);
    for (const [host, seen] of this.hosts) {
      if (keep.has(host)) continue;
      for (const status of seen.statuses) this.requests.remove({ host, status });
      for (const error of seen.errors) this.upstreamErrors.remove({ host, error });
      for (const outcome of seen.outcomes) this.heldTotal.remove({ host, outcome });
      for (const reason of seen.reasons) this.unavailableTotal.remove({ host, reason });
      this.duration.remove({ host });
      this.hosts.delete(host);
    }
  }

  private seenHost(host: string): { statuses: Set<string>; errors: Set<string>; outcomes: Set<string>; reasons: Set<string> } {
    let seen = this.hosts.get(host);
    if (!seen) this.hosts.set(host, (seen = { statuses: new Set(), errors: new Set(), outcomes: new Set(), reasons: new Set() }));
    return seen;
  }

  /** The Prometheus text exposition of every family. */
  async exposition(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private certificates(): readonly CertificateInput[] {
    try {
      return this.source?.certificates() ?? [];
    } catch {
      return [];
    }
  }

  private proxyStats(): ProxyStats | undefined {
    try {
      return this.source?.proxy?.();
    } catch {
      return undefined;
    }
  }
}

function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 0 && status < 1000 ? String(status) : 'other';
}
