/**
 * The SNI registry: server name -> TLS SecureContext, from an immutable snapshot.
 *
 * The snapshot (name -> PEMs + version, plus the names whose certificate is
 * not in memory yet) is replaced whole by `replace()`; it is never patched.
 * `SecureContext`s are built lazily on the first handshake that names them
 * and cached by (name, version), so:
 * - 10,000 names cost 10,000 PEM strings at start, not 10,000 OpenSSL contexts;
 * - a renewal arrives as a new version, so the next handshake gets a new
 *   context, while connections already open keep the context they were
 *   handshaken with (a TLS socket holds its own reference; nothing here can
 *   cut it).
 *
 * The context cache is bounded (`maxContexts`, least recently used first
 * out): a context costs 35-70 KB, so memory follows the names in use, not
 * every name ever asked for. An evicted name is rebuilt on its next
 * handshake; a handshake that already has its context keeps it.
 *
 * A *pending* name is routed but its certificate is not in memory yet (the
 * daemon serves before it has read every stored certificate): its first
 * handshake waits for `load(name)`, one read per name however many
 * handshakes wait for it, and a name that loads nothing is refused like an
 * unknown one.
 *
 * Lookup is O(1): the exact name, then the one-label wildcard (`a.b.c` ->
 * `*.b.c`), as RFC 6125 section 6.4.3 allows (a wildcard never matches two
 * labels or the bare parent).
 */
import tls from 'node:tls';
import { isIP } from '../ip.js';
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
 * Mozilla's "intermediate" suites (AEAD with ECDHE only; the DHE suites of
 * that list are left out because padlock ships no DH parameters).
 *
 * TLS 1.3 suites are the three Mozilla lists, in Mozilla's order:
 * `TLS_AES_128_GCM_SHA256` first. OpenSSL's default order puts
 * `TLS_AES_256_GCM_SHA384` first, and with the server order honoured every
 * TLS 1.3 handshake then ran its key schedule (about 20 HMACs, more on a
 * resumption) on SHA-384: 2.7 % of a worker's CPU under resumed reconnects
 * (docs/BENCHMARKS.md), for no security a 128-bit key lacks. Caddy (Go)
 * picks AES-128 too.
 *
 * The server order is honoured: every suite here is strong, and testssl.sh
 * reports "no server cipher order" as a finding.
 */
export const TLS_POLICY = Object.freeze({
  minVersion: 'TLSv1.2' as const,
  maxVersion: 'TLSv1.3' as const,
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
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

/**
 * How many SecureContexts a registry keeps by default (`--tls-context-cache`):
 * at 35-70 KB each, at most about 70 MB, while a name outside the cache costs
 * one context build (well under a millisecond) on its next handshake.
 */
export const DEFAULT_TLS_CONTEXT_CACHE = 1000;

export interface CertificateRegistryOptions {
  /** Called when a stored certificate cannot be turned into a context (bad PEM, key mismatch). */
  onContextError?: (name: string, err: unknown) => void;
  /** At most this many contexts are cached, least recently used evicted first (default DEFAULT_TLS_CONTEXT_CACHE). */
  maxContexts?: number;
  /**
   * Reads the certificate of a pending name (see `replace`) for its first
   * handshake; undefined when there is none. Called at most once at a time
   * per name. Without it, pending names are refused.
   */
  load?: (name: string) => Promise<CertificateEntry | undefined>;
  /** Called when `load` rejects; the handshake is refused, and the next one tries again. */
  onLoadError?: (name: string, err: unknown) => void;
}

/**
 * Holds the current snapshot and the lazily built contexts.
 *
 * Concurrency: the snapshot reference is swapped in one assignment; a lookup
 * sees either the old or the new snapshot, never a mix. Building a context is
 * synchronous, so two handshakes for one name cannot build it twice. A
 * pending name's load is decided against the snapshot current when it ends,
 * so a `replace()` that arrived meanwhile wins.
 */
export class CertificateRegistry {
  private snapshot: CertificateSnapshot = new Map();
  /** Routed names whose certificate is not in memory yet. */
  private pending: ReadonlySet<string> = new Set();
  /** The IP addresses among the snapshot's and the pending names (proxy/ip-hosts.ts serves them without SNI). */
  private addresses: ReadonlySet<string> = new Set();
  /** Pending names loaded on demand, until a snapshot holds them (or no longer names them). */
  private readonly loaded = new Map<string, CertificateEntry>();
  private readonly loading = new Map<string, Promise<CertificateEntry | undefined>>();
  /** `name \0 version` -> context, least recently used first. Pruned on replace() to what the new snapshot still names. */
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly maxContexts: number;
  private built = 0;

  constructor(private readonly options: CertificateRegistryOptions = {}) {
    this.maxContexts = Math.max(1, options.maxContexts ?? DEFAULT_TLS_CONTEXT_CACHE);
  }

  /**
   * Swaps in a new snapshot whole, with the names that are routed but not in
   * memory yet (`pending`: read through `load` on their first handshake).
   * Contexts for (name, version) pairs that are still present are kept; the
   * rest are dropped from the cache (open connections keep theirs). Names
   * are lowercased; the map itself is copied so a caller mutating it later
   * changes nothing here.
   */
  replace(snapshot: CertificateSnapshot, pending: Iterable<string> = []): void {
    const next = new Map<string, CertificateEntry>();
    for (const [name, entry] of snapshot) next.set(name.toLowerCase(), Object.freeze({ ...entry }));
    const waiting = new Set<string>();
    for (const name of pending) if (!next.has(name.toLowerCase())) waiting.add(name.toLowerCase());
    const addresses = new Set<string>();
    for (const name of [...next.keys(), ...waiting]) if (isIP(name)) addresses.add(name);
    this.snapshot = next;
    this.pending = waiting;
    this.addresses = addresses;
    for (const name of this.loaded.keys()) if (!waiting.has(name)) this.loaded.delete(name);
    for (const [key, context] of this.contexts) {
      const [name, version] = splitKey(key);
      if ((next.get(name) ?? this.loaded.get(name))?.version !== version) {
        this.contexts.delete(key);
        release(context);
      }
    }
  }

  /** True when some name in the snapshot (or pending) is an IP address. O(1). */
  hasAddresses(): boolean {
    return this.addresses.size > 0;
  }

  /**
   * True when `ip` (canonical text, as `config/names.ts` writes it) is a name
   * of the snapshot or a pending one: `sniCallback(ip, ...)` then answers its
   * context (reading a pending one first). O(1).
   */
  holdsAddress(ip: string): boolean {
    return this.addresses.has(ip);
  }

  /** True when a handshake for `servername` would find a certificate in memory (exact or wildcard). */
  has(servername: string): boolean {
    return this.resolve(servername) !== undefined;
  }

  /** The snapshot key (exact name or wildcard) and entry serving `servername` from memory, or undefined. O(1). */
  resolve(servername: string): { name: string; entry: CertificateEntry } | undefined {
    const hit = this.lookup(servername);
    return hit?.entry ? { name: hit.name, entry: hit.entry } : undefined;
  }

  /**
   * The SecureContext for `servername`, built on first use and cached by
   * (name, version). Undefined when no certificate in memory covers the name
   * (a pending one is not read here: see sniCallback), or when the stored
   * PEMs cannot be loaded (reported through `onContextError`, and tried again
   * on the next handshake).
   */
  contextFor(servername: string): tls.SecureContext | undefined {
    const hit = this.resolve(servername);
    return hit && this.contextOf(hit.name, hit.entry);
  }

  /**
   * A `tls.Server` SNICallback: answers the cached or freshly built context,
   * after reading a pending name's certificate first, or an
   * `UnknownServerNameError` (the server decides what the client sees).
   */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const hit = this.lookup(servername);
    if (hit?.entry) {
      const context = this.contextOf(hit.name, hit.entry);
      if (context) cb(null, context);
      else cb(new UnknownServerNameError(servername));
      return;
    }
    if (!hit) return cb(new UnknownServerNameError(servername));
    void this.loadPending(hit.name).then(() => {
      // Decided against the snapshot of now: a replace() during the read wins over what it read.
      const context = this.contextFor(servername);
      if (context) cb(null, context);
      else cb(new UnknownServerNameError(servername));
    });
  };

  /** Names in the current snapshot, contexts in the cache, and contexts built since start. */
  stats(): { names: number; cachedContexts: number; builtContexts: number } {
    return { names: this.snapshot.size, cachedContexts: this.contexts.size, builtContexts: this.built };
  }

  /** The snapshot key serving `servername` (exact first, then the wildcard), with its entry when it is in memory. */
  private lookup(servername: string): { name: string; entry?: CertificateEntry } | undefined {
    const host = normaliseServerName(servername);
    if (host === undefined) return undefined;
    const exact = this.known(host);
    if (exact) return exact;
    const dot = host.indexOf('.');
    // `*.b.c` serves `a.b.c` only: there must be a label before the dot and at least two after it,
    // and never an IP address (IPv6 has no dot; IPv4 ends in a numeric label, which no DNS name does).
    if (dot <= 0 || host.indexOf('.', dot + 1) < 0 || /\.[0-9]+$/.test(host)) return undefined;
    return this.known(`*${host.slice(dot)}`);
  }

  private known(name: string): { name: string; entry?: CertificateEntry } | undefined {
    const entry = this.snapshot.get(name) ?? this.loaded.get(name);
    if (entry) return { name, entry };
    return this.pending.has(name) ? { name } : undefined;
  }

  /** Reads a pending name once, however many handshakes wait for it; keeps what it read while the name stays pending. */
  private loadPending(name: string): Promise<CertificateEntry | undefined> {
    const inFlight = this.loading.get(name);
    if (inFlight) return inFlight;
    const load = this.options.load;
    const read = (load ? load(name) : Promise.resolve(undefined))
      .then((entry) => {
        if (entry && this.pending.has(name)) this.loaded.set(name, Object.freeze({ ...entry }));
        return entry;
      }, (err: unknown) => {
        this.options.onLoadError?.(name, err);
        return undefined;
      })
      .finally(() => this.loading.delete(name));
    this.loading.set(name, read);
    return read;
  }

  /** The cached context of (name, entry.version), or a new one (cached, evicting the least recently used). */
  private contextOf(name: string, entry: CertificateEntry): tls.SecureContext | undefined {
    const key = `${name}\0${entry.version}`;
    const cached = this.contexts.get(key);
    if (cached) {
      // Most recently used goes last: Map keeps insertion order.
      this.contexts.delete(key);
      this.contexts.set(key, cached);
      return cached;
    }
    let context: tls.SecureContext;
    try {
      context = tls.createSecureContext({ ...TLS_POLICY, cert: entry.certPem, key: entry.keyPem });
    } catch (err) {
      this.options.onContextError?.(name, err);
      return undefined;
    }
    this.contexts.set(key, context);
    this.built++;
    while (this.contexts.size > this.maxContexts) {
      const [oldest, evicted] = this.contexts.entries().next().value!;
      this.contexts.delete(oldest);
      release(evicted);
    }
    return context;
  }
}

/**
 * Frees a context this cache dropped now, not at V8's next garbage
 * collection. The JS object is small, so V8 collects rarely, and until it
 * does every dropped context keeps its OpenSSL SSL_CTX (certificate, key,
 * session cache: 15-30 KB): 10,000 handshakes to distinct names with a
 * cache of 1,000 left padlock at about 480 MB of RSS, malloc keeping the
 * high-water mark. Connections already made with it are unaffected: each
 * TLS session holds its own OpenSSL reference to the SSL_CTX. `close` is
 * Node's (undocumented) SecureContext method; without it the context waits
 * for garbage collection as before.
 */
function release(context: tls.SecureContext): void {
  (context.context as { close?: () => void } | undefined)?.close?.();
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
