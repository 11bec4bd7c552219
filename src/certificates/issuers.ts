/**
 * Which issuer signs a lineage, from its settings: padlock's local CA for
 * `padlock:local`, else the ACME CA at `spec.server` with the lineage's
 * trust settings. The one place that knows the kinds; the engine only sees
 * the Issuer interface. Issuers are cached per CA and trust settings.
 */
import { AcmeIssuer } from '../acme/issuer.js';
import { LocalIssuer } from '../tls/local-issuer.js';
import { LOCAL_ISSUER } from '../tls/local-ca.js';
import type { AriSources } from './ari-poller.js';
import type { Issuer, LineageSpec } from './issuer.js';
import type { TrustAnchors } from '../tls/roots.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../log.js';

export interface IssuerSetOptions {
  clock: Clock;
  logger: Logger;
  ari: AriSources;
  /** Total deadline of each request to a CA. */
  timeoutMs?: number;
  onAcmeResponse?: (ms: number, status: number) => void;
  /** The PEM trusted for a lineage's CA's own HTTPS (its --server-ca), if any. */
  serverCa: (spec: LineageSpec) => Promise<string | undefined>;
  /** The anchors a lineage's chains must build to (the system store plus its --trusted-roots). */
  roots: (spec: LineageSpec) => Promise<TrustAnchors>;
  /** The names the local CA's root may sign (the daemon's localSuffixes); default: what the existing root permits. */
  localSuffixes?: readonly string[];
}

export class IssuerSet {
  private readonly cache = new Map<string, Issuer>();
  private local: LocalIssuer | undefined;
  constructor(private readonly opts: IssuerSetOptions) {}

  /** padlock's local CA. */
  localIssuer(): LocalIssuer {
    return (this.local ??= new LocalIssuer(this.opts.clock, { logger: this.opts.logger, ...(this.opts.localSuffixes ? { suffixes: this.opts.localSuffixes } : {}) }));
  }

  /** The issuer for `spec` (see the module comment). */
  for(spec: LineageSpec): Issuer {
    // `padlock:local` leaves (and the local root's own lineage, `padlock:local-root`) are the local CA's.
    if (spec.server === LOCAL_ISSUER || spec.server.startsWith('padlock:')) return this.localIssuer();
    const key = `${spec.server}\0${spec.serverCa ?? ''}\0${spec.trustedRoots ?? ''}`;
    let issuer = this.cache.get(key);
    if (!issuer) {
      let serverCa: Promise<string | undefined> | undefined;
      let roots: Promise<TrustAnchors> | undefined;
      issuer = new AcmeIssuer({
        server: spec.server,
        clock: this.opts.clock,
        logger: this.opts.logger,
        ari: this.opts.ari,
        // Read once per issuer, but not a failure kept forever: a file fixed later is read again.
        serverCa: () => (serverCa ??= this.opts.serverCa(spec).catch((err: unknown) => {
          serverCa = undefined;
          throw err;
        })),
        roots: () => (roots ??= this.opts.roots(spec).catch((err: unknown) => {
          roots = undefined;
          throw err;
        })),
        ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
        ...(this.opts.onAcmeResponse ? { onAcmeResponse: this.opts.onAcmeResponse } : {}),
      });
      this.cache.set(key, issuer);
    }
    return issuer;
  }

  close(): void {
    for (const i of this.cache.values()) i.close();
    this.cache.clear();
    this.opts.ari.close();
  }
}
