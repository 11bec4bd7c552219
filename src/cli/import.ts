/**
 * `padlock import`: take over certificates another ACME client obtained, so
 * they keep serving from padlock's store without a new order.
 *
 *   padlock import traefik ACME_JSON [--resolver NAME]
 *   padlock import certbot LETSENCRYPT_DIR [--cert-name NAME]
 *
 * Every certificate goes through the same checks as one padlock obtained
 * (tls/verify.ts) before it is stored with `putVersion`:
 * - refused (skipped, with the reason): a certificate that does not parse, a
 *   private key that does not match it, a certificate that has expired or is
 *   not valid yet, one that does not cover the names the source lists, and
 *   any other verification failure (bad signature, wrong purpose, ...);
 * - a chain that does not build to a trusted root (system store plus
 *   `--trusted-roots`) is refused too, unless `--allow-untrusted` is given:
 *   then it is imported with a warning. Untrusted is the one failure that can
 *   be the verifier's view rather than the certificate's (a private CA whose
 *   root this machine lacks), and only the operator can tell which.
 *
 * Metadata, so `padlock renew` and `padlock run` renew it the way the source did:
 * - certbot: `renewal/NAME.conf` gives the CA (`server`), the challenge
 *   (`authenticator` standalone with `http01_port`/`http01_address`, or
 *   webroot with `webroot_path` / `[[webroot_map]]`), `reuse_key` and the
 *   deploy hook (`renew_hook`, else `post_hook`). Authenticators padlock does
 *   not have (nginx, apache, manual, dns-*) fall back to standalone on port
 *   80, with a warning.
 * - Traefik: acme.json holds no challenge settings, so they come from the
 *   flags (`--http-01-port`, `--webroot -w`), and the CA from `--server`,
 *   else from the account's URL (Let's Encrypt production or staging).
 * - The key type comes from the key itself; `updatedAt` is the certificate's
 *   notBefore, so the renewal-loop guard (policy.ts) does not postpone a
 *   renewal that is already due.
 *
 * Traefik's ACME account (its RSA key and account URL) is imported as
 * padlock's account for that CA when the store has none for it yet
 * (`--no-account` skips it); an existing padlock account is never replaced.
 * certbot's accounts are not imported: padlock registers its own on the
 * first renewal.
 *
 * Lineage names: one lineage per certificate, named after its first name
 * (Traefik's `domain.main`, certbot's lineage name); a wildcard
 * `*.example.com` becomes `wildcard.example.com`. `--per-name` instead stores
 * the certificate once for each DNS name on it, in a lineage named after that
 * name, which is what `padlock run` looks for (one lineage per host).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { PadlockError, errorMessage } from '../errors.js';
import { normaliseNames } from '../config/names.js';
import { isValidLineageName, type AccountRecord, type CertBundle, type CertStore, type LineageMeta } from '../store/store.js';
import { describeCertificate, splitPem } from '../tls/inspect.js';
import { verifyCertificate } from '../tls/verify.js';
import { describePrivateKey } from '../tls/keys.js';
import { loadTrustAnchors, type TrustAnchors } from '../tls/roots.js';
import { systemClock, type Clock } from '../clock.js';
import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../acme/directories.js';
import { openStore, output, reportError, withStoreOptions } from './common.js';

// ---------------------------------------------------------------------------
// What a source yields: candidates, before any check.

/** One certificate found in a source, as the source describes it. */
export interface ImportCandidate {
  /** Where it came from, for messages (`acme.json resolver le: example.com`, `live/example.com`). */
  source: string;
  /** The lineage name to store it under. */
  name: string;
  /** The names the source says it covers (checked against the certificate). */
  domains: string[];
  /** PEM: the leaf, then the intermediates. */
  fullchainPem: string;
  keyPem: string;
  /** Metadata the source gives (challenge, server, hook...); the rest is filled in. */
  meta: Partial<Omit<LineageMeta, 'name' | 'domains' | 'updatedAt'>>;
  /** Notes from reading the source (an authenticator padlock lacks, ...). */
  warnings: string[];
  /** A problem that already rules it out (unreadable file, bad base64...). */
  problem?: { code: string; message: string };
}

// ---------------------------------------------------------------------------
// Traefik acme.json (v2/v3: { RESOLVER: { Account, Certificates } }; v1: { Account, Certificates }).

export interface TraefikAccount {
  email?: string;
  /** The account URL (`Registration.uri`). */
  uri?: string;
  /** PKCS#8 PEM of the account key. */
  keyPem?: string;
  /** Why the key could not be read, if it could not. */
  keyProblem?: string;
}

export interface TraefikResolver {
  name: string;
  account?: TraefikAccount;
  certificates: Array<{ main: string; sans: string[]; certificate: string; key: string; store?: string; index: number }>;
}

/** Reads a field whatever its capitalisation (Traefik v1 used `Domain`/`Main`, v2 `domain`/`main`). */
function field(obj: unknown, name: string): unknown {
  if (obj === null || typeof obj !== 'object') return undefined;
  const rec = obj as Record<string, unknown>;
  if (name in rec) return rec[name];
  const lower = name.toLowerCase();
  const key = Object.keys(rec).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : rec[key];
}

/**
 * Parses an acme.json document into its resolvers. Throws CONFIG_INVALID
 * when it is not JSON or not in a Traefik shape.
 */
export function parseTraefikAcmeJson(text: string, file = 'acme.json'): TraefikResolver[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `${file} is not JSON (${errorMessage(err)}); pass Traefik's acme.json`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new PadlockError('CONFIG_INVALID', `${file} does not hold a JSON object; pass Traefik's acme.json`);
  const isResolver = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && (field(v, 'Certificates') !== undefined || field(v, 'Account') !== undefined);
  const entries: Array<[string, unknown]> = isResolver(doc) ? [['default', doc]] : Object.entries(doc as Record<string, unknown>).filter(([, v]) => isResolver(v));
  if (entries.length === 0) throw new PadlockError('CONFIG_INVALID', `${file} has no certificate resolver (no object with Account or Certificates); is it Traefik's acme.json?`);
  return entries.map(([name, value]) => {
    const certs = field(value, 'Certificates');
    const list = Array.isArray(certs) ? certs : [];
    const account = readTraefikAccount(field(value, 'Account'));
    return {
      name,
      ...(account ? { account } : {}),
      certificates: list.map((c, index) => {
        const domain = field(c, 'domain');
        const sans = field(domain, 'sans');
        const store = field(c, 'Store');
        return {
          main: String(field(domain, 'main') ?? ''),
          sans: Array.isArray(sans) ? sans.map(String) : [],
          certificate: String(field(c, 'certificate') ?? ''),
          key: String(field(c, 'key') ?? ''),
          ...(typeof store === 'string' ? { store } : {}),
          index,
        };
      }),
    };
  });
}

function readTraefikAccount(raw: unknown): TraefikAccount | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const email = field(raw, 'Email');
  const uri = field(field(raw, 'Registration'), 'uri');
  const key = field(raw, 'PrivateKey');
  const out: TraefikAccount = {
    ...(typeof email === 'string' && email ? { email } : {}),
    ...(typeof uri === 'string' && uri ? { uri } : {}),
  };
  if (typeof key === 'string' && key) {
    try {
      out.keyPem = accountKeyToPem(key);
    } catch (err) {
      out.keyProblem = errorMessage(err);
    }
  }
  return out;
}

/** Traefik keeps the account key as base64 DER (PKCS#1 RSA from x509.MarshalPKCS1PrivateKey); also accepts PKCS#8, SEC1 and PEM. */
export function accountKeyToPem(base64: string): string {
  const der = Buffer.from(base64, 'base64');
  const text = der.toString('utf8');
  if (text.includes('-----BEGIN')) return toPkcs8(text);
  for (const type of ['pkcs1', 'pkcs8', 'sec1'] as const) {
    try {
      return createPrivateKey({ key: der, format: 'der', type }).export({ type: 'pkcs8', format: 'pem' }) as string;
    } catch {
      /* try the next encoding */
    }
  }
  throw new Error('the account PrivateKey is not a DER private key (PKCS#1, PKCS#8 or SEC1)');
}

/** The directory URL an account URL belongs to, for Let's Encrypt's two CAs. */
export function serverForAccountUrl(uri: string | undefined): string | undefined {
  if (!uri) return undefined;
  try {
    const host = new URL(uri).host;
    if (host === 'acme-v02.api.letsencrypt.org') return LETSENCRYPT_PRODUCTION;
    if (host === 'acme-staging-v02.api.letsencrypt.org') return LETSENCRYPT_STAGING;
  } catch {
    /* not a URL */
  }
  return undefined;
}

/** `*.example.com` → `wildcard.example.com`; lowercase, no trailing dot. */
export function lineageNameFor(domain: string): string {
  const d = domain.trim().toLowerCase().replace(/\.$/, '');
  return d.startsWith('*.') ? `wildcard.${d.slice(2)}` : d;
}

function decodeBase64Pem(value: string, what: string): string {
  const text = Buffer.from(value, 'base64').toString('utf8');
  if (!text.includes('-----BEGIN')) throw new Error(`${what} is not base64-encoded PEM`);
  return text;
}

export function traefikCandidates(resolvers: TraefikResolver[], file: string): ImportCandidate[] {
  const out: ImportCandidate[] = [];
  for (const r of resolvers) {
    for (const c of r.certificates) {
      const label = c.main || `certificate #${c.index + 1}`;
      const source = `${file} resolver ${r.name}: ${label}`;
      const domains = [c.main, ...c.sans].filter(Boolean).map((d) => d.trim().toLowerCase().replace(/\.$/, ''));
      const base = { source, name: lineageNameFor(c.main || `unnamed-${c.index + 1}`), domains: [...new Set(domains)], meta: {}, warnings: [] as string[] };
      try {
        if (!c.main) throw new Error('it has no domain.main');
        out.push({ ...base, fullchainPem: decodeBase64Pem(c.certificate, 'its certificate'), keyPem: decodeBase64Pem(c.key, 'its key') });
      } catch (err) {
        out.push({ ...base, fullchainPem: '', keyPem: '', problem: { code: 'CERT_UNPARSEABLE', message: errorMessage(err) } });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// certbot /etc/letsencrypt.

/** A parsed certbot renewal conf: top-level keys, and sections (`renewalparams`, `renewalparams.webroot_map`). */
export interface CertbotConf {
  top: Record<string, string>;
  sections: Record<string, Record<string, string>>;
}

/** Parses certbot's configobj renewal file (`key = value`, `[section]`, `[[subsection]]`, `#` comments). */
export function parseCertbotConf(text: string): CertbotConf {
  const conf: CertbotConf = { top: {}, sections: {} };
  let current = conf.top;
  let parent = '';
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const sub = /^\[\[\s*([^\]]+?)\s*\]\]$/.exec(line);
    const sec = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (sub) {
      current = conf.sections[`${parent}.${sub[1]}`] ??= {};
      continue;
    }
    if (sec) {
      parent = sec[1]!;
      current = conf.sections[parent] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (/^(".*"|'.*')$/.test(value)) value = value.slice(1, -1);
    current[key] = value;
  }
  return conf;
}

/** A configobj list value (`a, b,` or `a,`) as its items. */
function confList(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim().replace(/^(["'])(.*)\1$/, '$2')).filter(Boolean);
}

/** What certbot's renewal params say about how to renew, in padlock's terms. */
export function certbotRenewalMeta(conf: CertbotConf, domains: string[]): { meta: ImportCandidate['meta']; warnings: string[] } {
  const p = conf.sections['renewalparams'] ?? {};
  const map = conf.sections['renewalparams.webroot_map'] ?? {};
  const warnings: string[] = [];
  const meta: ImportCandidate['meta'] = {};
  if (p['server']) meta.server = p['server'];
  const auth = (p['authenticator'] ?? 'standalone').trim();
  const port = Number(p['http01_port'] ?? 80);
  const standalone = { type: 'standalone' as const, port: Number.isInteger(port) && port > 0 && port < 65536 ? port : 80, ...(p['http01_address'] ? { address: p['http01_address'] } : {}) };
  if (auth === 'webroot') {
    const roots = [...new Set(domains.map((d) => map[d]).filter((x): x is string => !!x))];
    const fallback = confList(p['webroot_path']);
    const webroot = map[domains[0] ?? ''] ?? roots[0] ?? fallback[0];
    if (!webroot) {
      warnings.push('certbot used the webroot authenticator but its renewal conf names no webroot; padlock will use its standalone server on port 80');
      meta.challenge = standalone;
    } else {
      if (roots.length > 1 || (roots.length === 0 && fallback.length > 1)) {
        warnings.push(`certbot used several webroots (${(roots.length > 1 ? roots : fallback).join(', ')}); padlock has one per certificate and will use ${webroot} for every name`);
      }
      meta.challenge = { type: 'webroot', webroot };
    }
  } else {
    if (auth !== 'standalone') {
      warnings.push(`certbot renewed this with the "${auth}" authenticator, which padlock does not have; padlock will answer HTTP-01 with its standalone server on port ${standalone.port}`);
    }
    meta.challenge = standalone;
  }
  if (/^(true|yes|on|1)$/i.test(p['reuse_key'] ?? '')) meta.reuseKey = true;
  const hook = p['renew_hook'] ?? p['deploy_hook'];
  if (hook) meta.deployHook = hook;
  else if (p['post_hook']) {
    meta.deployHook = p['post_hook'];
    warnings.push(`certbot's post_hook "${p['post_hook']}" becomes padlock's deploy hook, which runs only after a successful renewal`);
  }
  if (p['pre_hook']) warnings.push(`certbot's pre_hook "${p['pre_hook']}" is not imported; padlock has no pre-hook`);
  return { meta, warnings };
}

/**
 * Reads a file in a certbot tree. certbot's `live/` files are relative
 * symlinks into `archive/`; older trees, or trees copied elsewhere, may hold
 * absolute links to `/etc/letsencrypt/...`, which are re-rooted at `root`.
 */
async function readCertbotFile(root: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const target = await readlink(path).catch(() => undefined);
    if (target && isAbsolute(target)) {
      const m = /^.*?\/(archive|live)\/(.+)$/.exec(target);
      if (m) return readFile(join(root, m[1]!, m[2]!), 'utf8');
    }
    throw err;
  }
}

export async function certbotCandidates(dir: string, only?: string): Promise<ImportCandidate[]> {
  const root = resolve(dir);
  const live = join(root, 'live');
  let names: string[];
  try {
    names = (await readdir(live)).filter((n) => n !== 'README' && !n.startsWith('.'));
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `${live} cannot be read (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); pass certbot's config folder, usually /etc/letsencrypt`, { cause: err });
  }
  if (only !== undefined) {
    if (!names.includes(only)) throw new PadlockError('STORE_NOT_FOUND', `certbot has no lineage named ${only} in ${live} (it has: ${names.sort().join(', ') || 'none'})`);
    names = [only];
  }
  const out: ImportCandidate[] = [];
  for (const name of names.sort()) {
    const folder = join(live, name);
    const st = await lstat(folder).catch(() => null);
    if (!st || !(st.isDirectory() || st.isSymbolicLink())) continue;
    const base = { source: `certbot lineage ${name}`, name: lineageNameFor(name), domains: [] as string[], meta: {}, warnings: [] as string[] };
    try {
      const [certPem, chainPem, fullchainPem, keyPem] = await Promise.all(
        ['cert', 'chain', 'fullchain', 'privkey'].map((f) => readCertbotFile(root, join(folder, `${f}.pem`)).catch((e: unknown) => (f === 'chain' || f === 'cert' ? '' : Promise.reject(e)))),
      );
      const leaf = splitPem(certPem!)[0] ?? splitPem(fullchainPem!)[0];
      if (!leaf) throw new Error('cert.pem and fullchain.pem hold no certificate');
      const chain = splitPem(chainPem!).length > 0 ? splitPem(chainPem!) : splitPem(fullchainPem!).slice(1);
      let domains: string[] = [];
      try {
        const x = new X509Certificate(leaf);
        const sans = describeCertificate(x).names;
        const cn = describeCertificate(x).subject.toLowerCase();
        domains = sans.includes(cn) ? [cn, ...sans.filter((s) => s !== cn)] : sans;
      } catch {
        /* the checks below report an unparseable certificate */
      }
      const confText = await readFile(join(root, 'renewal', `${name}.conf`), 'utf8').catch(() => undefined);
      const renewal = confText === undefined
        ? { meta: { challenge: { type: 'standalone' as const, port: 80 } }, warnings: [`no ${join(root, 'renewal', `${name}.conf`)}: padlock will renew with its standalone server on port 80 from Let's Encrypt`] }
        : certbotRenewalMeta(parseCertbotConf(confText), domains);
      out.push({ ...base, domains, fullchainPem: leaf + chain.join(''), keyPem: keyPem!, meta: renewal.meta, warnings: renewal.warnings });
    } catch (err) {
      out.push({ ...base, fullchainPem: '', keyPem: '', problem: { code: 'CERT_UNPARSEABLE', message: `cannot read ${folder}: ${errorMessage(err)}` } });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Checking and storing.

export interface ImportOptions {
  store: CertStore;
  roots: TrustAnchors;
  clock?: Clock;
  /** Import chains that do not build to a trusted root, with a warning. */
  allowUntrusted?: boolean;
  /** Store a lineage per DNS name (what `padlock run` serves) instead of one per certificate. */
  perName?: boolean;
  /** Replace a lineage that already exists with a different certificate. */
  replace?: boolean;
  /** Check everything, store nothing. */
  dryRun?: boolean;
  /** Defaults for metadata the source does not give. */
  defaults: Omit<LineageMeta, 'name' | 'domains' | 'updatedAt' | 'keyType'>;
}

export type ImportAction = 'imported' | 'would-import' | 'unchanged' | 'skipped';

export interface ImportResult {
  source: string;
  name: string;
  action: ImportAction;
  domains: string[];
  notAfter?: string;
  issuer?: string;
  /** The version stored (imported only). */
  version?: number;
  /** Why it was skipped. */
  reason?: string;
  code?: string;
  warnings: string[];
}

const UNTRUSTED_CODES = new Set(['CHAIN_UNTRUSTED', 'CHAIN_MISSING_INTERMEDIATE']);

/** verify.ts speaks of `padlock verify`'s flags; here the chain is the source's. */
function importMessage(message: string): string {
  return message.replace(/; supply that intermediate \(--chain\), or trust it if it is a root/, '').replace(/the supplied chain/g, "the source's chain");
}

/** PKCS#8 PEM, as padlock stores keys. */
function toPkcs8(pem: string): string {
  return createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/**
 * Checks one candidate and stores it (unless dry-run). Never throws for a
 * problem with the certificate: that is a `skipped` result with the reason.
 */
export async function importCandidate(c: ImportCandidate, opts: ImportOptions): Promise<ImportResult[]> {
  const clock = opts.clock ?? systemClock;
  const now = clock.now();
  const skip = (code: string, reason: string, name = c.name, domains = c.domains): ImportResult => ({ source: c.source, name, action: 'skipped', domains, code, reason, warnings: c.warnings });
  if (c.problem) return [skip(c.problem.code, c.problem.message)];
  const blocks = splitPem(c.fullchainPem);
  if (blocks.length === 0) return [skip('CERT_UNPARSEABLE', 'it holds no PEM certificate')];
  let leaf;
  try {
    leaf = describeCertificate(blocks[0]!);
  } catch (err) {
    return [skip('CERT_UNPARSEABLE', errorMessage(err))];
  }
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (leaf.notAfter <= now) return [skip('CERT_EXPIRED', `it expired on ${iso(leaf.notAfter)}`)];
  if (leaf.notBefore > now) return [skip('CERT_NOT_YET_VALID', `it is not valid before ${iso(leaf.notBefore)}`)];
  let keyPem: string;
  try {
    keyPem = toPkcs8(c.keyPem);
  } catch (err) {
    return [skip('CERT_UNPARSEABLE', `its private key cannot be read (${errorMessage(err)})`)];
  }
  const domains = c.domains.length > 0 ? c.domains : leaf.names;
  const warnings = [...c.warnings];
  try {
    await verifyCertificate({ cert: blocks[0]!, chain: blocks.slice(1).join(''), key: keyPem, names: domains, roots: opts.roots, at: now });
  } catch (err) {
    const e = err instanceof PadlockError ? err : new PadlockError('CHAIN_INVALID', errorMessage(err), { cause: err });
    if (!(UNTRUSTED_CODES.has(e.code) && opts.allowUntrusted)) {
      const hint = UNTRUSTED_CODES.has(e.code) ? ' (pass --trusted-roots FILE for a private CA, or --allow-untrusted to import it anyway)' : '';
      return [skip(e.code, `${importMessage(e.message)}${hint}`)];
    }
    warnings.push(`imported although its chain is not trusted here: ${importMessage(e.message)}`);
  }
  let keySpec;
  try {
    keySpec = describePrivateKey(keyPem);
  } catch (err) {
    return [skip('CERT_UNPARSEABLE', errorMessage(err))];
  }
  let normalised: string[];
  try {
    normalised = normaliseNames(domains, { allowWildcard: true });
  } catch (err) {
    return [skip('NAME_INVALID', errorMessage(err))];
  }
  if (normalised.some((d) => d.startsWith('*.'))) warnings.push('it covers a wildcard name, which padlock cannot renew over HTTP-01; it serves until it expires');

  const bundle: CertBundle = { cert: blocks[0]!, chain: blocks.slice(1).join(''), fullchain: blocks.join(''), privkey: keyPem };
  const targets = opts.perName
    ? normalised.filter((d) => !d.startsWith('*.')).map((d) => ({ name: d, domains: [d] }))
    : [{ name: c.name, domains: normalised }];
  if (targets.length === 0) return [skip('NAME_INVALID', 'with --per-name, a certificate with only wildcard names has no name to store it under')];

  const results: ImportResult[] = [];
  for (const t of targets) {
    if (!isValidLineageName(t.name)) {
      results.push(skip('NAME_INVALID', `"${t.name}" cannot be a lineage name`, t.name, t.domains));
      continue;
    }
    const meta: LineageMeta = {
      ...opts.defaults,
      ...c.meta,
      name: t.name,
      domains: t.domains,
      keyType: keySpec.keyType,
      ...(keySpec.keyType === 'rsa' ? { rsaKeySize: keySpec.rsaKeySize ?? 2048 } : { ellipticCurve: keySpec.ellipticCurve ?? 'P-256' }),
      // The certificate's own issue time: storing "now" would postpone a renewal that is already due.
      updatedAt: leaf.notBefore.toISOString(),
    };
    if (meta.keyType === 'rsa') delete meta.ellipticCurve;
    else delete meta.rsaKeySize;
    const base = { source: c.source, name: t.name, domains: t.domains, notAfter: leaf.notAfter.toISOString(), issuer: leaf.issuer, warnings };
    const existing = await opts.store.readLineage(t.name);
    if (existing) {
      const same = splitPem(existing.bundle.cert)[0] === blocks[0];
      if (same) {
        results.push({ ...base, action: 'unchanged', reason: `the store already holds this certificate as ${t.name}` });
        continue;
      }
      if (!opts.replace) {
        const theirs = describeCertificate(existing.bundle.cert);
        results.push({ ...base, action: 'skipped', code: 'STORE_EXISTS', reason: `the store already has a certificate named ${t.name} (valid until ${iso(theirs.notAfter)}); pass --replace to replace it` });
        continue;
      }
    }
    if (opts.dryRun) {
      results.push({ ...base, action: 'would-import' });
      continue;
    }
    const unlock = await opts.store.lock(t.name, { waitMs: 10_000 });
    try {
      const version = await opts.store.putVersion(t.name, bundle, meta);
      results.push({ ...base, action: 'imported', version });
    } catch (err) {
      const e = err instanceof PadlockError ? err : new PadlockError('STORE_IO', errorMessage(err), { cause: err });
      results.push({ ...base, action: 'skipped', code: e.code, reason: `could not store it: ${e.message}` });
    } finally {
      await unlock();
    }
  }
  return results;
}

export interface AccountImportResult {
  action: 'imported' | 'would-import' | 'kept-existing' | 'skipped';
  server?: string;
  accountUrl?: string;
  reason?: string;
}

/** Stores Traefik's account as padlock's account for `server`, unless one exists. */
export async function importTraefikAccount(account: TraefikAccount | undefined, server: string, store: CertStore, opts: { dryRun?: boolean; clock?: Clock } = {}): Promise<AccountImportResult> {
  if (!account) return { action: 'skipped', reason: 'acme.json holds no account for this resolver' };
  if (!account.keyPem) return { action: 'skipped', reason: account.keyProblem ?? 'the account has no private key' };
  if (!account.uri) return { action: 'skipped', reason: 'the account was never registered (no Registration.uri)' };
  const inferred = serverForAccountUrl(account.uri);
  let sameHost = false;
  try {
    sameHost = new URL(account.uri).host === new URL(server).host;
  } catch {
    sameHost = false;
  }
  if (inferred ? inferred !== server : !sameHost) {
    return { action: 'skipped', server, reason: `the account ${account.uri} belongs to another CA than ${server}` };
  }
  const existing = await store.readAccount(server);
  if (existing) return { action: 'kept-existing', server, ...(existing.accountUrl ? { accountUrl: existing.accountUrl } : {}), reason: 'padlock already has an account for this CA; it is kept' };
  if (opts.dryRun) return { action: 'would-import', server, accountUrl: account.uri };
  const record: AccountRecord = {
    directoryUrl: server,
    accountUrl: account.uri,
    keyPem: account.keyPem,
    ...(account.email ? { email: account.email } : {}),
    createdAt: (opts.clock ?? systemClock).now().toISOString(),
  };
  await store.writeAccount(record);
  return { action: 'imported', server, accountUrl: account.uri };
}

// ---------------------------------------------------------------------------
// The command.

export interface ImportArgs {
  source: string;
  path: string;
  'config-dir': string;
  json: boolean;
  resolver?: string | undefined;
  'cert-name'?: string | undefined;
  server?: string | undefined;
  staging: boolean;
  email?: string | undefined;
  account: boolean;
  'per-name': boolean;
  replace: boolean;
  'dry-run': boolean;
  'allow-untrusted': boolean;
  'trusted-roots'?: string | undefined;
  'server-ca'?: string | undefined;
  'http-01-port': number;
  'http-01-address'?: string | undefined;
  webroot?: boolean | undefined;
  'webroot-path'?: string | undefined;
  quiet: boolean;
}

export interface ImportReport {
  ok: boolean;
  source: 'traefik' | 'certbot';
  path: string;
  dryRun: boolean;
  configDir: string;
  results: ImportResult[];
  account?: AccountImportResult;
  summary: { imported: number; unchanged: number; skipped: number; total: number };
}

/**
 * Runs an import and returns the report (the handler prints it). Usage
 * problems throw CONFIG_INVALID / STORE_NOT_FOUND; problems with single
 * certificates are results.
 */
export async function runImport(args: ImportArgs, clock: Clock = systemClock): Promise<ImportReport> {
  const problems: string[] = [];
  if (args.server && args.staging) problems.push('--server and --staging both name a CA; pass only one');
  if (args.server) {
    try {
      new URL(args.server);
    } catch {
      problems.push(`--server "${args.server}" is not a URL`);
    }
  }
  if (args.source === 'traefik' && args['cert-name']) problems.push('--cert-name is for certbot imports; for Traefik use --resolver');
  if (args.source === 'certbot' && args.resolver) problems.push('--resolver is for Traefik imports');
  if (args.webroot && !args['webroot-path']) problems.push('--webroot needs -w DIR');
  const port = args['http-01-port'];
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) problems.push(`--http-01-port ${port} is not a port (1-65535)`);
  if (problems.length) throw new PadlockError('CONFIG_INVALID', problems.join('; '), { details: { problems } });

  const roots = await loadTrustAnchors(args['trusted-roots'] ? { extraFiles: [args['trusted-roots']] } : {});
  const disk = await openStore(args['config-dir']);
  const explicitServer = args.server ?? (args.staging ? LETSENCRYPT_STAGING : undefined);
  const serverCa = args['server-ca'] ?? (process.env['PADLOCK_SERVER_CA'] || undefined);
  const challenge: LineageMeta['challenge'] = args['webroot-path']
    ? { type: 'webroot', webroot: args['webroot-path'] }
    : { type: 'standalone', port, ...(args['http-01-address'] ? { address: args['http-01-address'] } : {}) };

  let candidates: ImportCandidate[];
  let server = explicitServer ?? LETSENCRYPT_PRODUCTION;
  let account: AccountImportResult | undefined;
  let traefikAccount: TraefikAccount | undefined;
  if (args.source === 'traefik') {
    let text: string;
    try {
      text = await readFile(args.path, 'utf8');
    } catch (err) {
      throw new PadlockError('CONFIG_INVALID', `cannot read ${args.path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); pass the path of Traefik's acme.json`, { cause: err });
    }
    let resolvers = parseTraefikAcmeJson(text, args.path);
    if (args.resolver !== undefined) {
      const hit = resolvers.filter((r) => r.name === args.resolver);
      if (hit.length === 0) throw new PadlockError('CONFIG_INVALID', `${args.path} has no resolver named ${args.resolver} (it has: ${resolvers.map((r) => r.name).join(', ')})`);
      resolvers = hit;
    }
    traefikAccount = resolvers.length === 1 ? resolvers[0]!.account : undefined;
    server = explicitServer ?? serverForAccountUrl(traefikAccount?.uri) ?? LETSENCRYPT_PRODUCTION;
    candidates = traefikCandidates(resolvers, args.path).map((c) => ({ ...c, meta: { challenge, ...c.meta } }));
    if (!args.account) account = { action: 'skipped', reason: '--no-account' };
    else if (resolvers.length > 1) account = { action: 'skipped', reason: `${resolvers.length} resolvers (${resolvers.map((r) => r.name).join(', ')}) may use different CAs; pass --resolver NAME to import that resolver's account` };
  } else if (args.source === 'certbot') {
    candidates = await certbotCandidates(args.path, args['cert-name']);
    // A flag names the CA for every lineage; otherwise each keeps the CA its renewal conf names.
    if (explicitServer) candidates = candidates.map((c) => ({ ...c, meta: { ...c.meta, server: explicitServer } }));
  } else {
    throw new PadlockError('CONFIG_INVALID', `unknown source "${args.source}"; use traefik or certbot`);
  }

  // A dry run reads the real store (to report what already exists) and writes nothing.
  const store = disk;
  const defaults: ImportOptions['defaults'] = {
    server,
    challenge,
    ...(args.email ?? traefikAccount?.email ? { email: (args.email ?? traefikAccount?.email)! } : {}),
    ...(args['trusted-roots'] ? { trustedRoots: resolve(args['trusted-roots']) } : {}),
    ...(serverCa ? { serverCa: resolve(serverCa) } : {}),
  };
  const results: ImportResult[] = [];
  for (const c of candidates) {
    results.push(...(await importCandidate(c, {
      store,
      roots,
      clock,
      allowUntrusted: args['allow-untrusted'],
      perName: args['per-name'],
      replace: args.replace,
      dryRun: args['dry-run'],
      defaults,
    })));
  }
  if (args.source === 'traefik' && account === undefined) {
    account = await importTraefikAccount(traefikAccount, server, disk, { dryRun: args['dry-run'], clock });
  }
  const summary = {
    imported: results.filter((r) => r.action === 'imported' || r.action === 'would-import').length,
    unchanged: results.filter((r) => r.action === 'unchanged').length,
    skipped: results.filter((r) => r.action === 'skipped').length,
    total: results.length,
  };
  return {
    ok: summary.skipped === 0,
    source: args.source,
    path: resolve(args.path),
    dryRun: args['dry-run'],
    configDir: disk.location,
    results,
    ...(account ? { account } : {}),
    summary,
  };
}

/** The human report: one line per result, warnings under it, then the summary line. */
export function formatImportReport(r: ImportReport): string {
  const lines: string[] = [];
  for (const x of r.results) {
    const what = x.action === 'would-import' ? 'would import' : x.action;
    if (x.action === 'skipped') lines.push(`  ${what.padEnd(12)} ${x.name}: ${x.reason} [${x.code}]`);
    else {
      const days = x.notAfter ? Math.floor((Date.parse(x.notAfter) - Date.now()) / 86_400_000) : undefined;
      lines.push(`  ${what.padEnd(12)} ${x.name} (${x.domains.join(', ')}), valid until ${x.notAfter}${days !== undefined ? ` (${days} days)` : ''}${x.action === 'unchanged' ? ': already in the store' : ''}`);
    }
    for (const w of x.warnings) lines.push(`  ${'warning'.padEnd(12)} ${x.name}: ${w}`);
  }
  if (r.account) {
    const a = r.account;
    lines.push(`  ${'account'.padEnd(12)} ${a.action === 'imported' || a.action === 'would-import' ? `${a.action === 'imported' ? 'imported' : 'would import'} ${a.accountUrl} for ${a.server}` : `${a.action}: ${a.reason}`}`);
  }
  const s = r.summary;
  const verb = r.dryRun ? 'Would import' : 'Imported';
  lines.push(`${verb} ${s.imported} of ${s.total} certificate${s.total === 1 ? '' : 's'} into ${r.configDir} (${s.unchanged} already there, ${s.skipped} skipped)${r.dryRun ? '; dry run: nothing was stored' : ''}.`);
  return lines.join('\n');
}

export const importCommand: CommandModule<object, ImportArgs> = {
  command: 'import <source> <path>',
  describe: "Import certificates from Traefik's acme.json or certbot's /etc/letsencrypt, so they keep serving without new orders",
  builder: (y) =>
    withStoreOptions(y)
      .positional('source', { type: 'string', choices: ['traefik', 'certbot'], describe: 'What wrote the certificates' })
      .positional('path', { type: 'string', describe: "Traefik's acme.json, or certbot's config folder (/etc/letsencrypt)" })
      .option('resolver', { type: 'string', describe: 'Traefik: import only this certificate resolver' })
      .option('cert-name', { type: 'string', describe: 'certbot: import only this lineage' })
      .option('server', { type: 'string', describe: "ACME directory URL to renew from (default: certbot's renewal conf; for Traefik the account's CA, else Let's Encrypt)" })
      .option('staging', { type: 'boolean', default: false, describe: "Renew from Let's Encrypt's staging CA" })
      .option('email', { alias: 'm', type: 'string', describe: 'Contact email stored with the imported lineages' })
      .option('account', { type: 'boolean', default: true, describe: "Traefik: import its ACME account for that CA when padlock has none (--no-account to skip)" })
      .option('per-name', { type: 'boolean', default: false, describe: 'Store the certificate once per DNS name on it (what padlock run serves) instead of once per certificate' })
      .option('replace', { type: 'boolean', default: false, describe: 'Replace a lineage of the same name that holds another certificate' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'Check everything, store nothing' })
      .option('allow-untrusted', { type: 'boolean', default: false, describe: 'Import a certificate whose chain does not build to a trusted root, with a warning' })
      .option('trusted-roots', { type: 'string', describe: 'PEM file of extra trust anchors (a private CA), added to the system store' })
      .option('server-ca', { type: 'string', describe: "PEM file trusted for the ACME server's HTTPS, stored for renewals" })
      .option('http-01-port', { type: 'number', default: 80, describe: 'Traefik: port of the standalone HTTP-01 server for renewals' })
      .option('http-01-address', { type: 'string', describe: 'Traefik: address of the standalone HTTP-01 server' })
      .option('webroot', { type: 'boolean', describe: 'Traefik: renew through an existing web server (-w)' })
      .option('webroot-path', { alias: 'w', type: 'string', describe: 'Traefik: the document root for --webroot' })
      .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print problems only' })
      .example('$0 import traefik /srv/traefik/acme.json --resolver letsencrypt', 'take over what Traefik obtained')
      .example('$0 import certbot /etc/letsencrypt --dry-run', 'check every certbot lineage, store nothing') as never,
  handler: async (args) => {
    try {
      const report = await runImport(args);
      if (args.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else if (!args.quiet || !report.ok) output({ json: false }, {}, formatImportReport(report));
      if (!report.ok) process.exitCode = 1;
    } catch (err) {
      reportError(err, args.json, err instanceof PadlockError && err.code === 'CONFIG_INVALID' ? 64 : 1);
    }
  },
};
