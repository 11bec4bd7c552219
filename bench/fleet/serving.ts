/**
 * Which replica serves which name, and since when: the bench's clock for
 * "every replica serves every name". A (replica, name) pair counts as served
 * at the end of the first TLS handshake with that replica's address, SNI the
 * name, whose chain verifies to the CA's root and whose certificate covers
 * the name (Node's own check against `servername`).
 *
 * Polling 3 × 1,000 pairs blindly would steal the CPU being measured, so a
 * pair is probed only when there is a reason to:
 * - its replica logged that it serves the name (`kick`), then again with
 *   backoff until it answers;
 * - another replica already serves the name, so this one should soon: with
 *   backoff from 50 ms up to 1 s;
 * - and a slow sweep (`sweepPerSecond`) over names no replica serves yet, in
 *   case a log line was missed or renamed.
 * At most `maxInFlight` handshakes run at once. Every connection goes to a
 * 127.0.0.x address; names are sent only as SNI, never resolved.
 */
import tls from 'node:tls';

const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 1_000;
const HANDSHAKE_TIMEOUT_MS = 5_000;

/** One verified TLS handshake; resolves with an error string, or undefined when it succeeded. */
export function verifiedHandshake(host: string, port: number, name: string, ca: string, timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = tls.connect({ host, port, servername: name, ca, ALPNProtocols: ['http/1.1'] });
    let settled = false;
    const done = (error: string | undefined): void => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve(error);
    };
    s.setTimeout(timeoutMs, () => done('timeout'));
    s.once('secureConnect', () => done(s.authorized ? undefined : String(s.authorizationError)));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

interface Pair {
  /** ms after t0, once served. */
  servedMs?: number;
  /** Scheduled or running probe. */
  busy: boolean;
  retryMs: number;
  lastError?: string;
}

export interface ServingOptions {
  replicas: readonly string[];
  names: readonly string[];
  port: number;
  /** PEM of the CA root the handshakes must verify to. */
  ca: string;
  /** hrtime at which the replicas were spawned. */
  t0: bigint;
  maxInFlight?: number;
  sweepPerSecond?: number;
}

export interface NameTimes {
  name: string;
  /** ms after t0: the first replica to serve it, and the last. */
  firstMs: number;
  everywhereMs: number;
  /** The replica that served it last. */
  lastReplica: string;
}

export class ServingTracker {
  private readonly pairs = new Map<string, Pair>();
  private readonly servedBy = new Map<string, number>();
  private readonly queue: Array<[string, string]> = [];
  private inFlight = 0;
  private servedPairs = 0;
  private probes = 0;
  private failedProbes = 0;
  private stopped = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepIndex = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly maxInFlight: number;

  constructor(private readonly opts: ServingOptions) {
    this.maxInFlight = opts.maxInFlight ?? 8;
    for (const ip of opts.replicas) for (const name of opts.names) this.pairs.set(key(ip, name), { busy: false, retryMs: FIRST_RETRY_MS });
  }

  /** Starts the slow sweep. */
  start(): void {
    const perSecond = this.opts.sweepPerSecond ?? 20;
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(10, Math.round(1000 / perSecond)));
  }

  stop(): void {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
  }

  /** The replica says it serves `name`: probe now. */
  kick(ip: string, name: string): void {
    const p = this.pairs.get(key(ip, name));
    if (!p || p.servedMs !== undefined || p.busy) return;
    p.busy = true;
    p.retryMs = FIRST_RETRY_MS;
    this.enqueue(ip, name);
  }

  /** Resolves once every pair is served. */
  allServed(): Promise<void> {
    if (this.servedPairs === this.pairs.size) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  get served(): number {
    return this.servedPairs;
  }

  get total(): number {
    return this.pairs.size;
  }

  /** Served pairs per replica. */
  servedPerReplica(): Record<string, number> {
    const out: Record<string, number> = Object.fromEntries(this.opts.replicas.map((ip) => [ip, 0]));
    for (const [k, p] of this.pairs) if (p.servedMs !== undefined) out[k.split(' ')[0]!]! += 1;
    return out;
  }

  /** Up to `max` pairs still not served, with the last handshake error seen for each. */
  missing(max = 10): string[] {
    const out: string[] = [];
    for (const [k, p] of this.pairs) {
      if (p.servedMs !== undefined) continue;
      out.push(`${k.replace(' ', ' / ')}${p.lastError ? ` (${p.lastError})` : ' (never probed)'}`);
      if (out.length >= max) break;
    }
    return out;
  }

  probeCounts(): { probes: number; failed: number } {
    return { probes: this.probes, failed: this.failedProbes };
  }

  /** Per name: when the first and the last replica served it (only names served everywhere). */
  nameTimes(): NameTimes[] {
    const out: NameTimes[] = [];
    for (const name of this.opts.names) {
      const times = this.opts.replicas.map((ip) => this.pairs.get(key(ip, name))?.servedMs);
      if (times.some((t) => t === undefined)) continue;
      const t = times as number[];
      const everywhereMs = Math.max(...t);
      out.push({ name, firstMs: Math.min(...t), everywhereMs, lastReplica: this.opts.replicas[t.indexOf(everywhereMs)]! });
    }
    return out;
  }

  /** Per replica, ms after t0 at which it served its last name (undefined until it serves all). */
  replicaDoneMs(): Record<string, number | undefined> {
    const out: Record<string, number | undefined> = {};
    for (const ip of this.opts.replicas) {
      let last = 0;
      for (const name of this.opts.names) {
        const t = this.pairs.get(key(ip, name))?.servedMs;
        if (t === undefined) {
          last = NaN;
          break;
        }
        last = Math.max(last, t);
      }
      out[ip] = Number.isNaN(last) ? undefined : last;
    }
    return out;
  }

  private sweep(): void {
    if (this.stopped || this.inFlight >= this.maxInFlight) return;
    const { names, replicas } = this.opts;
    // One probe per tick, on a name no replica serves yet, rotating over the replicas.
    for (let tries = 0; tries < names.length; tries++) {
      const i = this.sweepIndex++ % names.length;
      const name = names[i]!;
      if (this.servedBy.has(name)) continue;
      const ip = replicas[Math.floor(this.sweepIndex / names.length) % replicas.length]!;
      const p = this.pairs.get(key(ip, name))!;
      if (p.busy || p.servedMs !== undefined) continue;
      p.busy = true;
      p.retryMs = MAX_RETRY_MS + 1; // one look only: no backoff series for a name nothing says is ready
      this.enqueue(ip, name);
      return;
    }
  }

  private enqueue(ip: string, name: string): void {
    this.queue.push([ip, name]);
    this.drain();
  }

  private drain(): void {
    while (!this.stopped && this.inFlight < this.maxInFlight && this.queue.length) {
      const [ip, name] = this.queue.shift()!;
      this.inFlight++;
      void this.probe(ip, name).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }

  private async probe(ip: string, name: string): Promise<void> {
    const p = this.pairs.get(key(ip, name))!;
    this.probes++;
    const error = await verifiedHandshake(ip, this.opts.port, name, this.opts.ca);
    if (this.stopped) return;
    if (error === undefined) {
      p.servedMs = Number(process.hrtime.bigint() - this.opts.t0) / 1e6;
      p.busy = false;
      this.servedPairs++;
      const first = !this.servedBy.has(name);
      this.servedBy.set(name, (this.servedBy.get(name) ?? 0) + 1);
      // The others should follow within seconds: watch them closely.
      if (first) for (const other of this.opts.replicas) if (other !== ip) this.kick(other, name);
      if (this.servedPairs === this.pairs.size) for (const w of this.waiters.splice(0)) w();
      return;
    }
    this.failedProbes++;
    p.lastError = error;
    const elsewhere = this.servedBy.has(name);
    // Nothing says this name is ready anywhere and the backoff ran out: leave it to the sweep or the next log line.
    if (!elsewhere && p.retryMs > MAX_RETRY_MS) {
      p.busy = false;
      return;
    }
    const wait = Math.min(p.retryMs, MAX_RETRY_MS);
    p.retryMs = p.retryMs >= MAX_RETRY_MS ? (elsewhere ? MAX_RETRY_MS : MAX_RETRY_MS + 1) : p.retryMs * 2;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.enqueue(ip, name);
    }, wait);
    this.timers.add(t);
  }
}

const key = (ip: string, name: string): string => `${ip} ${name}`;
