/**
 * An ACME client: acme-client's protocol layer (JWS signing, account, order,
 * authorization and finalize calls) over padlock's own HTTP transport.
 *
 * Why replace acme-client's transport (its axios instance):
 * - it retries 429 and 5xx inside the request, sleeping for `Retry-After`
 *   (possibly hours); padlock reschedules instead, so it must see them at once;
 * - it has no request timeout; every request here has a total deadline
 *   and a size cap on the answer;
 * - it turns problem documents into plain strings; here the whole RFC 8555
 *   section 6.7 document (type, detail, subproblems) and `Retry-After` are
 *   kept on an AcmeProblemError;
 * - it fetches a fresh nonce with a HEAD before every POST; here the
 *   `Replay-Nonce` of every response is reused (RFC 8555 section 7.2), which
 *   halves the round trips of an issuance;
 * - it opens a new connection per request; here one keep-alive agent per CA.
 *
 * acme-client 5.4.0 is pinned exactly because this relies on its HttpClient
 * shape (`request`, `getNonce`); the integration tests against Pebble catch
 * any drift.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import https from 'node:https';
import type * as http from 'node:http';
import nodeHttp from '../node-http.js';
import tls from 'node:tls';
import type acme from 'acme-client';
import { AcmeProblemError, PadlockError, asPadlockError, errorMessage, type AcmeProblem } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { shownUrl } from '../config/shown.js';
import { VERSION } from '../version.js';
import { clampNote, parseRetryAfter, readRetryAfter, type RetryAfter, type RetryAfterKind } from './retry-after.js';

export interface AcmeClientOptions {
  directoryUrl: string;
  /** PEM account key. */
  accountKey: string;
  accountUrl?: string;
  externalAccountBinding?: { kid: string; hmacKey: string };
  /** Extra PEM trust anchors for the CA's own HTTPS endpoint (a private CA such as Pebble or step-ca). */
  serverCa?: string;
  /**
   * `serverCaContext(serverCa)`, built once by the caller and shared by every client for that CA; built here
   * when absent. Clients are made per order, and each such context holds its own copy of ~140 roots (~1 MB,
   * ~14 ms to build, freed only by a full garbage collection).
   */
  serverContext?: tls.SecureContext;
  /** Total deadline of one request, from sending it to the last byte of the answer. Default 30 s. */
  timeoutMs?: number;
  /** Largest answer accepted, in bytes. Default {@link MAX_RESPONSE_BYTES}. */
  maxResponseBytes?: number;
  /** Cancels every request of this client. */
  signal?: AbortSignal;
  logger?: Logger;
  /** Told the duration and HTTP status of every request (0 when it failed without an answer), for metrics. */
  onResponse?: (ms: number, status: number) => void;
}

/**
 * The largest answer padlock reads from a CA: 1 MiB. The biggest real ones
 * (a certificate chain with alternates, an order with hundreds of
 * authorizations) are tens of kilobytes; a CA that sends more is broken or
 * hostile, and padlock must not buffer it without limit.
 */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
/** Replay-Nonces kept for reuse; older ones are dropped (a CA's nonces expire anyway). */
const MAX_NONCES = 8;

/** The shape acme-client's HttpClient.request resolves with (axios-like). */
interface TransportResponse {
  status: number;
  headers: Record<string, string>;
  data: unknown;
}

interface CallContext {
  /** The ACME step under way, for messages ("creating an order for example.com"). */
  action?: string;
  lastProblem?: { problem: AcmeProblem; status: number; url: string; retryAfter?: RetryAfter };
  /** A 503 (or 429) without a problem document. */
  lastUnavailable?: { status: number; url: string; retryAfter?: RetryAfter };
}

const calls = new AsyncLocalStorage<CallContext>();
const USER_AGENT = `padlock/${VERSION} (+acme-client)`;

export { parseRetryAfter };

/** TLS verification failures of the CA's own HTTPS: the one case where --server-ca is the likely fix. */
const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** What to tell a person about a transport failure, by its errno-style code. */
function transportHint(code: string | undefined): string {
  if (code && TLS_TRUST_ERRORS.has(code)) return "the CA's HTTPS certificate is not trusted here: for a private CA (Pebble, step-ca) pass --server-ca FILE";
  switch (code) {
    case 'ECONNREFUSED':
      return 'nothing answers there: check --server and that the CA is up; padlock tries again later';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return "the CA's host name does not resolve: check --server and DNS";
    case 'ECONNRESET':
    case 'EPIPE':
      return 'the connection was cut; padlock tries again later';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to the CA: check the network';
    default:
      return 'check --server and the network; padlock tries again later';
  }
}

/** A TLS context trusting Node's roots plus `serverCa` (PEM), for the CA's own HTTPS. */
export function serverCaContext(serverCa: string): tls.SecureContext {
  return tls.createSecureContext({ ca: [...tls.rootCertificates, serverCa] });
}

/** acme-client's Client plus padlock's transport; see the module comment. */
export class AcmeClient {
  /**
   * A client for `options`. acme-client (with axios and node-forge, about
   * 0.3 s and 35 MB) is imported here, on first use, not when padlock starts:
   * a daemon serving only local names, and every CLI command that never
   * talks to a CA, do without it.
   */
  static async create(options: AcmeClientOptions): Promise<AcmeClient> {
    const { default: lib } = await import('acme-client');
    return new AcmeClient(options, lib);
  }

  readonly inner: acme.Client;
  readonly directoryUrl: string;
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new nodeHttp.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly nonces: string[] = [];
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly log: Logger;
  private readonly signal: AbortSignal | undefined;
  private readonly onResponse: ((ms: number, status: number) => void) | undefined;
  private cachedDirectory: Record<string, unknown> | undefined;

  private constructor(options: AcmeClientOptions, lib: typeof acme) {
    this.directoryUrl = options.directoryUrl;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxResponseBytes = options.maxResponseBytes ?? MAX_RESPONSE_BYTES;
    this.log = options.logger ?? silentLogger;
    this.signal = options.signal;
    this.onResponse = options.onResponse;
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      // A context, not `ca`: given as `ca`, Node would parse the ~140 roots again for every new connection
      // (~14 ms each) and copy their PEM into the agent's pool key on every request (~0.3 ms each), which was
      // most of an order's CPU against a private CA (bench/fleet).
      ...(options.serverCa ? { secureContext: options.serverContext ?? serverCaContext(options.serverCa) } : {}),
    });
    this.inner = new lib.Client({
      directoryUrl: options.directoryUrl,
      accountKey: options.accountKey,
      ...(options.accountUrl ? { accountUrl: options.accountUrl } : {}),
      ...(options.externalAccountBinding ? { externalAccountBinding: options.externalAccountBinding } : {}),
    });
    // acme-client keeps its HttpClient on `http`; swap its transport and nonce source.
    const httpClient = (this.inner as unknown as { http: { request: unknown; getNonce: () => Promise<string> } }).http;
    const originalGetNonce = httpClient.getNonce.bind(httpClient);
    httpClient.request = (url: string, method: string, opts: { data?: unknown; headers?: Record<string, string> } = {}) =>
      this.request(url, method, opts);
    httpClient.getNonce = async () => this.nonces.pop() ?? originalGetNonce();
  }

  /**
   * Runs one ACME step and converts whatever acme-client throws into a typed
   * error: the CA's problem document when there was one (AcmeProblemError,
   * whose code says rate limited / unavailable / refused), ACME_CA_UNAVAILABLE
   * for a 503 without one, ACME_UNREACHABLE for transport failures. `action`
   * names the step in every message, a hang's included.
   */
  async call<T>(action: string, fn: (client: acme.Client) => Promise<T>): Promise<T> {
    const ctx: CallContext = { action };
    try {
      return await calls.run(ctx, () => fn(this.inner));
    } catch (err) {
      if (err instanceof PadlockError) throw err;
      if (ctx.lastProblem) {
        const { problem, status, url, retryAfter } = ctx.lastProblem;
        throw new AcmeProblemError(problem, {
          httpStatus: status, url, action,
          ...(retryAfter ? { retryAfter: retryAfter.at, retryAfterNote: clampNote(retryAfter) } : {}),
        }, { cause: err, ...(retryAfter?.clamped ? { details: { retryAfterClamped: retryAfter.clamped } } : {}) });
      }
      if (ctx.lastUnavailable) throw this.unavailable(ctx.lastUnavailable, action, err);
      // A bug (in padlock or acme-client) is not the CA's problem: keep it recognisable as such.
      if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) throw asPadlockError(err, action);
      const errno = (err as NodeJS.ErrnoException).code;
      if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) {
        throw new PadlockError('ACME_UNREACHABLE', `${action}: ${errorMessage(err)} (${errno}): ${transportHint(errno)}`, { retryable: true, cause: err, details: { errno } });
      }
      throw new PadlockError('ACME_PROBLEM', `${action}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Reads the directory (RFC 8555 section 7.1.1) and checks it is one, so a
   * wrong --server fails with a clear message instead of an obscure later
   * step. A 429 or 503 is ACME_CA_UNAVAILABLE with the CA's (bounded)
   * `Retry-After` in `details.retryAfter`: busy, not misconfigured.
   */
  async directory(): Promise<Record<string, unknown>> {
    if (this.cachedDirectory) return this.cachedDirectory;
    const resp = await calls.run({ action: 'reading the directory' }, () => this.request(this.directoryUrl, 'get', {}));
    if (resp.status === 429 || resp.status === 503) {
      throw this.unavailable({ status: resp.status, url: this.directoryUrl, ...readAfter(resp.headers, 'unavailable') }, 'reading the directory');
    }
    const dir = resp.data as Record<string, unknown> | undefined;
    const missing = ['newNonce', 'newAccount', 'newOrder'].filter((k) => typeof dir?.[k] !== 'string');
    if (resp.status !== 200 || typeof dir !== 'object' || missing.length) {
      throw new PadlockError('ACME_BAD_DIRECTORY',
        `${shownUrl(this.directoryUrl, { keepPath: true })} is not an ACME directory (HTTP ${resp.status}${missing.length && resp.status === 200 ? `, no ${missing.join('/')}` : ''}); check --server`,
        { details: { url: shownUrl(this.directoryUrl, { keepPath: true }), status: resp.status } });
    }
    // Hand it to acme-client so it does not fetch it again.
    const httpClient = (this.inner as unknown as { http: { directoryCache: unknown; directoryTimestamp: number } }).http;
    httpClient.directoryCache = dir;
    httpClient.directoryTimestamp = Math.floor(Date.now() / 1000);
    this.cachedDirectory = dir;
    return dir;
  }

  /**
   * An unauthenticated GET (RFC 9773 section 4.1: renewalInfo is a plain GET,
   * not POST-as-GET) over this client's agent, trust, deadline and signal.
   * Resolves for every HTTP status; rejects only with ACME_UNREACHABLE or
   * ACME_RESPONSE_TOO_LARGE.
   */
  async get(url: string, action = 'fetching renewal information'): Promise<{ status: number; headers: Record<string, string>; body: unknown }> {
    const { status, headers, data } = await calls.run({ action }, () => this.request(url, 'get', {}));
    return { status, headers, body: data };
  }

  /** Closes idle keep-alive connections to the CA. */
  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private unavailable(u: NonNullable<CallContext['lastUnavailable']>, action: string, cause?: unknown): PadlockError {
    const where = shownUrl(this.directoryUrl, { keepPath: true });
    const what = u.status === 429 ? 'is rate limiting (HTTP 429)' : `is unavailable (HTTP ${u.status})`;
    const when = u.retryAfter ? `padlock will try again after ${u.retryAfter.at.toISOString()}, as the CA asked${clampNote(u.retryAfter)}` : 'padlock will try again later';
    return new PadlockError('ACME_CA_UNAVAILABLE', `${action}: the CA at ${where} ${what}; ${when}`, {
      retryable: true,
      ...(cause !== undefined ? { cause } : {}),
      details: {
        url: shownUrl(u.url, { keepPath: true }),
        status: u.status,
        ...(u.retryAfter ? { retryAfter: u.retryAfter.at.toISOString() } : {}),
        ...(u.retryAfter?.clamped ? { retryAfterClamped: u.retryAfter.clamped } : {}),
      },
    });
  }

  private request(url: string, method: string, opts: { data?: unknown; headers?: Record<string, string> }): Promise<TransportResponse> {
    const started = performance.now();
    const body = opts.data === undefined ? undefined : Buffer.from(JSON.stringify(opts.data));
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const mod = secure ? https : nodeHttp;
    const ctx = calls.getStore();
    const action = ctx?.action ?? `${method.toUpperCase()} ${shownUrl(url)}`;
    return new Promise<TransportResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        reject(err);
      };
      const req = mod.request(
        target,
        {
          method: method.toUpperCase(),
          agent: secure ? this.httpsAgent : this.httpAgent,
          ...(this.signal ? { signal: this.signal } : {}),
          headers: {
            'user-agent': USER_AGENT,
            accept: 'application/json, application/pem-certificate-chain',
            ...(body ? { 'content-type': 'application/jose+json', 'content-length': String(body.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > this.maxResponseBytes) {
              this.onResponse?.(performance.now() - started, res.statusCode ?? 0);
              const tooLarge = new PadlockError('ACME_RESPONSE_TOO_LARGE',
                `${action}: the CA's answer to ${method.toUpperCase()} ${shownUrl(url)} is larger than ${this.maxResponseBytes} bytes; padlock stopped reading it (a broken or hostile CA?)`,
                { retryable: true, details: { url: shownUrl(url), limit: this.maxResponseBytes } });
              req.destroy(tooLarge);
              fail(tooLarge);
              return;
            }
            chunks.push(c);
          });
          // A connection cut in the middle of an answer is a transport failure like any other.
          res.on('error', (err: NodeJS.ErrnoException) => {
            if (settled) return;
            this.onResponse?.(performance.now() - started, res.statusCode ?? 0);
            fail(new PadlockError('ACME_UNREACHABLE',
              `${action}: the connection to the CA at ${target.origin} broke off in the middle of its answer (${err.code ?? errorMessage(err)}): ${transportHint(err.code ?? 'ECONNRESET')}`,
              { retryable: true, cause: err, details: { url: shownUrl(url), ...(err.code ? { errno: err.code } : {}) } }));
          });
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(deadline);
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
            const text = Buffer.concat(chunks).toString('utf8');
            const type = headers['content-type'] ?? '';
            let data: unknown = text;
            if (/json/.test(type) && text) {
              try {
                data = JSON.parse(text);
              } catch {
                data = text;
              }
            }
            const status = res.statusCode ?? 0;
            const nonce = headers['replay-nonce'];
            // Only POSTs consume nonces (acme-client reads a HEAD's from the response itself); cap the pool
            // so a long-running client that only GETs (ARI) does not collect them forever.
            if (nonce && method.toLowerCase() !== 'head') {
              this.nonces.push(nonce);
              if (this.nonces.length > MAX_NONCES) this.nonces.shift();
            }
            this.log.debug('acme response', { method, url, status, ms: Math.round(performance.now() - started) });
            this.onResponse?.(performance.now() - started, status);
            if (status >= 400 && ctx) {
              if (data && typeof data === 'object' && typeof (data as AcmeProblem).type === 'string') {
                const problem = data as AcmeProblem;
                const kind = problem.type.endsWith(':rateLimited') ? 'rateLimited' : status === 503 ? 'unavailable' : 'other';
                ctx.lastProblem = { problem, status, url, ...readAfter(headers, kind) };
              } else if (status === 503 || status === 429) {
                ctx.lastUnavailable = { status, url, ...readAfter(headers, 'unavailable') };
              }
            }
            resolve({ status, headers, data });
          });
        },
      );
      // A total deadline, not an idle timeout: a CA that trickles one byte a minute must not hold a request forever.
      const deadline = setTimeout(() => {
        this.onResponse?.(performance.now() - started, 0);
        const err = new PadlockError('ACME_UNREACHABLE',
          `${action}: the CA did not answer ${method.toUpperCase()} ${shownUrl(url)} within ${this.timeoutMs / 1000} s; padlock tries again later (--timeout sets the limit)`,
          { retryable: true, details: { url: shownUrl(url), timeoutMs: this.timeoutMs } });
        req.destroy(err);
        fail(err);
      }, this.timeoutMs);
      req.on('error', (err) => {
        if (err instanceof PadlockError) return fail(err);
        if (settled) return;
        this.onResponse?.(performance.now() - started, 0);
        if (this.signal?.aborted) return fail(err);
        const code = (err as NodeJS.ErrnoException).code;
        fail(new PadlockError('ACME_UNREACHABLE',
          `${action}: cannot reach the CA at ${target.origin} (${code ?? errorMessage(err)}): ${transportHint(code)}`,
          { retryable: true, cause: err, details: { url: shownUrl(url), ...(code ? { errno: code } : {}) } }));
      });
      if (body) req.end(body);
      else req.end();
    });
  }
}

function readAfter(headers: Record<string, string>, kind: RetryAfterKind): { retryAfter?: RetryAfter } {
  const r = readRetryAfter(headers['retry-after'], new Date(), kind);
  return r ? { retryAfter: r } : {};
}

/**
 * Polls an ACME resource until `done` says it is settled, honouring
 * `Retry-After` when the CA sends one (RFC 8555 section 7.5.1 and 7.4), else
 * a short geometric backoff. Gives up at `deadline` with ACME_TIMEOUT.
 */
export async function pollUntil<T>(
  what: string,
  fetchOnce: () => Promise<{ value: T; retryAfter?: Date }>,
  done: (value: T) => boolean,
  options: { timeoutMs: number; initialDelayMs?: number; maxDelayMs?: number; signal?: AbortSignal },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let delay = options.initialDelayMs ?? 100;
  for (;;) {
    const { value, retryAfter } = await fetchOnce();
    if (done(value)) return value;
    const wait = retryAfter ? Math.max(0, retryAfter.getTime() - Date.now()) : delay;
    if (Date.now() + wait > deadline) {
      throw new PadlockError('ACME_TIMEOUT', `${what} was still not settled after ${Math.round(options.timeoutMs / 1000)} s; try again later`, {
        retryable: true,
      });
    }
    await sleep(wait, options.signal);
    delay = Math.min(delay * 2, options.maxDelayMs ?? 2000);
  }
}

/** Resolves after `ms`, or rejects with the signal's reason; never leaves a listener on a long-lived signal. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
