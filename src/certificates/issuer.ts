/**
 * The issuer interface: what the certificate engine needs from whatever
 * signs certificates. An ACME CA (acme/issuer.ts) and padlock's local CA
 * (tls/local-issuer.ts) implement it; the engine never branches on which one
 * it holds.
 *
 * The engine owns everything around an issuance (locks, backoff, the
 * governor, the key, verification, the store, events); an issuer only turns
 * names and a key into a chain, and says what that chain must build to.
 */
import type { ChallengeSolver } from '../acme/solver.js';
import type { RenewalInfoSource } from '../acme/ari.js';
import type { TrustAnchors } from '../tls/roots.js';
import type { CertStore, Lineage, LineageMeta, ServingLineage } from '../store/store.js';

/** Steps a person sees while padlock issues. */
export type IssueStep = 'account' | 'order' | 'challenge' | 'validating' | 'validated' | 'finalizing' | 'downloading' | 'verifying' | 'saved' | 'hook';

export interface ProgressEvent {
  step: IssueStep;
  message: string;
  name?: string;
  url?: string;
}

/** A lineage's settings as padlock wants them after the next issuance (LineageMeta without what describes the current version). */
export type LineageSpec = Omit<LineageMeta, 'updatedAt' | 'leaf'>;

/** Told by the issuer as it talks to its CA, for the governor's ledger (governor.ts). */
export interface IssueLedger {
  orderCreated(): Promise<void>;
  validationFailed(name: string): Promise<void>;
}

export interface IssueRequest {
  spec: LineageSpec;
  /** The store this issuance reads and writes (accounts, the local root): a dry run's memory copy, or the real one. */
  store: CertStore;
  /** PEM private key of the new certificate. */
  keyPem: string;
  /** The current version, if any (ACME sends its CertID as `replaces`, RFC 9773 section 5). */
  current: Lineage | null;
  /** Prepared challenge solvers, in order of preference (ACME only). */
  solvers: readonly ChallengeSolver[];
  /** Registration settings, used when the issuer has no account yet. */
  account: { agreeTos: boolean; externalAccountBinding?: { kid: string; hmacKey: string } };
  ledger: IssueLedger;
  onProgress: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

/** What an issuer hands back: the chain as sent, not yet verified or stored. */
export interface Issued {
  /** The leaf, PEM. */
  cert: string;
  /** The intermediates, PEM, as sent. */
  chain: string;
  fullchain: string;
  /** The ACME order URL, for logs. */
  orderUrl?: string;
  /** The account that ordered it (recorded in the lineage: a CA accepts `replaces` only from it). */
  accountUrl?: string;
}

export interface Issuer {
  /** What `LineageMeta.server` holds for its certificates: an ACME directory URL, or `padlock:local`. */
  readonly id: string;
  /** For messages: "the CA at https://…", "padlock's local CA". */
  describe(): string;
  /** The anchors its chains must build to (verified before anything is stored), as kept in `store`. */
  trustAnchors(store: CertStore): Promise<TrustAnchors>;
  /**
   * The CA's renewal information (ARI, RFC 9773), when it may offer it;
   * undefined when it cannot (the local CA). Never throws: a CA that cannot be
   * reached is simply asked again later.
   */
  renewalInfo(): Promise<RenewalInfoSource | undefined>;
  /**
   * A reason to replace `lineage` now that has nothing to do with its dates
   * (the local CA's root was replaced, so its leaves no longer chain), or
   * undefined. Cheap: no network, and no parsing when the lineage's meta
   * records its facts (`LineageMeta.leaf`); `store` is where the issuer
   * keeps its own state. The daemon asks it for every certificate it loads.
   */
  supersedes(lineage: ServingLineage, store: CertStore): Promise<string | undefined>;
  /**
   * Issues a chain for `request.spec.domains` with `request.keyPem`. Rejects
   * with a typed PadlockError (an ACME problem keeps its document and
   * Retry-After). Honours `request.signal`.
   */
  issue(request: IssueRequest): Promise<Issued>;
  /** Releases connections. Idempotent. */
  close(): void;
}
