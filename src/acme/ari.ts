/**
 * ACME Renewal Information (ARI, RFC 9773) and certificate profiles
 * (draft-ietf-acme-profiles): when the CA wants a certificate renewed, and
 * which profile to ask for.
 *
 * Everything here is pure over values except `fetchRenewalInfo`, which does
 * one unauthenticated GET through an injected transport. The renewal logic
 * keeps an `AriState` per certificate in the store, updates it with
 * `applyRenewalInfo` / `applyAriError`, and asks `ariDecision` what to do.
 *
 * Choices made where the RFC leaves room (each is a named constant below):
 * - `Retry-After` is clamped to [1 minute, 12 hours] (section 4.3.2 asks for
 *   "reasonable limits" and gives 1 minute and 1 day as examples; 12 hours
 *   keeps a CA's change of mind from going unseen for a whole day);
 * - a missing or unparseable `Retry-After` is a long-term error in section
 *   4.3.3, so the next poll is in 6 hours, the RFC's own default;
 * - a window that is already open or already over when padlock first sees it
 *   (or sees it change) means "renew now": that is how a CA announces a mass
 *   revocation, and waiting for a random point in it only shortens the time
 *   left to react.
 */
import * as x509 from '@peculiar/x509';
import { AcmeProblemError, PadlockError, errorMessage, findCause, type AcmeProblem } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import { renewalTime } from '../certificates/policy.js';
import { parseRetryAfter } from './client.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/** Shortest poll interval padlock accepts from a CA's `Retry-After` (RFC 9773 section 4.3.2). */
export const ARI_MIN_POLL_MS = MINUTE_MS;
/** Longest poll interval padlock accepts from a CA's `Retry-After` (RFC 9773 section 4.3.2). */
export const ARI_MAX_POLL_MS = 12 * HOUR_MS;
/** Poll interval when the CA sent no usable `Retry-After`, and after a long-term error (RFC 9773 section 4.3.3). */
export const ARI_DEFAULT_POLL_MS = 6 * HOUR_MS;
/** Backoff for the first temporary errors in a row (timeouts, 5xx); after these, a temporary error counts as long-term. */
const ARI_TEMPORARY_BACKOFF_MS = [MINUTE_MS, 10 * MINUTE_MS, 100 * MINUTE_MS];

export interface RenewalWindow {
  start: Date;
  end: Date;
}

/** One RenewalInfo response (RFC 9773 section 4.2), validated. */
export interface RenewalInfo {
  window: RenewalWindow;
  /** A page explaining the window; show it to the operator (section 4.2 says clients SHOULD). */
  explanationURL?: string;
  /** When the CA asked to be polled again, as sent (unclamped); see `clampRetryAfter`. */
  retryAfter?: Date;
}

/** A window and the renewal time padlock picked inside it; persisted so a restart does not re-roll the dice. */
export interface ChosenTime {
  window: RenewalWindow;
  chosen: Date;
}

/**
 * What padlock remembers about one certificate's ARI, persisted in the store.
 * Every field is optional: an empty state means "never asked".
 */
export interface AriState {
  window?: RenewalWindow;
  /** The renewal time picked inside `window`. */
  chosen?: Date;
  explanationURL?: string;
  /** Last successful fetch. */
  lastFetchAt?: Date;
  /** Do not poll before this time. */
  nextPollAt?: Date;
  /** The last failed fetch, cleared by the next success. */
  lastError?: { at: Date; message: string; code?: string };
  /** Failed fetches in a row. */
  consecutiveErrors?: number;
}

/** Facts about the certificate that `ariDecision` needs. */
export interface AriCertFacts {
  notBefore: Date;
  notAfter: Date;
  /** True once a newer certificate for the same names is issued and deployed. */
  replaced?: boolean;
}

export type AriReason =
  /** The picked time inside the CA's window (due once it has passed). */
  | 'ari-window'
  /** The CA's window is over: renew now (mass revocation, or padlock is late). */
  | 'ari-past-window'
  /** No ARI window known (CA without ARI, or not fetched yet): a third of the lifetime left, half under 10 days. */
  | 'lifetime-share'
  | 'expired'
  /** A newer certificate replaced this one: nothing to renew, nothing to poll. */
  | 'replaced';

export interface AriDecision {
  /** Renew now. */
  due: boolean;
  /** When the certificate became or becomes due. */
  at: Date;
  /**
   * When to fetch RenewalInfo next; absent when it must not be fetched
   * (expired or replaced certificate, RFC 9773 section 4.3) or when the next
   * poll would fall after expiry. When `pollAt <= now`, fetch first, apply the
   * result, and decide again.
   */
  pollAt?: Date;
  reason: AriReason;
  /** The CA's explanation of the window, for logs and notifications. */
  explanationURL?: string;
}

// --- CertID (RFC 9773 section 4.1) ---

/** The first certificate of a PEM text (a leaf followed by its chain is fine). */
function firstPem(certPem: string): string {
  const m = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(certPem);
  if (!m) throw new PadlockError('CERT_UNPARSEABLE', 'ARI: no PEM certificate found; cannot compute its CertID');
  return m[0];
}

/**
 * The ARI CertID of a certificate (RFC 9773 section 4.1):
 * `base64url(AKI keyIdentifier) "." base64url(DER serial)`, unpadded.
 *
 * `certPem` may hold a chain; the first certificate is used. The AKI comes
 * from @peculiar/x509's extension parser (node:crypto exposes no AKI). Both
 * it and node:crypto return the serial without its DER sign byte, so a
 * leading 0x00 is put back when the high bit is set: RFC 5280 section
 * 4.1.2.2 requires positive serials, so this reproduces the DER exactly.
 * Throws CERT_UNPARSEABLE for a bad PEM or a certificate without an AKI
 * keyIdentifier (such a certificate cannot use ARI; renew it by lifetime).
 */
export function certId(certPem: string): string {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(firstPem(certPem));
  } catch (err) {
    if (err instanceof PadlockError) throw err;
    throw new PadlockError('CERT_UNPARSEABLE', `ARI: cannot parse the certificate: ${errorMessage(err)}`, { cause: err });
  }
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) {
    throw new PadlockError('CERT_UNPARSEABLE',
      `ARI: the certificate (serial ${cert.serialNumber}) has no Authority Key Identifier keyIdentifier, so it has no CertID; padlock renews it by its lifetime instead`);
  }
  let serialHex = cert.serialNumber;
  if (serialHex.length % 2) serialHex = `0${serialHex}`;
  const serial = Buffer.from(serialHex, 'hex');
  const der = serial.length > 0 && serial[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), serial]) : serial;
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${der.toString('base64url')}`;
}

// --- RenewalInfo objects (RFC 9773 section 4.2) ---

/** RFC 3339 date-time, as section 4.2 requires (Date.parse alone accepts far more). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function rfc3339(value: unknown): Date | undefined {
  if (typeof value !== 'string' || !RFC3339.test(value)) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/**
 * Validates a RenewalInfo response body (RFC 9773 section 4.2). `body` may be
 * parsed JSON or its text; `headers` are the response headers (any case).
 * Throws ACME_PROBLEM (not retryable: section 4.3.3 calls an invalid object
 * a long-term error) when `suggestedWindow` is missing, a time is not RFC
 * 3339, or `end` is not after `start`. An `explanationURL` that is not an
 * http(s) URL is dropped rather than shown; an unparseable `Retry-After` is
 * dropped (the caller then polls in 6 hours). `context.url` names the
 * request in the message.
 */
export function parseRenewalInfo(body: unknown, headers: Record<string, string>, now: Date, context: { url?: string } = {}): RenewalInfo {
  const where = context.url ? ` from ${context.url}` : '';
  const fail = (why: string): never => {
    throw new PadlockError('ACME_PROBLEM',
      `ARI: the CA's renewal information${where} is invalid (${why}); padlock keeps its current renewal time and asks again in 6 hours`,
      { details: { ...(context.url ? { url: context.url } : {}) } });
  };
  let data = body;
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      data = JSON.parse(data.toString());
    } catch {
      fail('the body is not JSON');
    }
  }
  if (typeof data !== 'object' || data === null) return fail('the body is not a JSON object');
  const sw = (data as { suggestedWindow?: unknown }).suggestedWindow;
  if (typeof sw !== 'object' || sw === null) return fail('no suggestedWindow object');
  const { start: rawStart, end: rawEnd } = sw as { start?: unknown; end?: unknown };
  const start = rfc3339(rawStart);
  const end = rfc3339(rawEnd);
  if (!start) return fail(`suggestedWindow.start ${JSON.stringify(rawStart)} is not an RFC 3339 time`);
  if (!end) return fail(`suggestedWindow.end ${JSON.stringify(rawEnd)} is not an RFC 3339 time`);
  // Section 4.2: end equal to or before start makes the whole object invalid.
  if (end.getTime() <= start.getTime()) return fail(`suggestedWindow.end ${String(rawEnd)} is not after start ${String(rawStart)}`);
  const info: RenewalInfo = { window: { start, end } };
  const explanation = (data as { explanationURL?: unknown }).explanationURL;
  if (typeof explanation === 'string' && URL.canParse(explanation) && /^https?:$/.test(new URL(explanation).protocol)) {
    info.explanationURL = explanation;
  }
  const retryHeader = Object.entries(headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
  const retryAfter = parseRetryAfter(retryHeader, now);
  if (retryAfter) info.retryAfter = retryAfter;
  return info;
}

// --- polling schedule (RFC 9773 section 4.3) ---

/**
 * When to poll next after a successful fetch: the CA's `Retry-After`, kept
 * between 1 minute and 12 hours from `now` (section 4.3.2); 6 hours when the
 * CA sent none (section 4.3.3 treats that as a long-term error).
 */
export function clampRetryAfter(retryAfter: Date | undefined, now: Date): Date {
  const t = now.getTime();
  if (!retryAfter || Number.isNaN(retryAfter.getTime())) return new Date(t + ARI_DEFAULT_POLL_MS);
  const wait = Math.min(ARI_MAX_POLL_MS, Math.max(ARI_MIN_POLL_MS, retryAfter.getTime() - t));
  return new Date(t + wait);
}

// --- picking the renewal time (RFC 9773 section 4.2, the recommended algorithm) ---

/** A uniform random time in [start, end). `random` returns values in [0, 1), like Math.random. */
export function pickRenewalTime(window: RenewalWindow, random: () => number): Date {
  const span = window.end.getTime() - window.start.getTime();
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return new Date(window.start.getTime() + Math.floor(r * Math.max(span, 0)));
}

function sameWindow(a: RenewalWindow, b: RenewalWindow): boolean {
  return a.start.getTime() === b.start.getTime() && a.end.getTime() === b.end.getTime();
}

/**
 * Keeps the persisted choice while the CA's window is unchanged, so a
 * restart or a cron run never re-rolls it; picks again when the window
 * changed. A new window that has already started (or already ended) gives
 * `chosen = now`: renew now.
 */
export function choosePersistedTime(prev: ChosenTime | undefined, window: RenewalWindow, now: Date, random: () => number): ChosenTime {
  if (prev && sameWindow(prev.window, window)) return prev;
  const chosen = window.start.getTime() <= now.getTime() ? new Date(now.getTime()) : pickRenewalTime(window, random);
  return { window: { start: new Date(window.start.getTime()), end: new Date(window.end.getTime()) }, chosen };
}

/**
 * The state after a successful fetch: the window and its persisted pick (see
 * `choosePersistedTime`), the explanation, the next poll (`clampRetryAfter`),
 * and the error streak cleared.
 */
export function applyRenewalInfo(prev: AriState | undefined, info: RenewalInfo, now: Date, random: () => number): AriState {
  const prevChoice = prev?.window && prev.chosen ? { window: prev.window, chosen: prev.chosen } : undefined;
  const { window, chosen } = choosePersistedTime(prevChoice, info.window, now, random);
  return {
    window,
    chosen,
    ...(info.explanationURL ? { explanationURL: info.explanationURL } : {}),
    lastFetchAt: new Date(now.getTime()),
    nextPollAt: clampRetryAfter(info.retryAfter, now),
    consecutiveErrors: 0,
  };
}

/**
 * The state after a failed fetch (RFC 9773 section 4.3.3). The known window
 * and pick are kept. A temporary error (`retryable`: timeout, 5xx) is retried
 * after 1, 10 and 100 minutes; after that, and for any long-term error
 * (invalid object, 4xx, refused connection), the next poll is in 6 hours.
 */
export function applyAriError(prev: AriState | undefined, error: { message: string; code?: string; retryable?: boolean; retryAfter?: Date }, now: Date): AriState {
  const errors = (prev?.consecutiveErrors ?? 0) + 1;
  const wait = (error.retryable ? ARI_TEMPORARY_BACKOFF_MS[errors - 1] : undefined) ?? ARI_DEFAULT_POLL_MS;
  // A CA that said when to come back (429/503 with Retry-After) is not asked earlier; the clamp still applies.
  const own = now.getTime() + wait;
  const asked = error.retryAfter ? clampRetryAfter(error.retryAfter, now).getTime() : 0;
  return {
    ...prev,
    lastError: { at: new Date(now.getTime()), message: error.message, ...(error.code ? { code: error.code } : {}) },
    consecutiveErrors: errors,
    nextPollAt: new Date(Math.max(own, asked)),
  };
}

/**
 * Whether to renew now and when to poll ARI next, from the stored state
 * alone. Order of the checks: a replaced certificate is never renewed or
 * polled; an expired one is due and never polled (RFC 9773 section 4.3); a
 * known window decides through its persisted pick (`ari-past-window` once the
 * window is over); without a window, the lifetime rule of
 * certificates/policy.ts decides. A certificate that was never fetched (no
 * success, no error) gets `pollAt = now`: section 4.3 asks for a fetch right
 * after issuance. Only poll when the directory has `renewalInfo` (see
 * `renewalInfoUrl`); for a CA without ARI, ignore `pollAt`.
 */
export function ariDecision(state: AriState | undefined, cert: AriCertFacts, now: Date): AriDecision {
  const t = now.getTime();
  const explanation = state?.explanationURL ? { explanationURL: state.explanationURL } : {};
  if (cert.replaced) return { due: false, at: new Date(cert.notAfter.getTime()), reason: 'replaced' };
  if (t >= cert.notAfter.getTime()) return { due: true, at: new Date(cert.notAfter.getTime()), reason: 'expired' };

  const neverAsked = !state?.lastFetchAt && !state?.lastError;
  const nextPoll = neverAsked ? now : (state?.nextPollAt ?? now);
  const pollAt = nextPoll.getTime() < cert.notAfter.getTime() ? { pollAt: new Date(nextPoll.getTime()) } : {};

  if (state?.window && state.chosen) {
    if (t >= state.window.end.getTime()) {
      const at = Math.min(state.chosen.getTime(), state.window.end.getTime());
      return { due: true, at: new Date(at), ...pollAt, reason: 'ari-past-window', ...explanation };
    }
    return { due: t >= state.chosen.getTime(), at: new Date(state.chosen.getTime()), ...pollAt, reason: 'ari-window', ...explanation };
  }
  const at = renewalTime(cert);
  return { due: t >= at.getTime(), at, ...pollAt, reason: 'lifetime-share' };
}

// --- fetching (RFC 9773 section 4.1) ---

/** A plain HTTP response, as `RenewalInfoSource.get` resolves it. */
export interface HttpResponse {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** Parsed JSON when the response was JSON, else the text. */
  body: unknown;
}

/**
 * What `fetchRenewalInfo` needs from the ACME client: the directory and an
 * unauthenticated GET over the client's own agent, timeout and trust.
 * `get` resolves for every HTTP status and rejects only for transport
 * failures (ACME_UNREACHABLE, retryable).
 */
export interface RenewalInfoSource {
  directory(): Promise<Record<string, unknown>>;
  get(url: string): Promise<HttpResponse>;
}

/** The directory's `renewalInfo` URL (RFC 9773 section 3), or undefined when the CA offers no ARI. */
export function renewalInfoUrl(directory: Record<string, unknown>): string | undefined {
  const url = directory.renewalInfo;
  return typeof url === 'string' && URL.canParse(url) ? url : undefined;
}

/**
 * GETs `renewalInfo/<CertID>` (RFC 9773 section 4.1: a plain GET, not
 * POST-as-GET) and validates the answer. Throws:
 * - ACME_PROBLEM, not retryable, when the directory has no `renewalInfo`
 *   (check `renewalInfoUrl` first) or the object is invalid;
 * - an AcmeProblemError (problem document kept) or ACME_PROBLEM for an HTTP
 *   error; retryable for 5xx and 429, long-term otherwise (section 4.3.3);
 * - ACME_UNREACHABLE (retryable) from the transport;
 * - CERT_UNPARSEABLE when the certificate has no CertID.
 * Pass the thrown error's message and `retryable` to `applyAriError`.
 */
export async function fetchRenewalInfo(source: RenewalInfoSource, certPem: string, clock: Clock = systemClock): Promise<RenewalInfo> {
  const id = certId(certPem);
  const base = renewalInfoUrl(await source.directory());
  if (!base) throw new PadlockError('ACME_PROBLEM', 'ARI: this CA offers no renewalInfo in its directory; padlock renews by the certificate lifetime');
  const url = `${base.replace(/\/+$/, '')}/${id}`;
  const resp = await source.get(url);
  const now = clock.now();
  if (resp.status === 200) return parseRenewalInfo(resp.body, resp.headers, now, { url });
  const retryAfter = parseRetryAfter(Object.entries(resp.headers).find(([k]) => k.toLowerCase() === 'retry-after')?.[1], now);
  const body = resp.body as Partial<AcmeProblem> | undefined;
  if (body && typeof body === 'object' && typeof body.type === 'string') {
    throw new AcmeProblemError(body as AcmeProblem, {
      httpStatus: resp.status, url, action: 'ARI: fetching renewal information', ...(retryAfter ? { retryAfter } : {}),
    }, { retryable: resp.status >= 500 || resp.status === 429 });
  }
  throw new PadlockError('ACME_PROBLEM', `ARI: the CA answered HTTP ${resp.status} for ${url}; padlock keeps its current renewal time and asks again later`, {
    retryable: resp.status >= 500 || resp.status === 429,
    details: { url, status: resp.status, ...(retryAfter ? { retryAfter: retryAfter.toISOString() } : {}) },
  });
}

/** True when `err` (or its cause chain) is the CA's `alreadyReplaced` (RFC 9773 section 5, HTTP 409): retry the order once without `replaces`. */
export function isAlreadyReplaced(err: unknown): boolean {
  return findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError && e.acmeType === 'alreadyReplaced') !== undefined;
}

// --- profiles (draft-ietf-acme-profiles, sections 3 and 4) ---

/** The profile names a directory's `meta.profiles` offers (draft-ietf-acme-profiles section 3), in the CA's order. */
export function offeredProfiles(directoryMeta: unknown): string[] {
  const profiles = (directoryMeta as { profiles?: unknown } | undefined)?.profiles;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) return [];
  return Object.keys(profiles);
}

export interface ProfileChoice {
  /** The `profile` to put in newOrder; absent means let the CA pick its default. */
  profile?: string;
  /** Say this to the operator (a preferred profile the CA does not offer). */
  warning?: string;
  /** What the CA offers, for messages. */
  offered: string[];
}

/**
 * Checks the wanted profile against the directory's `meta` (pass
 * `directory.meta`). A preferred `profile` the CA does not offer falls back
 * to the CA's default with a warning (the draft, section 4: clients SHOULD NOT
 * request a profile that is not advertised). A `requiredProfile` the CA does
 * not offer throws CONFIG_INVALID naming the offered ones; when both are
 * given, the required one wins. `context.server` and `context.names` make the
 * messages say which CA and certificate.
 */
export function checkProfile(
  directoryMeta: unknown,
  wanted: { profile?: string; requiredProfile?: string },
  context: { server?: string; names?: string[] } = {},
): ProfileChoice {
  const offered = offeredProfiles(directoryMeta);
  const ca = context.server ? `the CA at ${context.server}` : 'the CA';
  const forNames = context.names?.length ? ` for ${context.names.join(', ')}` : '';
  const offeredText = offered.length ? `it offers ${offered.map((p) => `"${p}"`).join(', ')}` : 'it offers no profiles';
  if (wanted.requiredProfile !== undefined) {
    if (offered.includes(wanted.requiredProfile)) return { profile: wanted.requiredProfile, offered };
    throw new PadlockError('CONFIG_INVALID',
      `the required profile "${wanted.requiredProfile}"${forNames} is not offered by ${ca} (${offeredText}); choose one of those, or use --profile to accept the CA's default when it is missing`,
      { details: { requiredProfile: wanted.requiredProfile, offeredProfiles: offered } });
  }
  if (wanted.profile === undefined) return { offered };
  if (offered.includes(wanted.profile)) return { profile: wanted.profile, offered };
  return {
    offered,
    warning: `the preferred profile "${wanted.profile}"${forNames} is not offered by ${ca} (${offeredText}); using the CA's default profile. Use --required-profile to fail instead`,
  };
}
