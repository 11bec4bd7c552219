/**
 * TLS session ticket keys for :443, shared by every proxy process and
 * rotated, and a fresh ticket after every resumed handshake.
 *
 * Why padlock does this itself:
 * - **Node never renews a ticket.** Its built-in ticket callback accepts a
 *   ticket without asking OpenSSL for a new one, so a TLS 1.3 client gets no
 *   new ticket after a resumed handshake. Clients that use each ticket once
 *   (browsers, wrk) then resume only every other connection: measured with
 *   `openssl s_client -sess_in/-sess_out`, 5 of 10 reconnects resumed against
 *   plain Node, 9 of 10 (all but the first) against nginx and against padlock
 *   with this module.
 * - **Each process has its own random keys.** With `--workers`, a ticket one
 *   worker issued cannot be read by another, and connections are handed out
 *   round robin.
 *
 * The keys (16 bytes of name, HMAC key and AES key each) live in memory only,
 * and never in a log. A ticket made with the current key or the previous one
 * is accepted; every accepted ticket is renewed with the current key.
 * Rotation (every `TICKET_KEY_ROTATION_MS`) makes the current key the
 * previous one, so a key older than two periods decrypts nothing. A session's
 * own lifetime is Node's `sessionTimeout` (300 s), whatever the key.
 *
 * The hook is the server context's ticket key callback
 * (`enableTicketKeyCallback` and `onticketkeycallback`, Node-internal but in
 * Node since io.js 3 and covered by Node's own tests). If a Node version lacks
 * it, `installTicketKeys` returns false and Node's default behaviour stays.
 */
import { randomBytes } from 'node:crypto';
import type tls from 'node:tls';

/** How often the ticket key rotates (as Caddy: every 12 hours). */
export const TICKET_KEY_ROTATION_MS = 12 * 60 * 60 * 1000;

/** One ticket key: name (sent in the clear inside every ticket), HMAC key and AES-128 key, 16 bytes each. */
export interface TicketKey {
  readonly name: Buffer;
  readonly hmac: Buffer;
  readonly aes: Buffer;
}

/** The keys in force: new tickets use `current`; tickets of `previous` are still accepted (and renewed). */
export interface TicketKeys {
  readonly current: TicketKey;
  readonly previous?: TicketKey;
}

/** The keys as they cross the IPC channel to a worker (hex, 96 characters each). */
export interface TicketKeysWire {
  current: string;
  previous?: string;
}

/** A new random key. */
export function newTicketKey(): TicketKey {
  const b = randomBytes(48);
  return { name: b.subarray(0, 16), hmac: b.subarray(16, 32), aes: b.subarray(32, 48) };
}

/** Fresh keys for a process that starts (nothing to keep). */
export function newTicketKeys(): TicketKeys {
  return { current: newTicketKey() };
}

/** The next keys: a new current one, the old current one kept as previous. */
export function rotateTicketKeys(keys: TicketKeys): TicketKeys {
  return { current: newTicketKey(), previous: keys.current };
}

export function ticketKeysToWire(keys: TicketKeys): TicketKeysWire {
  const hex = (k: TicketKey) => Buffer.concat([k.name, k.hmac, k.aes]).toString('hex');
  return { current: hex(keys.current), ...(keys.previous ? { previous: hex(keys.previous) } : {}) };
}

export function ticketKeysFromWire(wire: TicketKeysWire): TicketKeys {
  const key = (hex: string): TicketKey => {
    const b = Buffer.from(hex, 'hex');
    if (b.length !== 48) throw new Error('a ticket key is 48 bytes');
    return { name: b.subarray(0, 16), hmac: b.subarray(16, 32), aes: b.subarray(32, 48) };
  };
  return { current: key(wire.current), ...(wire.previous ? { previous: key(wire.previous) } : {}) };
}

/**
 * What the callback answers OpenSSL: `[1, hmac, aes, name, iv]` to encrypt,
 * `[2, hmac, aes]` to accept and renew, `[0, hmac, aes]` to refuse. Node reads
 * both keys whatever the first element says, and aborts the process on a
 * missing one, so a refusal carries (unused) keys too.
 */
export type TicketKeyAnswer = [1, Buffer, Buffer, Buffer, Buffer] | [2 | 0, Buffer, Buffer];

/**
 * The ticket decision, for one handshake: encrypt with the current key (with
 * a fresh IV), or decrypt with whichever key has `name`, asking for a new
 * ticket, or refuse an unknown name (a full handshake follows).
 */
export function ticketKeyAnswer(keys: TicketKeys, name: Buffer, encrypt: boolean): TicketKeyAnswer {
  const { current, previous } = keys;
  if (encrypt) return [1, current.hmac, current.aes, current.name, randomBytes(16)];
  if (name.equals(current.name)) return [2, current.hmac, current.aes];
  if (previous && name.equals(previous.name)) return [2, previous.hmac, previous.aes];
  return [0, current.hmac, current.aes];
}

interface TicketCallbackContext {
  enableTicketKeyCallback(): void;
  onticketkeycallback: (name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer;
}

/**
 * Makes `server` issue and accept tickets with `keys()` (read at every
 * handshake, so a rotation applies to the next one) and renew every ticket it
 * accepts. False when this Node offers no such hook (nothing changed then).
 */
export function installTicketKeys(server: tls.Server, keys: () => TicketKeys): boolean {
  const creds = (server as unknown as { _sharedCreds?: tls.SecureContext })._sharedCreds;
  return creds !== undefined && installContextTicketKeys(creds, keys);
}

/**
 * The same for one SecureContext: the context a TLS connection starts with
 * decides its tickets (OpenSSL's session context stays the initial one when
 * SNI switches the certificate), so a context padlock starts connections
 * with (proxy/ip-hosts.ts) needs the hook too. False when this Node offers
 * no such hook.
 */
export function installContextTicketKeys(secureContext: tls.SecureContext, keys: () => TicketKeys): boolean {
  const context = (secureContext as unknown as { context?: Partial<TicketCallbackContext> }).context;
  if (!context || typeof context.enableTicketKeyCallback !== 'function') return false;
  context.enableTicketKeyCallback();
  context.onticketkeycallback = (name, _iv, encrypt) => ticketKeyAnswer(keys(), name, encrypt);
  return true;
}
