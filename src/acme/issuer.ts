/**
 * An ACME CA as an issuer (certificates/issuer.ts): the account, the
 * profile, `replaces`, and the order. Everything around an issuance (locks,
 * backoff, the governor, the key, verification, the store) is the engine's.
 */
import { openAccount, reregisterAccount, isAccountMissing, type AccountOptions } from './account.js';
import { orderCertificate, type OrderRequest } from './order.js';
import { fallbackAfter } from './challenge-fallback.js';
import { certId, renewalInfoUrl, type RenewalInfoSource } from './ari.js';
import { checkProfile, SHORTLIVED_PROFILE } from './profiles.js';
import { isIP } from '../ip.js';
import type tls from 'node:tls';
import { serverCaContext, type AcmeClient } from './client.js';
import type { AriSources } from '../certificates/ari-poller.js';
import type { Issuer, IssueRequest, Issued } from '../certificates/issuer.js';
import type { Lineage } from '../store/store.js';
import type { TrustAnchors } from '../tls/roots.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';
import { shownUrl } from '../config/shown.js';

export interface AcmeIssuerOptions {
  /** The ACME directory URL. */
  server: string;
  clock: Clock;
  logger: Logger;
  /** The anchors issued chains must build to (the system store plus --trusted-roots). */
  roots: () => Promise<TrustAnchors>;
  /** PEM trusted for the CA's own HTTPS (a private CA), read when first needed. */
  serverCa?: () => Promise<string | undefined>;
  /** Total deadline of each request to the CA (default 30 s). */
  timeoutMs?: number;
  /** Metrics hook for every request to the CA. */
  onAcmeResponse?: (ms: number, status: number) => void;
  /** The shared per-CA clients for renewal information. */
  ari: AriSources;
}

export class AcmeIssuer implements Issuer {
  readonly id: string;
  /** The TLS context for --server-ca, built once for all of this CA's orders (a client is made per order). */
  private serverContext: { pem: string; context: tls.SecureContext } | undefined;
  constructor(private readonly opts: AcmeIssuerOptions) {
    this.id = opts.server;
  }

  describe(): string {
    return `the CA at ${shownUrl(this.id, { keepPath: true })}`;
  }

  trustAnchors(): Promise<TrustAnchors> {
    return this.opts.roots();
  }

  async renewalInfo(): Promise<RenewalInfoSource | undefined> {
    return this.opts.ari.get(this.id, await this.opts.serverCa?.());
  }

  /** An ACME certificate is replaced by its dates and the CA's renewal window only. */
  async supersedes(): Promise<string | undefined> {
    return undefined;
  }

  async issue(request: IssueRequest): Promise<Issued> {
    const { spec, onProgress: progress } = request;
    const log = this.opts.logger.child({ name: spec.name });
    // A challenge that cannot be served fails here, before any order: it costs no failed validation at the CA.
    await Promise.all(request.solvers.map((solver) => solver.prepare()));
    const serverCa = await this.opts.serverCa?.();
    const accountOptions: AccountOptions = {
      directoryUrl: this.id,
      agreeTos: request.account.agreeTos,
      ...(request.account.externalAccountBinding ? { externalAccountBinding: request.account.externalAccountBinding } : {}),
      ...(spec.email ? { email: spec.email } : {}),
      ...(serverCa ? { serverCa, serverContext: this.contextFor(serverCa) } : {}),
      ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
      logger: log,
      clock: this.opts.clock,
      ...(this.opts.onAcmeResponse ? { onAcmeResponse: this.opts.onAcmeResponse } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      onRegistered: (url, reason) =>
        progress({ step: 'account', url, message: reason === 'new' ? `registered a new account with ${this.id}` : 'the CA no longer knew our account; registered it again' }),
    };
    let client: AcmeClient = await openAccount(request.store, accountOptions);
    try {
      progress({ step: 'account', message: `using account ${client.inner.getAccountUrl()}`, url: client.inner.getAccountUrl() });
      // draft-ietf-acme-profiles: a required profile the CA lacks fails here, a preferred one falls back with a warning.
      const directory = await client.directory();
      // IP identifiers: Let's Encrypt issues them only under "shortlived", so ask for it unless told otherwise;
      // a CA without it (or without profiles) gets an order with no profile, and no warning.
      const implicit = !spec.profile && !spec.requiredProfile && spec.domains.some((d) => isIP(d) !== 0);
      const choice = checkProfile(directory['meta'], {
        ...(spec.profile ? { profile: spec.profile } : implicit ? { profile: SHORTLIVED_PROFILE } : {}),
        ...(spec.requiredProfile ? { requiredProfile: spec.requiredProfile } : {}),
      }, { server: this.id, names: spec.domains });
      if (implicit && choice.profile) progress({ step: 'order', message: `asking for the "${choice.profile}" profile for an IP address certificate` });
      if (choice.warning && !implicit) {
        progress({ step: 'order', message: choice.warning });
        log.warn(choice.warning);
      }
      // RFC 9773 section 5: a renewal names the certificate it replaces, when the CA speaks ARI. A CA only
      // accepts that for a certificate the same account ordered there (not after an import or a --server change).
      const replaces = renewalInfoUrl(directory) ? ownCertId(request.current, this.id, client.inner.getAccountUrl()) : undefined;
      const order = {
        ...(choice.profile ? { profile: choice.profile } : {}),
        ...(replaces ? { replaces } : {}),
        names: spec.domains,
        keyPem: request.keyPem,
        solvers: request.solvers,
        onProgress: progress,
        onOrderCreated: () => request.ledger.orderCreated(),
        onValidationFailed: (name: string) => request.ledger.validationFailed(name),
        ...(request.signal ? { signal: request.signal } : {}),
      };
      // One fallback from HTTP-01 to TLS-ALPN-01 when the CA could not reach port 80 (acme/challenge-fallback.ts).
      const orderWithFallback = async (c: AcmeClient, o: OrderRequest) => {
        try {
          return await orderCertificate(c, o);
        } catch (err) {
          const fallback = fallbackAfter(err, o.solvers);
          if (!fallback) throw err;
          const message = `the CA could not reach ${fallback.name} on port 80 for ${fallback.from}; ordering again with ${fallback.to} on port 443`;
          progress({ step: 'order', name: fallback.name, message });
          log.warn(message, { error: (err as Error).message });
          return orderCertificate(c, { ...o, solvers: fallback.solvers });
        }
      };
      let issued;
      try {
        issued = await orderWithFallback(client, order);
      } catch (err) {
        if (!isAccountMissing(err)) throw err;
        // The CA lost our account (a CA reset): register the same key again, once. The old CertID
        // belongs to the forgotten account, so `replaces` is not sent again.
        client.close();
        client = await reregisterAccount(request.store, accountOptions);
        const { replaces: _dropped, ...rest } = order;
        issued = await orderWithFallback(client, rest);
      }
      log.info('certificate issued', { orderUrl: issued.orderUrl });
      return { ...issued, accountUrl: client.inner.getAccountUrl() };
    } finally {
      client.close();
    }
  }

  close(): void {
    // Clients are per issuance; the shared ARI clients belong to AriSources.
  }

  private contextFor(pem: string): tls.SecureContext {
    if (this.serverContext?.pem !== pem) this.serverContext = { pem, context: serverCaContext(pem) };
    return this.serverContext.context;
  }
}

/** The current certificate's CertID when this account at this CA ordered it, else undefined. */
function ownCertId(current: Lineage | null, server: string, accountUrl: string): string | undefined {
  if (!current || current.meta.server !== server || current.meta.accountUrl !== accountUrl) return undefined;
  try {
    return certId(current.bundle.cert);
  } catch {
    return undefined;
  }
}
