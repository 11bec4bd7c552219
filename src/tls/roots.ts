/**
 * Trust anchors: which root certificates padlock believes.
 *
 * The default set is the operating system's bundle plus Node's bundled Mozilla
 * list (the two differ), plus any files the user adds. `only` replaces all of
 * that with exactly the given files, which is what `--roots` means.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { PadlockError } from '../errors.js';
import { splitPem } from './inspect.js';

/** A deduplicated PEM bundle of anchors and where it came from. Treat as immutable. */
export interface TrustAnchors {
  /** Every anchor as concatenated PEM blocks. */
  pem: string;
  /** How many distinct certificates `pem` holds. */
  count: number;
  /** The files (and `node:tls.rootCertificates`) that contributed, in load order. */
  sources: string[];
}

export interface LoadTrustAnchorsOptions {
  /** Files to trust on top of the default set (`--trusted-roots`). */
  extraFiles?: string[];
  /** Trust exactly these files and nothing else (`--roots`); `extraFiles` still adds to them. */
  only?: string[];
  /** Where to read `SSL_CERT_FILE` / `SSL_CERT_DIR`; defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
export const NODE_BUNDLE_SOURCE = 'node:tls.rootCertificates';

/**
 * Loads and deduplicates trust anchors (by the certificate's base64 body).
 *
 * The system bundle (`SSL_CERT_FILE`, else {@link DEFAULT_SYSTEM_BUNDLE}) and
 * `SSL_CERT_DIR` are best effort: when missing they are left out of `sources`.
 * Files the user named are not: an unreadable file, or one with no PEM
 * certificate in it, throws `PadlockError('CONFIG_INVALID')` naming the file.
 */
export async function loadTrustAnchors(opts: LoadTrustAnchorsOptions = {}): Promise<TrustAnchors> {
  const env = opts.env ?? process.env;
  const seen = new Set<string>();
  const blocks: string[] = [];
  const sources: string[] = [];
  const add = (source: string, certs: readonly string[]): void => {
    let added = false;
    for (const pem of certs) {
      const key = pemBody(pem);
      if (key === '' || seen.has(key)) continue;
      seen.add(key);
      blocks.push(pem.endsWith('\n') ? pem : `${pem}\n`);
      added = true;
    }
    if (added || certs.length > 0) sources.push(source);
  };

  if (opts.only !== undefined) {
    for (const file of opts.only) add(file, await readUserBundle(file, '--roots'));
  } else {
    const systemFile = env.SSL_CERT_FILE || DEFAULT_SYSTEM_BUNDLE;
    const system = await readOptional(systemFile);
    if (system !== undefined) add(systemFile, splitPem(system));
    for (const dir of (env.SSL_CERT_DIR ?? '').split(':').filter(Boolean)) {
      for (const file of await listCertFiles(dir)) {
        const text = await readOptional(file);
        if (text !== undefined) add(file, splitPem(text));
      }
    }
    add(NODE_BUNDLE_SOURCE, rootCertificates);
  }
  for (const file of opts.extraFiles ?? []) add(file, await readUserBundle(file, '--trusted-roots'));

  return { pem: blocks.join(''), count: blocks.length, sources };
}

/** The base64 body of a PEM block, without whitespace: equal bodies are the same certificate. */
function pemBody(pem: string): string {
  return pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
}

async function readUserBundle(file: string, flag: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PadlockError('CONFIG_INVALID', `cannot read trust anchor file ${file} (${flag}): ${reason}`, {
      cause: err,
      details: { file },
    });
  }
  const certs = splitPem(text);
  if (certs.length === 0) {
    throw new PadlockError('CONFIG_INVALID', `trust anchor file ${file} (${flag}) holds no PEM CERTIFICATE block`, {
      details: { file },
    });
  }
  return certs;
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function listCertFiles(dir: string): Promise<string[]> {
  try {
    const names = await readdir(dir);
    return names.filter((n) => /\.(pem|crt)$/i.test(n)).sort().map((n) => join(dir, n));
  } catch {
    return [];
  }
}
