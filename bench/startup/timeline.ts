/**
 * padlock's JSON log lines (`--log-format json`; each carries `time`, `level`
 * and `msg`) turned into a start-up timeline: for each distinct message, how
 * often it was logged and when first and last, in ms after the bench spawned
 * the process. Bounded: at most MAX_MESSAGES distinct messages are kept.
 */

const MAX_MESSAGES = 200;
const MAX_PARTIAL = 1_000_000;

export interface TimelineEntry {
  msg: string;
  level: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

export class LogTimeline {
  private readonly partial = { stdout: '', stderr: '' };
  private readonly byMsg = new Map<string, { level: string; count: number; first: number; last: number }>();
  private other = 0;

  /** One chunk of the process's output; lines may be split across chunks. */
  feed(chunk: string, stream: 'stdout' | 'stderr'): void {
    const text = this.partial[stream] + chunk;
    const parts = text.split('\n');
    this.partial[stream] = (parts.pop() ?? '').slice(-MAX_PARTIAL);
    for (const line of parts) this.line(line);
  }

  private line(line: string): void {
    if (!line.startsWith('{')) {
      if (line.trim()) this.other++;
      return;
    }
    let rec: { time?: unknown; level?: unknown; msg?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      this.other++;
      return;
    }
    const at = typeof rec.time === 'string' ? Date.parse(rec.time) : NaN;
    if (typeof rec.msg !== 'string' || Number.isNaN(at)) {
      this.other++;
      return;
    }
    const e = this.byMsg.get(rec.msg);
    if (e) {
      e.count++;
      e.last = at;
    } else if (this.byMsg.size < MAX_MESSAGES) {
      this.byMsg.set(rec.msg, { level: String(rec.level ?? '?'), count: 1, first: at, last: at });
    } else {
      this.other++;
    }
  }

  /** Messages in order of first appearance, times relative to `spawnWallMs` (Date.now() at spawn). */
  summary(spawnWallMs: number): { entries: TimelineEntry[]; unparsedLines: number } {
    const entries = [...this.byMsg.entries()]
      .map(([msg, e]) => ({ msg, level: e.level, count: e.count, firstMs: e.first - spawnWallMs, lastMs: e.last - spawnWallMs }))
      .sort((a, b) => a.firstMs - b.firstMs);
    return { entries, unparsedLines: this.other };
  }
}
