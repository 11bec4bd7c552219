/**
 * `padlock status`: a readable table of a running daemon's state, read from
 * its admin API (`GET /api/status`). `--json` prints the document as is.
 * Colours only when stdout is a TTY (and NO_COLOR is unset).
 * Exit 0 when the API answered; 1 when it is unreachable, refuses the token
 * or answers an error; 64 bad usage.
 */
import type { CommandModule } from 'yargs';
import { cliEnvironment } from '../config/cli-env.js';
import { parseHostPort } from '../observe/admin.js';
import type { AttentionItem, CertificateView, RouteView, StatusDocument } from '../observe/status.js';

interface StatusArgs {
  'admin-listen'?: string | undefined;
  'admin-token'?: string | undefined;
  json: boolean;
  timeout: number;
}

export interface FetchStatusOptions {
  /** `HOST:PORT` of the admin listener. */
  adminListen: string;
  token?: string | undefined;
  timeoutMs?: number;
}

/** Why `padlock status` could not get the document; `message` is the line to print. */
export class StatusFetchError extends Error {
  constructor(message: string, readonly reason: 'unreachable' | 'unauthorized' | 'http' | 'usage') {
    super(message);
    this.name = 'StatusFetchError';
  }
}

/** The admin API's base URL for an `ADDR:PORT`, with wildcard binds mapped to loopback. */
export function adminUrl(adminListen: string): string {
  let host: string;
  let port: number;
  try {
    ({ host, port } = parseHostPort(adminListen));
  } catch {
    throw new StatusFetchError(`--admin-listen "${adminListen}" must be ADDR:PORT, for example 127.0.0.1:9180`, 'usage');
  }
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Reads `/api/status`. Rejects with a StatusFetchError whose message says
 * what to do: start the daemon or name its address, pass the token, ...
 */
export async function fetchStatus(options: FetchStatusOptions): Promise<Record<string, unknown>> {
  const base = adminUrl(options.adminListen);
  let res: Response;
  try {
    res = await fetch(`${base}/api/status`, {
      headers: { accept: 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
      signal: AbortSignal.timeout(options.timeoutMs ?? 5_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    const why = cause === 'TimeoutError' ? 'no answer in time' : cause ?? 'no connection';
    throw new StatusFetchError(
      `cannot reach padlock's admin API at ${base} (${why}). Is "padlock run" running? If its admin API listens elsewhere, pass --admin-listen ADDR:PORT (or set PADLOCK_ADMIN_LISTEN).`,
      'unreachable',
    );
  }
  if (res.status === 401) {
    await res.body?.cancel();
    throw new StatusFetchError(
      `the admin API at ${base} ${options.token ? 'refused the token' : 'requires a token'}: pass --admin-token or set PADLOCK_ADMIN_TOKEN to the daemon's adminToken.`,
      'unauthorized',
    );
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    throw new StatusFetchError(`the admin API at ${base} answered HTTP ${res.status}${text ? `: ${text.trim().slice(0, 200)}` : ''}`, 'http');
  }
  try {
    return (await res.json()) as Record<string, unknown>;
  } catch {
    throw new StatusFetchError(`the admin API at ${base} answered something that is not JSON; is --admin-listen pointing at padlock?`, 'http');
  }
}

export interface FormatOptions {
  color: boolean;
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, dim: 2, bold: 1 } as const;

/** Formats the status document as the text `padlock status` prints. Pure. */
export function formatStatus(doc: Partial<StatusDocument>, options: FormatOptions): string {
  const paint = (style: keyof typeof CODES, text: string) => (options.color ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text);
  const now = doc.time ? Date.parse(doc.time) : Date.now();
  const routes = doc.routes ?? [];
  const attention = doc.attention ?? [];
  const lines: string[] = [];

  const errors = attention.filter((a) => a.severity === 'error').length;
  const warnings = attention.length - errors;
  const docker = doc.docker === 'disabled' ? 'docker off' : doc.docker?.connected ? 'docker connected' : doc.docker ? 'docker UNREACHABLE' : '';
  const head = [
    doc.ready ? paint('green', 'ready') : paint('yellow', 'not ready'),
    `${routes.length} ${routes.length === 1 ? 'name' : 'names'}`,
    errors ? paint('red', `${errors} ${errors === 1 ? 'problem' : 'problems'}`) : '',
    warnings ? paint('yellow', `${warnings} ${warnings === 1 ? 'warning' : 'warnings'}`) : '',
    !errors && !warnings ? paint('green', 'no problems') : '',
    docker,
  ].filter(Boolean);
  lines.push(`padlock: ${head.join(', ')}${doc.time ? paint('dim', `  (at ${doc.time.slice(0, 19).replace('T', ' ')} UTC)`) : ''}`);

  if (attention.length) {
    lines.push('', paint('bold', 'Needs attention'));
    for (const a of attention) lines.push(...attentionLines(a, now, paint));
  }

  if (routes.length) {
    lines.push('');
    const header = ['NAME', 'UPSTREAMS', 'CERTIFICATE', 'EXPIRES', 'NEXT RENEWAL'];
    const rows = routes.map((r) => routeRow(r, now));
    // The last column (the why) is never cut.
    const widths = header.map((h, i) => (i === header.length - 1 ? Infinity : Math.min(i === 0 ? 40 : 36, Math.max(h.length, ...rows.map((row) => row.cells[i]!.length)))));
    const pad = (s: string, w: number) => (w === Infinity ? s : s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));
    lines.push(paint('bold', header.map((h, i) => pad(h, widths[i]!)).join('  ').trimEnd()));
    for (const row of rows) {
      const cells = row.cells.map((c, i) => pad(c, widths[i]!));
      const style = row.health === 'error' ? 'red' : row.health === 'warning' ? 'yellow' : row.health === 'ok' ? 'green' : 'blue';
      cells[2] = paint(style, cells[2]!);
      lines.push(cells.join('  ').trimEnd());
    }
  } else {
    lines.push('', 'No routes yet: label a container with padlock.host, or add sites to the config file.');
  }
  return lines.join('\n') + '\n';
}

function attentionLines(a: AttentionItem, now: number, paint: (s: keyof typeof CODES, t: string) => string): string[] {
  const mark = a.severity === 'error' ? paint('red', '✗') : paint('yellow', '!');
  const type = a.acmeType ? ` (${a.acmeType})` : a.code && a.kind !== 'container' ? ` [${a.code}]` : '';
  const out = [`  ${mark} ${paint('bold', a.subject)}: ${a.title}${type}`];
  for (const line of a.message.split('\n')) out.push(`      ${line}`);
  if (a.until) out.push(paint('dim', `      ${a.kind === 'upstream' ? 'tried again' : 'next attempt'} ${relative(Date.parse(a.until), now)} (${shortTime(a.until)})`));
  return out;
}

function routeRow(r: RouteView, now: number): { health: string; cells: string[] } {
  const up = r.upstreams.filter((u) => u.healthy).length;
  const upstreams = r.upstreams.length === 1 ? `${r.upstreams[0]!.containerName ?? r.upstreams[0]!.url}${up ? '' : ' DOWN'}` : `${up}/${r.upstreams.length} up`;
  const c: CertificateView | null = r.certificate;
  const cert = !r.https ? 'plain HTTP' : !c ? 'pending' : c.lastError ? (c.notAfter && (c.daysLeft ?? -1) >= 0 ? 'renewal failed' : 'failed') : c.state;
  const expires = c?.notAfter ? `${c.notAfter.slice(0, 10)} (${c.daysLeft} d)` : '-';
  const next = c?.nextRenewal ? `${relative(Date.parse(c.nextRenewal.at), now)}: ${c.nextRenewal.why}` : '-';
  return { health: r.health, cells: [r.host, upstreams, cert, expires, next] };
}

function shortTime(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** `in 3 h`, `2 days ago`. */
export function relative(t: number, now: number): string {
  const ms = t - now;
  const a = Math.abs(ms);
  const s = a < 90_000 ? `${Math.round(a / 1000)} s` : a < 5_400_000 ? `${Math.round(a / 60_000)} min` : a < 172_800_000 ? `${Math.round(a / 3_600_000)} h` : `${Math.round(a / 86_400_000)} days`;
  return ms >= 0 ? `in ${s}` : `${s} ago`;
}

/**
 * The command's work with its output injected (for tests): prints the table
 * or the JSON, or the error line, and returns the exit code.
 */
export async function runStatus(
  args: { adminListen: string; token?: string | undefined; json: boolean; timeoutMs?: number },
  io: { stdout: (s: string) => void; stderr: (s: string) => void; color: boolean },
): Promise<number> {
  try {
    const doc = await fetchStatus({ adminListen: args.adminListen, token: args.token, ...(args.timeoutMs ? { timeoutMs: args.timeoutMs } : {}) });
    io.stdout(args.json ? JSON.stringify(doc, null, 2) + '\n' : formatStatus(doc as Partial<StatusDocument>, { color: io.color }));
    return 0;
  } catch (err) {
    if (!(err instanceof StatusFetchError)) throw err;
    if (args.json) io.stdout(JSON.stringify({ ok: false, error: { reason: err.reason, message: err.message } }, null, 2) + '\n');
    io.stderr(`padlock: ${err.message}\n`);
    return err.reason === 'usage' ? 64 : 1;
  }
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: "Show a running daemon's routes, certificates and problems (from its admin API)",
  builder: (y) =>
    y
      .option('admin-listen', { type: 'string', defaultDescription: '$PADLOCK_ADMIN_LISTEN or 127.0.0.1:9180', describe: "The daemon's admin API address (its --admin-listen)" })
      .option('admin-token', { type: 'string', describe: 'The admin API token, when the daemon has one (prefer $PADLOCK_ADMIN_TOKEN: flags show in the process list)' })
      .option('json', { type: 'boolean', default: false, describe: 'Print the status document as JSON' })
      .option('timeout', { type: 'number', default: 5, describe: 'Seconds to wait for the admin API' }) as never,
  handler: async (argv) => {
    const useColor = process.stdout.isTTY === true && !process.env['NO_COLOR'] && process.env['TERM'] !== 'dumb';
    process.exitCode = await runStatus(
      { adminListen: argv['admin-listen'] ?? cliEnvironment().adminListen ?? '127.0.0.1:9180', token: argv['admin-token'] ?? cliEnvironment().adminToken, json: argv.json, timeoutMs: argv.timeout * 1000 },
      { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), color: useColor },
    );
  },
};
