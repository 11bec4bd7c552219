/**
 * What the CLI commands share: options, the store, trust, progress output,
 * and error reporting. Commands stay thin: parse, validate once, call the core.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { PadlockError, asPadlockError, errorMessage } from '../errors.js';
import type { ProgressEvent, LineageSpec } from '../certificates/issuer.js';
import type { CertStore } from '../store/store.js';
import { openFsStore } from '../store/fs-store.js';
import { systemClock } from '../clock.js';
import { dns01Solver } from '../acme/dns01-solver.js';
import { dnsSettingsProblems, type DnsChallengeSettings } from '../dns/settings.js';
import { DNS_PROVIDER_KINDS } from '../dns/providers/provider.js';
import { createLogger, silentLogger, type Logger } from '../log.js';
import { prettyWriter } from '../observe/pretty-log.js';
import { Http01Solver, StandaloneResponder, WebrootResponder } from '../acme/http01.js';
import { StandaloneAcmeTlsPublisher, TlsAlpn01Solver } from '../acme/tls-alpn01.js';
import type { ChallengeSolver } from '../acme/solver.js';
import type { LineageMeta } from '../store/store.js';
import { CertificateEngine } from '../certificates/engine.js';
import { IssuerSet } from '../certificates/issuers.js';
import { AriSources } from '../certificates/ari-poller.js';
import { EngineEventBus } from '../events.js';
import { loadTrustAnchors } from '../tls/roots.js';
import { cliEnvironment } from '../config/cli-env.js';
import { openConfiguredStore } from '../store/open-store.js';
import { isRedisStore, storeConfigProblems } from '../store/store-config.js';
import { DEFAULT_STORE_PREFIX } from '../store/redis-prefix.js';

import { LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING } from '../acme/directories.js';

export function defaultConfigDir(): string {
  return cliEnvironment().configDir ?? '/etc/padlock';
}

/** Options every command that reads the store has. */
export function withStoreOptions<T>(y: Argv<T>) {
  return y
    .option('config-dir', { type: 'string', default: defaultConfigDir(), defaultDescription: '$PADLOCK_CONFIG_DIR or /etc/padlock', describe: 'Where certificates, accounts and state live (certbot layout: live/NAME/*.pem)' })
    .option('store', { type: 'string', defaultDescription: '$PADLOCK_STORE, else --config-dir', describe: 'A Redis URL that several padlock hosts share (redis://:PASSWORD@HOST:6379/0, rediss://..., redis+sentinel://..., redis+cluster://...), instead of --config-dir' })
    .option('store-prefix', { type: 'string', defaultDescription: '$PADLOCK_STORE_PREFIX or padlock:', describe: 'Prefix of every Redis key' })
    .option('store-ca', { type: 'string', defaultDescription: '$PADLOCK_STORE_CA', describe: "PEM file of the CA that signs the Redis server's TLS certificate (rediss://)" })
    .option('store-key-file', { type: 'string', defaultDescription: '$PADLOCK_STORE_KEY_FILE or $PADLOCK_STORE_KEY', describe: 'File (0600) with the key that encrypts private keys in Redis' })
    .option('json', { type: 'boolean', default: false, describe: 'Print one JSON document on stdout instead of text' });
}

/** The store options withStoreOptions adds. */
export interface StoreArgs {
  'config-dir': string;
  store?: string | undefined;
  'store-prefix'?: string | undefined;
  'store-ca'?: string | undefined;
  'store-key-file'?: string | undefined;
}

/** Options for commands that talk to an ACME CA. */
export function withAcmeOptions<T>(y: Argv<T>) {
  return y
    .option('server', { type: 'string', describe: "ACME directory URL (default: Let's Encrypt production)" })
    .option('staging', { type: 'boolean', default: false, describe: "Use Let's Encrypt's staging CA" })
    .option('server-ca', { type: 'string', describe: "PEM file trusted for the ACME server's own HTTPS (a private CA such as Pebble or step-ca); also $PADLOCK_SERVER_CA" })
    .option('email', { alias: 'm', type: 'string', describe: 'Contact email for the ACME account' })
    .option('agree-tos', { type: 'boolean', default: false, describe: "Agree to the CA's terms of service" })
    .option('eab-kid', { type: 'string', describe: 'External account binding key id (CAs that require EAB)' })
    .option('eab-hmac-key', { type: 'string', describe: 'External account binding HMAC key (base64url)' })
    .option('trusted-roots', { type: 'string', describe: 'PEM file of extra trust anchors for verifying issued chains (added to the system store)' })
    .option('timeout', { type: 'number', default: 30, describe: 'Seconds to wait for any one request to the CA' })
    .option('non-interactive', { alias: 'n', type: 'boolean', default: true, describe: 'Accepted for certbot compatibility; padlock never prompts' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'Print errors only' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Also print JSON log lines on stderr' });
}

/** Options for how the challenge is answered: HTTP-01 (standalone, webroot), TLS-ALPN-01 (standalone) or DNS-01 (--dns). */
export function withChallengeOptions<T>(y: Argv<T>) {
  return y
    .option('preferred-challenges', { type: 'string', describe: 'The challenge to answer: http-01 (default) or tls-alpn-01 (port 443, when port 80 is closed)' })
    .option('tls-alpn-01-port', { type: 'number', default: 443, describe: 'Port for TLS-ALPN-01 with --standalone' })
    .option('tls-alpn-01-address', { type: 'string', describe: 'Address for TLS-ALPN-01 with --standalone (default: all)' })
    .option('standalone', { type: 'boolean', describe: 'Answer the challenge with padlock\'s own server (default)' })
    .option('webroot', { type: 'boolean', describe: 'Answer HTTP-01 with files under an existing web server\'s document root (-w)' })
    .option('webroot-path', { alias: 'w', type: 'string', describe: 'Document root for --webroot' })
    .option('http-01-port', { type: 'number', default: 80, describe: 'Port for --standalone' })
    .option('http-01-address', { type: 'string', describe: 'Address for --standalone (default: all)' })
    .option('dns', { type: 'string', choices: [...DNS_PROVIDER_KINDS], describe: 'Answer DNS-01 through this DNS provider (needed for wildcards)' })
    .option('dns-credentials', { type: 'string', describe: "The DNS provider's credentials file (mode 0600); default: its environment variables" })
    .option('dns-exec', { type: 'string', describe: 'With --dns exec: the program called as PROGRAM present|cleanup FQDN VALUE' })
    .option('dns-resolvers', { type: 'string', describe: 'HOST[:PORT],... servers asked for the zone, its nameservers and CNAMEs (default: the system resolvers)' })
    .option('dns-propagation-timeout', { type: 'number', default: 120, describe: 'Seconds to wait until every authoritative nameserver answers the TXT record' })
    .option('dns-propagation-interval', { type: 'number', default: 2, describe: 'Seconds between two rounds of that check' });
}

/** The options withChallengeOptions adds. */
export interface ChallengeArgs {
  standalone?: boolean | undefined;
  webroot?: boolean | undefined;
  'webroot-path'?: string | undefined;
  'http-01-port': number;
  'http-01-address'?: string | undefined;
  'preferred-challenges'?: string | undefined;
  'tls-alpn-01-port': number;
  'tls-alpn-01-address'?: string | undefined;
  dns?: string | undefined;
  'dns-credentials'?: string | undefined;
  'dns-exec'?: string | undefined;
  'dns-resolvers'?: string | undefined;
  'dns-propagation-timeout': number;
  'dns-propagation-interval': number;
}

/** The challenge settings the options describe, every problem added to `problems`. */
export function challengeFromArgs(args: ChallengeArgs, problems: Problems): LineageMeta['challenge'] {
  if (args.dns !== undefined) {
    if (args.webroot || args.standalone || args['webroot-path']) problems.add('--dns answers DNS-01; --standalone and --webroot answer HTTP-01: pass one');
    const settings: DnsChallengeSettings = {
      type: 'dns-01',
      provider: args.dns as DnsChallengeSettings['provider'],
      ...(args['dns-credentials'] ? { credentials: resolve(args['dns-credentials']) } : {}),
      ...(args['dns-exec'] ? { exec: resolve(args['dns-exec']) } : {}),
      ...(args['dns-resolvers'] ? { resolvers: args['dns-resolvers'].split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      propagationTimeout: args['dns-propagation-timeout'],
      propagationInterval: args['dns-propagation-interval'],
    };
    for (const p of dnsSettingsProblems(settings, DNS_FLAGS)) problems.add(p);
    return settings;
  }
  for (const flag of ['dns-credentials', 'dns-exec', 'dns-resolvers'] as const) if (args[flag] !== undefined) problems.add(`--${flag} needs --dns PROVIDER`);
  if (args.webroot && args.standalone) problems.add('--webroot and --standalone are two ways to answer the challenge; pass one');
  const webroot = args.webroot || (args['webroot-path'] !== undefined && !args.standalone);
  if (webroot && !args['webroot-path']) problems.add('--webroot needs -w DIR, the document root your web server serves for these names');
  const port = args['http-01-port'];
  problems.check(Number.isInteger(port) && port > 0 && port < 65536, `--http-01-port ${port} is not a port (1-65535)`);
  const tlsAlpn = preferredChallenge(args['preferred-challenges'], problems) === 'tls-alpn-01';
  const tlsPort = args['tls-alpn-01-port'];
  problems.check(Number.isInteger(tlsPort) && tlsPort > 0 && tlsPort < 65536, `--tls-alpn-01-port ${tlsPort} is not a port (1-65535)`);
  if (tlsAlpn && webroot) problems.add('--webroot answers HTTP-01 with files; TLS-ALPN-01 needs padlock\'s own TLS server: drop --webroot/-w, or use --preferred-challenges http-01');
  if (tlsAlpn) return { type: 'tls-alpn-01', port: tlsPort, ...(args['tls-alpn-01-address'] ? { address: args['tls-alpn-01-address'] } : {}) };
  return webroot
    ? { type: 'webroot', webroot: args['webroot-path']! }
    : { type: 'standalone', port, ...(args['http-01-address'] ? { address: args['http-01-address'] } : {}) };
}

const DNS_FLAGS = {
  provider: '--dns', credentials: '--dns-credentials', exec: '--dns-exec', resolvers: '--dns-resolvers',
  timeout: '--dns-propagation-timeout', interval: '--dns-propagation-interval',
};

export interface AcmeArgs {
  server?: string | undefined;
  staging: boolean;
  'server-ca'?: string | undefined;
  email?: string | undefined;
  'agree-tos': boolean;
  'eab-kid'?: string | undefined;
  'eab-hmac-key'?: string | undefined;
  'trusted-roots'?: string | undefined;
  timeout: number;
  quiet: boolean;
  verbose: boolean;
}

/** Collects every problem with the options, then throws them all at once. */
export class Problems {
  private readonly list: string[] = [];
  add(problem: string): void {
    this.list.push(problem);
  }
  check(ok: boolean, problem: string): void {
    if (!ok) this.list.push(problem);
  }
  throwIfAny(): void {
    if (this.list.length) {
      throw new PadlockError('CONFIG_INVALID', this.list.length === 1 ? this.list[0]! : `${this.list.length} problems:\n  - ${this.list.join('\n  - ')}`, {
        details: { problems: [...this.list] },
      });
    }
  }
}

/** The directory URL the options name, validated. */
export function resolveServer(args: AcmeArgs & { 'dry-run'?: boolean }, problems: Problems): string {
  if (args.server && args.staging) problems.add('--server and --staging both name a CA; pass only one');
  // As certbot does: a dry run never touches Let's Encrypt production.
  const url = args.server ?? (args.staging || args['dry-run'] ? LETSENCRYPT_STAGING : LETSENCRYPT_PRODUCTION);
  try {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') problems.add(`--server ${url} must be an https:// URL`);
  } catch {
    problems.add(`--server "${url}" is not a URL`);
  }
  return url;
}

export function checkEmail(email: string | undefined, problems: Problems): void {
  if (email !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) problems.add(`--email "${email}" is not an email address`);
}

export function checkEab(args: AcmeArgs, problems: Problems): { kid: string; hmacKey: string } | undefined {
  const kid = args['eab-kid'];
  const hmacKey = args['eab-hmac-key'];
  if (!kid && !hmacKey) return undefined;
  if (!kid || !hmacKey) {
    problems.add('external account binding needs both --eab-kid and --eab-hmac-key');
    return undefined;
  }
  return { kid, hmacKey };
}

/** Reads a PEM file an option names, or says which option and file failed. */
export async function readPemOption(option: string, path: string | undefined): Promise<string | undefined> {
  if (!path) return undefined;
  try {
    const text = await readFile(path, 'utf8');
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM certificate in it');
    return text;
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `${option} ${path}: cannot use it (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`, { cause: err });
  }
}

/**
 * Opens the store the options name: `--store` (else `$PADLOCK_STORE`) when
 * it is a Redis URL, else the folder `--config-dir`, through the same rules
 * and checks as `padlock run` (store-config.ts; every problem at once, never
 * a password). `PADLOCK_FAULT_KILL_AT` (tests only) names a filesystem
 * store fault point at which the process kills itself with SIGKILL, to prove
 * that a crash mid-write never corrupts the store. Close it when done.
 */
export async function openStore(args: StoreArgs, options: { folderOnly?: boolean } = {}): Promise<CertStore> {
  if (options.folderOnly) return openFsStore(args['config-dir'], { clock: systemClock });
  const env = cliEnvironment();
  const config = {
    store: args.store ?? env.store ?? '',
    storePrefix: args['store-prefix'] ?? env.storePrefix ?? DEFAULT_STORE_PREFIX,
    ...(args['store-ca'] ?? env.storeCa ? { storeCa: (args['store-ca'] ?? env.storeCa)! } : {}),
    ...(args['store-key-file'] ?? env.storeKeyFile ? { storeKeyFile: (args['store-key-file'] ?? env.storeKeyFile)! } : {}),
  };
  const problems = storeConfigProblems(config, process.env);
  if (problems.length) throw new PadlockError('CONFIG_INVALID', problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  if (isRedisStore(config)) return openConfiguredStore({ ...config, configDir: args['config-dir'] }, process.env, { clock: systemClock });
  const killAt = process.env['PADLOCK_FAULT_KILL_AT'];
  return openFsStore(args['config-dir'], {
    ...(killAt ? { faults: (point: string) => { if (point === killAt) process.kill(process.pid, 'SIGKILL'); } } : {}),
    clock: systemClock,
  });
}

/**
 * The logger of a one-shot command: with --verbose every JSON line on
 * stderr; with --quiet nothing; otherwise warnings and errors only, as
 * readable lines on stderr (a CA's odd answer, a clamped Retry-After, a
 * state that could not be written), so nothing worth knowing is silent.
 */
export function makeLogger(args: { verbose?: boolean; quiet?: boolean }): Logger {
  if (args.verbose) return createLogger({ level: 'debug' });
  if (args.quiet) return silentLogger;
  return createLogger({ level: 'warn', write: prettyWriter(process.stderr) });
}

/** Prints progress lines on stderr (stdout stays clean for --json and scripts). */
export function progressPrinter(args: { quiet?: boolean }): (e: ProgressEvent) => void {
  if (args.quiet) return () => {};
  return (e) => process.stderr.write(`  ${e.step.padEnd(11)} ${e.message}\n`);
}

/** Prints an error in the command's output mode and sets the exit code. A foreign error is reported as UNEXPECTED, never as another code. */
export function reportError(err: unknown, json: boolean, exitCode = 1): void {
  const e = asPadlockError(err);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2) + '\n');
  process.stderr.write(`padlock: ${e.message} [${e.code}]\n`);
  process.exitCode = exitCode;
}

/**
 * The challenge type `--preferred-challenges` names (certbot's spelling:
 * `http-01`/`http`, `tls-alpn-01`/`tls-alpn`), `http-01` when absent. padlock
 * answers one type per lineage, so a list must name one type.
 */
export function preferredChallenge(value: string | undefined, problems: Problems): 'http-01' | 'tls-alpn-01' {
  if (value === undefined) return 'http-01';
  const known: Record<string, 'http-01' | 'tls-alpn-01'> = { 'http-01': 'http-01', http: 'http-01', 'tls-alpn-01': 'tls-alpn-01', 'tls-alpn': 'tls-alpn-01' };
  const types = [...new Set(value.split(',').map((v) => v.trim().toLowerCase()).filter(Boolean).map((v) => known[v] ?? v))];
  const unknown = types.filter((t) => t !== 'http-01' && t !== 'tls-alpn-01');
  if (unknown.length) problems.add(`--preferred-challenges ${JSON.stringify(value)}: padlock answers http-01 or tls-alpn-01, not ${unknown.join(', ')}`);
  else if (types.length !== 1) problems.add(`--preferred-challenges ${JSON.stringify(value)}: name one challenge type (padlock answers one per certificate)`);
  return types[0] === 'tls-alpn-01' ? 'tls-alpn-01' : 'http-01';
}

/** The solver a lineage's challenge settings describe: HTTP-01 (standalone, webroot), TLS-ALPN-01 or DNS-01. */
export function solverFor(challenge: LineageMeta['challenge'], context: { store: CertStore; logger: Logger }): ChallengeSolver {
  if (challenge.type === 'dns-01') return dns01Solver(challenge, { ...context, clock: systemClock });
  if (challenge.type === 'tls-alpn-01') return new TlsAlpn01Solver(new StandaloneAcmeTlsPublisher(challenge.port, challenge.address));
  return new Http01Solver(challenge.type === 'webroot' ? new WebrootResponder(challenge.webroot) : new StandaloneResponder(challenge.port, challenge.address));
}

/** The certificate engine as a one-shot command uses it, and what to release afterwards. */
export interface CliEngine {
  engine: CertificateEngine;
  store: CertStore;
  events: EngineEventBus;
  /** Closes the solvers (ports, webroot files) and the CA connections. */
  close(): Promise<void>;
}

/**
 * Builds the engine for a command: the store at `configDir`, each lineage's
 * CA with its own trust settings (`serverCa` overrides the stored
 * `--server-ca`, then `PADLOCK_SERVER_CA`), one HTTP-01 solver per challenge
 * setting shared by every order of the run, and deploy hooks.
 */
export async function openEngine(opts: {
  store: StoreArgs;
  logger: Logger;
  timeoutMs: number;
  serverCa?: string | undefined;
  hookTimeoutMs?: number;
}): Promise<CliEngine> {
  const store = await openStore(opts.store);
  const clock = systemClock;
  const events = new EngineEventBus((event, err) => opts.logger.warn('an event listener failed', { event, error: errorMessage(err) }));
  const ari = new AriSources({ timeoutMs: opts.timeoutMs, logger: opts.logger });
  const issuers = new IssuerSet({
    clock, logger: opts.logger, ari, timeoutMs: opts.timeoutMs,
    serverCa: (spec: LineageSpec) => readPemOption('--server-ca', opts.serverCa ?? spec.serverCa ?? cliEnvironment().serverCa),
    roots: (spec: LineageSpec) => loadTrustAnchors(spec.trustedRoots ? { extraFiles: [spec.trustedRoots] } : {}),
  });
  const solvers = new Map<string, ChallengeSolver>();
  const engine = new CertificateEngine({
    store, clock, logger: opts.logger, events,
    issuerFor: (spec) => issuers.for(spec),
    solversFor: (spec) => {
      const key = JSON.stringify(spec.challenge);
      let solver = solvers.get(key);
      if (!solver) solvers.set(key, (solver = solverFor(spec.challenge, { store, logger: opts.logger })));
      return [solver];
    },
    hooks: { timeoutMs: opts.hookTimeoutMs ?? 300_000 },
  });
  return {
    engine, store, events,
    close: async () => {
      await Promise.all([...solvers.values()].map((s) => s.close()));
      issuers.close();
      await store.close();
    },
  };
}

/** Prints the result: JSON on stdout with --json, else the human line on stdout. */
export function output(args: { json: boolean; quiet?: boolean }, json: Record<string, unknown>, human: string): void {
  if (args.json) process.stdout.write(JSON.stringify(json, null, 2) + '\n');
  else if (!args.quiet) process.stdout.write(human + '\n');
}

/** The CA a dry run talks to: Let's Encrypt staging instead of production, as certbot does. */
export function dryRunServer(server: string): string {
  return server === LETSENCRYPT_PRODUCTION ? LETSENCRYPT_STAGING : server;
}

