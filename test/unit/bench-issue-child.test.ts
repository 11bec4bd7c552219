import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTimed } from '../../bench/issue/child.js';
import { caddyIssuerFolder, caddyfile } from '../../bench/issue/tools.js';

const exists = (file: string) => async (): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

describe('bench/issue: timing a server until its work is done', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-child-'));
  after(() => rm(dir, { recursive: true, force: true }));

  const cases: Array<{ desc: string; script: (flag: string) => string; ok: boolean; minSeconds: number; maxSeconds: number; stopGraceMs?: number }> = [
    {
      // The server keeps running after its work; the clock stops at the work, and the server is stopped.
      desc: 'stops the clock when the work is done, then stops a server that would run for 30 s',
      script: (flag) => `sleep 0.3; touch ${flag}; sleep 30`,
      ok: true,
      minSeconds: 0.3,
      maxSeconds: 5,
    },
    {
      // Its time still ends at the work, not 2 s later when it is killed.
      desc: 'a server that ignores SIGTERM is killed after the grace period, and its stop is not timed',
      script: (flag) => `trap '' TERM; sleep 0.2; touch ${flag}; while true; do sleep 1; done`,
      ok: true,
      minSeconds: 0.2,
      maxSeconds: 1.5,
      stopGraceMs: 2_000,
    },
    {
      desc: 'a server that exits before its work is done fails',
      script: () => 'sleep 0.1; exit 0',
      ok: false,
      minSeconds: 0.1,
      maxSeconds: 5,
    },
    {
      desc: 'a server whose work is never done fails when its time is up',
      script: () => 'sleep 30',
      ok: false,
      minSeconds: 1,
      maxSeconds: 5,
    },
  ];
  for (const [i, c] of cases.entries()) {
    it(c.desc, { timeout: 10_000 }, async () => {
      const flag = join(dir, `done-${i}`);
      const started = Date.now();
      const r = await runTimed('sh', ['-c', c.script(flag)], process.env, 1_000, undefined, { done: exists(flag), pollMs: 10, stopGraceMs: c.stopGraceMs ?? 300 });
      const wall = (Date.now() - started) / 1000;
      assert.equal(r.ok, c.ok, r.stderr);
      assert.ok(r.seconds >= c.minSeconds && r.seconds <= c.maxSeconds, `timed ${r.seconds} s`);
      // Whatever happened, the call returns long before the 30 s the script would run.
      assert.ok(wall < 5, `returned after ${wall} s`);
    });
  }
});

describe('bench/issue: Caddy set-up', () => {
  const folders: Array<{ desc: string; url: string; want: string }> = [
    { desc: "Pebble's directory on a loopback port (as found in Caddy 2.6's storage)", url: 'https://127.0.0.1:14000/dir', want: '127.0.0.1-14000-dir' },
    { desc: 'a directory with a longer path', url: 'https://acme.example.com/acme/directory', want: 'acme.example.com-acme-directory' },
  ];
  for (const c of folders) it(`names the issuer folder for ${c.desc}`, () => assert.equal(caddyIssuerFolder(c.url), c.want));

  it('writes a Caddyfile on loopback only, with HTTP-01 alone, no admin API, no OCSP, and one site per name', () => {
    const conf = caddyfile({ directoryUrl: 'https://127.0.0.1:14000/dir', caFile: '/ca.pem', httpPort: 5002, httpsPort: 5003, storage: '/s', names: ['a.example.com', 'b.example.com'] });
    for (const line of ['admin off', 'default_bind 127.0.0.1', 'disable_tlsalpn_challenge', 'ocsp_stapling off', 'acme_ca https://127.0.0.1:14000/dir', 'acme_ca_root /ca.pem', 'http_port 5002', 'https_port 5003', 'storage file_system /s']) {
      assert.match(conf, new RegExp(`^\\s*${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), line);
    }
    assert.deepEqual([...conf.matchAll(/^(\S+) \{$/gm)].map((m) => m[1]), ['a.example.com', 'b.example.com']);
  });
});
