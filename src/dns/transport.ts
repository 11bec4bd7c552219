/**
 * Sends one DNS message to one server and returns the answer: UDP first,
 * TCP when the answer is truncated (RFC 7766 section 5) or `tcp` is asked.
 * The only place padlock opens a DNS socket; every address it is given is
 * used as is, never resolved.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { isIP } from '../ip.js';
import { PadlockError } from '../errors.js';
import { MAX_MESSAGE_BYTES } from './wire.js';

/** A DNS server by address (never a name: looking a name up would need a resolver). */
export interface DnsServer {
  host: string;
  port: number;
}

export function describeServer(s: DnsServer): string {
  return s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/**
 * Parses `HOST[:PORT]` or `[V6]:PORT` lists (`--dns-resolvers`). HOST must be
 * an IP address: a name would need a resolver to reach the resolver.
 */
export function parseServers(list: readonly string[], where: string, defaultPort = 53): DnsServer[] {
  const out: DnsServer[] = [];
  const problems: string[] = [];
  for (const raw of list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const m = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(raw) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(raw) ?? (isIP(raw) === 6 ? [raw, raw, undefined] : null);
    const host = m?.[1];
    const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
    if (!host || !isIP(host) || !(port >= 1 && port <= 65535)) {
      problems.push(`${where}: "${raw}" is not an IP address with an optional port (1.1.1.1, 127.0.0.1:5353, [2606:4700::1111]:53)`);
      continue;
    }
    out.push({ host, port });
  }
  if (problems.length) throw new PadlockError('CONFIG_INVALID', problems.join('; '), { details: { problems } });
  return out;
}

export interface ExchangeOptions {
  timeoutMs: number;
  tcp?: boolean;
  signal?: AbortSignal;
}

/** One exchange; rejects with DNS_QUERY_FAILED (retryable) on a timeout or a socket error. */
export async function exchange(server: DnsServer, message: Buffer, options: ExchangeOptions): Promise<Buffer> {
  if (!options.tcp && message.length <= 512) {
    const answer = await udp(server, message, options);
    // TC: the answer did not fit; ask again over TCP.
    if ((answer.readUInt16BE(2) & 0x0200) === 0) return answer;
  }
  return tcp(server, message, options);
}

function failure(server: DnsServer, what: string, cause?: unknown): PadlockError {
  return new PadlockError('DNS_QUERY_FAILED', `the DNS server ${describeServer(server)} ${what}`, { retryable: true, ...(cause ? { cause } : {}), details: { server: describeServer(server) } });
}

type Settle = (err: Error | undefined, value?: Buffer) => void;

/**
 * The one way an exchange on `close`'s socket ends: the first of its answer,
 * a socket error, the timeout or the abort signal settles it, closes the
 * socket and drops the timer and listener; later calls do nothing. An
 * already aborted signal settles it at once (check `signal.aborted` before
 * sending).
 */
function settleOnce(server: DnsServer, options: ExchangeOptions, proto: 'UDP' | 'TCP', close: () => void, resolve: (answer: Buffer) => void, reject: (err: Error) => void): Settle {
  let settled = false;
  const done: Settle = (err, value) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    close();
    if (err) reject(err);
    else resolve(value!);
  };
  const onAbort = () => done(options.signal!.reason instanceof Error ? options.signal!.reason : new Error('aborted'));
  const timer = setTimeout(() => done(failure(server, `did not answer within ${options.timeoutMs} ms (${proto})`)), options.timeoutMs);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  return done;
}

function udp(server: DnsServer, message: Buffer, options: ExchangeOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
    const id = message.readUInt16BE(0);
    const done = settleOnce(server, options, 'UDP', () => sock.close(), resolve, reject);
    if (options.signal?.aborted) return;
    sock.on('error', (err) => done(failure(server, `could not be reached (${err.message})`, err)));
    sock.on('message', (msg, rinfo) => {
      // Only the server asked, with our ID: anything else is noise or spoofing.
      if (rinfo.address !== server.host && !(server.host === '::1' && rinfo.address === '::1')) return;
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      done(undefined, msg);
    });
    sock.send(message, server.port, server.host);
  });
}

function tcp(server: DnsServer, message: Buffer, options: ExchangeOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    const done = settleOnce(server, options, 'TCP', () => sock.destroy(), resolve, reject);
    if (options.signal?.aborted) return;
    sock.on('error', (err) => done(failure(server, `could not be reached over TCP (${err.message})`, err)));
    sock.on('connect', () => sock.write(Buffer.concat([Buffer.from([message.length >> 8, message.length & 0xff]), message])));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_MESSAGE_BYTES + 2) return done(failure(server, 'sent more than a DNS message can hold'));
      if (buf.length < 2) return;
      const len = buf.readUInt16BE(0);
      if (buf.length >= len + 2) done(undefined, buf.subarray(2, 2 + len));
    });
    sock.on('end', () => done(failure(server, 'closed the TCP connection before answering')));
  });
}
