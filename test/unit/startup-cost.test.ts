/**
 * What keeps padlock's start-up cheap: the compile cache of the command line
 * (src/cli/compile-cache.ts), the bundle bin/padlock runs (scripts/bundle.mjs),
 * and node:http loaded without Node's bundled undici (src/node-http.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { compileCacheDir } from '../../src/cli/compile-cache.js';
import { workerModule } from '../../src/proxy/cluster.js';
import { padlockBin, repoRoot } from '../support/cli.js';

const run = promisify(execFile);

describe('the compile cache folder', () => {
  it('is PADLOCK_COMPILE_CACHE, off for none, else under XDG_CACHE_HOME or ~/.cache', () => {
    assert.equal(compileCacheDir({ PADLOCK_COMPILE_CACHE: '/srv/cc', HOME: '/home/u' }), '/srv/cc');
    assert.equal(compileCacheDir({ PADLOCK_COMPILE_CACHE: 'off', HOME: '/home/u' }), undefined);
    assert.equal(compileCacheDir({ XDG_CACHE_HOME: '/x/cache', HOME: '/home/u' }), '/x/cache/padlock/compile-cache');
    assert.equal(compileCacheDir({ HOME: '/data' }), '/data/.cache/padlock/compile-cache');
    assert.equal(compileCacheDir({}), undefined);
  });

  it('bin/padlock fills it (0700) on its first run, and leaves nothing with PADLOCK_COMPILE_CACHE=off', async () => {
    const base = await mkdtemp(join(tmpdir(), 'padlock-cc-'));
    try {
      const dir = join(base, 'cache', 'cc');
      const r = await run(padlockBin, ['issue', '--help'], { env: { ...process.env, PADLOCK_COMPILE_CACHE: dir } });
      assert.match(r.stdout, /padlock issue/);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      const entries = await readdir(dir, { recursive: true });
      assert.ok(entries.length > 0, 'the cache holds compiled code after one run');

      const home = join(base, 'home');
      await run(padlockBin, ['issue', '--help'], { env: { ...process.env, HOME: home, XDG_CACHE_HOME: '', PADLOCK_COMPILE_CACHE: 'off' } });
      await assert.rejects(stat(join(home, '.cache')), { code: 'ENOENT' });
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});

describe('the bundle', () => {
  it('is what bin/padlock runs, with the proxy worker beside it', async () => {
    const launcher = await readFile(padlockBin, 'utf8');
    assert.match(launcher, /dist\/app\/padlock\.js/);
    const app = join(repoRoot, 'dist', 'app');
    const files = await readdir(app);
    assert.ok(files.includes('padlock.js') && files.includes('worker.js'), files.join(' '));
    // A chunk of the bundle finds the worker next to itself; tsc's output and the sources next to cluster.*.
    assert.equal(workerModule(join(app, 'chunk-ABC123.js')), join(app, 'worker.js'));
    assert.equal(workerModule('/r/dist/proxy/cluster.js'), '/r/dist/proxy/worker.js');
    assert.equal(workerModule('/r/src/proxy/cluster.ts'), '/r/src/proxy/worker.ts');
  });
});

describe('node:http', () => {
  it('is never imported as an ES module by padlock, which would load Node\'s bundled undici (about 13 MB)', async () => {
    const src = join(repoRoot, 'src');
    const offenders: string[] = [];
    for (const file of await readdir(src, { recursive: true })) {
      if (!file.endsWith('.ts')) continue;
      const text = await readFile(join(src, file), 'utf8');
      for (const line of text.split('\n')) {
        if (/^\s*import\s+(?!type\b)[^;]*from\s+'(node:)?http'/.test(line) || /import\(\s*'(node:)?http'\s*\)/.test(line)) offenders.push(`${relative(repoRoot, join(src, file))}: ${line.trim()}`);
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('a padlock process that forwards HTTP does not load it', async () => {
    const script = [
      "await import('./dist/proxy/server.js');",
      "await import('./dist/proxy/health-check.js');",
      "console.log(JSON.stringify(process.moduleLoadList.filter((m) => m.includes('deps/undici'))));",
    ].join('\n');
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot });
    assert.deepEqual(JSON.parse(r.stdout), []);
  });
});

describe('isIP (src/ip.ts)', () => {
  it('answers exactly as node:net does, for addresses, names and near misses', async () => {
    const { isIP: nodeIsIP } = await import('node:net');
    const { isIP } = await import('../../src/ip.js');
    const inputs = ['127.0.0.1', '203.0.113.10', '::1', '::', '2001:db8::10', '::ffff:192.0.2.1', 'fe80::1%eth0', '[::1]', '1.2.3.4:80',
      '256.1.1.1', '1.2.3', '01.2.3.4', 'example.com', 'n0.example.org', 'xn--n3h.example', '*.example.com', 'localhost', '', ' 1.2.3.4', 'a:b', ':::', '1::2::3', '1.2.3.4.5'];
    for (const text of inputs) assert.equal(isIP(text), nodeIsIP(text), JSON.stringify(text));
  });
});

describe('the bundle leaves out what padlock never calls', () => {
  it("has neither axios nor node-forge (acme-client's transport and forge helpers, replaced by stubs)", async () => {
    const meta = JSON.parse(await readFile(join(repoRoot, 'dist', 'app', 'meta.json'), 'utf8')) as { inputs: Record<string, unknown> };
    const inputs = Object.keys(meta.inputs);
    assert.ok(inputs.some((f) => f.includes('node_modules/acme-client/src/client.js')), 'acme-client itself is bundled');
    assert.deepEqual(inputs.filter((f) => /node_modules\/(axios|node-forge)\//.test(f)), []);
  });

  it("builds string-width's Intl.Segmenter and emoji expression only when a width is asked for, not at load", async () => {
    const app = join(repoRoot, 'dist', 'app');
    let deferred = 0;
    for (const file of await readdir(app)) {
      if (!file.endsWith('.js')) continue;
      const text = await readFile(join(app, file), 'utf8');
      // Minified: `var segmenter=new Intl.Segmenter` would build it at load; `(padlockSegmenter??=new Intl.Segmenter)` on first use.
      assert.doesNotMatch(text, /\bsegmenter\d*\s*=\s*new Intl\.Segmenter/, file);
      deferred += text.match(/\?\?=\s*new Intl\.Segmenter/g)?.length ?? 0;
    }
    assert.ok(deferred >= 1, 'string-width is bundled with its segmenter deferred');
    // Help text is laid out exactly as before.
    const r = await run(padlockBin, ['issue', '--help']);
    assert.match(r.stdout, /^padlock issue/m);
    assert.match(r.stdout, /--preferred-challenges/);
  });
});
