/**
 * The command line's entry point (what `bin/padlock` runs): turns on Node's
 * compile cache, then loads the CLI.
 *
 * ## Why a compile cache
 * Every `padlock` command is a new process that parses and compiles the
 * JavaScript it loads before it does anything; for `padlock issue` that was
 * most of its run time (bench/issue). Node's compile cache
 * (`module.enableCompileCache`, Node 22.1+) keeps V8's compiled code on disk
 * and reuses it while the source is unchanged, so every run after the first
 * skips that work. It must be on before the CLI's modules load, hence this
 * file, which imports nothing of padlock's statically but
 * compile-cache.ts and version.ts.
 *
 * ## Where
 * `PADLOCK_COMPILE_CACHE` names the folder, or `off` turns the cache off.
 * Otherwise `$XDG_CACHE_HOME/padlock/compile-cache`, or
 * `$HOME/.cache/padlock/compile-cache` (in the container image `HOME` is
 * `/data`). padlock creates it 0700: compiled code is code, so the folder must
 * not be writable by anyone else, which is also why padlock never uses Node's
 * default (a shared folder under /tmp). Node checks each entry against the
 * source and its own version, and a folder it cannot create or write is
 * skipped without a word: the command then only runs slower.
 */
import { startCompileCache } from './compile-cache.js';
import { VERSION } from '../version.js';

const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '--version') {
  // Scripts and health checks ask often: answered before anything else loads (index.ts answers it too, for dist/cli).
  process.stdout.write(`${VERSION}\n`);
} else {
  startCompileCache(process.env);
  await import('./index.js');
}
