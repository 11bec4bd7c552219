/**
 * Chain verification: padlock's in-process WebPKI verifier against one
 * `openssl verify` process per chain (what padlock ran before), in the same
 * run, on the same chains.
 *
 *   npx node --import tsx bench/verify/run.ts [--iterations 2000] [--openssl-runs 50] [--out bench/results/verify.json]
 *
 * Cases:
 * - a 3-certificate ECDSA P-256 chain (leaf, intermediate, root) from the test PKI, one trusted root;
 * - the same chain with an RSA 2048 leaf and intermediate;
 * - a real Let's Encrypt chain (wikipedia.com, E5, ISRG Root X1) against the
 *   default anchors (the system bundle plus Node's, about 160 roots);
 * - the ECDSA chain with 50 decoys in the pool, and with 50 look-alikes that
 *   share the intermediate's name and key ID (each costs a signature check).
 * Each is warmed up, then timed call by call; openssl runs a subset, its own
 * process per chain, with `-purpose sslserver -attime`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadTrustAnchors, type TrustAnchors } from '../../src/tls/roots.js';
import { verifyCertificate, type VerifyInput } from '../../src/tls/verify.js';
import { makeDecoys } from '../../test/support/webpki-decoys.js';
import { anchorsOf, bundle, issue, makeKey, type TestCertificate } from '../../test/support/webpki-pki.js';
import { positiveInt } from '../args.js';

const { values } = parseArgs({
  options: {
    iterations: { type: 'string', default: '2000' },
    'openssl-runs': { type: 'string', default: '50' },
    out: { type: 'string', default: 'bench/results/verify.json' },
  },
});
const iterations = positiveInt('iterations', values.iterations);
const opensslRuns = positiveInt('openssl-runs', values['openssl-runs']);

interface Stats {
  n: number;
  medianMs: number;
  p90Ms: number;
  bestMs: number;
  worstMs: number;
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  const r = (x: number): number => Math.round(x * 1000) / 1000;
  return { n: s.length, medianMs: r(at(0.5)), p90Ms: r(at(0.9)), bestMs: r(s[0]!), worstMs: r(s[s.length - 1]!) };
}

interface Case {
  name: string;
  input: VerifyInput;
  /** Files for openssl verify; absent when openssl is not run on this case. */
  files?: { leaf: string; chain: string; roots: string };
}

async function timeCase(c: Case): Promise<{ padlock: Stats; openssl?: Stats & { verdict: string }; pathLength: number }> {
  const warm = Math.min(200, iterations);
  let pathLength = 0;
  for (let i = 0; i < warm; i++) pathLength = (await verifyCertificate(c.input)).path.length;
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await verifyCertificate(c.input);
    samples.push(performance.now() - t);
  }
  const out: { padlock: Stats; openssl?: Stats & { verdict: string }; pathLength: number } = { padlock: stats(samples), pathLength };
  if (c.files) out.openssl = timeOpenssl(c.files, c.input.at!);
  return out;
}

/** openssl's time, and its verdict: `OK`, or its first error line (it does not backtrack, so a decoy can fail it). */
function timeOpenssl(files: { leaf: string; chain: string; roots: string }, at: Date): Stats & { verdict: string } {
  const args = ['verify', '-purpose', 'sslserver', '-no-CApath', '-no-CAstore', '-CAfile', files.roots, '-untrusted', files.chain, '-attime', String(Math.floor(at.getTime() / 1000)), files.leaf];
  const first = spawnSync('openssl', args, { encoding: 'utf8' });
  const verdict = first.status === 0 ? 'OK' : (/error \d+ at \d+ depth lookup: .*/.exec(first.stderr)?.[0] ?? `exit ${first.status}`);
  const samples: number[] = [];
  for (let i = 0; i < opensslRuns; i++) {
    const t = performance.now();
    spawnSync('openssl', args);
    samples.push(performance.now() - t);
  }
  return { ...stats(samples), verdict };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'padlock-bench-verify-'));
  try {
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    const write = (name: string, text: string): string => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    const chain3 = (label: string, keyKind: 'p256' | 'rsa2048'): { root: TestCertificate; inter: TestCertificate; leaf: TestCertificate } => {
      const root = issue({ subject: `CN=Bench ${label} Root`, profile: 'ca', key: makeKey(keyKind) });
      const inter = issue({ subject: `CN=Bench ${label} Intermediate`, profile: 'ca', issuer: root, key: makeKey(keyKind) });
      const leaf = issue({ subject: 'CN=app.example.com', issuer: inter, key: makeKey(keyKind), names: ['app.example.com'] });
      return { root, inter, leaf };
    };
    const caseOf = (name: string, c: { root: TestCertificate; inter: TestCertificate; leaf: TestCertificate }, pool: TestCertificate[] = [c.inter], withOpenssl = true): Case => ({
      name,
      input: { cert: c.leaf.pem, chain: bundle(...pool), roots: anchorsOf(c.root), names: ['app.example.com'], at },
      ...(withOpenssl ? { files: { leaf: write(`${name}-leaf.pem`, c.leaf.pem), chain: write(`${name}-chain.pem`, bundle(...pool)), roots: write(`${name}-roots.pem`, c.root.pem) } } : {}),
    });

    const ec = chain3('ECDSA', 'p256');
    const rsa = chain3('RSA', 'rsa2048');
    const decoys = makeDecoys(ec.root, ec.inter, 50);
    const lookalikes = Array.from({ length: 50 }, () => issue({ subject: ec.inter.subject, profile: 'ca', issuer: ec.root, ski: ec.inter.keyId! }));

    const anchorsStart = performance.now();
    const system: TrustAnchors = await loadTrustAnchors();
    const le = readFileSync(new URL('../../test/fixtures/letsencrypt/ecdsa-wikipedia-chain.pem', import.meta.url), 'utf8');
    const leAt = new Date('2024-12-01T00:00:00Z');
    await verifyCertificate({ cert: le, roots: system, at: leAt });
    const anchorsColdMs = Math.round((performance.now() - anchorsStart) * 10) / 10;

    const cases: Case[] = [
      caseOf('ecdsa-p256-3-certs', ec),
      caseOf('rsa-2048-3-certs', rsa),
      {
        name: 'lets-encrypt-ecdsa-system-anchors',
        input: { cert: le, roots: system, at: leAt, names: ['wikipedia.com'] },
        files: { leaf: write('le-leaf.pem', le.split(/(?<=-----END CERTIFICATE-----\n)/)[0]!), chain: write('le-chain.pem', le.split(/(?<=-----END CERTIFICATE-----\n)/)[1]!), roots: write('le-roots.pem', system.pem) },
      },
      caseOf('ecdsa-50-decoys', ec, [...decoys, ec.inter]),
      caseOf('ecdsa-50-lookalikes', ec, [...lookalikes, ec.inter]),
    ];

    const results: Record<string, unknown> = {};
    for (const c of cases) {
      const r = await timeCase(c);
      results[c.name] = r;
      const o = r.openssl ? `  openssl verify median ${r.openssl.medianMs} ms (best ${r.openssl.bestMs}, worst ${r.openssl.worstMs}): ${r.openssl.verdict}` : '';
      console.log(`${c.name.padEnd(36)} padlock median ${r.padlock.medianMs} ms, p90 ${r.padlock.p90Ms}, best ${r.padlock.bestMs}, worst ${r.padlock.worstMs} (path of ${r.pathLength})${o}`);
    }
    console.log(`first call with the default anchors (${system.count} roots: load, parse, index): ${anchorsColdMs} ms`);
    const report = {
      date: new Date().toISOString(),
      node: process.version,
      openssl: execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim(),
      cpus: cpus().length,
      loadavg: loadavg(),
      iterations,
      opensslRuns,
      anchorsColdMs,
      anchorCount: system.count,
      results,
    };
    mkdirSync(dirname(values.out!), { recursive: true });
    writeFileSync(values.out!, JSON.stringify(report, null, 2) + '\n');
    console.log(`wrote ${values.out}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
