/**
 * One certificate order, start to finish (RFC 8555 section 7.4): new order,
 * authorizations and challenges (through the challenge solvers), finalize
 * with a CSR, poll, download.
 *
 * It does not store or verify anything; the engine (certificates/engine.ts) does that.
 */
import type acme from 'acme-client';
import { isIP } from '../ip.js';
import { AcmeClient, pollUntil } from './client.js';
import { parseRetryAfter } from './retry-after.js';
import type { ChallengeSolver, ChallengeType, Challenge } from './solver.js';
import { AcmeProblemError, PadlockError, shortProblemType, type AcmeProblem } from '../errors.js';
import { createCsr } from '../tls/keys.js';
import { isAlreadyReplaced, isReplacesRefusal } from './ari.js';
import type { ProgressEvent } from '../certificates/issuer.js';

export interface OrderRequest {
  names: string[];
  /** PEM private key of the new certificate. */
  keyPem: string;
  /** Prepared solvers, in order of preference: each authorization uses the first whose type the CA offers. */
  solvers: readonly ChallengeSolver[];
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
  /** draft-ietf-acme-profiles: the profile to order (already checked against the directory). */
  profile?: string;
  /** RFC 9773 section 5: the CertID of the certificate this order replaces. */
  replaces?: string;
  /** Told when the CA accepted the order, and when it failed to validate a name (for the governor's ledger). */
  onOrderCreated?: () => Promise<void>;
  onValidationFailed?: (name: string) => Promise<void>;
  /** How long to wait for validation and for issuance. Default 90 s each. */
  validationTimeoutMs?: number;
  issuanceTimeoutMs?: number;
}

export interface IssuedChain {
  /** The leaf, PEM. */
  cert: string;
  /** The intermediates, PEM, as sent. */
  chain: string;
  fullchain: string;
  orderUrl: string;
}

type Order = acme.Order & { url: string };
type Authz = acme.Authorization & { url: string };
type ApiResponse<T> = { status: number; headers: Record<string, string>; data: T };
interface InnerApi {
  api: { apiRequest<T>(url: string, payload: unknown, validStatusCodes: number[]): Promise<ApiResponse<T>> };
}

/** POST-as-GET (RFC 8555 section 6.3) keeping the headers, for Retry-After. */
async function fetchResource<T>(client: AcmeClient, what: string, url: string): Promise<{ value: T; retryAfter?: Date }> {
  const resp = await client.call(what, (c) => (c as unknown as InnerApi).api.apiRequest<T>(url, null, [200]));
  const retryAfter = parseRetryAfter(resp.headers['retry-after'], new Date());
  return { value: resp.data, ...(retryAfter ? { retryAfter } : {}) };
}

/** Places an order for `names` and returns the issued chain. */
export async function orderCertificate(client: AcmeClient, request: OrderRequest): Promise<IssuedChain> {
  const { names, solvers } = request;
  const progress = request.onProgress ?? (() => {});
  const validationTimeoutMs = request.validationTimeoutMs ?? 90_000;
  const issuanceTimeoutMs = request.issuanceTimeoutMs ?? 90_000;

  // RFC 8555 section 7.4: newOrder, with RFC 9773's `replaces` and the draft's `profile` when given.
  const newOrder = (replaces: string | undefined) => client.call(`creating an order for ${names.join(', ')}`, (c) =>
    c.createOrder({
      // RFC 8738 section 3: an IP address is an `ip` identifier.
      identifiers: names.map((value) => ({ type: isIP(value) ? 'ip' : 'dns', value })),
      ...(request.profile ? { profile: request.profile } : {}),
      ...(replaces ? { replaces } : {}),
    } as Parameters<acme.Client["createOrder"]>[0]),
  ) as Promise<Order>;
  let order: Order;
  try {
    order = await newOrder(request.replaces);
  } catch (err) {
    // RFC 9773 section 5: the CA refused the `replaces` (already replaced, or a certificate it does not
    // attribute to this account); try once without it rather than fail every renewal. Only then: any
    // other problem (a 503, a rate limit) takes the normal path, with its Retry-After.
    if (!request.replaces || !isReplacesRefusal(err)) throw err;
    const refused = err as AcmeProblemError;
    progress({
      step: 'order',
      message: isAlreadyReplaced(err)
        ? 'the CA says the current certificate was already replaced; ordering without "replaces"'
        : `the CA refused "replaces" (${refused.acmeType}: ${refused.problem.detail ?? 'no detail'}); ordering without it`,
    });
    order = await newOrder(undefined);
  }
  progress({ step: 'order', message: `order created for ${names.join(', ')}`, url: order.url });
  await request.onOrderCreated?.();

  // Section 7.5: fetch each authorization; answer those still pending.
  const authzs = (await client.call('fetching authorizations', (c) => c.getAuthorizations(order))) as Authz[];
  const presented: Array<{ solver: ChallengeSolver; challenge: Challenge }> = [];
  // When one name fails, stop polling the others; clean up only once every name has settled,
  // so no token presented late is left behind (a file in a webroot).
  const stop = new AbortController();
  const pollSignal = request.signal ? AbortSignal.any([request.signal, stop.signal]) : stop.signal;
  try {
    const settled = await Promise.allSettled(authzs.map(async (authz) => {
      // Section 7.1.4: a wildcard's authorization names the base domain and says `wildcard: true`.
      const name = (authz as Authz & { wildcard?: boolean }).wildcard ? `*.${authz.identifier.value}` : authz.identifier.value;
      if (authz.status === 'valid') {
        progress({ step: 'validated', name, message: `${name} is already validated (the CA reused a recent authorization)` });
        return;
      }
      if (authz.status !== 'pending') {
        throw new PadlockError('ACME_CHALLENGE_FAILED', `the CA's authorization for ${name} is ${authz.status}; start a new order`, {
          details: { name, url: authz.url },
        });
      }
      // acme-client's types know only http-01 and dns-01; the CA may offer others (tls-alpn-01).
      const offered: string[] = authz.challenges.map((ch) => ch.type);
      const solver = solvers.find((sv) => offered.includes(sv.type));
      const challenge = solver ? authz.challenges.find((ch) => (ch.type as string) === solver.type) : undefined;
      if (!solver || !challenge) {
        throw new PadlockError('ACME_CHALLENGE_FAILED',
          `the CA offers no challenge padlock can answer for ${name} (it offers ${offered.join(', ') || 'none'}; padlock is set up for ${solvers.map((sv) => sv.type).join(', ') || 'none'})`,
          { details: { name, offered } });
      }
      // Section 8.1: key authorization = token "." base64url(JWK thumbprint).
      // acme-client hashes it already for dns-01; every solver gets the plain form and derives what it publishes.
      const keyAuthorization = await client.inner.getChallengeKeyAuthorization({ ...challenge, type: 'http-01' } as typeof challenge);
      const answer: Challenge = { type: solver.type as ChallengeType, identifier: name, token: challenge.token, keyAuthorization };
      await solver.present(answer);
      presented.push({ solver, challenge: answer });
      progress({ step: 'challenge', name, message: `${solver.type} challenge for ${name} served by ${solver.describe()}` });
      // Section 7.5.1: tell the CA to validate.
      await client.call(`starting validation of ${name}`, (c) => c.completeChallenge(challenge));
      progress({ step: 'validating', name, message: `the CA is validating ${name}` });
      const settled = await pollUntil<Authz>(
        `validation of ${name}`,
        () => fetchResource<Authz>(client, `checking validation of ${name}`, authz.url),
        (a) => a.status !== 'pending',
        { timeoutMs: validationTimeoutMs, initialDelayMs: 50, maxDelayMs: 2000, signal: pollSignal },
      );
      if (settled.status !== 'valid') {
        await request.onValidationFailed?.(name);
        throw challengeFailure(name, settled, solver, offered);
      }
      progress({ step: 'validated', name, message: `${name} validated` });
    }).map((p) => p.catch((err: unknown) => {
      stop.abort(err);
      throw err;
    })));
    // The others were aborted with the first failure itself as the reason, so any rejection carries it.
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  } finally {
    await Promise.all(presented.map((p) => p.solver.cleanup(p.challenge).catch(() => undefined)));
  }

  // Section 7.4: the order becomes "ready" once every authorization is valid.
  const ready = await pollUntil<Order>(
    'the order',
    () => fetchResource<Order>(client, 'checking the order', order.url),
    (o) => o.status !== 'pending',
    { timeoutMs: validationTimeoutMs, initialDelayMs: 20, maxDelayMs: 2000, ...(request.signal ? { signal: request.signal } : {}) },
  );
  if (ready.status === 'invalid') throw orderFailure(ready, order.url);

  progress({ step: 'finalizing', message: 'finalizing the order (sending the CSR)' });
  const csr = await createCsr(names, request.keyPem);
  let finalized = ready.status === 'ready'
    ? ((await client.call('finalizing the order', (c) => c.finalizeOrder({ ...ready, url: order.url }, csr))) as Order)
    : ready;
  if (finalized.status !== 'valid') {
    finalized = await pollUntil<Order>(
      'issuance',
      () => fetchResource<Order>(client, 'waiting for issuance', order.url),
      (o) => o.status === 'valid' || o.status === 'invalid',
      { timeoutMs: issuanceTimeoutMs, initialDelayMs: 50, maxDelayMs: 2000, ...(request.signal ? { signal: request.signal } : {}) },
    );
  }
  if (finalized.status !== 'valid' || !finalized.certificate) throw orderFailure(finalized, order.url);

  progress({ step: 'downloading', message: 'downloading the certificate', url: finalized.certificate });
  const pem = await client.call('downloading the certificate', (c) => c.getCertificate({ ...finalized, url: order.url }));
  const blocks = String(pem).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new PadlockError('ACME_ORDER_FAILED', `the CA sent no certificate for ${names.join(', ')}`);
  const [leaf, ...intermediates] = blocks;
  const cert = `${leaf}\n`;
  const chain = intermediates.map((b) => `${b}\n`).join('');
  return { cert, chain, fullchain: cert + chain, orderUrl: order.url };
}

/** A failed validation, with the CA's own words and the likeliest fix. */
function challengeFailure(name: string, authz: Authz, solver: ChallengeSolver, offered: string[]): Error {
  const ch = authz.challenges.find((c) => (c.type as string) === solver.type) as (acme.Authorization['challenges'][number] & { error?: AcmeProblem }) | undefined;
  const problem: AcmeProblem = ch?.error ?? { type: 'urn:ietf:params:acme:error:unauthorized', detail: `authorization is ${authz.status}` };
  const short = shortProblemType(problem.type);
  const err = new AcmeProblemError(problem, { url: authz.url, action: `validating ${name}` });
  return new PadlockError('ACME_CHALLENGE_FAILED',
    `the CA could not validate ${name} (${short}): ${problem.detail ?? 'no detail'}. ${solver.hint(short, name)}`,
    // The challenge type and what the CA offered let the issuer decide on a fallback (acme/challenge-fallback.ts).
    { cause: err, details: { name, acmeType: short, problem, url: authz.url, challengeType: solver.type, offered } });
}

function orderFailure(order: Order, url: string): Error {
  const problem = (order.error as AcmeProblem | undefined) ?? { type: 'urn:ietf:params:acme:error:serverInternal', detail: `order is ${order.status}` };
  return new PadlockError('ACME_ORDER_FAILED', `the order failed (${shortProblemType(problem.type)}): ${problem.detail ?? 'no detail'}`, {
    cause: new AcmeProblemError(problem, { url }),
    details: { url, problem },
  });
}
