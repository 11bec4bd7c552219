/**
 * The constant load of bench/redeploy: requests started at a fixed rate
 * (open loop: a request that waits does not slow the next one down), each
 * over a keep-alive HTTPS connection to 127.0.0.1 with the name as SNI and
 * Host, verifying the certificate against the row's CA. Every outcome is
 * kept: a status code, or the client's error code (a TLS failure, a reset).
 */
import https from 'node:https';

export interface LoadResult {
  sent: number;
  ok: number;
  /** Every outcome that is not a 200: status codes and error codes, with counts. */
  failed: Record<string, number>;
  failedTotal: number;
  /** The same failures by kind (see `failureKind`). */
  byKind: Record<FailureKind, number>;
  latencyMs: { p50: number; p99: number; max: number };
}

/** What a failed request ran into, as the bench reports it. */
export type FailureKind = '5xx' | 'connection' | 'tls' | 'timeout' | 'other';

/**
 * The kind of one outcome that is not a 200: a 5xx status; a TLS failure
 * (an alert such as `unrecognized_name`, a certificate that does not verify,
 * or a connection closed during the handshake); a connection error (refused,
 * reset, closed mid-response); a client timeout or a request still unfinished
 * at the end of the drain; anything else (another status).
 */
export function failureKind(outcome: string): FailureKind {
  if (/^5\d\d$/.test(outcome)) return '5xx';
  if (/^(ERR_SSL_|ERR_TLS_|EPROTO$|TLS_HANDSHAKE_)|CERT|SIGNATURE|ISSUER/.test(outcome)) return 'tls';
  if (/^(ECONNREFUSED|ECONNRESET|EPIPE|ECONNABORTED|ETIMEDOUT|ERR_STREAM_PREMATURE_CLOSE)$/.test(outcome)) return 'connection';
  if (outcome === 'CLIENT_TIMEOUT' || outcome === 'unfinished') return 'timeout';
  return 'other';
}

export interface Load {
  /** Stops starting requests, waits for those in flight (at most `drainMs`), and returns the result. */
  stop(drainMs?: number): Promise<LoadResult>;
}

/** Starts `ratePerSecond` GETs per second to `name` on 127.0.0.1:port. */
export function startLoad(port: number, name: string, ca: string, ratePerSecond: number): Load {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1024 });
  const outcomes = new Map<string, number>();
  const latencies: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  const one = (): void => {
    sent++;
    const t0 = performance.now();
    const done = new Promise<void>((resolve) => {
      const finish = (outcome: string): void => {
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        latencies.push(performance.now() - t0);
        resolve();
      };
      const req = https.request({ host: '127.0.0.1', port, path: '/', servername: name, headers: { host: name }, ca, agent, timeout: 30_000 }, (res) => {
        res.resume().on('end', () => finish(String(res.statusCode))).on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'error'));
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'CLIENT_TIMEOUT' })));
      // Node reports a connection closed during the handshake as ECONNRESET; it is a TLS failure for the visitor.
      req.on('error', (e: NodeJS.ErrnoException) => finish(/before secure TLS connection/.test(e.message) ? 'TLS_HANDSHAKE_RESET' : (e.code ?? e.message)));
      req.end();
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };
  const every = 1000 / ratePerSecond;
  const started = performance.now();
  let next = 0;
  // A timer every few ms that catches up to the schedule: the rate holds even when a tick is late.
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) / every);
    while (next <= due) {
      next++;
      one();
    }
  }, Math.max(1, Math.floor(every / 2)));
  return {
    async stop(drainMs = 15_000) {
      clearInterval(timer);
      await Promise.race([Promise.all([...inFlight]), new Promise((r) => setTimeout(r, drainMs))]);
      agent.destroy();
      const failed: Record<string, number> = {};
      let ok = 0;
      let finished = 0;
      for (const [k, v] of outcomes) {
        finished += v;
        if (k === '200') ok = v;
        else failed[k] = v;
      }
      // Still waiting when the drain ended: failed too, from the client's side.
      if (sent > finished) failed['unfinished'] = sent - finished;
      const byKind: Record<FailureKind, number> = { '5xx': 0, connection: 0, tls: 0, timeout: 0, other: 0 };
      for (const [k, v] of Object.entries(failed)) byKind[failureKind(k)] += v;
      const sorted = [...latencies].sort((a, b) => a - b);
      const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
      return { sent, ok, failed, failedTotal: sent - ok, byKind, latencyMs: { p50: at(0.5), p99: at(0.99), max: Math.round(sorted[sorted.length - 1] ?? 0) } };
    },
  };
}
