/**
 * The I/O hooks that apply the upstream rules (upstream-guard.ts) when the
 * proxy opens a connection, for names that only DNS turns into addresses
 * (`http://metadata.internal/`, `http://app:9180`). Three checks, so that no
 * byte, and for the first two not even a TCP SYN, reaches a refused address:
 *
 * 1. an IP literal is judged before connecting;
 * 2. a name is resolved through a wrapped `lookup` that judges every address
 *    it returns, before `net.connect` uses any of them (connecting to exactly
 *    the judged addresses, so a DNS answer cannot change between the check
 *    and the connect);
 * 3. the connected socket's remote address and port are judged once more
 *    before the socket is handed to the HTTP client (a backstop).
 *
 * A refusal is a `PadlockError` with code `UPSTREAM_FORBIDDEN`; the forwarder
 * answers 502 and logs the rule.
 */
import dns from 'node:dns';
import type http from 'node:http';
import net, { type LookupFunction, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import type { Dispatcher, Pool as UndiciPool, buildConnector as UndiciConnector } from 'undici';
import { Pool, buildConnector } from './undici-parts.js';
import { PadlockError } from '../errors.js';
import { configuredOwnPorts, UpstreamGuard, type UpstreamRefusal } from './upstream-guard.js';

/** The guard in force now; read at every connection, so a replaced guard applies to the next one. */
export type CurrentGuard = () => UpstreamGuard;

/** The system resolver, looked up at call time (so a test preload that replaces `dns.lookup` is honoured). */
export const systemLookup: LookupFunction = (hostname, options, callback) => dns.lookup(hostname, options, callback as never);

/** The error a refused upstream connection fails with. */
export function forbiddenUpstream(refusal: UpstreamRefusal, host: string): PadlockError<'UPSTREAM_FORBIDDEN'> {
  return new PadlockError('UPSTREAM_FORBIDDEN', `upstream ${host} ${refusal.reason}`, {
    details: { rule: refusal.rule, address: refusal.address, port: refusal.port },
  });
}

/** This host's interface addresses (read once per call; loopback included). */
export function interfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
}

/** The guard for `padlock run`'s config before anything is bound: configured ports, this host's addresses. */
export function upstreamGuardFor(config: { allowUpstream: readonly string[]; httpPort: number; httpsPort: number; adminListen: string }): UpstreamGuard {
  return new UpstreamGuard({ allow: config.allowUpstream, ownPorts: configuredOwnPorts(config), localAddresses: interfaceAddresses() });
}

/**
 * A `lookup` for `net.connect` that fails with UPSTREAM_FORBIDDEN when any
 * address `base` returns for the name is refused for `port` (a name that
 * resolves to a metadata address among good ones is not half-trusted).
 */
export function guardedLookup(guard: CurrentGuard, port: number, base: LookupFunction = systemLookup): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, options, (err, address, family) => {
      if (err) return callback(err, address, family);
      const current = guard();
      for (const a of typeof address === 'string' ? [address] : address) {
        const refusal = current.check(typeof a === 'string' ? a : a.address, port);
        if (refusal) return callback(forbiddenUpstream(refusal, `${hostname}:${port}`) as NodeJS.ErrnoException, typeof address === 'string' ? '' : []);
      }
      callback(null, address, family);
    });
  };
}

/** The refusal for a connected socket's peer, if any. */
function connectedRefusal(guard: UpstreamGuard, socket: Socket | Duplex, port: number): UpstreamRefusal | undefined {
  const s = socket as Socket;
  if (s.remoteAddress === undefined) return undefined;
  return guard.check(s.remoteAddress, s.remotePort ?? port);
}

/**
 * undici's connector with the three checks, for one upstream origin (the
 * port is fixed per origin, which is what lets the `lookup` judge it).
 */
export function guardedConnector(guard: CurrentGuard, port: number, build: UndiciConnector.BuildOptions, lookup?: LookupFunction): UndiciConnector.connector {
  const base = buildConnector({ ...build, lookup: guardedLookup(guard, port, lookup) });
  return (options, callback) => {
    const to = Number(options.port) || port;
    const literal = guard().check(options.hostname, to);
    if (literal) return callback(forbiddenUpstream(literal, `${options.hostname}:${to}`), null);
    base(options, (err, socket) => {
      if (err) return callback(err, null);
      const refusal = connectedRefusal(guard(), socket!, to);
      if (refusal) {
        socket!.destroy();
        return callback(forbiddenUpstream(refusal, `${options.hostname}:${to}`), null);
      }
      callback(null, socket!);
    });
  };
}

/**
 * An undici Agent `factory`: one Pool per origin, as undici's default, but
 * with the guarded connector. The connector gets the options undici's own
 * Pool would build its connector from (the Agent's `connect` and `allowH2`).
 */
export function guardedPoolFactory(guard: CurrentGuard, lookup?: LookupFunction): (origin: string | URL, opts: object) => Dispatcher {
  return (origin, opts) => {
    const o = opts as UndiciPool.Options & { connect?: UndiciConnector.BuildOptions };
    const url = new URL(String(origin));
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const { connect, ...rest } = o;
    return new Pool(origin, { ...rest, connect: guardedConnector(guard, port, { allowH2: o.allowH2, ...connect }, lookup) });
  };
}

/**
 * A plain TCP connection to `host:port` under the three checks, for clients
 * that take a socket (the h2c sessions, proxy/h2c-upstream.ts). A refusal or
 * a connect slower than `timeoutMs` destroys the socket with the error
 * (UPSTREAM_FORBIDDEN, or code `ECONNECT_TIMEOUT`), so its owner sees it as
 * any other connect failure; a refused literal is never dialled.
 */
export function guardedSocket(guard: CurrentGuard, host: string, port: number, timeoutMs: number, lookup?: LookupFunction): Socket {
  const literal = guard().check(host, port);
  if (literal) {
    const socket = new net.Socket();
    process.nextTick(() => socket.destroy(forbiddenUpstream(literal, `${host}:${port}`)));
    return socket;
  }
  const socket = net.connect({ host, port, lookup: guardedLookup(guard, port, lookup) });
  socket.setTimeout(timeoutMs, () => socket.destroy(Object.assign(new Error(`connect to ${host}:${port} timed out`), { code: 'ECONNECT_TIMEOUT' })));
  socket.once('connect', () => {
    socket.setTimeout(0);
    const refusal = connectedRefusal(guard(), socket, port);
    if (refusal) socket.destroy(forbiddenUpstream(refusal, `${host}:${port}`));
  });
  return socket;
}

/**
 * Makes an `http.Agent` (or `https.Agent`) apply the three checks to every
 * connection it opens (the WebSocket path). A refusal fails the request with
 * UPSTREAM_FORBIDDEN before anything is sent.
 */
export function guardAgent<A extends http.Agent>(agent: A, guard: CurrentGuard, lookup?: LookupFunction): A {
  const create = agent.createConnection.bind(agent);
  const defaultPort = (agent as { defaultPort?: number }).defaultPort ?? 80;
  agent.createConnection = (options, callback) => {
    const port = Number(options.port) || defaultPort;
    const host = String(options.host ?? options.hostname ?? 'localhost');
    const literal = guard().check(host, port);
    if (literal) {
      callback?.(forbiddenUpstream(literal, `${host}:${port}`), undefined as never);
      return undefined;
    }
    const socket = create({ ...options, lookup: guardedLookup(guard, port, lookup) }, callback);
    socket?.once('connect', () => {
      const refusal = connectedRefusal(guard(), socket, port);
      if (refusal) socket.destroy(forbiddenUpstream(refusal, `${host}:${port}`));
    });
    return socket;
  };
  return agent;
}
