/**
 * A local stand-in for `node:24-bookworm-slim`, for building padlock's
 * Dockerfile on a machine that cannot pull images.
 *
 * 1. `debootstrap --variant=minbase bookworm` (plus openssl, ca-certificates
 *    and libcap2-bin, which the official slim image lacks and the Dockerfile
 *    would otherwise fetch with apt) into a cache dir under /var/tmp, reused
 *    across runs: only the first run downloads, from the Debian mirror named
 *    in this machine's apt sources.
 * 2. The project's Node 24 (npm package `node`, node_modules/node/bin/node) at
 *    /usr/local/bin/node, and this machine's npm at
 *    /usr/local/lib/node_modules/npm (with /usr/local/bin/npm and npx), the
 *    layout of the official node images.
 * 3. `tar -c` of both, streamed into `POST /images/create?fromSrc=-` (docker
 *    import) of the given daemon. Nothing is pulled.
 */
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, rmSync, renameSync, mkdirSync, cpSync, copyFileSync, symlinkSync, chmodSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { runBounded, requireProgram } from './programs.js';
import { repoRoot } from './cli.js';

const execFileP = promisify(execFile);

export const BASE_SUITE = 'bookworm';
/** What the test base adds to minbase. openssl and ca-certificates are runtime needs; libcap2-bin gives `setcap`. */
export const BASE_INCLUDE = ['openssl', 'ca-certificates', 'libcap2-bin'];
const DEBOOTSTRAP_TIMEOUT_MS = 10 * 60_000;
const IMPORT_TIMEOUT_MS = 3 * 60_000;

export interface BaseImage {
  /** `padlock-test-base:<hash>`, present in the daemon. */
  image: string;
  /** The cached debootstrap root (without Node). */
  rootDir: string;
  /** True when the root came from the cache; false when debootstrap ran now. */
  cached: boolean;
  /** How long debootstrap took (0 when cached), in ms. */
  debootstrapMs: number;
  /** How long the tar | import took, in ms. */
  importMs: number;
  /** The mirror used (or that would have been used). */
  mirror: string;
}

/**
 * The Debian mirror this machine's apt uses for `suite`: the first `deb`
 * source (one-line `.list` or deb822 `.sources`) that offers the suite
 * itself. `PADLOCK_DEBIAN_MIRROR` overrides it. Throws when none is found,
 * rather than guessing a host.
 */
export function aptMirror(suite = BASE_SUITE): string {
  const override = process.env.PADLOCK_DEBIAN_MIRROR;
  if (override) return override;
  const files: string[] = [];
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list');
  const d = '/etc/apt/sources.list.d';
  if (existsSync(d)) for (const f of readdirSync(d).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(d, f));
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string): string[] => {
          const m = new RegExp(`^${k}:\\s*(.*)$`, 'mi').exec(stanza.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n'));
          return m ? m[1]!.trim().split(/\s+/) : [];
        };
        if (/^Enabled:\s*no/im.test(stanza)) continue;
        if (!field('Types').includes('deb') || !field('Suites').includes(suite)) continue;
        const uri = field('URIs')[0];
        if (uri) return uri;
      }
    } else {
      for (const raw of text.split('\n')) {
        const line = raw.replace(/#.*/, '').trim();
        // deb [options] URI SUITE COMPONENTS...
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[2] === suite) return m[1]!;
      }
    }
  }
  throw new Error(`base image: no "deb ... ${suite}" source in the apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/); set PADLOCK_DEBIAN_MIRROR to a Debian mirror URL`);
}

/**
 * debootstrap mounts /proc and /sys inside the target while it installs; a
 * killed run leaves them mounted. Unmount everything under `dir` (deepest
 * first) before removing it, so rm never walks into the host's /proc.
 */
async function umountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execFileP('umount', ['-l', m]).catch(() => {});
}

async function removeRoot(dir: string): Promise<void> {
  await umountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Where cached roots live: `PADLOCK_BASE_CACHE` or /var/tmp. */
function cacheParent(): string {
  return process.env.PADLOCK_BASE_CACHE ?? (existsSync('/var/tmp') ? '/var/tmp' : tmpdir());
}

function sha(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 12);
}

/**
 * Runs `debootstrap` once into `/var/tmp/padlock-base-<hash>` (hash of suite,
 * variant, packages and mirror) and returns the dir; later calls find the
 * `.padlock-complete` marker and return at once. A half-made root (killed
 * run) is never used: debootstrap works in a temp dir that is renamed only
 * after it succeeds.
 */
export async function debootstrapRoot(log: (s: string) => void = () => {}): Promise<{ dir: string; cached: boolean; ms: number; mirror: string }> {
  const mirror = aptMirror();
  const arch = (await execFileP('dpkg', ['--print-architecture'])).stdout.trim();
  const dir = join(cacheParent(), `padlock-base-${sha('minbase', BASE_SUITE, arch, mirror, ...BASE_INCLUDE)}`);
  const marker = join(dir, '.padlock-complete');
  if (existsSync(marker)) return { dir, cached: true, ms: 0, mirror };

  const debootstrap = requireProgram('debootstrap', 'debootstrap', 'making the Debian root of the test base image');
  const work = `${dir}.tmp-${process.pid}`;
  await removeRoot(work);
  mkdirSync(work, { recursive: true });
  const t0 = performance.now();
  log(`base image: debootstrap --variant=minbase ${BASE_SUITE} from ${mirror} into ${dir} (once; cached afterwards)`);
  const args = ['--variant=minbase', `--arch=${arch}`, `--include=${BASE_INCLUDE.join(',')}`, BASE_SUITE, work, mirror];
  try {
    // Only the mirror is contacted; proxies from the environment are kept as apt would use them.
    await runBounded(`base image: debootstrap ${args.join(' ')}`, debootstrap, args, { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
    // No package caches in the image; debootstrap already removed its .debs.
    for (const p of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      const full = join(work, p);
      if (!existsSync(full)) continue;
      for (const e of readdirSync(full)) if (e !== 'partial' && e !== 'lock') rmSync(join(full, e), { recursive: true, force: true });
    }
    writeFileSync(join(work, '.padlock-complete'), `${new Date().toISOString()} debootstrap ${args.slice(0, -2).join(' ')} ${mirror}\n`);
    try {
      renameSync(work, dir);
    } catch (e) {
      // Another run finished first: use its root.
      if (!existsSync(marker)) throw e;
      await removeRoot(work);
    }
  } catch (e) {
    await removeRoot(work);
    throw e;
  }
  return { dir, cached: false, ms: performance.now() - t0, mirror };
}

/** The project's Node 24 binary (npm package `node`). */
export function projectNode(): string {
  const p = join(repoRoot, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(p)) throw new Error(`base image: ${p} is missing; run npm ci (the npm package "node" brings Node 24)`);
  return p;
}

/** This machine's npm package dir (any npm >= 10 runs on Node 24). */
function hostNpm(): string {
  for (const p of ['/usr/lib/node_modules/npm', '/usr/local/lib/node_modules/npm', '/usr/share/nodejs/npm']) {
    if (existsSync(join(p, 'bin', 'npm-cli.js'))) return p;
  }
  throw new Error('base image: no npm found (looked in /usr/lib/node_modules/npm, /usr/local/lib/node_modules/npm, /usr/share/nodejs/npm); install the Debian package npm');
}

/**
 * Makes sure `padlock-test-base:<hash>` exists in `docker`: the cached
 * debootstrap root plus Node 24 and npm, imported from a tar stream.
 */
export async function ensureBaseImage(docker: Docker, log: (s: string) => void = () => {}): Promise<BaseImage> {
  requireProgram('tar', 'tar', 'packing the base image');
  const root = await debootstrapRoot(log);
  const node = projectNode();
  const npm = hostNpm();
  const npmVersion = (JSON.parse(readFileSync(join(npm, 'package.json'), 'utf8')) as { version: string }).version;
  const nodeStat = statSync(node);
  const tag = sha(root.dir, node, String(nodeStat.size), String(nodeStat.mtimeMs), npmVersion);
  const image = `padlock-test-base:${tag}`;

  const t0 = performance.now();
  const have = await docker.getImage(image).inspect().then(() => true, () => false);
  if (!have) {
    // A hard-linked copy of the cached root (fast, no data copied; docker import
    // refuses duplicate paths, so one tree), plus Node and npm in /usr/local as
    // in the official node images. Next to the cache, so on the same file system.
    const stage = `${root.dir}.stage-${process.pid}`;
    await removeRoot(stage);
    try {
      await execFileP('cp', ['-al', root.dir, stage]);
      rmSync(join(stage, '.padlock-complete'), { force: true });
      const bin = join(stage, 'usr', 'local', 'bin');
      const lib = join(stage, 'usr', 'local', 'lib', 'node_modules');
      mkdirSync(bin, { recursive: true });
      mkdirSync(lib, { recursive: true });
      copyFileSync(node, join(bin, 'node'));
      chmodSync(join(bin, 'node'), 0o755);
      cpSync(npm, join(lib, 'npm'), { recursive: true, verbatimSymlinks: true });
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(bin, 'npm'));
      symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(bin, 'npx'));
      const tar = spawn('tar', ['--numeric-owner', '--xattrs', '-C', stage, '-c', '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let tarErr = '';
      tar.stderr.on('data', (d: Buffer) => (tarErr += d.toString('utf8')));
      const tarDone = new Promise<number | null>((r) => tar.on('close', (code) => r(code)));
      const signal = AbortSignal.timeout(IMPORT_TIMEOUT_MS);
      const [repo, t] = image.split(':') as [string, string];
      const progress = (await docker.importImage(tar.stdout as unknown as string, { repo, tag: t, abortSignal: signal } as object)) as NodeJS.ReadableStream;
      let last = '';
      await new Promise<void>((resolve, reject) => {
        progress.on('data', (d: Buffer) => (last = d.toString('utf8')));
        progress.on('end', resolve);
        progress.on('error', reject);
      });
      const code = await tarDone;
      if (code !== 0) throw new Error(`base image: tar failed (${code}): ${tarErr}`);
      if (/"error"/.test(last)) throw new Error(`base image: import failed: ${last}`);
      await docker.getImage(image).inspect();
    } finally {
      await removeRoot(stage);
    }
  }
  return { image, rootDir: root.dir, cached: root.cached, debootstrapMs: root.ms, importMs: performance.now() - t0, mirror: root.mirror };
}
