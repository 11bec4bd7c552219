/**
 * The events padlock notifies people about, and the contract a delivery
 * channel (email, webhook) fulfils.
 *
 * Every event names its lineage (`name`), the DNS names on the certificate
 * (`names`) and, when a site asked for it with the label `padlock.email` or
 * nginx-proxy's `LETSENCRYPT_EMAIL`, an extra recipient (`email`). Events are
 * plain values: they carry what a message needs and never a key, password or
 * token.
 */

interface EventBase {
  /** The lineage (certificate) name. */
  name: string;
  /** Every DNS name on the certificate (or wanted on it), first one is the CN. */
  names: string[];
  /** A per-certificate recipient, added to the global `notifyTo`. */
  email?: string;
}

/** The last failed attempt as the CA (or padlock) described it. */
export interface FailureFacts {
  /** padlock's stable error code (`ACME_CHALLENGE_FAILED`, ...). */
  errorCode: string;
  /** The short ACME error type (`connection`, `caa`, `rateLimited`, ...), when the CA sent a problem document. */
  acmeType?: string;
  /** The CA's own words (the problem `detail`), or padlock's message when the CA said nothing. */
  detail: string;
}

/** Renewal (or first issuance) keeps failing and the certificate is inside its alert window. */
export interface RenewalFailedEvent extends EventBase, FailureFacts {
  kind: 'renewal_failed';
  /** Consecutive failed attempts so far. */
  attempts: number;
  /** When this run of failures began, when known. */
  firstFailureAt?: Date;
  /** When padlock tries again, when scheduled. */
  nextAttemptAt?: Date;
  /** When the current certificate expires; absent when there is none yet. */
  notAfter?: Date;
}

/** The certificate crossed one of its expiry thresholds (see policy.ts `expiryThresholds`). */
export interface ExpiringEvent extends EventBase {
  kind: 'expiring';
  notAfter: Date;
  /** The threshold crossed, in days (fractional for short-lived certificates). */
  thresholdDays: number;
  /** Why it has not been renewed, when renewal has been failing. */
  lastFailure?: FailureFacts;
  nextAttemptAt?: Date;
}

/** A certificate (new or stored) failed chain verification. */
export interface ChainInvalidEvent extends EventBase {
  kind: 'chain_invalid';
  /** The verification code (`CHAIN_UNTRUSTED`, `CHAIN_MISSING_INTERMEDIATE`, ...). */
  verifyCode: string;
  /** A one-line reason (tls/verify.ts `verifyErrorReason` or the error message). */
  reason: string;
  notAfter?: Date;
}

/** The CA rate limited padlock; no attempt happens before `retryAfter`. */
export interface RateLimitedEvent extends EventBase {
  kind: 'rate_limited';
  /** When the CA allows the next attempt (its `Retry-After`, or padlock's backoff). */
  retryAfter?: Date;
  /** The CA's own words. */
  detail: string;
  notAfter?: Date;
}

/** A certificate was obtained again after failures that had been alerted. */
export interface RecoveredEvent extends EventBase {
  kind: 'recovered';
  notAfter: Date;
  /** How many consecutive failures preceded the success. */
  failures: number;
}

/**
 * The shared certificate store (Redis) has been unreachable for longer than
 * the grace time: certificates keep serving from memory, but nothing can be
 * renewed or obtained until it is back. `name` is the store's location (not
 * a lineage), `names` is empty.
 */
export interface StoreUnreachableEvent extends EventBase {
  kind: 'store_unreachable';
  /** Where the store is, without credentials (`redis://redis.internal:6379/0`). */
  location: string;
  since: Date;
  /** The last error, without credentials. */
  error?: string;
}

/** The store is reachable again after a `store_unreachable` alert. */
export interface StoreReachableEvent extends EventBase {
  kind: 'store_reachable';
  location: string;
  /** When it became unreachable. */
  since: Date;
}

/** `padlock notify test`: proves a channel works. */
export interface TestEvent extends EventBase {
  kind: 'test';
}

/** Everything padlock notifies about, discriminated by `kind`. */
export type NotifyEvent = RenewalFailedEvent | ExpiringEvent | ChainInvalidEvent | RateLimitedEvent | RecoveredEvent | StoreUnreachableEvent | StoreReachableEvent | TestEvent;

export type NotifyEventKind = NotifyEvent['kind'];

/** A rendered message: what every channel sends. */
export interface RenderedMessage {
  subject: string;
  text: string;
  html: string;
}

/** One delivery handed to a channel. */
export interface Delivery {
  event: NotifyEvent;
  message: RenderedMessage;
  /** True for the daily reminder of a failure that is still going on. */
  reminder: boolean;
  /** When the notifier handed it over. */
  sentAt: Date;
}

/**
 * A way to reach people. `send` resolves once the receiving end accepted the
 * delivery and rejects otherwise (a {@link DeliveryError} when it can say
 * more); it never retries by itself: the Notifier does. `send` may be called
 * concurrently. `close` releases connections; sends after it reject.
 */
export interface Channel {
  /** `email` or `webhook`. */
  readonly name: string;
  /** Where it delivers, for people (`smtp 127.0.0.1:587 to ops@example.com`); never a password or a URL path. */
  readonly target: string;
  send(delivery: Delivery): Promise<void>;
  close?(): Promise<void> | void;
}

/**
 * A delivery the receiving end refused or that could not reach it. `code` is
 * the transport's code (`EENVELOPE`, `ECONNECTION`, `HTTP_500`, ...),
 * `responseCode` the SMTP reply code (550, 535, ...) or HTTP status.
 * The message never holds a password.
 */
export class DeliveryError extends Error {
  readonly channel: string;
  readonly code: string | undefined;
  readonly responseCode: number | undefined;

  constructor(channel: string, message: string, options: { code?: string; responseCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeliveryError';
    this.channel = channel;
    this.code = options.code;
    this.responseCode = options.responseCode;
  }
}
