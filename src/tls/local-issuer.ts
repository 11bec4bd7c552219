/**
 * padlock's local CA (tls/local-ca.ts) as an issuer (certificates/issuer.ts),
 * for names no public CA certifies (`localhost`, `*.internal`, ...). It
 * needs no network and no challenge; its chains build to the local root.
 */
import { ensureLocalRoot, issueLocalCertificate, LOCAL_ISSUER } from './local-ca.js';
import type { Issuer, IssueRequest, Issued } from '../certificates/issuer.js';
import type { CertStore, Lineage } from '../store/store.js';
import type { TrustAnchors } from './roots.js';
import type { Clock } from '../clock.js';

export class LocalIssuer implements Issuer {
  readonly id = LOCAL_ISSUER;
  constructor(private readonly clock: Clock) {}

  describe(): string {
    return "padlock's local CA";
  }

  async trustAnchors(store: CertStore): Promise<TrustAnchors> {
    const root = await ensureLocalRoot(store, this.clock);
    return { pem: root.certPem, count: 1, sources: ['padlock local CA'] };
  }

  async renewalInfo(): Promise<undefined> {
    return undefined;
  }

  async supersedes(_lineage: Lineage): Promise<string | undefined> {
    return undefined;
  }

  async issue(request: IssueRequest): Promise<Issued> {
    const root = await ensureLocalRoot(request.store, this.clock);
    const bundle = await issueLocalCertificate(root, request.spec.domains, request.keyPem, this.clock);
    request.onProgress({ step: 'order', message: `issued by padlock's local CA for ${request.spec.domains.join(', ')}` });
    return { cert: bundle.cert, chain: bundle.chain, fullchain: bundle.fullchain };
  }

  close(): void {}
}
