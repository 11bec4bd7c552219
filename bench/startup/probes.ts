/**
 * What the start-up bench asks a starting server, over and over until it
 * answers: is the HTTPS port accepting, does the admin `/readyz` say 200,
 * does a TLS handshake for a given name succeed with a certificate for that
 * name that chains to the given root. Every attempt goes to 127.0.0.1, names
 * are sent only as SNI (`servername`) and Host, never resolved, and each
 * attempt and each wait is bounded.
 */
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';

/** How often a probe retries while the server is not there yet. */
export const PROBE_INTERVAL_MS = 20;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One TCP connect to 127.0.0.1:port; true when it was accepted. */
export function tcpAccepts(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** GET http://127.0.0.1:port/readyz once; the status, or 0 when there was no answer. */
export function readyz(port: number, timeoutMs = 1000): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/readyz', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

export interface HandshakeOutcome {
  ok: boolean;
  /** Why it failed (connection refused, alert, wrong certificate, untrusted). */
  error?: string;
  subjectaltname?: string;
  protocol?: string;
}

/**
 * One TLS handshake with 127.0.0.1:port, SNI `name`, trusting only `ca`.
 * Succeeds only if the chain verifies to `ca` and the certificate covers
 * `name` (Node's default identity check against `servername`).
 */
export function handshake(port: number, name: string, ca: string, timeoutMs = 2000): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: name, ca, ALPNProtocols: ['http/1.1'] });
    let settled = false;
    const done = (o: HandshakeOutcome): void => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve(o);
    };
    s.setTimeout(timeoutMs, () => done({ ok: false, error: 'timeout' }));
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      done({ ok: s.authorized, ...(s.authorized ? {} : { error: String(s.authorizationError) }), subjectaltname: cert.subjectaltname, protocol: s.getProtocol() ?? undefined });
    });
    s.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  });
}

/** One HTTPS GET / for `name` through 127.0.0.1:port (SNI and Host `name`), trusting only `ca`. */
export function httpsGet(port: number, name: string, ca: string, timeoutMs = 5000): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, servername: name, headers: { host: name }, path: '/', ca, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < 10_000) body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: 0, body, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
  });
}

/**
 * Repeats `attempt` every PROBE_INTERVAL_MS until it returns a value for
 * which `ok` holds, the deadline passes, or `alive()` turns false. Resolves
 * with the milliseconds since `t0` (hrtime) at the successful answer, or the
 * last failure.
 */
export async function until<T>(
  t0: bigint,
  attempt: () => Promise<T>,
  ok: (v: T) => boolean,
  opts: { deadline: number; alive: () => boolean; onSuccess?: (v: T) => void },
): Promise<{ ms?: number; last?: T; attempts: number }> {
  let last: T | undefined;
  let attempts = 0;
  while (Date.now() < opts.deadline && opts.alive()) {
    attempts++;
    last = await attempt();
    if (ok(last)) {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      opts.onSuccess?.(last);
      return { ms, last, attempts };
    }
    await sleep(PROBE_INTERVAL_MS);
  }
  return { ...(last !== undefined ? { last } : {}), attempts };
}

/** VmRSS and VmHWM (peak) of one process, in MiB; undefined once it is gone. */
export function rssOf(pid: number): { rssMiB: number; peakMiB: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (f: string): number => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
    return { rssMiB: Math.round((kb('VmRSS') / 1024) * 10) / 10, peakMiB: Math.round((kb('VmHWM') / 1024) * 10) / 10 };
  } catch {
    return undefined;
  }
}
