/**
 * TLS-ALPN-01 benchmark, two numbers in one run:
 *
 *   npx node --import tsx bench/tls-alpn/run.ts [--runs 5] [--handshakes 400]
 *
 * 1. `padlock issue` and, as the anchor, `lego run` for one fresh name
 *    against one Pebble, answering HTTP-01 (standalone on Pebble's httpPort)
 *    or TLS-ALPN-01 (standalone on its tlsPort), --runs each in alternating
 *    order after one untimed warm-up per tool that registers its account.
 *    Wall time from spawn to exit; median and range.
 * 2. What reading ClientHellos costs :443: --handshakes full TLS handshakes
 *    (no resumption, ALPN h2), one after another, from a client in this
 *    process to an in-process ProxyServer, with no TLS-ALPN-01 challenge
 *    pending (nothing is read) and with one pending (every ClientHello is
 *    read), alternating in blocks of 50. Mean time per handshake.
 *
 * Everything is on 127.0.0.1. Bounded: each CLI run is killed after 60 s.
 * Prints a JSON report on stdout. Run it under the bench lock (bench/README.md).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startPebble, freePort } from '../../test/support/pebble.js';
import { TestPki, DAY } from '../../test/support/certs.js';
import { runTimed, killAllChildren } from '../issue/child.js';
import { cleanEnv, EMAIL } from '../issue/tools.js';
import { positiveInt } from '../args.js';
import { TokenMap } from '../../src/acme/http01.js';
import { AcmeTlsChallenges } from '../../src/acme/tls-alpn01.js';
import { createChallengeCertificate } from '../../src/acme/tls-alpn-cert.js';
import { ProxyServer } from '../../src/proxy/server.js';
import { CertificateRegistry } from '../../src/tls/contexts.js';
import { silentLogger } from '../../src/log.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, handshakes: { type: 'string', default: '400' } } });
const runs = positiveInt('runs', values.runs);
const handshakes = positiveInt('handshakes', values.handshakes);
const bin = fileURLToPath(new URL('../../bin/padlock', import.meta.url));
process.on('exit', () => killAllChildren());

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

async function issuance(): Promise<Record<string, unknown>> {
  const tlsPort = await freePort();
  const pebble = await startPebble({ tlsPort });
  const dir = await mkdtemp(join(tmpdir(), 'padlock-bench-alpn-'));
  let counter = 0;
  type Challenge = 'http-01' | 'tls-alpn-01';
  // lego 4.9 (Debian) is the anchor: it answers both challenges with its own servers (--http, --tls).
  const legoEnv = cleanEnv({ LEGO_CA_CERTIFICATES: pebble.serverCaFile });
  const issue = async (tool: 'padlock' | 'lego', challenge: Challenge) => {
    const name = `bench-${tool}-${challenge}-${process.pid}-${++counter}.example.com`;
    const r = tool === 'padlock'
      ? await runTimed(bin, ['issue', '-d', name, '--standalone', '--server', pebble.directoryUrl, '--server-ca', pebble.serverCaFile, '--trusted-roots', pebble.rootsFile,
        '--config-dir', join(dir, 'store'), '--agree-tos', '--email', EMAIL,
        ...(challenge === 'http-01'
          ? ['--http-01-port', String(pebble.httpPort), '--http-01-address', '127.0.0.1']
          : ['--preferred-challenges', 'tls-alpn-01', '--tls-alpn-01-port', String(tlsPort), '--tls-alpn-01-address', '127.0.0.1'])], cleanEnv({}), 60_000)
      : await runTimed('lego', ['--server', pebble.directoryUrl, '--accept-tos', '--email', EMAIL, '--domains', name, '--path', join(dir, 'lego'),
        ...(challenge === 'http-01' ? ['--http', '--http.port', `127.0.0.1:${pebble.httpPort}`] : ['--tls', '--tls.port', `127.0.0.1:${tlsPort}`]),
        'run'], legoEnv, 60_000);
    if (!r.ok) throw new Error(`${tool} (${challenge}) failed: ${r.stderr.slice(-2000)}`);
    return r.seconds;
  };
  try {
    // Untimed warm-ups register each tool's account.
    await issue('padlock', 'http-01');
    await issue('lego', 'http-01');
    const rows = ['padlock http-01', 'padlock tls-alpn-01', 'lego http-01', 'lego tls-alpn-01'] as const;
    const times = Object.fromEntries(rows.map((r) => [r, [] as number[]])) as Record<(typeof rows)[number], number[]>;
    for (let i = 0; i < runs; i++) {
      for (const row of i % 2 === 0 ? rows : [...rows].reverse()) {
        const [tool, challenge] = row.split(' ') as ['padlock' | 'lego', Challenge];
        times[row].push(await issue(tool, challenge));
      }
    }
    return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { median: round(median(v)), min: round(Math.min(...v)), max: round(Math.max(...v)), runs: v.map((x) => round(x)) }]));
  } finally {
    await pebble.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

async function handshakeCost(): Promise<Record<string, unknown>> {
  const pki = await TestPki.create();
  const now = Date.now();
  const root = await pki.issue({ cn: 'Bench Root', kind: 'ca', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
  const leaf = await pki.issue({ cn: 'app.example.com', names: ['app.example.com'], issuer: root, kind: 'leaf', notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
  const registry = new CertificateRegistry();
  registry.replace(new Map([['app.example.com', { certPem: leaf.cert, keyPem: leaf.key, version: '1' }]]));
  const challenges = new AcmeTlsChallenges();
  const proxy = new ProxyServer({ httpPort: 0, httpsPort: 0, bind: '127.0.0.1', tokens: new TokenMap(), acmeTls: challenges, certificates: registry, logger: silentLogger, http2: {} });
  const port = (await proxy.listen()).httpsPort;
  const pending = { ...(await createChallengeCertificate('other.example.com', 'x.y')), token: 'x' };
  const one = () => new Promise<void>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'app.example.com', ca: root.cert, ALPNProtocols: ['h2'], session: undefined }, () => {
      s.destroy();
      resolve();
    });
    s.on('error', reject);
  });
  const total = { none: 0, pending: 0 };
  const count = { none: 0, pending: 0 };
  try {
    for (let i = 0; i < 20; i++) await one();
    for (let block = 0; block * 50 < handshakes * 2; block++) {
      const mode = block % 2 === 0 ? 'none' : 'pending';
      if (mode === 'pending') challenges.set('other.example.com', pending);
      else challenges.delete('other.example.com', 'x');
      const start = process.hrtime.bigint();
      for (let i = 0; i < 50; i++) await one();
      total[mode] += Number(process.hrtime.bigint() - start) / 1e6;
      count[mode] += 50;
    }
  } finally {
    await proxy.close({ drainMs: 0 });
    await pki.cleanup();
  }
  return {
    handshakesEach: count,
    msPerHandshake: { noChallengePending: round(total.none / count.none), oneChallengePending: round(total.pending / count.pending) },
  };
}

const loadBefore = loadavg().map((x) => round(x, 2));
const started = new Date().toISOString();
const report = { started, loadBefore, issuance: await issuance(), handshake: await handshakeCost(), loadAfter: loadavg().map((x) => round(x, 2)) };
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
process.exit(0);
