/**
 * DNS-01 wildcard benchmark: how long one wildcard-plus-apex certificate
 * takes over RFC 2136, padlock against lego (the anchor), in one run.
 *
 *   npx node --import tsx bench/dns/run.ts [--rounds 5] [--child-timeout 180]
 *
 * Both clients issue `*.NAME` and `NAME` (two authorizations at one TXT
 * name) from the same Pebble, whose VA asks the same local Knot DNS server
 * that both update with the same TSIG key, and both wait until the zone's
 * authoritative server answers the record with their default settings
 * (padlock: --dns-propagation-interval 2 s; lego: RFC2136_POLLING_INTERVAL
 * 2 s). One untimed warm-up per client registers its account; rounds then
 * alternate between the clients so drift in machine load hits both.
 *
 * All traffic stays on loopback. lego gets --dns.resolvers, but its
 * propagation check looks the nameservers' names up through the system
 * resolver (/etc/resolv.conf), so lego runs in a private mount namespace
 * (`unshare -m`, root) where /etc/resolv.conf names the local Knot server.
 */
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startPebble } from '../../test/support/pebble.js';
import { startKnot } from '../../test/support/knot.js';
import { runTimed, killAllChildren } from '../issue/child.js';
import { cleanEnv, EMAIL } from '../issue/tools.js';
import { positiveInt } from '../args.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'child-timeout': { type: 'string', default: '180' } } });
const rounds = positiveInt('rounds', values.rounds);
const timeoutMs = positiveInt('child-timeout', values['child-timeout']) * 1000;
process.on('exit', killAllChildren);

const log = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

const knot = await startKnot({ zones: ['example.com'] });
const pebble = await startPebble({ dnsServer: `${knot.address}:53` });
const dir = await mkdtemp(join(tmpdir(), 'padlock-bench-dns-'));
try {
  const creds = join(dir, 'rfc2136.ini');
  await writeFile(creds, knot.credentials(), { mode: 0o600 });
  const resolv = join(dir, 'resolv.conf');
  await writeFile(resolv, `nameserver ${knot.address}\n`);
  // lego's rfc2136 provider solves the two authorizations one after the other, RFC2136_SEQUENCE_INTERVAL
  // apart (60 s by default); `lego-seq1` is lego at its fastest setting, 1 s.
  type Client = 'padlock' | 'lego' | 'lego-seq1';
  const invoke = (client: Client, apex: string) => client === 'padlock'
    ? {
      cmd: join(repoRoot, 'bin', 'padlock'),
      args: ['issue', '-d', `*.${apex}`, '-d', apex, '--dns', 'rfc2136', '--dns-credentials', creds, '--dns-resolvers', knot.address,
        '--server', pebble.directoryUrl, '--server-ca', pebble.serverCaFile, '--trusted-roots', pebble.rootsFile, '--agree-tos', '--email', EMAIL,
        '--config-dir', join(dir, 'padlock'), '--quiet'],
      env: cleanEnv({}),
      cert: join(dir, 'padlock', 'live', apex, 'cert.pem'),
    }
    : {
      cmd: 'unshare',
      args: ['-m', 'sh', '-c', `mount --bind ${resolv} /etc/resolv.conf && exec "$0" "$@"`, 'lego', '--server', pebble.directoryUrl, '--accept-tos', '--email', EMAIL, '--domains', `*.${apex}`, '--domains', apex,
        '--dns', 'rfc2136', '--dns.resolvers', `${knot.address}:53`, '--path', join(dir, 'lego'), 'run'],
      env: cleanEnv({
        LEGO_CA_CERTIFICATES: pebble.serverCaFile, RFC2136_NAMESERVER: `${knot.address}:53`, RFC2136_TSIG_KEY: `${knot.keyName}.`,
        RFC2136_TSIG_SECRET: knot.secret, RFC2136_TSIG_ALGORITHM: 'hmac-sha256.', RFC2136_POLLING_INTERVAL: '2', RFC2136_PROPAGATION_TIMEOUT: '120',
        ...(client === 'lego-seq1' ? { RFC2136_SEQUENCE_INTERVAL: '1' } : {}),
      }),
      // lego names a wildcard's files after the first domain, with "*" as "_".
      cert: join(dir, 'lego', 'certificates', `_.${apex}.crt`),
    };
  let seq = 0;
  const once = async (client: Client): Promise<number> => {
    const apex = `b${process.pid}-${++seq}.example.com`;
    const inv = invoke(client, apex);
    const r = await runTimed(inv.cmd, inv.args, inv.env, timeoutMs);
    const pem = await readFile(inv.cert, 'utf8').catch(() => '');
    const sans = pem ? new X509Certificate(pem).subjectAltName ?? '' : '';
    if (r.code !== 0 || !sans.includes(`DNS:*.${apex}`) || !sans.includes(`DNS:${apex}`)) {
      throw new Error(`${client} did not issue *.${apex} + ${apex} (exit ${r.code}):\n${(r.stderr + r.stdout).trim().split('\n').slice(-10).join('\n')}`);
    }
    return r.seconds * 1000;
  };
  const clients: Client[] = ['padlock', 'lego', 'lego-seq1'];
  for (const c of clients.slice(0, 2)) log(`warm-up ${c}: ${(await once(c)).toFixed(0)} ms (account registration, untimed)`);
  const times: Record<Client, number[]> = { padlock: [], lego: [], 'lego-seq1': [] };
  const loadBefore = loadavg();
  for (let i = 0; i < rounds; i++) {
    for (const c of i % 2 === 0 ? clients : [...clients].reverse()) {
      const ms = await once(c);
      times[c].push(ms);
      log(`round ${i + 1} ${c}: ${ms.toFixed(0)} ms`);
    }
  }
  const loadAfter = loadavg();
  const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  console.log(`DNS-01 wildcard + apex over RFC 2136 (Knot DNS, Pebble), ${rounds} rounds, ${cpus().length} cores`);
  console.log(`load average (1/5/15 min) before: ${loadBefore.map((x) => x.toFixed(2)).join(' / ')}, after: ${loadAfter.map((x) => x.toFixed(2)).join(' / ')}\n`);
  console.log('| client | median | best | worst | every round |');
  console.log('|---|---|---|---|---|');
  for (const c of clients) console.log(`| ${c} | ${fmt(median(times[c]))} | ${fmt(Math.min(...times[c]))} | ${fmt(Math.max(...times[c]))} | ${times[c].map(fmt).join(', ')} |`);
} finally {
  await pebble.stop();
  await knot.stop();
  await rm(dir, { recursive: true, force: true });
}
