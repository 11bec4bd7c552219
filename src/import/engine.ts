/**
 * The import engine behind `padlock import`: takes over certificates another
 * ACME client obtained, so they keep serving from padlock's store without a
 * new order. It reads the source (traefik.ts, certbot.ts), checks every
 * candidate and stores it; it prints nothing (the command does).
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
 * Metadata, so `padlock renew` and `padlock run` renew it the way the source
 * did, comes from the source (certbot.ts, traefik.ts); besides:
 * - The key type comes from the key itself; `updatedAt` is the certificate's
 *   notBefore, so the renewal-loop guard (policy.ts) does not postpone a
 *   renewal that is already due.
 *
 * Traefik's ACME account (its RSA key and account URL) is imported as
 * padlock's account for that CA when the store has none for it yet
 * (`--no-account` skips it); an existing padlock account is never replaced.
 *
 * Lineage names: one lineage per certificate (candidate.ts). `--per-name`
 * instead stores the certificate once for each DNS name on it, in a lineage
 * named after that name, which is what `padlock run` looks for (one lineage
 * per host).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PadlockError, errorMessage } from '../errors.js';
import { normaliseNames } from '../config/names.js';
import { isValidLineageName, type AccountRecord, type CertBundle, type CertStore, type LineageMeta } from '../store/store.js';
import { describeCertificate, splitPem } from '../tls/inspect.js';
import { leafFacts } from '../tls/leaf-facts.js';
import { verifyCertificate } from '../tls/verify.js';
import { describePrivateKey, toPkcs8Pem } from '../tls/keys.js';
import { loadTrustAnchors, type TrustAnchors } from '../tls/roots.js';
import { systemClock, type Clock } from '../clock.js';
import { LETSENCRYPT_PRODUCTION } from '../acme/directories.js';
import type { ImportCandidate } from './candidate.js';
import { parseTraefikAcmeJson, serverForAccountUrl, traefikCandidates, type TraefikAccount } from './traefik.js';
import { certbotCandidates } from './certbot.js';

/** How to check and store candidates. */
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

/** What became of a certificate: `would-import` is a dry run's `imported`. */
export type ImportAction = 'imported' | 'would-import' | 'unchanged' | 'skipped';

/** What became of one candidate (or, with per-name, of one of its names). */
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
    keyPem = toPkcs8Pem(c.keyPem);
  } catch (err) {
    return [skip('CERT_UNPARSEABLE', `its private key cannot be read (${errorMessage(err)})`)];
  }
  const domains = c.domains.length > 0 ? c.domains : leaf.names;
  const warnings = [...c.warnings];
  let anchor: string | undefined;
  try {
    const verified = await verifyCertificate({ cert: blocks[0]!, chain: blocks.slice(1).join(''), key: keyPem, names: domains, roots: opts.roots, at: now });
    anchor = verified.path.at(-1)?.fingerprint256;
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
      // Recorded so the daemon loads it without parsing it (tls/leaf-facts.ts); replaces any the source meta held.
      leaf: leafFacts(bundle.fullchain, leaf, anchor),
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

/** What became of the Traefik account. */
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


/**
 * One import, as the command asks for it: flags already checked (the command
 * reports bad combinations), defaults already applied.
 */
export interface ImportRequest {
  source: string;
  /** Traefik's acme.json, or certbot's config folder. */
  path: string;
  /** Traefik: import only this resolver. */
  resolver?: string | undefined;
  /** certbot: import only this lineage. */
  certName?: string | undefined;
  /** The CA the operator named (`--server`, `--staging`): it overrides the source's. */
  server?: string | undefined;
  email?: string | undefined;
  /** Traefik: import its account (false: `--no-account`). */
  account: boolean;
  perName: boolean;
  replace: boolean;
  dryRun: boolean;
  allowUntrusted: boolean;
  /** PEM file of extra trust anchors. */
  trustedRoots?: string | undefined;
  /** PEM file trusted for the ACME server's HTTPS, stored for renewals. */
  serverCa?: string | undefined;
  /** The challenge for sources that give none (Traefik), and the default for the others. */
  challenge: LineageMeta['challenge'];
}

/** What `runImport` needs from outside. */
export interface ImportDeps {
  /** Opens padlock's store; called once, after the trust anchors load. */
  openStore: () => Promise<CertStore>;
  clock?: Clock;
}

/** What an import did: one result per certificate (per name with per-name), the account, and the counts. */
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
 * Runs an import and returns the report. A source that cannot be read
 * throws CONFIG_INVALID / STORE_NOT_FOUND; problems with single
 * certificates are results. A dry run reads the real store (to report what
 * already exists) and writes nothing.
 */
export async function runImport(req: ImportRequest, deps: ImportDeps): Promise<ImportReport> {
  const clock = deps.clock ?? systemClock;
  const roots = await loadTrustAnchors(req.trustedRoots ? { extraFiles: [req.trustedRoots] } : {});
  const store = await deps.openStore();
  try {
    return await importInto(store, req, roots, clock);
  } finally {
    await store.close();
  }
}

async function importInto(store: CertStore, req: ImportRequest, roots: TrustAnchors, clock: Clock): Promise<ImportReport> {
  const { challenge, server: explicitServer } = req;

  let candidates: ImportCandidate[];
  let server = explicitServer ?? LETSENCRYPT_PRODUCTION;
  let account: AccountImportResult | undefined;
  let traefikAccount: TraefikAccount | undefined;
  if (req.source === 'traefik') {
    let text: string;
    try {
      text = await readFile(req.path, 'utf8');
    } catch (err) {
      throw new PadlockError('CONFIG_INVALID', `cannot read ${req.path} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}); pass the path of Traefik's acme.json`, { cause: err });
    }
    let resolvers = parseTraefikAcmeJson(text, req.path);
    if (req.resolver !== undefined) {
      const hit = resolvers.filter((r) => r.name === req.resolver);
      if (hit.length === 0) throw new PadlockError('CONFIG_INVALID', `${req.path} has no resolver named ${req.resolver} (it has: ${resolvers.map((r) => r.name).join(', ')})`);
      resolvers = hit;
    }
    traefikAccount = resolvers.length === 1 ? resolvers[0]!.account : undefined;
    server = explicitServer ?? serverForAccountUrl(traefikAccount?.uri) ?? LETSENCRYPT_PRODUCTION;
    candidates = traefikCandidates(resolvers, req.path).map((c) => ({ ...c, meta: { challenge, ...c.meta } }));
    if (!req.account) account = { action: 'skipped', reason: '--no-account' };
    else if (resolvers.length > 1) account = { action: 'skipped', reason: `${resolvers.length} resolvers (${resolvers.map((r) => r.name).join(', ')}) may use different CAs; pass --resolver NAME to import that resolver's account` };
  } else if (req.source === 'certbot') {
    candidates = await certbotCandidates(req.path, req.certName);
    // A flag names the CA for every lineage; otherwise each keeps the CA its renewal conf names.
    if (explicitServer) candidates = candidates.map((c) => ({ ...c, meta: { ...c.meta, server: explicitServer } }));
  } else {
    throw new PadlockError('CONFIG_INVALID', `unknown source "${req.source}"; use traefik or certbot`);
  }

  const defaults: ImportOptions['defaults'] = {
    server,
    challenge,
    ...(req.email ?? traefikAccount?.email ? { email: (req.email ?? traefikAccount?.email)! } : {}),
    ...(req.trustedRoots ? { trustedRoots: resolve(req.trustedRoots) } : {}),
    ...(req.serverCa ? { serverCa: resolve(req.serverCa) } : {}),
  };
  const results: ImportResult[] = [];
  for (const c of candidates) {
    results.push(...(await importCandidate(c, {
      store,
      roots,
      clock,
      allowUntrusted: req.allowUntrusted,
      perName: req.perName,
      replace: req.replace,
      dryRun: req.dryRun,
      defaults,
    })));
  }
  if (req.source === 'traefik' && account === undefined) {
    account = await importTraefikAccount(traefikAccount, server, store, { dryRun: req.dryRun, clock });
  }
  const summary = {
    imported: results.filter((r) => r.action === 'imported' || r.action === 'would-import').length,
    unchanged: results.filter((r) => r.action === 'unchanged').length,
    skipped: results.filter((r) => r.action === 'skipped').length,
    total: results.length,
  };
  return {
    ok: summary.skipped === 0,
    source: req.source,
    path: resolve(req.path),
    dryRun: req.dryRun,
    configDir: store.location,
    results,
    ...(account ? { account } : {}),
    summary,
  };
}
