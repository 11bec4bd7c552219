/**
 * The DNS provider interface: what writes and removes `_acme-challenge` TXT
 * records. One implementation per kind (rfc2136, cloudflare, route53,
 * acme-dns, exec); the DNS-01 solver (acme/dns01.ts) never branches on which.
 */
import { PadlockError, errorMessage } from '../../errors.js';

/** The provider kinds padlock has. */
export const DNS_PROVIDER_KINDS = ['rfc2136', 'cloudflare', 'route53', 'acme-dns', 'exec'] as const;
export type DnsProviderKind = (typeof DNS_PROVIDER_KINDS)[number];

/** One TXT record padlock writes: where (after CNAMEs), in which zone, and the value. */
export interface TxtRecord {
  fqdn: string;
  zone: string;
  value: string;
}

/**
 * A DNS provider.
 * - `prepare()` checks the credentials before any order is placed (a token
 *   the API refuses fails here, not at the CA). Idempotent.
 * - `present()` adds `value` at `fqdn` beside any other values there (an
 *   apex and its wildcard share one name in one order); it resolves once the
 *   provider accepted the change.
 * - `cleanup()` removes exactly that value and never another one; a value
 *   already gone is not an error.
 * - Errors are DNS_PROVIDER_FAILED naming the provider and the zone.
 */
export interface DnsProvider {
  readonly kind: DnsProviderKind;
  /** Names this provider and account, never a secret: kept beside each presented record so a leftover is cleaned by its own provider. */
  readonly key: string;
  describe(): string;
  prepare(): Promise<void>;
  /** The zone holding `fqdn`, when the provider knows (its API or its own server); else the solver asks DNS. */
  zoneFor?(fqdn: string): Promise<string>;
  present(record: TxtRecord): Promise<void>;
  cleanup(record: TxtRecord): Promise<void>;
  /** Releases connections (an SDK's keep-alive sockets would keep a one-shot command alive). Idempotent. */
  close?(): Promise<void>;
}

/** The DNS_PROVIDER_FAILED error every provider throws, naming itself and the zone. */
export function providerError(provider: string, zone: string | undefined, what: string, options: { cause?: unknown; retryable?: boolean; details?: Record<string, unknown> } = {}): PadlockError {
  const where = zone ? ` for the zone ${zone}` : '';
  return new PadlockError('DNS_PROVIDER_FAILED', `DNS provider ${provider}${where}: ${what}`, {
    ...(options.cause !== undefined ? { cause: options.cause } : {}),
    retryable: options.retryable ?? false,
    details: { provider, ...(zone ? { zone } : {}), ...options.details },
  });
}

/** A provider error from anything a provider call threw: PadlockErrors pass through, the rest is wrapped. */
export function asProviderError(err: unknown, provider: string, zone: string | undefined, doing: string): PadlockError {
  if (err instanceof PadlockError && (err.code === 'DNS_PROVIDER_FAILED' || err.code === 'CONFIG_INVALID')) return err;
  return providerError(provider, zone, `${doing} failed: ${errorMessage(err)}`, { cause: err, retryable: err instanceof PadlockError ? err.retryable : true });
}
