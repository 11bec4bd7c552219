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
  // challenge serving
  | 'CHALLENGE_PORT_IN_USE'
  | 'CHALLENGE_SERVER_FAILED'
  | 'CHALLENGE_WEBROOT_UNWRITABLE'
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
  // storage
  | 'STORE_NOT_FOUND'
  | 'STORE_LOCKED'
  | 'STORE_IO'
  | 'STORE_CORRUPT'
  // hooks
  | 'HOOK_FAILED'
  // proxy: an upstream padlock refuses to connect to (proxy/upstream-guard.ts)
  | 'UPSTREAM_FORBIDDEN';

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
export class AcmeProblemError extends PadlockError<'ACME_PROBLEM' | 'ACME_RATE_LIMITED' | 'ACME_ACCOUNT_MISSING'> {
  readonly problem: AcmeProblem;
  readonly httpStatus: number | undefined;
  readonly url: string | undefined;
  /** When the CA said to try again (from `Retry-After`), if it said. */
  readonly retryAfter: Date | undefined;

  constructor(
    problem: AcmeProblem,
    context: { httpStatus?: number; url?: string; retryAfter?: Date; action?: string },
    options: PadlockErrorOptions = {},
  ) {
    const short = shortProblemType(problem.type);
    const code = short === 'rateLimited' ? 'ACME_RATE_LIMITED' : short === 'accountDoesNotExist' ? 'ACME_ACCOUNT_MISSING' : 'ACME_PROBLEM';
    const action = context.action ? `${context.action}: ` : '';
    const retry = context.retryAfter ? ` The CA asks to retry after ${context.retryAfter.toISOString()}.` : '';
    super(code, `${action}the CA refused (${short}): ${problem.detail ?? 'no detail given'}.${retry}`, {
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

/** A message for any thrown value, without stack traces. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
