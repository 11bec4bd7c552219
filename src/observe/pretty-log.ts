/**
 * A human-readable view of log.ts's JSON lines, for a terminal.
 *
 * It formats the already-redacted record (log.ts redacts before `write`), so
 * a secret can no more reach the terminal than the JSON. Use it as the
 * logger's `write` when stderr is a TTY:
 *
 *   createLogger({ level, ...(process.stderr.isTTY && !json ? { write: prettyWriter(process.stderr) } : {}) })
 *
 * Output: `12:04:05.123 INFO  certificates  certificate ready  name=app.example.com notAfter=2027-01-01T00:00:00.000Z`
 */

export interface PrettyOptions {
  color: boolean;
}

const LEVEL_STYLE: Record<string, [string, number]> = {
  debug: ['DEBUG', 2],
  info: ['INFO ', 32],
  warn: ['WARN ', 33],
  error: ['ERROR', 31],
};

/** One JSON log line as one readable line; a line that is not a JSON object is returned unchanged. */
export function formatLogLine(line: string, options: PrettyOptions): string {
  let rec: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return line;
    rec = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const paint = (code: number, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const { time, level, msg, component, ...fields } = rec;
  const [label, colour] = LEVEL_STYLE[String(level)] ?? [String(level ?? '').toUpperCase().padEnd(5), 0];
  const clock = typeof time === 'string' && time.length >= 23 ? time.slice(11, 23) : '';
  const parts = [
    paint(2, clock),
    paint(colour, label),
    component !== undefined ? paint(36, String(component).padEnd(12)) : '',
    options.color && (level === 'warn' || level === 'error') ? paint(1, String(msg ?? '')) : String(msg ?? ''),
  ].filter(Boolean);
  const rest = Object.entries(fields).map(([k, v]) => `${paint(2, `${k}=`)}${fieldValue(v)}`);
  return parts.join('  ') + (rest.length ? `  ${rest.join(' ')}` : '');
}

function fieldValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** A `write` function for createLogger that prints readable lines on `stream`, coloured when it is a TTY. */
export function prettyWriter(stream: NodeJS.WritableStream & { isTTY?: boolean }, options: Partial<PrettyOptions> = {}): (line: string) => void {
  const color = options.color ?? (stream.isTTY === true && !process.env['NO_COLOR']);
  return (line) => {
    stream.write(formatLogLine(line, { color }) + '\n');
  };
}
