/**
 * `padlock verify`: is this certificate (with this chain, key and names) valid
 * for a TLS server, as of now or `--at`? Exit 0 valid, 1 invalid, 64 bad usage.
 */
import { readFile } from 'node:fs/promises';
import type { CommandModule } from 'yargs';
import { systemClock } from '../clock.js';
import { PadlockError, errorMessage } from '../errors.js';
import { daysLeft, type CertSummary } from '../tls/inspect.js';
import { loadTrustAnchors, type TrustAnchors } from '../tls/roots.js';
import { verifyCertificate } from '../tls/verify.js';

export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 64;

interface VerifyArgs {
  cert: string;
  chain?: string | undefined;
  key?: string | undefined;
  roots?: string[] | undefined;
  'trusted-roots'?: string[] | undefined;
  name?: string[] | undefined;
  at?: string | undefined;
  json: boolean;
}

/** `2026-01-02T03:04:05Z`: ISO 8601 to the second, as padlock prints times. */
export function isoSeconds(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Parses an ISO 8601 date or date-time; undefined when it is not one. */
export function parseIsoTime(text: string): Date | undefined {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(text.trim())) return undefined;
  const d = new Date(text.trim());
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `app.example.com (names: a, b) issued by X, valid until ISO (N days left)` */
export function summaryLine(leaf: CertSummary, now: Date): string {
  const days = daysLeft(leaf.notAfter, now);
  const names = leaf.names.length ? ` (names: ${leaf.names.join(', ')})` : '';
  return `${leaf.subject}${names} issued by ${leaf.issuer}, valid until ${isoSeconds(leaf.notAfter)} (${days} day${days === 1 ? '' : 's'} left)`;
}

/** The anchors `--roots` / `--trusted-roots` ask for. */
export function anchorsFromArgs(args: { roots?: string[] | undefined; 'trusted-roots'?: string[] | undefined }): Promise<TrustAnchors> {
  const roots = args.roots ?? [];
  const extra = args['trusted-roots'] ?? [];
  return loadTrustAnchors({ ...(roots.length ? { only: roots } : {}), ...(extra.length ? { extraFiles: extra } : {}) });
}

/**
 * The `--json` fields of a failed verification: the code and one-line reason,
 * the fine-grained WebPKI `reasonCode` and its clause, the certificate at
 * fault, every problem of the best path, and each path tried with its
 * failure (see tls/verify.ts).
 */
export function failureJson(err: PadlockError): Record<string, unknown> {
  const d = err.details;
  const pickKeys = ['reasonCode', 'clause', 'certificate', 'depth', 'missingNames', 'problems', 'paths', 'pathsNotListed', 'searchCutShort', 'ignored'];
  const extra = Object.fromEntries(pickKeys.filter((k) => d[k] !== undefined).map((k) => [k, d[k]]));
  return { ok: false, code: err.code, reason: err.message, ...extra };
}

/** A JSON-safe summary (dates as ISO strings). */
export function summaryJson(s: CertSummary): Record<string, unknown> {
  return { ...s, notBefore: isoSeconds(s.notBefore), notAfter: isoSeconds(s.notAfter) };
}

/**
 * `padlock verify --cert FILE [--chain FILE] [--key FILE] [--name HOST ...] [--roots FILE ...]
 * [--trusted-roots FILE ...] [--at TIME] [--json]`. Prints one line (or one JSON object) on
 * stdout and sets `process.exitCode`: 0 valid, 1 invalid, 64 bad usage or unreadable files.
 */
export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify',
  describe: 'Check a certificate chain, key and names as a browser would (WebPKI rules; exit 0 valid, 1 invalid)',
  builder: (y) =>
    y
      .option('cert', { type: 'string', demandOption: 'pass --cert FILE', describe: 'PEM file with the leaf certificate first (further certificates join --chain)' })
      .option('chain', { type: 'string', describe: 'PEM file of intermediates, in any order' })
      .option('key', { type: 'string', describe: 'PEM private key that must match the leaf' })
      .option('roots', { type: 'string', array: true, describe: 'Trust only the anchors in these PEM files (instead of the system store)' })
      .option('trusted-roots', { type: 'string', array: true, describe: 'Also trust the anchors in these PEM files' })
      .option('name', { type: 'string', array: true, describe: 'A host name (or IP) the leaf must cover; repeat for more' })
      .option('at', { type: 'string', describe: 'Verify as of this ISO 8601 time instead of now' })
      .option('json', { type: 'boolean', default: false, describe: 'Print one JSON object instead of a line' })
      .example('$0 verify --cert fullchain.pem --key privkey.pem --name example.com', 'a certbot-style lineage')
      .example('$0 verify --cert leaf.pem --chain chain.pem --roots my-root.pem --at 2027-01-01T00:00:00Z', 'a private CA, later') as never,
  handler: async (args) => {
    // Validated here rather than with yargs .check(): yargs 18 hands a check's
    // message to .fail() as an error, which index.ts rethrows (exit 1, not 64).
    if (args.at !== undefined && parseIsoTime(args.at) === undefined) {
      process.exitCode = usageError(`--at "${args.at}" is not an ISO 8601 time (e.g. 2026-01-02T00:00:00Z)`);
      return;
    }
    process.exitCode = await runVerify(args);
  },
};

/** Reports a usage problem on stderr, the way index.ts does, and returns exit status 64. */
export function usageError(message: string): number {
  process.stderr.write(`padlock: ${message}\nRun "padlock --help" for usage.\n`);
  return EXIT_USAGE;
}

async function readInput(option: string, path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new PadlockError('CONFIG_INVALID', `cannot read ${option} ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { cause: err });
  }
}

async function runVerify(args: VerifyArgs): Promise<number> {
  const now = args.at !== undefined ? parseIsoTime(args.at)! : systemClock.now();
  let inputs: { cert: string; chain?: string | undefined; key?: string | undefined; roots: TrustAnchors };
  try {
    const [cert, chain, key, roots] = await Promise.all([
      readInput('--cert', args.cert),
      readInput('--chain', args.chain),
      readInput('--key', args.key),
      anchorsFromArgs(args),
    ]);
    inputs = { cert: cert!, chain, key, roots };
  } catch (err) {
    // Files that cannot be read are a usage problem, not an invalid certificate.
    const e = err instanceof PadlockError ? err : new PadlockError('CONFIG_INVALID', errorMessage(err));
    if (args.json) process.stdout.write(JSON.stringify({ ok: false, code: e.code, reason: e.message }) + '\n');
    process.stderr.write(`padlock: ${e.message}\n`);
    return EXIT_USAGE;
  }
  try {
    const res = await verifyCertificate({
      cert: inputs.cert,
      roots: inputs.roots,
      at: now,
      ...(inputs.chain !== undefined ? { chain: inputs.chain } : {}),
      ...(inputs.key !== undefined ? { key: inputs.key } : {}),
      ...(args.name?.length ? { names: args.name } : {}),
    });
    if (args.json) {
      process.stdout.write(JSON.stringify({ ok: true, leaf: summaryJson(res.leaf), path: res.path.map(summaryJson), tried: res.tried }) + '\n');
    } else {
      process.stdout.write(`OK: ${summaryLine(res.leaf, now)}\n`);
    }
    return EXIT_OK;
  } catch (err) {
    if (!(err instanceof PadlockError)) throw err;
    if (args.json) process.stdout.write(JSON.stringify(failureJson(err)) + '\n');
    else process.stdout.write(`INVALID: ${err.message}\n`);
    return EXIT_INVALID;
  }
}
