/**
 * One replica's JSON log (`--log-format json`), read as it arrives: how many
 * orders this replica made and stored, how often it found a name locked by
 * another replica or already done, how often it picked up a certificate that
 * another replica wrote, and its warnings. A line saying the replica now has
 * a certificate for a name is passed to `onServing`, so the bench checks
 * that name on this replica at once instead of polling it blindly.
 *
 * Bounded: names are kept in sets of at most the routed names, and at most
 * MAX_PROBLEMS warning/error lines are kept.
 */

const MAX_PARTIAL = 1_000_000;
const MAX_PROBLEMS = 20;

/** padlock's messages (src/certificates/manager.ts, engine.ts) this bench counts. */
export const MSG = {
  stored: 'certificate stored',
  issued: 'certificate issued',
  failed: 'certificate failed; the current one (if any) keeps serving',
  ready: 'certificate ready',
  readyFromOther: 'another padlock process stored this certificate meanwhile; serving it',
  locked: 'another padlock is working on this certificate; will look again in 30 s',
  alreadyDone: 'another process stored a new certificate meanwhile; not ordering again',
  fromStore: 'a newer certificate appeared in the store (written by another padlock process); serving it',
  obtaining: 'obtaining certificate',
} as const;

/** After these, the replica serves the name (its snapshot was published just before the line). */
const SERVING = new Set<string>([MSG.ready, MSG.readyFromOther, MSG.fromStore]);

export interface ReplicaLogSummary {
  /** Orders this replica completed and stored (`certificate stored`), one per name at most if all went well. */
  ordersStored: number;
  /** Names stored by this replica more than once. */
  storedTwice: string[];
  /** Certificates the CA issued to this replica (`certificate issued`; one more than stored when verification or the store write failed). */
  issued: number;
  /** Orders that failed, by error code (ACME_CHALLENGE_FAILED: the CA could not validate). */
  failedByCode: Record<string, number>;
  /** Jobs started (`obtaining certificate`): includes those that found the lock taken. */
  jobsStarted: number;
  /** Jobs that found the name's lock held by another replica. */
  lockBusy: number;
  /** Jobs that took the lock, re-read the store and found another replica's certificate (no order). */
  alreadyDone: number;
  /** Certificates written by another replica and picked up through the store's change feed or periodic re-read. */
  fromStore: number;
  warnings: number;
  errors: number;
  /** The first warning/error lines, for the report. */
  problems: string[];
  unparsedLines: number;
}

export class ReplicaLog {
  private readonly partial = { stdout: '', stderr: '' };
  private readonly stored = new Map<string, number>();
  private jobs = 0;
  private issued = 0;
  private readonly failed: Record<string, number> = {};
  private locked = 0;
  private done = 0;
  private picked = 0;
  private warnings = 0;
  private errors = 0;
  private unparsed = 0;
  private readonly problems: string[] = [];

  constructor(private readonly onServing: (name: string) => void = () => {}) {}

  /** One chunk of the process's output; lines may be split across chunks. */
  feed(chunk: string, stream: 'stdout' | 'stderr'): void {
    const text = this.partial[stream] + chunk;
    const parts = text.split('\n');
    this.partial[stream] = (parts.pop() ?? '').slice(-MAX_PARTIAL);
    for (const line of parts) this.line(line);
  }

  private line(line: string): void {
    if (!line.startsWith('{')) {
      if (line.trim()) this.unparsed++;
      return;
    }
    let rec: { level?: unknown; msg?: unknown; name?: unknown; code?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      this.unparsed++;
      return;
    }
    const msg = typeof rec.msg === 'string' ? rec.msg : '';
    const name = typeof rec.name === 'string' ? rec.name : undefined;
    if (rec.level === 'warn' || rec.level === 'error') {
      if (rec.level === 'warn') this.warnings++;
      else this.errors++;
      if (this.problems.length < MAX_PROBLEMS) this.problems.push(line.slice(0, 600));
    }
    switch (msg) {
      case MSG.stored:
        if (name) this.stored.set(name, (this.stored.get(name) ?? 0) + 1);
        break;
      case MSG.obtaining:
        this.jobs++;
        break;
      case MSG.issued:
        this.issued++;
        break;
      case MSG.failed: {
        const code = typeof rec.code === 'string' ? rec.code : '?';
        this.failed[code] = (this.failed[code] ?? 0) + 1;
        break;
      }
      case MSG.locked:
        this.locked++;
        break;
      case MSG.alreadyDone:
        this.done++;
        break;
      case MSG.fromStore:
        this.picked++;
        break;
    }
    if (name && SERVING.has(msg)) this.onServing(name);
  }

  /** Names this replica stored a certificate for (it made the order). */
  storedNames(): ReadonlyMap<string, number> {
    return this.stored;
  }

  summary(): ReplicaLogSummary {
    let orders = 0;
    const twice: string[] = [];
    for (const [name, n] of this.stored) {
      orders += n;
      if (n > 1) twice.push(name);
    }
    return {
      ordersStored: orders,
      storedTwice: twice.slice(0, 20),
      issued: this.issued,
      failedByCode: { ...this.failed },
      jobsStarted: this.jobs,
      lockBusy: this.locked,
      alreadyDone: this.done,
      fromStore: this.picked,
      warnings: this.warnings,
      errors: this.errors,
      problems: [...this.problems],
      unparsedLines: this.unparsed,
    };
  }
}
