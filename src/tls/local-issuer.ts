/**
 * padlock's local CA (tls/local-ca.ts) as an issuer (certificates/issuer.ts),
 * for names no public CA certifies (`localhost`, `*.internal`, ...). It
 * needs no network and no challenge; its chains build to the local root.
 *
 * Which names the root may sign: `suffixes` when given (the daemon passes its
 * `localSuffixes`); otherwise whatever the existing root already permits, so a
 * one-shot command (`padlock renew`) never narrows or needlessly replaces the
 * daemon's root. A root without name constraints is always replaced (see
 * ensureLocalRoot), and leaves it signed are then superseded.
 */
import { X509Certificate } from 'node:crypto';
import { DEFAULT_LOCAL_SUFFIXES, LOCAL_ISSUER, LOCAL_ROOT_LINEAGE, ensureLocalRoot, issueLocalCertificate, issuedByRoot, rootPermittedNames, type EnsuredLocalRoot } from './local-ca.js';
import type { Issuer, IssueRequest, Issued } from '../certificates/issuer.js';
import type { CertStore, ServingLineage } from '../store/store.js';
import { recordedLeaf } from './leaf-facts.js';
import type { TrustAnchors } from './roots.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

/**
 * How long one read of the root lineage answers supersedes() calls: loading
 * 10,000 lineages asks for every one of them, and reading the root each time
 * cost more than the check. A root replaced meanwhile is seen by the calls
 * that start this long after it was stored.
 */
const ROOT_READ_REUSE_MS = 1_000;

export class LocalIssuer implements Issuer {
  readonly id = LOCAL_ISSUER;
  /** The root lineage as last read (shared by the calls that overlap the read and, for ROOT_READ_REUSE_MS, by later ones). */
  private rootRead: { store: CertStore; pending: Promise<ServingLineage | null>; until: number } | undefined;
  /** The root certificate last checked against, parsed once. */
  private parsedRoot: { pem: string; cert: X509Certificate } | undefined;
  constructor(private readonly clock: Clock, private readonly options: { suffixes?: readonly string[]; logger?: Logger } = {}) {}

  describe(): string {
    return "padlock's local CA";
  }

  /** The root, created or upgraded (name constraints) as needed. */
  async root(store: CertStore): Promise<EnsuredLocalRoot> {
    let suffixes = this.options.suffixes;
    if (!suffixes) {
      const current = await store.readLineage(LOCAL_ROOT_LINEAGE);
      suffixes = (current && rootPermittedNames(current.bundle.cert)) ?? DEFAULT_LOCAL_SUFFIXES;
    }
    return ensureLocalRoot(store, this.clock, suffixes, this.options.logger ? { logger: this.options.logger } : {});
  }

  async trustAnchors(store: CertStore): Promise<TrustAnchors> {
    const root = await this.root(store);
    return { pem: root.certPem, count: 1, sources: ['padlock local CA'] };
  }

  async renewalInfo(): Promise<undefined> {
    return undefined;
  }

  /**
   * A leaf the current root did not sign (the root was replaced) must be
   * reissued. When the lineage's meta records the anchor its chain was
   * verified to (tls/leaf-facts.ts), that fingerprint is compared with the
   * root's; otherwise the leaf's signature is checked against the root.
   */
  async supersedes(lineage: ServingLineage, store: CertStore): Promise<string | undefined> {
    if (lineage.meta.domains.length === 0) return undefined;
    const root = await this.readRoot(store);
    if (!root) return undefined;
    const parsed = this.parsed(root.bundle.fullchain);
    const anchor = recordedLeaf(lineage.meta, lineage.bundle.fullchain)?.anchorFingerprint256;
    const signed = anchor !== undefined && typeof parsed !== 'string' ? anchor === parsed.fingerprint256 : issuedByRoot(lineage.bundle.fullchain, parsed);
    return signed ? undefined : 'issued by a local CA root that was replaced; reissued from the current one';
  }

  /** The stored root lineage (its serving read); see `rootRead`. */
  private readRoot(store: CertStore): Promise<ServingLineage | null> {
    const now = Date.now();
    if (this.rootRead?.store === store && this.rootRead.until > now) return this.rootRead.pending;
    const pending = store.readServing(LOCAL_ROOT_LINEAGE);
    const read = { store, pending, until: Infinity };
    this.rootRead = read;
    // Kept for a short while after it settles; a failed read is not kept at all.
    pending.then(() => (read.until = Date.now() + ROOT_READ_REUSE_MS), () => (read.until = 0));
    return pending;
  }

  private parsed(pem: string): X509Certificate | string {
    if (this.parsedRoot?.pem === pem) return this.parsedRoot.cert;
    try {
      this.parsedRoot = { pem, cert: new X509Certificate(pem) };
      return this.parsedRoot.cert;
    } catch {
      return pem; // unreadable: issuedByRoot says false
    }
  }

  async issue(request: IssueRequest): Promise<Issued> {
    const root = await this.root(request.store);
    const bundle = await issueLocalCertificate(root, request.spec.domains, request.keyPem, this.clock);
    request.onProgress({ step: 'order', message: `issued by padlock's local CA for ${request.spec.domains.join(', ')}` });
    return { cert: bundle.cert, chain: bundle.chain, fullchain: bundle.fullchain };
  }

  close(): void {}
}
