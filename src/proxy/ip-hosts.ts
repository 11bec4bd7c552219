/**
 * IP address hosts on :443: serving a site whose host is an IP address
 * (`203.0.113.10`, `2001:db8::10`) with its IP certificate (RFC 8738).
 *
 * ## The problem
 * A client connecting to `https://203.0.113.10/` sends no SNI: RFC 6066
 * section 3 forbids IP literals there, and Node, curl, OpenSSL and browsers
 * leave it out. Node then never calls the SNI callback and the handshake
 * runs with the server's default context, which in padlock holds no
 * certificate (no default certificate is ever shown), so such a client got
 * `handshake_failure`.
 *
 * ## What padlock does: the connection's local address picks the context
 * The address a client connected to is the IP it asked for: it is the
 * socket's `localAddress` (an IPv4-mapped `::ffff:a.b.c.d` read as
 * `a.b.c.d`). When that address is an IP host with a certificate, the
 * connection's TLS socket starts with that host's context instead of the
 * empty default:
 * - a ClientHello **without SNI** is answered with the IP certificate;
 * - a ClientHello **with SNI** is exactly as before: the SNI callback swaps
 *   in the name's context (or refuses an unknown name) before any
 *   certificate is chosen, so names served on the same address are
 *   unaffected;
 * - a connection to any **other local address** is handed over untouched.
 *
 * The context is the certificate registry's own (tls/contexts.ts: built on
 * first use, cached by version, a pending certificate read first), with
 * padlock's session ticket hook installed (tls/session-tickets.ts): OpenSSL
 * keeps a connection's initial context as its session context even after
 * SNI swaps the certificate, so tickets of every connection on that address
 * are padlock's shared, rotated ones, across workers too. Its TLS policy is
 * the server's (`TLS_POLICY`); ALPN (h2, http/1.1) is the server's socket
 * option, not the context's.
 *
 * ## Why not read the ClientHello first
 * The obvious alternative reads the ClientHello on the raw socket
 * (proxy/client-hello.ts) and picks the IP context only when it carries no
 * SNI. On a real host the IP host is usually the machine's public address,
 * where every name's connections arrive too, so that would parse every
 * ClientHello on the port, and the `acme-tls/1` gate measured such a read
 * at about +0.5 ms per connection. Starting every connection on the address
 * with the IP context costs one Map lookup instead, and the SNI callback
 * already makes it irrelevant for connections that name a host.
 *
 * ## The one private field
 * Node's TLS server builds a connection's `TLSSocket` synchronously in its
 * `connection` listener, with `secureContext: this._sharedCreds`; no public
 * API sets a context per connection before the handshake. So the
 * listener runs with `_sharedCreds` set to the IP context for that one call,
 * and restored right after (a `finally`, nothing else can run in between).
 * `installIpHosts` checks at start that the field exists and holds a
 * context, and throws otherwise, so padlock refuses to start on a Node that
 * changed it rather than silently failing IP hosts; the integration tests
 * (test/integration/ip-hosts.test.ts) pin the behaviour.
 *
 * ## Routing on such a connection
 * The connection's name is its SNI name, or, without SNI, its local address
 * (`connectionName`): a request whose Host (or `:authority`) is that address
 * (`203.0.113.10`, `203.0.113.10:8443`, `[2001:db8::10]:443`) routes to the
 * IP site; any other Host gets 421, as for a name (proxy/https-server.ts,
 * proxy/h2-stream.ts). A connection without SNI that completed a handshake
 * was served the certificate of its local address, since the default
 * context has none.
 */
import type tls from 'node:tls';
import type { Socket } from 'node:net';
import { canonicalIp, mappedIpv4 } from '../ip.js';
import type { CertificateRegistry } from '../tls/contexts.js';
import { installContextTicketKeys, type TicketKeys } from '../tls/session-tickets.js';
import type { Logger } from '../log.js';

export interface IpHostsOptions {
  certificates: CertificateRegistry;
  /** The session ticket keys in force (read at every handshake). */
  ticketKeys: () => TicketKeys;
  logger: Logger;
}

type ConnectionListener = (this: tls.Server, socket: Socket) => void;
interface SharedCreds {
  _sharedCreds?: tls.SecureContext;
}

/**
 * Puts IP host selection in front of `server`'s TLS: its current
 * `connection` listeners (the TLS server's own) run for every connection,
 * with the IP host's context as the initial one when the local address is
 * an IP host (see the module comment). Call it before the `acme-tls/1` gate
 * (which then runs first, so a TLS-ALPN-01 validation of an IP, which does
 * carry SNI, is answered as usual) and before other `connection` listeners.
 * @throws Error when this Node's TLS server has no `_sharedCreds` context.
 */
export function installIpHosts(server: tls.Server, options: IpHostsOptions): void {
  const creds = (server as unknown as SharedCreds)._sharedCreds;
  if (!creds || typeof creds !== 'object' || typeof (creds as { context?: unknown }).context !== 'object') {
    throw new Error("this Node version's TLS server has no _sharedCreds context; padlock cannot serve IP address hosts on it");
  }
  const normal = server.listeners('connection') as ConnectionListener[];
  server.removeAllListeners('connection');
  const toNormal = (socket: Socket) => {
    for (const listener of normal) listener.call(server, socket);
  };
  const registry = options.certificates;
  // Contexts that carry padlock's ticket hook already (a context is reused by every connection until it changes).
  const hooked = new WeakSet<tls.SecureContext>();
  const startWith = (socket: Socket, context: tls.SecureContext) => {
    if (!hooked.has(context)) {
      installContextTicketKeys(context, options.ticketKeys);
      hooked.add(context);
    }
    const holder = server as unknown as SharedCreds;
    const saved = holder._sharedCreds;
    holder._sharedCreds = context;
    try {
      toNormal(socket);
    } finally {
      holder._sharedCreds = saved;
    }
  };
  server.on('connection', (socket: Socket) => {
    if (!registry.hasAddresses()) return toNormal(socket);
    const ip = localIp(socket);
    if (ip === undefined || !registry.holdsAddress(ip)) return toNormal(socket);
    let answered = false;
    let onError: (() => void) | undefined;
    // Synchronous for a certificate in memory; a pending one (not read from the store yet) is read first.
    registry.sniCallback(ip, (_err, context) => {
      answered = true;
      if (onError) {
        socket.removeListener('error', onError);
        if (socket.destroyed) return;
      }
      // No usable certificate after all: the default context answers, as for any connection without SNI.
      if (context) startWith(socket, context);
      else toNormal(socket);
    });
    if (!answered) {
      // Nobody else listens yet: a reset while the certificate is read must not become an uncaught error.
      onError = () => socket.destroy();
      socket.on('error', onError);
    }
  });
}

/** The canonical text of `socket`'s local address (IPv4-mapped IPv6 as IPv4), or undefined when unknown. */
export function localIp(socket: { localAddress?: string | undefined }): string | undefined {
  const raw = socket.localAddress;
  if (!raw) return undefined;
  const ip = canonicalIp(raw);
  // An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`: it connected to the IPv4 address.
  return ip === undefined ? undefined : mappedIpv4(ip) ?? ip;
}

/**
 * The connection's name for routing: its SNI name (lowercase, no trailing
 * dot), or without SNI its local address (see "Routing" in the module
 * comment). Undefined when neither is known.
 */
export function connectionName(socket: { servername?: string | false | null; localAddress?: string | undefined }): string | undefined {
  const sni = socket.servername;
  if (typeof sni === 'string' && sni !== '') return sni.toLowerCase().replace(/\.$/, '');
  return localIp(socket);
}
