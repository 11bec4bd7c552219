/**
 * An ACME client: acme-client's protocol layer (JWS signing, account, order,
 * authorization and finalize calls) over padlock's own HTTP transport.
 *
 * Why replace acme-client's transport (its axios instance):
 * - it retries 429 and 5xx inside the request, sleeping for `Retry-After`
 *   (possibly hours); padlock reschedules instead, so it must see them at once;
 * - it has no request timeout; every request here has one;
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
import http from 'node:http';
import tls from 'node:tls';
import acme from 'acme-client';
import { AcmeProblemError, PadlockError, errorMessage, type AcmeProblem } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { shownUrl } from '../config/shown.js';

export interface AcmeClientOptions {
  directoryUrl: string;
  /** PEM account key. */
  accountKey: string;
  accountUrl?: string;
  externalAccountBinding?: { kid: string; hmacKey: string };
  /** Extra PEM trust anchors for the CA's own HTTPS endpoint (a private CA such as Pebble or step-ca). */
  serverCa?: string;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  /** Cancels every request of this client. */
  signal?: AbortSignal;
  logger?: Logger;
  /** Told the duration and HTTP status of every request (0 when it failed without an answer), for metrics. */
  onResponse?: (ms: number, status: number) => void;
}

/** The shape acme-client's HttpClient.request resolves with (axios-like). */
interface TransportResponse {
  status: number;
  headers: Record<string, string>;
  data: unknown;
}

interface CallContext {
  lastProblem?: { problem: AcmeProblem; status: number; url: string; retryAfter?: Date };
}

const calls = new AsyncLocalStorage<CallContext>();
const USER_AGENT = 'padlock/0.1.0 (+acme-client)';

/** Parses a Retry-After header (seconds or HTTP date) relative to `now`. */
export function parseRetryAfter(value: string | undefined, now: Date): Date | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return new Date(now.getTime() + Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** acme-client's Client plus padlock's transport; see the module comment. */
export class AcmeClient {
  readonly inner: acme.Client;
  readonly directoryUrl: string;
  private readonly httpsAgent: https.Agent;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly nonces: string[] = [];
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly signal: AbortSignal | undefined;
  private readonly onResponse: ((ms: number, status: number) => void) | undefined;
  private cachedDirectory: Record<string, unknown> | undefined;

  constructor(options: AcmeClientOptions) {
    this.directoryUrl = options.directoryUrl;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.log = options.logger ?? silentLogger;
    this.signal = options.signal;
    this.onResponse = options.onResponse;
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 8,
      ...(options.serverCa ? { ca: [...tls.rootCertificates, options.serverCa] } : {}),
    });
    this.inner = new acme.Client({
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
   * error: the CA's problem document when there was one, ACME_UNREACHABLE
   * for transport failures. `action` names the step for the message.
   */
  async call<T>(action: string, fn: (client: acme.Client) => Promise<T>): Promise<T> {
    const ctx: CallContext = {};
    try {
      return await calls.run(ctx, () => fn(this.inner));
    } catch (err) {
      if (err instanceof PadlockError) throw err;
      if (ctx.lastProblem) {
        const { problem, status, url, retryAfter } = ctx.lastProblem;
        throw new AcmeProblemError(problem, { httpStatus: status, url, action, ...(retryAfter ? { retryAfter } : {}) }, { cause: err });
      }
      throw new PadlockError('ACME_PROBLEM', `${action}: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Reads the directory (RFC 8555 section 7.1.1) and checks it is one, so a
   * wrong --server fails with a clear message instead of an obscure later step.
   */
  async directory(): Promise<Record<string, unknown>> {
    if (this.cachedDirectory) return this.cachedDirectory;
    let resp: TransportResponse;
    try {
      resp = await this.request(this.directoryUrl, 'get', {});
    } catch (err) {
      throw err instanceof PadlockError ? err : new PadlockError('ACME_UNREACHABLE', errorMessage(err), { cause: err, retryable: true });
    }
    if (resp.status === 429 || resp.status === 503) {
      // Busy or rate limited, not misconfigured: retry later, when the CA says.
      const retryAfter = parseRetryAfter(resp.headers['retry-after'], new Date());
      throw new PadlockError('ACME_UNREACHABLE',
        `the CA at ${shownUrl(this.directoryUrl, { keepPath: true })} answered ${resp.status} (${resp.status === 429 ? 'rate limited' : 'unavailable'}) for its directory; padlock will try again later`,
        { retryable: true, details: { url: shownUrl(this.directoryUrl, { keepPath: true }), status: resp.status, ...(retryAfter ? { retryAfter: retryAfter.toISOString() } : {}) } });
    }
    const dir = resp.data as Record<string, unknown> | undefined;
    const missing = ['newNonce', 'newAccount', 'newOrder'].filter((k) => typeof dir?.[k] !== 'string');
    if (resp.status !== 200 || typeof dir !== 'object' || missing.length) {
      throw new PadlockError('ACME_BAD_DIRECTORY',
        `${shownUrl(this.directoryUrl, { keepPath: true })} is not an ACME directory (HTTP ${resp.status}${missing.length && resp.status === 200 ? `, no ${missing.join('/')}` : ''}); check --server`,
        { details: { url: this.directoryUrl, status: resp.status } });
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
   * not POST-as-GET) over this client's agent, trust, timeout and signal.
   * Resolves for every HTTP status; rejects only with ACME_UNREACHABLE.
   */
  async get(url: string): Promise<{ status: number; headers: Record<string, string>; body: unknown }> {
    const { status, headers, data } = await this.request(url, 'get', {});
    return { status, headers, body: data };
  }

  /** Closes idle keep-alive connections to the CA. */
  close(): void {
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private request(url: string, method: string, opts: { data?: unknown; headers?: Record<string, string> }): Promise<TransportResponse> {
    const started = performance.now();
    const body = opts.data === undefined ? undefined : Buffer.from(JSON.stringify(opts.data));
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const mod = secure ? https : http;
    return new Promise<TransportResponse>((resolve, reject) => {
      const req = mod.request(
        target,
        {
          method: method.toUpperCase(),
          agent: secure ? this.httpsAgent : this.httpAgent,
          timeout: this.timeoutMs,
          ...(this.signal ? { signal: this.signal } : {}),
          headers: {
            'user-agent': USER_AGENT,
            accept: 'application/json, application/pem-certificate-chain',
            ...(body ? { 'content-type': 'application/jose+json', 'content-length': String(body.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
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
            if (nonce && method.toLowerCase() !== 'head') this.nonces.push(nonce);
            this.log.debug('acme response', { method, url, status, ms: Math.round(performance.now() - started) });
            this.onResponse?.(performance.now() - started, status);
            if (status >= 400 && data && typeof data === 'object' && typeof (data as AcmeProblem).type === 'string') {
              const ctx = calls.getStore();
              const retryAfter = parseRetryAfter(headers['retry-after'], new Date());
              if (ctx) ctx.lastProblem = { problem: data as AcmeProblem, status, url, ...(retryAfter ? { retryAfter } : {}) };
            }
            // acme-client reads the nonce of a HEAD from the response; keep it out of the pool.
            resolve({ status, headers, data });
          });
        },
      );
      req.on('timeout', () => {
        this.onResponse?.(performance.now() - started, 0);
        req.destroy(
          new PadlockError('ACME_UNREACHABLE', `the CA did not answer ${method.toUpperCase()} ${shownUrl(url)} within ${this.timeoutMs / 1000} s`, {
            retryable: true,
            details: { url: shownUrl(url) },
          }),
        );
      });
      req.on('error', (err) => {
        if (err instanceof PadlockError) return reject(err);
        this.onResponse?.(performance.now() - started, 0);
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new PadlockError(
            'ACME_UNREACHABLE',
            `cannot reach the CA at ${target.origin} (${code ?? errorMessage(err)}): check --server, the network, and --server-ca for a private CA`,
            { retryable: true, cause: err, details: { url: shownUrl(url) } },
          ),
        );
      });
      if (body) req.end(body);
      else req.end();
    });
  }
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

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}
