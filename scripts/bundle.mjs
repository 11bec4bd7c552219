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
// - @peculiar/x509 (and tsyringe, reflect-metadata): its dependency injection
//   container breaks when bundled (the local CA then fails to sign);
// - @aws-sdk/*, @redis/client, nodemailer: large and loaded only when used.
// Everything else padlock imports is bundled, with its license comments kept.
//
//   node scripts/bundle.mjs   (npm run build runs it after tsc)
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist/app`;
rmSync(outdir, { recursive: true, force: true });
await build({
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
  external: ['dockerode', 'ssh2', 'cpu-features', 'undici', 'undici/*', '@peculiar/x509', 'tsyringe', 'reflect-metadata', '@aws-sdk/*', '@redis/client', 'nodemailer'],
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
});
