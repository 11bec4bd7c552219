// Bundles the compiled CLI (dist/, from tsc) into dist/app/: what bin/padlock runs.
//
// Why: a Node process loads each ES module file on its own (resolve, read,
// parse, link), and `padlock issue` loaded about 340 of them before it sent
// its first ACME request. One bundle with shared chunks, plus Node's compile
// cache (src/cli/launch.ts), halved the time of one issuance (bench/issue,
// docs/BENCHMARKS.md). Dynamic imports stay dynamic (`splitting`), so each
// command still loads only what it uses.
//
// Left out of the bundle (`external`), loaded from node_modules as before:
// - dockerode (and ssh2, cpu-features): native optional parts;
// - undici: padlock loads parts of it by path (src/proxy/undici-parts.ts);
// - @aws-sdk/*, @redis/client, nodemailer: large and loaded only when used.
// Everything else padlock imports is bundled, with its license comments kept,
// and minified in whitespace and syntax only: names stay, so stack traces
// still name functions, and PADLOCK_SOURCE_MAPS=1 maps them to src/. Module
// source stays in memory for the life of a process; this saved about 7 MB of
// RSS in every padlock process (bench: idle RSS, docs/BENCHMARKS.md), where
// renaming identifiers too would have saved under 1 MB more.
//
// Two parts of acme-client that padlock never calls are replaced by stubs that
// throw if called (scripts/bundle-stubs/): its axios instance (padlock brings its
// own transport, src/acme/client.ts) and its node-forge helpers (`acme.forge`).
// The issuance tests run through this bundle, so a call into either fails there.
//
// string-width (under yargs' help layout) builds an `Intl.Segmenter` and a
// `\p{RGI_Emoji}` regular expression when it loads: about 30 ms of every
// command's start and 5 MB of ICU data in every process, padlock run included,
// for widths that only help text needs (and ASCII text skips both). The bundle
// builds each on its first use instead (`lazyStringWidth`); the build fails if a
// string-width version no longer has the code this rewrites.
//
//   node scripts/bundle.mjs   (npm run build runs it after tsc)
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/app`;

/** acme-client's modules that padlock's bundle replaces (see above): import specifier -> stub. */
const ACME_CLIENT_STUBS = { './axios': 'acme-client-axios.cjs', './crypto/forge': 'acme-client-forge.cjs' };
const stubs = {
  name: 'padlock-acme-client-stubs',
  setup(b) {
    b.onResolve({ filter: /^\.\/(axios|crypto\/forge)$/ }, (args) => {
      if (!/[\\/]node_modules[\\/]acme-client[\\/]src[\\/]/.test(args.importer)) return undefined;
      return { path: join(root, 'scripts', 'bundle-stubs', ACME_CLIENT_STUBS[args.path]) };
    });
  },
};

/** The module-level constructions of string-width (7.x and 8.x) that the bundle defers to first use. */
const STRING_WIDTH_EAGER = [
  {
    eager: 'const segmenter = new Intl.Segmenter();',
    lazy: 'let padlockSegmenter; const segmenter = { segment: (text) => (padlockSegmenter ??= new Intl.Segmenter()).segment(text) };',
    required: true,
  },
  {
    eager: 'const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;',
    lazy: 'let padlockRgiEmoji; const rgiEmojiRegex = { test: (text) => (padlockRgiEmoji ??= /^\\p{RGI_Emoji}$/v).test(text) };',
    required: false,
  },
];
const lazyStringWidth = {
  name: 'padlock-lazy-string-width',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/](.+[\\/])?string-width[\\/]index\.js$/ }, async (args) => {
      let text = await readFile(args.path, 'utf8');
      for (const { eager, lazy, required } of STRING_WIDTH_EAGER) {
        if (text.includes(eager)) text = text.replace(eager, lazy);
        else if (required) throw new Error(`${args.path}: no "${eager}" to defer; check scripts/bundle.mjs against this string-width version`);
      }
      if (/^const \w+ = new Intl\./m.test(text)) throw new Error(`${args.path}: builds an Intl object at load that scripts/bundle.mjs does not defer`);
      return { contents: text, loader: 'js' };
    });
  },
};

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { padlock: 'dist/cli/launch.js', worker: 'dist/proxy/worker.js' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  chunkNames: 'chunk-[hash]',
  // CommonJS dependencies call require(); an ES module has none, so each output file makes its own.
  banner: { js: "import { createRequire as __padlockCreateRequire } from 'node:module'; const require = __padlockCreateRequire(import.meta.url);" },
  external: ['dockerode', 'ssh2', 'cpu-features', 'undici', 'undici/*', '@aws-sdk/*', '@redis/client', 'nodemailer'],
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  plugins: [stubs, lazyStringWidth],
  metafile: true,
  logLevel: 'warning',
});
// Which files went into which output (read by test/unit/startup-cost.test.ts, and by esbuild's analyzer).
writeFileSync(join(outdir, 'meta.json'), JSON.stringify(result.metafile));
