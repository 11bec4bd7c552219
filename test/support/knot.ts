/**
 * A real authoritative DNS server (Debian `knot`) for DNS-01 tests and
 * benchmarks: one or more zones, RFC 2136 updates signed with a TSIG key,
 * on port 53 of a loopback address picked at random in 127.200.0.0/14 (so
 * parallel tests never share one, and NS records can name it: a resolver
 * asks nameservers on port 53).
 *
 * `secondary: true` adds a second server (the next address) that serves
 * the same zones from the same files but never receives updates: a
 * nameserver that never catches up, for the propagation timeout test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { requireProgram, runBounded } from './programs.js';

export interface KnotOptions {
  /** Zones to serve; each gets SOA and NS records naming the servers (ns1, ns2 under the first zone). */
  zones: string[];
  /** Extra records per zone, in zone-file syntax relative to the zone (e.g. `_acme-challenge.deleg IN CNAME x.example.com.`). */
  records?: Record<string, string[]>;
  /** A second nameserver that never gets updates. */
  secondary?: boolean;
  /** Zones the TSIG key may not update (a REFUSED update). */
  readOnly?: string[];
}

export interface Knot {
  /** The primary's address; it listens on port 53 there. */
  address: string;
  secondaryAddress?: string;
  keyName: string;
  /** base64 TSIG secret (hmac-sha256); the current one after rotateKey(). */
  readonly secret: string;
  /** `server`, `name`, `secret`, `algorithm` lines for padlock's rfc2136 credentials file. */
  credentials(overrides?: Partial<Record<'server' | 'name' | 'secret' | 'algorithm', string>>): string;
  /** TXT values at `name` on the primary (asked with kdig). */
  txt(name: string, server?: string): Promise<string[]>;
  /** Adds a CNAME at `name` (in `zone`) on the primary. */
  setCname(zone: string, name: string, target: string): Promise<void>;
  /**
   * Sets the TXT values at `name` (in `zone`) on the primary to exactly `values`, with knsupdate and the key: what a fake provider API does to the real zone.
   * Changes apply one at a time in call order, so the last call's values win (two knsupdate processes at once could apply out of order).
   */
  setTxt(zone: string, name: string, values: readonly string[]): Promise<void>;
  /**
   * Gives the TSIG key a new secret on the servers (the config rewritten,
   * then `knotc reload`), as an operator rotating the key on the DNS side
   * would: credentials made before now hold a key the server refuses
   * (BADSIG). Resolves with the new secret once an update signed with it is
   * accepted; the helpers here (setTxt, setCname) use it from then on.
   */
  rotateKey(): Promise<string>;
  logs(): string;
  stop(): Promise<void>;
}

let scripts = 0;
/** Writes a knsupdate script next to the zones and returns its path. */
function scriptFile(dir: string, text: string): string {
  const path = join(dir, `update-${++scripts}.txt`);
  writeFileSync(path, text);
  return path;
}

async function udpFree(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind({ address, port: 53, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

async function pickAddress(): Promise<string> {
  for (let i = 0; i < 50; i++) {
    // Even last octet, so the secondary (+1) stays in the same /24.
    const a = `127.${200 + randomInt(0, 4)}.${randomInt(0, 256)}.${2 * randomInt(1, 120)}`;
    const b = a.replace(/\.(\d+)$/, (_m, d: string) => `.${Number(d) + 1}`);
    if ((await udpFree(a)) && (await udpFree(b))) return a;
  }
  throw new Error('knot: no free loopback address for port 53');
}

/** Starts knotd (and a secondary) and waits until they answer. Throws naming the Debian package when knot is missing. */
export async function startKnot(options: KnotOptions): Promise<Knot> {
  const knotd = requireProgram('knotd', 'knot', 'authoritative DNS server for DNS-01 tests');
  const kdig = requireProgram('kdig', 'knot-dnsutils', 'DNS queries in DNS-01 tests');
  const dir = await mkdtemp(join(tmpdir(), 'padlock-knot-'));
  const address = await pickAddress();
  const secondaryAddress = options.secondary ? address.replace(/\.(\d+)$/, (_m, d: string) => `.${Number(d) + 1}`) : undefined;
  const keyName = 'padlock-test-key';
  let secret = randomBytes(32).toString('base64');
  const [first] = options.zones;
  const nsNames = [`ns1.${first}.`, ...(secondaryAddress ? [`ns2.${first}.`] : [])];
  for (const zone of options.zones) {
    const lines = [
      '$TTL 60',
      `@ IN SOA ns1.${first}. hostmaster.${first}. 1 60 60 600 60`,
      ...nsNames.map((n) => `@ IN NS ${n}`),
      ...(zone === first ? [`ns1 IN A ${address}`, ...(secondaryAddress ? [`ns2 IN A ${secondaryAddress}`] : [])] : []),
      ...(options.records?.[zone] ?? []),
    ];
    await writeFile(join(dir, `${zone}.zone`), lines.join('\n') + '\n');
  }
  const procs: ChildProcess[] = [];
  let out = '';
  const configText = (base: string, listen: string, updates: boolean) => [
    'server:', `    rundir: "${base}"`, `    listen: [ ${listen}@53 ]`, '    udp-workers: 1', '    tcp-workers: 1', '    background-workers: 1',
    'database:', `    storage: "${join(base, 'db')}"`,
    'log:', '  - target: stderr', '    any: info',
    'key:', `  - id: ${keyName}`, '    algorithm: hmac-sha256', `    secret: ${secret}`,
    'acl:', '  - id: update', `    key: ${keyName}`, '    action: update',
    'template:', '  - id: default', `    storage: "${dir}"`, '    zonefile-sync: -1', '    zonefile-load: whole', '    journal-content: changes',
    'zone:',
    ...options.zones.flatMap((z) => [`  - domain: ${z}`, `    file: ${z}.zone`, ...(updates && !options.readOnly?.includes(z) ? ['    acl: update'] : [])]),
  ].join('\n') + '\n';
  const start = async (name: string, listen: string, updates: boolean) => {
    const base = join(dir, name);
    await mkdir(join(base, 'db'), { recursive: true });
    const confFile = join(base, 'knot.conf');
    await writeFile(confFile, configText(base, listen, updates));
    const child = spawn(knotd, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-50_000)));
    child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-50_000)));
    procs.push(child);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await runBounded('kdig', kdig, [`@${listen}`, 'SOA', first!, '+short', '+timeout=1', '+retry=0'], { timeoutMs: 3_000 });
        return;
      } catch (err) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`knotd did not start: ${(err as Error).message}\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const stop = async () => {
    for (const c of procs) {
      if (c.exitCode === null && c.signalCode === null) {
        try {
          process.kill(-c.pid!, 'SIGTERM');
        } catch {
          /* gone */
        }
        await new Promise<void>((r) => {
          const t = setTimeout(() => {
            try {
              process.kill(-c.pid!, 'SIGKILL');
            } catch {
              /* gone */
            }
            r();
          }, 2_000);
          c.once('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await start('primary', address, true);
    if (secondaryAddress) await start('secondary', secondaryAddress, false);
  } catch (err) {
    await stop();
    throw err;
  }
  // knsupdate runs one at a time, in call order (see setTxt).
  let updates: Promise<unknown> = Promise.resolve();
  const update = (script: string, why: string): Promise<string> => {
    const knsupdate = requireProgram('knsupdate', 'knot-dnsutils', why);
    const file = scriptFile(dir, script);
    const run = updates.then(() => runBounded('knsupdate', knsupdate, ['-y', `hmac-sha256:${keyName}:${secret}`, file], { timeoutMs: 5_000 }));
    updates = run.catch(() => undefined);
    return run;
  };
  const rotateKey = async (): Promise<string> => {
    const knotc = requireProgram('knotc', 'knot', 'rotating the TSIG key in DNS-01 tests');
    secret = randomBytes(32).toString('base64');
    const servers: Array<[string, string, boolean]> = [[join(dir, 'primary'), address, true], ...(secondaryAddress ? [[join(dir, 'secondary'), secondaryAddress, false] as [string, string, boolean]] : [])];
    for (const [base, listen, updates] of servers) {
      const confFile = join(base, 'knot.conf');
      await writeFile(confFile, configText(base, listen, updates));
      await runBounded('knotc', knotc, ['-c', confFile, 'reload'], { timeoutMs: 5_000 });
    }
    // A harmless update signed with the new key: accepted once the reload is in force.
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        await update([`server ${address} 53`, `zone ${first}.`, `update delete rotate-probe.${first}. TXT`, 'send', ''].join('\n'), 'rotating the TSIG key in DNS-01 tests');
        return secret;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`knot: the rotated key is not accepted: ${(err as Error).message}\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  return {
    address, ...(secondaryAddress ? { secondaryAddress } : {}), keyName,
    get secret() {
      return secret;
    },
    credentials: (o = {}) => [
      `server = ${o.server ?? address}`, `name = ${o.name ?? keyName}`, `secret = ${o.secret ?? secret}`, `algorithm = ${o.algorithm ?? 'hmac-sha256'}`,
    ].join('\n') + '\n',
    txt: async (name, server = address) => {
      const text = await runBounded('kdig', kdig, [`@${server}`, 'TXT', name, '+short', '+timeout=1', '+retry=1'], { timeoutMs: 5_000 });
      return text.split('\n').map((l) => l.trim()).filter(Boolean).map((l) => l.replace(/^"|"$/g, ''));
    },
    setCname: async (zone, name, target) => {
      await update([`server ${address} 53`, `zone ${zone}.`, `update add ${name}. 60 CNAME ${target}.`, 'send', ''].join('\n'), 'DNS updates in tests');
    },
    setTxt: async (zone, name, values) => {
      await update([`server ${address} 53`, `zone ${zone}.`, `update delete ${name}. TXT`, ...values.map((v) => `update add ${name}. 60 TXT "${v}"`), 'send', ''].join('\n'), 'DNS updates in fake provider APIs');
    },
    rotateKey,
    logs: () => out,
    stop,
  };
}

/**
 * The `dns:` section of a padlock config file (YAML lines) that updates
 * `example.com` on this Knot over rfc2136 with `credentialsFile`, and checks
 * propagation against it; `extraProviders` are more provider entries (YAML
 * lines at the same indent as `- provider: rfc2136`).
 */
export function rfc2136DnsSection(knot: Knot, credentialsFile: string, extraProviders: string[] = []): string[] {
  return [
    'dns:',
    `  resolvers: [${knot.address}]`,
    '  propagationInterval: 0.2',
    '  providers:',
    '    - provider: rfc2136',
    `      credentials: ${credentialsFile}`,
    '      zones: [example.com]',
    ...extraProviders,
  ];
}
