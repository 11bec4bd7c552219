/** Keeping dist/ current before a benchmark runs bin/padlock (which runs dist/). */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTimed } from './issue/child.js';
import { toolEnv } from './proxy/load.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time (ms) of any file under `dir`. */
async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) newest = Math.max(newest, (await stat(join(e.parentPath, e.name))).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ when it is missing or older than any file under src/ (or
 * tsconfig.json); says which, for the bench's log. Throws with the build's
 * last 20 lines when it fails.
 */
export async function ensureBuilt(log: (line: string) => void): Promise<string> {
  const built = await stat(join(repoRoot, 'dist', 'cli', 'index.js')).then((s) => s.mtimeMs, () => 0);
  const source = Math.max(await newestMtime(join(repoRoot, 'src')), (await stat(join(repoRoot, 'tsconfig.json'))).mtimeMs);
  if (built >= source) return 'dist/ is current';
  log(built ? 'dist/ is older than src/: npm run build' : 'dist/ is missing: npm run build');
  const r = await runTimed('npm', ['run', 'build'], toolEnv(), 300_000, repoRoot);
  if (!r.ok) throw new Error(`npm run build failed:\n${(r.stdout + r.stderr).trimEnd().split('\n').slice(-20).join('\n')}`);
  return `built (${r.seconds.toFixed(1)} s)`;
}
