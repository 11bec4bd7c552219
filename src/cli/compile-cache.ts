/**
 * Node's compile cache for the command line: the folder, and turning it on
 * (src/cli/launch.ts says why and when).
 */
import { enableCompileCache } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The compile cache folder for this environment, or undefined for none:
 * `PADLOCK_COMPILE_CACHE` (`off` for none), else
 * `$XDG_CACHE_HOME/padlock/compile-cache`, else
 * `$HOME/.cache/padlock/compile-cache`.
 */
export function compileCacheDir(env: NodeJS.ProcessEnv): string | undefined {
  const set = env['PADLOCK_COMPILE_CACHE'];
  if (set === 'off') return undefined;
  if (set) return set;
  const base = env['XDG_CACHE_HOME'] || (env['HOME'] ? join(env['HOME'], '.cache') : undefined);
  return base ? join(base, 'padlock', 'compile-cache') : undefined;
}

/**
 * Creates the folder (0700) and turns the cache on. Returns the folder when
 * Node uses it; a folder that cannot be made or used costs speed only.
 */
export function startCompileCache(env: NodeJS.ProcessEnv): string | undefined {
  const dir = compileCacheDir(env);
  if (!dir) return undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const result = enableCompileCache(dir);
    return result.directory;
  } catch {
    return undefined;
  }
}
