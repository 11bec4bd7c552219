/**
 * The SNI registry: server name -> TLS SecureContext, from an immutable snapshot.
 *
 * The snapshot (name -> PEMs + version) is replaced whole by `replace()`; it is
 * never patched. `SecureContext`s are built lazily on the first handshake that
 * names them and cached by (name, version), so:
 * - 10,000 names cost 10,000 PEM strings at start, not 10,000 OpenSSL contexts;
 * - a renewal arrives as a new version, so the next handshake gets a new
 *   context, while connections already open keep the context they were
 *   handshaken with (a TLS socket holds its own reference; nothing here can
 *   cut it).
 *
 * Lookup is O(1): the exact name, then the one-label wildcard (`a.b.c` ->
 * `*.b.c`), as RFC 6125 section 6.4.3 allows (a wildcard never matches two
 * labels or the bare parent).
 */
import tls from 'node:tls';
import { PadlockError } from '../errors.js';

/** One certificate as the store delivers it. */
export interface CertificateEntry {
  /** The leaf first, then the intermediates (certbot's `fullchain.pem`). */
  certPem: string;
  keyPem: string;
  /** Anything that changes when the certificate does (serial, fingerprint, notBefore). */
  version: string;
}

/** Exact names (`app.example.com`) or one-label wildcards (`*.example.com`), lowercase. */
export type CertificateSnapshot = ReadonlyMap<string, CertificateEntry>;

/**
 * The TLS policy every padlock context carries: TLS 1.2 and 1.3 only, and
 * Mozilla's "intermediate" TLS 1.2 suites (AEAD with ECDHE only; the DHE suites
 * of that list are left out because padlock ships no DH parameters). TLS 1.3
 * suites are OpenSSL's defaults, which are the same three Mozilla lists.
 *
 * The server order is honoured: every suite here is strong, and testssl.sh
 * reports "no server cipher order" as a finding.
 */
export const TLS_POLICY = Object.freeze({
  minVersion: 'TLSv1.2' as const,
  maxVersion: 'TLSv1.3' as const,
  ciphers: [
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  honorCipherOrder: true,
});

/** Raised (passed to the SNI callback) for a name padlock holds no certificate for. */
export class UnknownServerNameError extends PadlockError<'TLS_UNKNOWN_SERVER_NAME'> {
  constructor(readonly servername: string) {
    super('TLS_UNKNOWN_SERVER_NAME', 'no certificate for this server name');
    this.name = 'UnknownServerNameError';
  }
}

export interface CertificateRegistryOptions {
  /** Called when a stored certificate cannot be turned into a context (bad PEM, key mismatch). */
  onContextError?: (name: string, err: unknown) => void;
}

/**
 * Holds the current snapshot and the lazily built contexts.
 *
 * Concurrency: the snapshot reference is swapped in one assignment; a lookup
 * sees either the old or the new snapshot, never a mix. Building a context is
 * synchronous, so two handshakes for one name cannot build it twice.
 */
export class CertificateRegistry {
  private snapshot: CertificateSnapshot = new Map();
  /** `name \0 version` -> context. Pruned on replace() to what the new snapshot still names. */
  private readonly contexts = new Map<string, tls.SecureContext>();
  private built = 0;

  constructor(private readonly options: CertificateRegistryOptions = {}) {}

  /**
   * Swaps in a new snapshot whole. Contexts for (name, version) pairs that are
   * still present are kept; the rest are dropped from the cache (open
   * connections keep theirs). Names are lowercased; the map itself is copied so
   * a caller mutating it later changes nothing here.
   */
  replace(snapshot: CertificateSnapshot): void {
    const next = new Map<string, CertificateEntry>();
    for (const [name, entry] of snapshot) next.set(name.toLowerCase(), Object.freeze({ ...entry }));
    this.snapshot = next;
    for (const key of this.contexts.keys()) {
      const [name, version] = splitKey(key);
      if (next.get(name)?.version !== version) this.contexts.delete(key);
    }
  }

  /** True when a handshake for `servername` would find a certificate (exact or wildcard). */
  has(servername: string): boolean {
    return this.resolve(servername) !== undefined;
  }

  /** The snapshot key (exact name or wildcard) and entry serving `servername`, or undefined. O(1). */
  resolve(servername: string): { name: string; entry: CertificateEntry } | undefined {
    const host = normaliseServerName(servername);
    if (host === undefined) return undefined;
    const exact = this.snapshot.get(host);
    if (exact) return { name: host, entry: exact };
    const dot = host.indexOf('.');
    // `*.b.c` serves `a.b.c` only: there must be a label before the dot and at least two after it.
    if (dot <= 0 || host.indexOf('.', dot + 1) < 0) return undefined;
    const wildcard = `*${host.slice(dot)}`;
    const entry = this.snapshot.get(wildcard);
    return entry ? { name: wildcard, entry } : undefined;
  }

  /**
   * The SecureContext for `servername`, built on first use and cached by
   * (name, version). Undefined when no certificate covers the name, or when the
   * stored PEMs cannot be loaded (reported through `onContextError`, and tried
   * again on the next handshake).
   */
  contextFor(servername: string): tls.SecureContext | undefined {
    const hit = this.resolve(servername);
    if (!hit) return undefined;
    const key = `${hit.name}\0${hit.entry.version}`;
    const cached = this.contexts.get(key);
    if (cached) return cached;
    let context: tls.SecureContext;
    try {
      context = tls.createSecureContext({ ...TLS_POLICY, cert: hit.entry.certPem, key: hit.entry.keyPem });
    } catch (err) {
      this.options.onContextError?.(hit.name, err);
      return undefined;
    }
    // Only cache if the snapshot did not change meanwhile (it cannot: this is synchronous), keyed by version.
    this.contexts.set(key, context);
    this.built++;
    return context;
  }

  /**
   * A `tls.Server` SNICallback: answers the cached or freshly built context,
   * or an `UnknownServerNameError` (the server decides what the client sees).
   */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const context = this.contextFor(servername);
    if (context) cb(null, context);
    else cb(new UnknownServerNameError(servername));
  };

  /** Names in the current snapshot, contexts in the cache, and contexts built since start. */
  stats(): { names: number; cachedContexts: number; builtContexts: number } {
    return { names: this.snapshot.size, cachedContexts: this.contexts.size, builtContexts: this.built };
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('\0');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** Lowercase, no trailing dot; undefined for an empty name. */
function normaliseServerName(name: string): string | undefined {
  let host = name.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.length > 0 ? host : undefined;
}
