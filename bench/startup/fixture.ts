/**
 * The start-up bench's fixture: N stored certificates for `n00001.bench.localhost`
 * ... issued by padlock's own local CA, written through the CertStore
 * contract (`putVersion`), so any store implementation can hold them.
 *
 * Why the local CA: its root is what `padlock run` itself uses for
 * `*.localhost` (the root lineage lives in the same store), so padlock
 * treats the leaves as its own, valid, not due, not superseded; and the root
 * can be trusted explicitly by the bench's TLS client. One leaf key is shared
 * by all N leaves (key generation is not what is measured; each lineage
 * still has its own privkey.pem file with that key, as a real store would).
 *
 * Leaves are valid 90 days, so padlock's policy (renew when a third of the
 * lifetime remains) does not make them due for 60 days; a cached fixture
 * older than {@link FIXTURE_MAX_AGE_DAYS} is rebuilt, so no run ever measures
 * a start-up that renews.
 */
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openFsStore } from '../../src/store/fs-store.js';
import { openStore } from '../../src/store/open-store.js';
import type { CertStore, LineageMeta } from '../../src/store/store.js';
import { leafFacts } from '../../src/tls/leaf-facts.js';
import { certificateValidity } from '../../src/tls/inspect.js';
import { DEFAULT_LOCAL_SUFFIXES, LOCAL_ISSUER, LOCAL_ROOT_LINEAGE, ensureLocalRoot, issueLocalCertificate } from '../../src/tls/local-ca.js';
import { forEachLimit } from '../../src/concurrency.js';
import { systemClock } from '../../src/clock.js';

/**
 * Bumped when the fixture's content changes, so an old cache is never reused.
 * 2: each lineage's meta records its leaf's facts (`LineageMeta.leaf`), as
 * padlock's engine does since it records them at issuance.
 */
const FIXTURE_FORMAT = 2;
const LEAF_VALIDITY_DAYS = 90;
/** A cached fixture older than this is rebuilt (leaves fall due at 60 days). */
export const FIXTURE_MAX_AGE_DAYS = 30;
/** putVersion calls in flight while writing (each one fsyncs several times). */
const WRITE_CONCURRENCY = 16;
const DAY_MS = 86_400_000;

/** `n00001.bench.localhost`: the i-th name (1-based), zero-padded to at least 5 digits. */
export function benchName(i: number): string {
  return `n${String(i).padStart(5, '0')}.bench.localhost`;
}

/**
 * The default fixture folder for `names` certificates:
 * `$TMPDIR/padlock-bench-startup/n<N>-f<format>`. The format is in the name
 * so a bench of another format (an older checkout on the same machine) keeps
 * its own folder instead of rebuilding this one.
 */
export function defaultFixtureDir(names: number): string {
  return join(tmpdir(), 'padlock-bench-startup', `n${names}-f${FIXTURE_FORMAT}`);
}

/** The key prefix of the bench's fixture in a Redis store. */
export const BENCH_REDIS_PREFIX = 'padlock-bench-startup:';

/** Where a store lives, as the bench was told (`--store`). */
export type StoreLocation = { kind: 'fs'; dir: string } | { kind: 'redis'; url: string };

/** Parses `--store`: a folder path (or `file://` URL), or a `redis://` / `rediss://` URL. */
export function parseStoreLocation(arg: string): StoreLocation {
  if (/^rediss?:\/\//i.test(arg) || /^redis\+sentinel:\/\//i.test(arg)) return { kind: 'redis', url: arg };
  if (/^file:\/\//i.test(arg)) return { kind: 'fs', dir: new URL(arg).pathname };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(arg)) throw new Error(`--store ${arg}: not a folder and not a redis:// URL`);
  return { kind: 'fs', dir: resolve(arg) };
}


/**
 * Opens the CertStore at `location`: padlock's own `openFsStore` for a
 * folder, its Redis store (`openStore`, key prefix BENCH_REDIS_PREFIX) for a
 * Redis URL, sealing private keys with `key` (32 bytes), which a Redis store
 * requires.
 */
export async function openBenchStore(location: StoreLocation, key?: Buffer): Promise<CertStore> {
  if (location.kind === 'fs') return openFsStore(location.dir);
  if (!key) throw new Error(`--store ${redactUrl(location.url)}: a Redis store needs a store key`);
  return openStore({ url: location.url, key, prefix: BENCH_REDIS_PREFIX });
}

/** A new random store key (what `--store-key-file` holds, 32 bytes). */
export function newStoreKey(): Buffer {
  return randomBytes(32);
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** What the fixture marker records; the marker is written last, so its presence means "complete". */
export interface FixtureInfo {
  format: number;
  names: number;
  createdAt: string;
  /** The local root's SHA-256 fingerprint; padlock must find (and keep) this root. */
  rootFingerprint256: string;
  rootPem: string;
  leafValidityDays: number;
  /** One ECDSA P-256 key shared by every leaf. */
  sharedLeafKey: true;
  /** Seconds it took to write. */
  writeSeconds: number;
}

export interface FixtureResult extends FixtureInfo {
  /** True when this run wrote it; false when a cached one was reused. */
  built: boolean;
}

const MARKER = '.bench-startup-fixture.json';
/** Present while a build runs: a folder holding it is the bench's own, and may be emptied. */
const BUILDING = '.bench-startup-fixture.building';

/**
 * Returns the fixture at the folder store `dir`, building it first when it is
 * absent, incomplete, of another size or format, or older than
 * FIXTURE_MAX_AGE_DAYS. A stale fixture is removed first; a non-empty folder
 * without the fixture marker is refused, never emptied.
 */
export async function ensureFsFixture(dir: string, names: number, log: (msg: string) => void): Promise<FixtureResult> {
  const marker = join(dir, MARKER);
  const cached = await readMarker(marker);
  const ageDays = cached ? (Date.now() - Date.parse(cached.createdAt)) / DAY_MS : Infinity;
  if (cached && cached.format === FIXTURE_FORMAT && cached.names === names && ageDays < FIXTURE_MAX_AGE_DAYS) {
    log(`fixture: reusing ${names} certificates in ${dir} (made ${cached.createdAt})`);
    return { ...cached, built: false };
  }
  const entries = await readdir(dir).catch(() => [] as string[]);
  if (cached || entries.includes(BUILDING)) {
    log(`fixture: rebuilding ${dir} (${cached ? `made ${cached.createdAt}, ${cached.names} names, format ${cached.format}` : 'an earlier build was interrupted'})`);
    await rm(dir, { recursive: true, force: true });
  } else if (entries.length > 0) {
    // Never empty a folder the bench did not make (a real config dir passed by mistake).
    throw new Error(`--store ${dir}: the folder is not empty and holds no bench fixture (${MARKER}); pass a new or empty folder`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, BUILDING), `${new Date().toISOString()}\n`);
  const store = await openFsStore(dir);
  const info = await writeFixture(store, names, log);
  await writeFile(marker, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  await rm(join(dir, BUILDING), { force: true });
  return { ...info, built: true };
}

/**
 * Writes the local root (if the store has none) and N leaves into `store`
 * through the CertStore contract. Store-agnostic: this is the step a Redis
 * store would be filled with.
 */
export async function writeFixture(store: CertStore, names: number, log: (msg: string) => void): Promise<FixtureInfo> {
  const t0 = Date.now();
  const clock = systemClock;
  const root = await ensureLocalRoot(store, clock, DEFAULT_LOCAL_SUFFIXES);
  const anchor = new X509Certificate(root.certPem).fingerprint256;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const updatedAt = clock.now().toISOString();
  const all = Array.from({ length: names }, (_, i) => benchName(i + 1));
  let done = 0;
  let lastReport = Date.now();
  await forEachLimit(all, WRITE_CONCURRENCY, async (name) => {
    const bundle = await issueLocalCertificate(root, [name], keyPem, clock, LEAF_VALIDITY_DAYS);
    const meta: LineageMeta = {
      name,
      domains: [name],
      server: LOCAL_ISSUER,
      keyType: 'ecdsa',
      ellipticCurve: 'P-256',
      challenge: { type: 'standalone', port: 80 },
      // What padlock's engine records when it stores a certificate it verified to this root.
      leaf: leafFacts(bundle.fullchain, certificateValidity(bundle.cert), anchor),
      updatedAt,
    };
    await store.putVersion(name, bundle, meta);
    done++;
    if (Date.now() - lastReport > 5000) {
      lastReport = Date.now();
      log(`fixture: ${done}/${names} written (${Math.round((Date.now() - t0) / 1000)} s)`);
    }
  });
  const writeSeconds = Math.round((Date.now() - t0) / 100) / 10;
  log(`fixture: ${names} certificates written in ${writeSeconds} s`);
  return {
    format: FIXTURE_FORMAT,
    names,
    createdAt: updatedAt,
    rootFingerprint256: anchor,
    rootPem: root.certPem,
    leafValidityDays: LEAF_VALIDITY_DAYS,
    sharedLeafKey: true,
    writeSeconds,
  };
}

/**
 * Whether the store still holds exactly the fixture: every bench name and the
 * root at version 1, and nothing else. A run that wrote to the store (a
 * renewal, a replaced root) would otherwise silently change what later
 * rounds measure.
 */
export async function fixtureIntact(store: CertStore, names: number): Promise<{ ok: boolean; detail: string }> {
  const versions = await store.currentVersions();
  const problems: string[] = [];
  if (versions.get(LOCAL_ROOT_LINEAGE) !== 1) problems.push(`${LOCAL_ROOT_LINEAGE} is at version ${versions.get(LOCAL_ROOT_LINEAGE) ?? 'none'}`);
  for (let i = 1; i <= names; i++) {
    const v = versions.get(benchName(i));
    if (v !== 1) {
      problems.push(`${benchName(i)} is at version ${v ?? 'none'}`);
      if (problems.length >= 3) break;
    }
  }
  if (versions.size !== names + 1) problems.push(`${versions.size} lineages instead of ${names + 1}`);
  return problems.length ? { ok: false, detail: problems.join('; ') } : { ok: true, detail: `${names} leaves and the root, all at version 1` };
}

/** Forgets the fixture (its marker), so the next run rebuilds it. */
export async function invalidateFixture(dir: string): Promise<void> {
  await rm(join(dir, MARKER), { force: true });
}

async function readMarker(path: string): Promise<FixtureInfo | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as FixtureInfo;
  } catch {
    return null;
  }
}
