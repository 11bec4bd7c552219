/**
 * ACME accounts (RFC 8555 section 7.3), one per CA directory URL, kept in the store.
 */
import type tls from 'node:tls';
import { AcmeClient, type AcmeClientOptions } from './client.js';
import { PadlockError, findCause, AcmeProblemError } from '../errors.js';
import type { CertStore, AccountRecord } from '../store/store.js';
import { generatePrivateKey } from '../tls/keys.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

export interface AccountOptions {
  directoryUrl: string;
  email?: string;
  agreeTos: boolean;
  externalAccountBinding?: { kid: string; hmacKey: string };
  serverCa?: string;
  /** A context for `serverCa` shared by all clients for this CA (see AcmeClientOptions). */
  serverContext?: tls.SecureContext;
  timeoutMs?: number;
  signal?: AbortSignal;
  logger: Logger;
  clock: Clock;
  /** Metrics hook for every request to the CA. */
  onAcmeResponse?: (ms: number, status: number) => void;
  /** Called when an account is registered (new, or again after the CA forgot it). */
  onRegistered?: (accountUrl: string, reason: 'new' | 'ca-forgot') => void;
}

/**
 * Returns a client bound to this CA's account, registering one first if the
 * store has none. The account key is created once and stored (0600).
 */
export async function openAccount(store: CertStore, options: AccountOptions): Promise<AcmeClient> {
  const existing = await store.readAccount(options.directoryUrl);
  if (existing?.accountUrl) {
    const client = await makeClient(existing, options);
    await client.directory();
    return client;
  }
  // Several orders may start at once (the daemon, renew --concurrency): only one registers; the others then read its account.
  const unlock = await store.lock(ACCOUNT_LOCK, { waitMs: 60_000, ...(options.signal ? { signal: options.signal } : {}) });
  try {
    return await openAccountLocked(store, options);
  } finally {
    await unlock();
  }
}

const ACCOUNT_LOCK = 'padlock-account';

async function openAccountLocked(store: CertStore, options: AccountOptions): Promise<AcmeClient> {
  let record = await store.readAccount(options.directoryUrl);
  if (!record) {
    record = {
      directoryUrl: options.directoryUrl,
      keyPem: await generatePrivateKey({ keyType: 'ecdsa', ellipticCurve: 'P-256' }),
      ...(options.email ? { email: options.email } : {}),
      createdAt: options.clock.now().toISOString(),
    };
  }
  const client = await makeClient(record, options);
  await client.directory();
  if (!record.accountUrl) {
    await register(client, store, record, options, 'new');
  }
  return client;
}

/**
 * The account key for this CA, created (and stored, 0600 / encrypted) if
 * the store has none yet, without contacting the CA: registration happens at
 * the first order, with this key. Several replicas sharing a store thus
 * agree on the account key from their first moment, which is what lets any
 * of them answer any HTTP-01 challenge statelessly (acme/http01.ts).
 */
export async function ensureAccountKey(store: CertStore, directoryUrl: string, options: { email?: string; clock: Clock }): Promise<string> {
  const existing = await store.readAccount(directoryUrl);
  if (existing) return existing.keyPem;
  const unlock = await store.lock(ACCOUNT_LOCK, { waitMs: 60_000 });
  try {
    const again = await store.readAccount(directoryUrl);
    if (again) return again.keyPem;
    const record: AccountRecord = {
      directoryUrl,
      keyPem: await generatePrivateKey({ keyType: 'ecdsa', ellipticCurve: 'P-256' }),
      ...(options.email ? { email: options.email } : {}),
      createdAt: options.clock.now().toISOString(),
    };
    await store.writeAccount(record);
    return record.keyPem;
  } finally {
    await unlock();
  }
}

/**
 * Registers the stored key again after the CA said `accountDoesNotExist`
 * (a CA that lost its state, such as a restarted Pebble), and returns a
 * fresh client. The same key is kept, so nothing else changes.
 */
export async function reregisterAccount(store: CertStore, options: AccountOptions): Promise<AcmeClient> {
  const unlock = await store.lock(ACCOUNT_LOCK, { waitMs: 60_000 });
  try {
    return await reregisterLocked(store, options);
  } finally {
    await unlock();
  }
}

async function reregisterLocked(store: CertStore, options: AccountOptions): Promise<AcmeClient> {
  const record = await store.readAccount(options.directoryUrl);
  if (!record) return openAccountLocked(store, options);
  const { accountUrl: _dropped, ...rest } = record;
  const fresh: AccountRecord = rest;
  const client = await makeClient(fresh, options);
  await client.directory();
  await register(client, store, fresh, options, 'ca-forgot');
  return client;
}

/** True when `err` says the CA does not know the account. */
export function isAccountMissing(err: unknown): boolean {
  return findCause(err, (e): e is AcmeProblemError => e instanceof AcmeProblemError && e.acmeType === 'accountDoesNotExist') !== undefined;
}

function makeClient(record: AccountRecord, options: AccountOptions): Promise<AcmeClient> {
  const clientOptions: AcmeClientOptions = {
    directoryUrl: options.directoryUrl,
    accountKey: record.keyPem,
    ...(record.accountUrl ? { accountUrl: record.accountUrl } : {}),
    ...(options.externalAccountBinding ? { externalAccountBinding: options.externalAccountBinding } : {}),
    ...(options.serverCa ? { serverCa: options.serverCa } : {}),
    ...(options.serverContext ? { serverContext: options.serverContext } : {}),
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    logger: options.logger,
    ...(options.onAcmeResponse ? { onResponse: options.onAcmeResponse } : {}),
  };
  return AcmeClient.create(clientOptions);
}

async function register(
  client: AcmeClient,
  store: CertStore,
  record: AccountRecord,
  options: AccountOptions,
  reason: 'new' | 'ca-forgot',
): Promise<void> {
  const tos = ((await client.directory())['meta'] as { termsOfService?: string } | undefined)?.termsOfService;
  if (tos && !options.agreeTos) {
    throw new PadlockError('ACME_TOS_NOT_AGREED',
      `the CA at ${options.directoryUrl} requires agreeing to its terms of service (${tos}); read them and pass --agree-tos`);
  }
  const email = options.email ?? record.email;
  await client.call('registering the ACME account', (c) =>
    c.createAccount({
      termsOfServiceAgreed: true,
      ...(email ? { contact: [`mailto:${email}`] } : {}),
    }),
  );
  const accountUrl = client.inner.getAccountUrl();
  await store.writeAccount({ ...record, accountUrl, ...(email ? { email } : {}) });
  options.logger.info(reason === 'new' ? 'registered ACME account' : 'CA did not know the stored account; registered it again', {
    server: options.directoryUrl,
    accountUrl,
  });
  options.onRegistered?.(accountUrl, reason);
}
