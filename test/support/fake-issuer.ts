/**
 * A small FAKE issuer for engine tests that need no CA: it signs with
 * padlock's real local CA (so chains verify for real) but answers to any
 * issuer id, Let's Encrypt's included, because what the tests exercise is
 * the engine's treatment of a CA by its id (rate limits, holds), and Let's
 * Encrypt itself cannot be reached here. It counts its issuances, and can be
 * told to fail the next ones with a given error.
 */
import { LocalIssuer } from '../../src/tls/local-issuer.js';
import type { Issuer, IssueRequest, Issued } from '../../src/certificates/issuer.js';
import type { CertStore, ServingLineage } from '../../src/store/store.js';
import type { TrustAnchors } from '../../src/tls/roots.js';
import type { RenewalInfoSource } from '../../src/acme/ari.js';
import type { Clock } from '../../src/clock.js';

export class FakeIssuer implements Issuer {
  issued = 0;
  /** Thrown by the next issue() calls, in turn. */
  failures: Error[] = [];
  private readonly local: LocalIssuer;
  constructor(readonly id: string, clock: Clock) {
    // Its root may sign the test names (example.com); padlock's real local CA is limited to local suffixes.
    this.local = new LocalIssuer(clock, { suffixes: ['example.com'] });
  }
  describe(): string {
    return `the fake CA "${this.id}"`;
  }
  trustAnchors(store: CertStore): Promise<TrustAnchors> {
    return this.local.trustAnchors(store);
  }
  async renewalInfo(): Promise<RenewalInfoSource | undefined> {
    return undefined;
  }
  async supersedes(_lineage: ServingLineage, _store: CertStore): Promise<string | undefined> {
    return undefined;
  }
  async issue(request: IssueRequest): Promise<Issued> {
    const failure = this.failures.shift();
    if (failure) throw failure;
    await request.ledger.orderCreated();
    this.issued += 1;
    return this.local.issue(request);
  }
  close(): void {}
}
