/**
 * Reading certbot's config folder (`/etc/letsencrypt`) for `padlock import
 * certbot`: every lineage under `live/` as an import candidate, with the
 * renewal metadata its `renewal/NAME.conf` gives, so `padlock renew` and
 * `padlock run` renew it the way certbot did:
 *
 * - the CA (`server`), the challenge (`authenticator` standalone with
 *   `http01_port`/`http01_address`, or webroot with `webroot_path` /
 *   `[[webroot_map]]`), `reuse_key` and the deploy hook (`renew_hook`, else
 *   `post_hook`). Authenticators padlock does not have (nginx, apache,
 *   manual, dns-*) fall back to standalone on port 80, with a warning.
 *
 * certbot's accounts are not imported: padlock registers its own on the
 * first renewal.
 */
import { X509Certificate } from 'node:crypto';
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { PadlockError, errorMessage } from '../errors.js';
import { describeCertificate, splitPem } from '../tls/inspect.js';
import { lineageNameFor, type ImportCandidate } from './candidate.js';

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
/**
 * Reads every lineage under DIR/live (or only the one named `only`) into
 * candidates. Throws CONFIG_INVALID when live/ cannot be read and
 * STORE_NOT_FOUND when `only` is not there; a lineage that cannot be read is
 * a candidate with a problem.
 */

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
