/**
 * Obtains a certificate for one lineage and makes it current, or changes
 * nothing: lock, account, key, order, verify, store, in that order.
 *
 * Shared by `padlock issue`, `padlock renew` and (later) the daemon, so every
 * path verifies before it stores and records failures the same way.
 */
import { openAccount, reregisterAccount, isAccountMissing, type AccountOptions } from '../acme/account.js';
import { orderCertificate, type ProgressEvent } from '../acme/issuer.js';
import type { ChallengeResponder } from '../acme/http01.js';
import type { AcmeClient } from '../acme/client.js';
import { AcmeProblemError, PadlockError, errorMessage, findCause, isRateLimited } from '../errors.js';
import type { CertBundle, CertStore, LineageMeta } from '../store/store.js';
import { generatePrivateKey, describePrivateKey } from '../tls/keys.js';
import { verifyCertificate } from '../tls/verify.js';
import type { TrustAnchors } from '../tls/roots.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { nextAttemptAfterFailure, type FailureRecord } from './policy.js';
import { Governor, type LedgerEvent } from './governor.js';
import { certId, checkProfile, renewalInfoUrl } from '../acme/ari.js';

export interface ObtainDeps {
  store: CertStore;
  clock: Clock;
  logger: Logger;
  /** Trust anchors an issued chain must build to. */
  roots: TrustAnchors;
  /** Metrics hook for every request to the CA. */
  onAcmeResponse?: (ms: number, status: number) => void;
}

export interface ObtainRequest {
  /** The lineage as it should be after success (name, domains, server, key settings, challenge, hooks). */
  meta: Omit<LineageMeta, 'updatedAt'>;
  account: Pick<AccountOptions, 'email' | 'agreeTos' | 'externalAccountBinding' | 'serverCa' | 'timeoutMs'>;
  /** A prepared responder (port bound or webroot writable). Not closed here. */
  responder: ChallengeResponder;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

export interface ObtainResult {
  name: string;
  domains: string[];
  version: number;
  notAfter: Date;
  orderUrl: string;
  /** The live folder (certbot's RENEWED_LINEAGE), when the store is on disk. */
  lineageDir?: string;
  fullchainPath?: string;
  privkeyPath?: string;
}

/**
 * Runs the whole flow for one lineage. On failure the stored lineage is
 * untouched, the failure is recorded in the lineage state (for backoff), and
 * the error is rethrown with its code and cause intact.
 */
export async function obtainLineage(deps: ObtainDeps, request: ObtainRequest): Promise<ObtainResult> {
  const { store, clock, logger } = deps;
  const { meta } = request;
  const progress = request.onProgress ?? (() => {});
  const log = logger.child({ name: meta.name });
  // Never wait for another process working on the same name: it is already doing this job.
  const unlock = await store.lock(meta.name, { waitMs: 0, ...(request.signal ? { signal: request.signal } : {}) });
  let client: AcmeClient | undefined;
  try {
    // Never plan an order the CA's rate limits would refuse (see governor.ts).
    const governor = new Governor(store, meta.server, clock);
    const hold = await governor.check(meta.domains);
    if (hold) {
      throw new PadlockError('ACME_RATE_LIMITED',
        `padlock holds back the order for ${meta.domains.join(', ')}: ${hold.message}, at the CA's limit; the next order is allowed after ${hold.until.toISOString()}`,
        { retryable: true, details: { limit: hold.limit, retryAfter: hold.until.toISOString(), selfImposed: true } });
    }
    const count = (event: LedgerEvent) => governor.record(event).catch((e: unknown) => log.warn('could not update the rate-limit ledger', { error: errorMessage(e) }));

    const accountOptions: AccountOptions = {
      ...request.account,
      directoryUrl: meta.server,
      logger: log,
      clock,
      ...(deps.onAcmeResponse ? { onAcmeResponse: deps.onAcmeResponse } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      onRegistered: (url, reason) =>
        progress({ step: 'account', url, message: reason === 'new' ? `registered a new account with ${meta.server}` : `the CA no longer knew our account; registered it again` }),
    };
    client = await openAccount(store, accountOptions);
    progress({ step: 'account', message: `using account ${client.inner.getAccountUrl()}`, url: client.inner.getAccountUrl() });


    // draft-ietf-acme-profiles: a required profile the CA lacks fails here, a preferred one falls back with a warning.
    const directory = await client.directory();
    const choice = checkProfile(directory['meta'], {
      ...(meta.profile ? { profile: meta.profile } : {}),
      ...(meta.requiredProfile ? { requiredProfile: meta.requiredProfile } : {}),
    }, { server: meta.server, names: meta.domains });
    if (choice.warning) {
      progress({ step: 'order', message: choice.warning });
      log.warn(choice.warning);
    }
    // RFC 9773 section 5: a renewal names the certificate it replaces, when the CA speaks ARI. A CA only
    // accepts that for a certificate the same account ordered there (not after an import or a --server change).
    const accountUrl = client.inner.getAccountUrl();
    const current = await store.readLineage(meta.name);
    const ownCertificate = current?.meta.server === meta.server && current.meta.accountUrl === accountUrl;
    const replaces = current && ownCertificate && renewalInfoUrl(directory) ? safeCertId(current.bundle.cert) : undefined;

    const keyPem = await chooseKey(store, request.meta);
    const orderRequest = {
      ...(choice.profile ? { profile: choice.profile } : {}),
      ...(replaces ? { replaces } : {}),
      names: meta.domains,
      keyPem,
      responder: request.responder,
      onProgress: progress,
      onOrderCreated: () => count({ kind: 'order' }),
      onValidationFailed: (name: string) => count({ kind: 'failed-validation', name }),
      ...(request.signal ? { signal: request.signal } : {}),
    };
    let issued;
    try {
      issued = await orderCertificate(client, orderRequest);
    } catch (err) {
      if (!isAccountMissing(err)) throw err;
      // The CA lost our account (e.g. a CA reset): register the same key again, once.
      client.close();
      client = await reregisterAccount(store, accountOptions);
      issued = await orderCertificate(client, orderRequest);
    }
    log.info('certificate issued', { orderUrl: issued.orderUrl });
    // Counted now, even if it fails verification below: the CA counted it too.
    await count({ kind: 'issued', names: meta.domains });

    progress({ step: 'verifying', message: 'verifying the chain, names, key and validity' });
    const { verified, version } = await verifyAndStore(
      { store, clock, logger: log, roots: deps.roots },
      { cert: issued.cert, chain: issued.chain, fullchain: issued.fullchain, privkey: keyPem },
      { ...meta, accountUrl: client.inner.getAccountUrl() },
    );
    const stored = await store.readLineage(meta.name);
    const result: ObtainResult = {
      name: meta.name,
      domains: meta.domains,
      version,
      notAfter: verified.leaf.notAfter,
      orderUrl: issued.orderUrl,
      ...(stored?.paths ? { lineageDir: stored.paths.dir, fullchainPath: stored.paths.fullchain, privkeyPath: stored.paths.privkey } : {}),
    };
    progress({ step: 'saved', message: stored?.paths ? `saved ${stored.paths.fullchain} and ${stored.paths.privkey}` : `saved (version ${version}, in ${store.location})` });
    log.info('certificate stored', { version, notAfter: verified.leaf.notAfter.toISOString() });
    return result;
  } catch (err) {
    // A cancelled order (shutdown) is not the CA's failure: no backoff, no alert.
    if (!request.signal?.aborted) {
      await recordFailure(store, meta.name, err, clock).catch((e: unknown) => log.warn('could not record the failure', { error: errorMessage(e) }));
    }
    throw err;
  } finally {
    client?.close();
    await unlock();
  }
}

/**
 * The end of every issuance, ACME or local CA: verify the chain, names, key
 * and validity, make the new version current, and clear the failure record.
 * A certificate that fails verification is never stored.
 */
export async function verifyAndStore(
  deps: ObtainDeps,
  bundle: CertBundle,
  meta: Omit<LineageMeta, 'updatedAt'>,
): Promise<{ verified: Awaited<ReturnType<typeof verifyCertificate>>; version: number }> {
  const { store, clock, logger } = deps;
  const verified = await verifyCertificate({ cert: bundle.cert, chain: bundle.chain, key: bundle.privkey, names: meta.domains, roots: deps.roots, clock });
  const version = await store.putVersion(meta.name, bundle, { ...meta, updatedAt: clock.now().toISOString() });
  // The certificate is stored and current: a failure to clear the old failure record must not turn that into a failure.
  await store.updateState(meta.name, (state) => ({ ...state, failure: null, revokedAt: null }))
    .catch((e: unknown) => logger.warn('stored the certificate, but could not clear its failure record', { error: errorMessage(e) }));
  return { verified, version };
}

function safeCertId(pem: string): string | undefined {
  try {
    return certId(pem);
  } catch {
    return undefined;
  }
}

/** A fresh key, or the lineage's current one when `reuseKey` is set and it still fits the key settings. */
async function chooseKey(store: CertStore, meta: Omit<LineageMeta, 'updatedAt'>): Promise<string> {
  const spec = {
    keyType: meta.keyType,
    ...(meta.ellipticCurve ? { ellipticCurve: meta.ellipticCurve } : {}),
    ...(meta.rsaKeySize ? { rsaKeySize: meta.rsaKeySize } : {}),
  };
  if (meta.reuseKey) {
    const current = await store.readLineage(meta.name);
    if (current) {
      const have = describePrivateKey(current.bundle.privkey);
      const sameType = have.keyType === spec.keyType &&
        (spec.keyType === 'rsa' ? have.rsaKeySize === (spec.rsaKeySize ?? 2048) : have.ellipticCurve === (spec.ellipticCurve ?? 'P-256'));
      if (sameType) return current.bundle.privkey;
    }
  }
  return generatePrivateKey(spec);
}

/** Reads the failure record kept in a lineage's state. */
export function failureOf(state: Record<string, unknown> | null): FailureRecord | undefined {
  const f = state?.['failure'];
  return f && typeof f === 'object' ? (f as FailureRecord) : undefined;
}

/** Records a failed attempt in the lineage state (count, error with its ACME type, next allowed attempt). */
export async function recordFailure(store: CertStore, name: string, err: unknown, clock: Clock): Promise<void> {
  // Problems on our side before any CA contact (bad input, busy lock) are not CA failures.
  if (err instanceof PadlockError && ['STORE_LOCKED', 'NAME_INVALID', 'CONFIG_INVALID', 'CONFIG_DIR_UNUSABLE', 'ACME_TOS_NOT_AGREED'].includes(err.code)) return;
  await store.updateState(name, (state) => ({ ...state, failure: failureRecord(failureOf(state), err, clock.now()) }));
}

/** The failure record after one more failed attempt. */
function failureRecord(prev: FailureRecord | undefined, err: unknown, now: Date): FailureRecord {
  const problem = findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError);
  const failures = (prev?.failures ?? 0) + 1;
  // The CA's Retry-After, or the governor's own "allowed after".
  const ownHold = err instanceof PadlockError && typeof err.details['retryAfter'] === 'string' ? new Date(err.details['retryAfter']) : undefined;
  const retryAfter = problem?.retryAfter ?? ownHold;
  return {
    failures,
    lastError: {
      code: err instanceof PadlockError ? err.code : 'UNKNOWN',
      message: errorMessage(err),
      ...(problem ? { acmeType: problem.acmeType } : {}),
    },
    lastAttemptAt: now.toISOString(),
    firstFailureAt: prev?.firstFailureAt ?? now.toISOString(),
    nextAttemptAt: nextAttemptAfterFailure(failures, now, retryAfter ? { retryAfter } : {}).toISOString(),
    rateLimited: isRateLimited(err) || (err instanceof PadlockError && err.code === 'ACME_RATE_LIMITED'),
  };
}
