/**
 * `padlock check HOST[:PORT]`: connect to a TLS server, take the chain it
 * sends, and verify it for HOST with padlock's WebPKI verifier, now or `--at`.
 * Exit 0 valid, 1 invalid or unreachable, 2 valid but expiring within --warn-days, 64 bad usage.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from '../ip.js';
import { connect, type DetailedPeerCertificate } from 'node:tls';
import type { CommandModule } from 'yargs';
import { systemClock } from '../clock.js';
import { PadlockError, errorMessage } from '../errors.js';
import { daysLeft } from '../tls/inspect.js';
import type { TrustAnchors } from '../tls/roots.js';
import { verifyCertificate } from '../tls/verify.js';
import { EXIT_USAGE, anchorsFromArgs, failureJson, parseIsoTime, summaryJson, summaryLine, usageError } from './verify.js';

const EXIT_OK = 0;
const EXIT_INVALID = 1;
const EXIT_EXPIRING = 2;

interface CheckArgs {
  target: string;
  servername?: string | undefined;
  'connect-to'?: string | undefined;
  roots?: string[] | undefined;
  'trusted-roots'?: string[] | undefined;
  'warn-days': number;
  timeout: number;
  at?: string | undefined;
  json: boolean;
}

/** Where to connect and which name to check. */
export interface CheckTarget {
  host: string;
  port: number;
}

/**
 * Parses `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 literal.
 * The port defaults to 443. Returns a message instead when it cannot.
 */
export function parseTarget(text: string): CheckTarget | string {
  const t = text.trim();
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(t);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2];
    if (isIP(host) !== 6) return `"${text}": [${host}] is not an IPv6 address`;
  } else if ((t.match(/:/g) ?? []).length > 1) {
    if (isIP(t) !== 6) return `"${text}" is not HOST[:PORT]; write IPv6 addresses as [ADDR]:PORT`;
    host = t;
  } else {
    [host, port] = t.split(':') as [string, string | undefined];
  }
  if (!host) return `"${text}" names no host`;
  if (port === undefined) return { host: host.toLowerCase(), port: 443 };
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return `"${text}": port "${port}" is not a number from 1 to 65535`;
  return { host: host.toLowerCase(), port: Number(port) };
}

/** `host:port`, with brackets around IPv6 literals. */
function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

export interface FetchChainOptions {
  /** The IP (or name) to connect to. */
  address: string;
  port: number;
  /** SNI; left out for IP literals, which SNI cannot carry. */
  servername: string;
  timeoutMs: number;
  /** How the target is named in errors. */
  label: string;
}

/**
 * Connects, completes a TLS handshake without judging the certificate, and
 * returns the chain the server sent as PEM, leaf first. Node links the sent
 * certificates by issuer and stops at a self-signed one.
 * @throws PadlockError CHECK_UNREACHABLE on any socket or handshake failure, or after `timeoutMs`.
 */
export function fetchPeerChain(opts: FetchChainOptions): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let done = false;
    const socket = connect({
      host: opts.address,
      port: opts.port,
      ...(isIP(opts.servername) ? {} : { servername: opts.servername }),
      rejectUnauthorized: false, // judged below by tls/verify.ts, with our anchors and time
      ALPNProtocols: ['http/1.1'],
    });
    const finish = (err: Error | undefined, chain?: string[]): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        reject(
          new PadlockError('CHECK_UNREACHABLE', `${opts.label} is unreachable: ${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}`, {
            cause: err,
            retryable: true,
          }),
        );
      } else resolve(chain!);
    };
    const timer = setTimeout(() => finish(new Error(`no TLS handshake within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(true);
      const chain: string[] = [];
      const seen = new Set<string>();
      let cur: DetailedPeerCertificate | undefined = peer && peer.raw ? peer : undefined;
      while (cur?.raw && !seen.has(cur.fingerprint256)) {
        seen.add(cur.fingerprint256);
        chain.push(new X509Certificate(cur.raw).toString());
        if (cur.issuerCertificate === cur) break; // a self-signed certificate refers to itself
        cur = cur.issuerCertificate;
      }
      if (chain.length === 0) finish(new Error('the server sent no certificate'));
      else finish(undefined, chain);
    });
    socket.once('error', (err) => finish(err));
    socket.once('close', () => finish(new Error('the connection closed before the TLS handshake finished')));
  });
}

/**
 * `padlock check HOST[:PORT] [--servername N] [--connect-to IP] [--roots FILE ...]
 * [--trusted-roots FILE ...] [--warn-days N] [--timeout S] [--at TIME] [--json]`. Prints one line
 * (or one JSON object) on stdout and sets `process.exitCode`: 0 valid, 1 invalid or unreachable,
 * 2 valid but expiring within --warn-days (counted from --at when given), 64 bad usage. With
 * --connect-to (or an IP literal HOST) no name is resolved.
 */
export const checkCommand: CommandModule<object, CheckArgs> = {
  command: 'check <target>',
  describe: 'Connect to a TLS server and verify the chain it sends (exit 0 ok, 1 invalid/unreachable, 2 expiring soon)',
  builder: (y) =>
    y
      .positional('target', { type: 'string', demandOption: true, describe: 'HOST[:PORT] (port 443 by default; IPv6 as [ADDR]:PORT)' })
      .option('servername', { type: 'string', describe: 'Name to send as SNI and to check (default: HOST)' })
      .option('connect-to', { type: 'string', describe: 'Connect to this IP address instead of resolving HOST' })
      .option('roots', { type: 'string', array: true, describe: 'Trust only the anchors in these PEM files (instead of the system store)' })
      .option('trusted-roots', { type: 'string', array: true, describe: 'Also trust the anchors in these PEM files' })
      .option('warn-days', { type: 'number', default: 14, describe: 'Exit 2 when the certificate expires within this many days' })
      .option('timeout', { type: 'number', default: 10, describe: 'Seconds to wait for the connection and handshake' })
      .option('at', { type: 'string', describe: 'Judge the chain as of this ISO 8601 time instead of now (days left and --warn-days count from it)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object instead of a line' })
      .example('$0 check example.com', 'port 443, system trust store')
      .example('$0 check app.internal:8443 --connect-to 10.0.0.5 --trusted-roots my-ca.pem', 'a private CA, without DNS')
      .example('$0 check example.com --at 2027-01-01T00:00:00Z', 'will the chain it sends today still be valid then?') as never,
  handler: async (args) => {
    // Validated here rather than with yargs .check(): yargs 18 hands a check's
    // message to .fail() as an error, which index.ts rethrows (exit 1, not 64).
    const problem = usageProblem(args);
    process.exitCode = problem !== undefined ? usageError(problem) : await runCheck(args);
  },
};

function usageProblem(args: CheckArgs): string | undefined {
  const target = parseTarget(String(args.target));
  if (typeof target === 'string') return target;
  const connectTo = args['connect-to'] === undefined ? undefined : String(args['connect-to']).replace(/^\[(.*)\]$/, '$1');
  if (connectTo !== undefined && isIP(connectTo) === 0) return `--connect-to "${connectTo}" is not an IP address`;
  const warn = Number(args['warn-days']);
  if (!Number.isFinite(warn) || warn < 0) return '--warn-days must be a number of days, 0 or more';
  const timeout = Number(args.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 600) return '--timeout must be a number of seconds above 0 and at most 600';
  if (args.servername !== undefined && String(args.servername).trim() === '') return '--servername must not be empty';
  if (args.at !== undefined && parseIsoTime(String(args.at)) === undefined) return `--at "${args.at}" is not an ISO 8601 time (e.g. 2026-01-02T00:00:00Z)`;
  return undefined;
}

async function runCheck(args: CheckArgs): Promise<number> {
  const target = parseTarget(args.target) as CheckTarget;
  const address = args['connect-to']?.replace(/^\[(.*)\]$/, '$1') ?? target.host;
  const servername = (args.servername ?? target.host).toLowerCase();
  const label = `${hostPort(target.host, target.port)}${address !== target.host ? ` (at ${address})` : ''}`;
  const base = { target: hostPort(target.host, target.port), address, port: target.port, servername };
  const print = (json: Record<string, unknown>, human: string): void => {
    process.stdout.write(args.json ? JSON.stringify({ ...base, ...json }) + '\n' : human + '\n');
  };

  let roots: TrustAnchors;
  try {
    roots = await anchorsFromArgs(args);
  } catch (err) {
    const e = err instanceof PadlockError ? err : new PadlockError('CONFIG_INVALID', errorMessage(err));
    if (args.json) print({ ok: false, status: 'usage', code: e.code, reason: e.message }, '');
    process.stderr.write(`padlock: ${e.message}\n`);
    return EXIT_USAGE;
  }

  const now = args.at !== undefined ? parseIsoTime(args.at)! : systemClock.now();
  try {
    const chain = await fetchPeerChain({ address, port: target.port, servername, timeoutMs: args.timeout * 1000, label });
    const res = await verifyCertificate({ cert: chain[0]!, chain: chain.slice(1).join(''), names: [servername], roots, at: now });
    const days = daysLeft(res.leaf.notAfter, now);
    // Exact, not rounded: "within 14 days" means notAfter is less than 14 x 24 h away.
    const expiring = res.leaf.notAfter.getTime() - now.getTime() < args['warn-days'] * 86_400_000;
    const json = { ok: true, status: expiring ? 'expiring' : 'ok', daysLeft: days, ...(args.at !== undefined ? { at: now.toISOString() } : {}), leaf: summaryJson(res.leaf), path: res.path.map(summaryJson), tried: res.tried };
    if (expiring) {
      print(json, `EXPIRING: ${label}: ${summaryLine(res.leaf, now)}; that is within --warn-days ${args['warn-days']}`);
      return EXIT_EXPIRING;
    }
    print(json, `OK: ${label}: ${summaryLine(res.leaf, now)}`);
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof PadlockError)) throw err;
    const unreachable = err.code === 'CHECK_UNREACHABLE';
    print(
      { ...failureJson(err), status: unreachable ? 'unreachable' : 'invalid' },
      unreachable ? `UNREACHABLE: ${err.message}` : `INVALID: ${label}: ${err.message}`,
    );
    return EXIT_INVALID;
  }
}
