/**
 * Typed errors with stable codes.
 *
 * Every error padlock raises on purpose is a `PadlockError` with a literal `code`
 * that scripts, notifications and tests can match on, a `retryable` flag
 * (worth trying again unchanged: network, 5xx, rate limits after their
 * window; the ARI poller and alerts read it), and the original `cause` kept intact.
 */

/** Every stable error code padlock emits. Codes never change meaning once released. */
export type ErrorCode =
  // input and configuration
  | 'CONFIG_INVALID'
  | 'NAME_INVALID'
  | 'CONFIG_DIR_UNUSABLE'
  // container labels and env vars (docker/labels.ts): each disables a route, never the process
  | LabelCode
  // ACME protocol (RFC 8555 section 6.7 problem types are kept on AcmeProblemError)
  | 'ACME_PROBLEM'
  | 'ACME_RATE_LIMITED'
  | 'ACME_UNREACHABLE'
  | 'ACME_BAD_DIRECTORY'
  | 'ACME_ACCOUNT_MISSING'
  | 'ACME_CHALLENGE_FAILED'
  | 'ACME_ORDER_FAILED'
  | 'ACME_TIMEOUT'
  | 'ACME_TOS_NOT_AGREED'
  /** The CA said it is unavailable (HTTP 503 or a directory 429) and when to come back; padlock waits until then. */
  | 'ACME_CA_UNAVAILABLE'
  /** The CA's answer was larger than padlock accepts (see acme/client.ts). */
  | 'ACME_RESPONSE_TOO_LARGE'
  /**
   * Not attempted: a wait is in force for this certificate (padlock's backoff
   * after failures, or a wait the CA asked for); `details.retryAfter` says until when.
   */
  | 'RENEWAL_BACKOFF'
  // challenge serving
  | 'CHALLENGE_PORT_IN_USE'
  | 'CHALLENGE_SERVER_FAILED'
  | 'CHALLENGE_WEBROOT_UNWRITABLE'
  // DNS-01 (src/dns): each message names the provider and the zone
  /** The DNS provider refused or failed a change (bad TSIG key, refused update, an API's 403). `details.provider`, `details.zone`. */
  | 'DNS_PROVIDER_FAILED'
  /** Not every authoritative server of the zone answered the TXT record within the propagation timeout. */
  | 'DNS_PROPAGATION_TIMEOUT'
  /** No zone (SOA), no nameservers, or a CNAME loop for the challenge name. */
  | 'DNS_ZONE_NOT_FOUND'
  /** A DNS server did not answer, or answered garbage. */
  | 'DNS_QUERY_FAILED'
  // verification (tls/verify)
  | 'CERT_UNPARSEABLE'
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_NAME_MISMATCH'
  | 'CERT_KEY_MISMATCH'
  | 'CHAIN_UNTRUSTED'
  | 'CHAIN_MISSING_INTERMEDIATE'
  | 'CHAIN_BAD_SIGNATURE'
  | 'CHAIN_INVALID_PURPOSE'
  | 'CHAIN_INVALID_CA'
  | 'CHAIN_PATH_LENGTH'
  | 'CHAIN_INVALID'
  | 'CHECK_UNREACHABLE'
  // serving
  | 'TLS_UNKNOWN_SERVER_NAME'
  /** :80 or :443 cannot be bound (in use, no permission, not an address here). */
  | 'LISTEN_FAILED'
  // storage
  | 'STORE_NOT_FOUND'
  | 'STORE_LOCKED'
  /**
   * A fenced write (putVersion with the caller's lock) found that lock no
   * longer held by the caller: another process may hold it now, and nothing
   * was written.
   */
  | 'STORE_LOCK_LOST'
  | 'STORE_IO'
  | 'STORE_CORRUPT'
  // hooks
  | 'HOOK_FAILED'
  /**
   * Anything padlock did not raise on purpose (a bug, or an environment
   * failure no layer translated). Never dressed up as another code: the
   * original error is kept as the cause.
   */
  | 'UNEXPECTED'
  // proxy: an upstream padlock refuses to connect to (proxy/upstream-guard.ts)
  | 'UPSTREAM_FORBIDDEN';

/** The codes of route problems found in container labels and env vars (and CONTAINER_UNHEALTHY). */
export type LabelCode =
  | 'LABEL_INVALID_HOST'
  | 'LABEL_WILDCARD'
  | 'LABEL_INVALID_PORT'
  | 'LABEL_INVALID_VALUE'
  | 'LABEL_NO_PORT'
  | 'LABEL_NO_ADDRESS'
  | 'LABEL_NO_HOST'
  | 'LABEL_CONFLICT'
  | 'LABEL_HOST_NOT_ROUTED'
  | 'LABEL_UPSTREAM_FORBIDDEN'
  | 'CONTAINER_UNHEALTHY';

export interface PadlockErrorOptions {
  cause?: unknown;
  /** Worth trying again later without changing anything (network blips, 5xx, rate limits after their window). */
  retryable?: boolean;
  /** Extra structured facts for logs and JSON output. Never put secrets here. */
  details?: Record<string, unknown>;
}

/** Base class for every deliberate padlock error. `code` is stable; `message` is for people. */
export class PadlockError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: C, message: string, options: PadlockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PadlockError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  /** A JSON-safe view for `--json` output and logs. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, retryable: this.retryable, ...this.details };
  }
}

/** One RFC 8555 section 6.7 problem document, as the CA sent it. */
export interface AcmeProblem {
  type: string;
  detail?: string;
  status?: number;
  identifier?: { type: string; value: string };
  subproblems?: AcmeProblem[];
}

const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

/** The short ACME error type (`rateLimited`, `connection`, ...) or the full URN when it is not an ACME one. */
export function shortProblemType(type: string): string {
  return type.startsWith(ACME_ERROR_PREFIX) ? type.slice(ACME_ERROR_PREFIX.length) : type;
}

/**
 * The CA answered with a problem document. The document, the HTTP status, the
 * request URL and any `Retry-After` are kept as sent, so `rateLimited` stays
 * recognisable all the way to notifications and the governor.
 */
export class AcmeProblemError extends PadlockError<'ACME_PROBLEM' | 'ACME_RATE_LIMITED' | 'ACME_ACCOUNT_MISSING' | 'ACME_CA_UNAVAILABLE'> {
  readonly problem: AcmeProblem;
  readonly httpStatus: number | undefined;
  readonly url: string | undefined;
  /** When the CA said to try again (from `Retry-After`, already bounded: see acme/retry-after.ts), if it said. */
  readonly retryAfter: Date | undefined;

  constructor(
    problem: AcmeProblem,
    context: { httpStatus?: number; url?: string; retryAfter?: Date; action?: string; retryAfterNote?: string },
    options: PadlockErrorOptions = {},
  ) {
    const short = shortProblemType(problem.type);
    const unavailable = context.httpStatus === 503;
    const code = short === 'rateLimited' ? 'ACME_RATE_LIMITED'
      : short === 'accountDoesNotExist' ? 'ACME_ACCOUNT_MISSING'
        : unavailable ? 'ACME_CA_UNAVAILABLE' : 'ACME_PROBLEM';
    const action = context.action ? `${context.action}: ` : '';
    const retry = context.retryAfter ? ` The CA asks to retry after ${context.retryAfter.toISOString()}${context.retryAfterNote ?? ''}.` : '';
    // A 5xx is the CA failing, not the CA refusing our request.
    const verb = unavailable ? `the CA is unavailable (HTTP 503, ${short})`
      : context.httpStatus !== undefined && context.httpStatus >= 500 ? `the CA failed (HTTP ${context.httpStatus}, ${short})`
        : `the CA refused (${short})`;
    super(code, `${action}${verb}: ${problem.detail ?? 'no detail given'}.${retry}`, {
      retryable: options.retryable ?? isRetryableProblem(short, context.httpStatus),
      cause: options.cause,
      details: { acmeType: short, ...(context.url ? { url: context.url } : {}), ...options.details },
    });
    this.name = 'AcmeProblemError';
    this.problem = problem;
    this.httpStatus = context.httpStatus;
    this.url = context.url;
    this.retryAfter = context.retryAfter;
  }

  /** The short ACME type, such as `rateLimited` or `unauthorized`. */
  get acmeType(): string {
    return shortProblemType(this.problem.type);
  }

  override toJSON(): Record<string, unknown> {
    return {
      ...super.toJSON(),
      problem: this.problem,
      ...(this.retryAfter ? { retryAfter: this.retryAfter.toISOString() } : {}),
    };
  }
}

function isRetryableProblem(short: string, status: number | undefined): boolean {
  if (short === 'rateLimited' || short === 'serverInternal' || short === 'badNonce') return true;
  return status !== undefined && status >= 500;
}

/** True for any error (or cause chain) that is an ACME rate limit. */
export function isRateLimited(err: unknown): err is AcmeProblemError {
  return findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError && e.acmeType === 'rateLimited') !== undefined;
}

/**
 * When the CA asked padlock to come back (its `Retry-After`, bounded), from
 * anywhere in the cause chain: an AcmeProblemError's `retryAfter`, or the
 * `retryAfter` detail of an ACME_CA_UNAVAILABLE answer without a problem
 * document. Undefined when the CA named no time.
 */
export function caRetryAfter(err: unknown): Date | undefined {
  const hit = findCause(err, (e): e is PadlockError => e instanceof PadlockError &&
    ((e instanceof AcmeProblemError && e.retryAfter !== undefined) || (e.code === 'ACME_CA_UNAVAILABLE' && typeof e.details['retryAfter'] === 'string')));
  if (!hit) return undefined;
  if (hit instanceof AcmeProblemError && hit.retryAfter) return hit.retryAfter;
  const t = Date.parse(String(hit.details['retryAfter']));
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** Walks `err` and its `cause` chain and returns the first link that matches. */
export function findCause<T>(err: unknown, match: (e: unknown) => e is T): T | undefined {
  const seen = new Set<unknown>();
  let cur: unknown = err;
  while (cur !== undefined && cur !== null && !seen.has(cur)) {
    if (match(cur)) return cur;
    seen.add(cur);
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * `err` as a PadlockError: itself when it is one, else an `UNEXPECTED` error
 * that keeps it as the cause. `context` says what padlock was doing
 * (`renewing example.com`); the message never claims a code the error does
 * not have (a foreign error is not an ACME problem, a config error or a
 * corrupt store just because it passed through there).
 */
export function asPadlockError(err: unknown, context?: string): PadlockError {
  if (err instanceof PadlockError) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  const what = context ? `${context}: ` : '';
  return new PadlockError('UNEXPECTED', `${what}unexpected error: ${errorMessage(err)}${typeof errno === 'string' ? ` (${errno})` : ''}`, {
    cause: err,
    ...(typeof errno === 'string' ? { details: { errno } } : {}),
  });
}

/** A message for any thrown value, without stack traces. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
