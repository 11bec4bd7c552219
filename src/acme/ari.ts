/**
 * ACME Renewal Information (ARI, RFC 9773) on the wire: a certificate's
 * CertID, the RenewalInfo object and how it is fetched, and the
 * `alreadyReplaced` problem. Pure over values except `fetchRenewalInfo`,
 * which does one unauthenticated GET through an injected source.
 *
 * When to poll and when to renew, from what the CA said, is policy:
 * certificates/ari-policy.ts. Profiles (draft-ietf-acme-profiles) live in
 * acme/profiles.ts.
 */
import { AcmeProblemError, PadlockError, errorMessage, findCause, type AcmeProblem } from '../errors.js';
import { systemClock, type Clock } from '../clock.js';
import { parseRetryAfter } from './retry-after.js';
import { parseCertificate, type ParsedCertificate } from '../tls/webpki/certificate.js';

export interface RenewalWindow {
  start: Date;
  end: Date;
}

/** One RenewalInfo response (RFC 9773 section 4.2), validated. */
export interface RenewalInfo {
  window: RenewalWindow;
  /** A page explaining the window; show it to the operator (section 4.2 says clients SHOULD). */
  explanationURL?: string;
  /** When the CA asked to be polled again, as sent (bounded only by acme/retry-after.ts); certificates/ari-policy.ts clamps it further. */
  retryAfter?: Date;
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
 * `certPem` may hold a chain; the first certificate is used. It is read with
 * padlock's own DER parser (tls/webpki/certificate.ts), which keeps the
 * serialNumber INTEGER's value octets as encoded (sign octet included), so
 * the CertID is the DER exactly; it is about ten times faster than a general
 * ASN.1 library, which matters when the daemon computes it for thousands of
 * certificates. Throws CERT_UNPARSEABLE for a bad PEM or a certificate
 * without an AKI keyIdentifier (such a certificate cannot use ARI; renew it
 * by lifetime).
 */
export function certId(certPem: string): string {
  let cert: ParsedCertificate;
  let keyId: Uint8Array | undefined;
  try {
    cert = parseCertificate(Buffer.from(firstPem(certPem).replace(/-----(BEGIN|END) CERTIFICATE-----/g, ''), 'base64'));
    keyId = cert.authorityKeyId?.keyId;
  } catch (err) {
    if (err instanceof PadlockError) throw err;
    throw new PadlockError('CERT_UNPARSEABLE', `ARI: cannot parse the certificate: ${errorMessage(err)}`, { cause: err });
  }
  if (!keyId) {
    throw new PadlockError('CERT_UNPARSEABLE',
      `ARI: the certificate (serial ${Buffer.from(cert.serial).toString('hex').toUpperCase()}) has no Authority Key Identifier keyIdentifier, so it has no CertID; padlock renews it by its lifetime instead`);
  }
  return `${Buffer.from(keyId).toString('base64url')}.${Buffer.from(cert.serial).toString('base64url')}`;
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
 * `knownCertId`, when given, is used instead of parsing `certPem` again.
 * Pass the thrown error's message and `retryable` to `applyAriError`.
 */
export async function fetchRenewalInfo(source: RenewalInfoSource, certPem: string, clock: Clock = systemClock, knownCertId?: string): Promise<RenewalInfo> {
  const id = knownCertId ?? certId(certPem);
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

/**
 * True when the CA refused an order because of its `replaces` field (RFC
 * 9773 section 5), so the same order without it may succeed:
 * `alreadyReplaced`, or a `malformed` problem whose detail names `replaces`
 * (how Boulder answers a CertID it cannot match to this account). Any other
 * problem (a 503, a rate limit, an invalid identifier) is not about
 * `replaces`, and ordering again at once would only hammer the CA.
 */
export function isReplacesRefusal(err: unknown): boolean {
  if (isAlreadyReplaced(err)) return true;
  const p = findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError);
  return p !== undefined && p.acmeType === 'malformed' && /\breplaces\b/i.test(p.problem.detail ?? '');
}
