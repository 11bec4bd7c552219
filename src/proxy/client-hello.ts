/**
 * A defensive reader of the first bytes a TLS client sends: the ClientHello
 * (RFC 8446 section 4.1.2, RFC 5246 section 7.4.1.2), for its SNI name
 * (RFC 6066 section 3) and its ALPN list (RFC 7301 section 3.1). Pure: bytes
 * in, a verdict out; it never throws.
 *
 * :443 reads this before any TLS happens, only while a TLS-ALPN-01 challenge
 * is pending (proxy/acme-tls-gate.ts), to send an `acme-tls/1` handshake to
 * the challenge server. Everything that is not a well-formed ClientHello is
 * `other`, and the caller hands the bytes to the normal TLS server, which
 * then fails the handshake the way it always did.
 *
 * Limits (explicit, so hostile bytes cost bounded memory and time):
 * - the ClientHello message at most {@link MAX_CLIENT_HELLO} bytes (a real one
 *   with a post-quantum key share is about 1.8 KB), which also bounds how
 *   much the caller buffers ({@link MAX_PEEK_BYTES});
 * - it may be split over several handshake records (RFC 8446 section 5.1
 *   allows it), each at most 2^14 bytes as the record layer says;
 * - every inner length is checked against its enclosing one; a server name
 *   longer than 255 bytes, an empty or over-255-byte ALPN entry, or more than
 *   {@link MAX_ALPN_ENTRIES} ALPN entries make it `other`.
 */

/** The largest ClientHello padlock reads (bytes of the handshake message body). */
export const MAX_CLIENT_HELLO = 16_384;
/** The most bytes the caller ever needs to buffer to get a verdict: the message, its header and one record header per 512 bytes of fragments. */
export const MAX_PEEK_BYTES = MAX_CLIENT_HELLO + 4 + 5 * 33;
/** ALPN entries read at most (browsers send 2-3). */
export const MAX_ALPN_ENTRIES = 32;

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const MAX_RECORD = 16_384;
const MAX_RECORDS = 33;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/** What the first bytes of a connection say. */
export type ClientHelloVerdict =
  /** Not enough bytes yet: read more (never more than MAX_PEEK_BYTES in total). */
  | { kind: 'incomplete' }
  /** A well-formed ClientHello: its SNI name (lowercase, no trailing dot) if any, and its ALPN protocols in order. */
  | { kind: 'hello'; serverName: string | undefined; alpn: string[] }
  /** Anything else (another protocol, a malformed or oversized hello): `reason` is for debug logs. */
  | { kind: 'other'; reason: string };

/** Reads the ClientHello at the start of `bytes` (the connection's first bytes as received). */
export function readClientHello(bytes: Uint8Array): ClientHelloVerdict {
  const message = reassemble(bytes);
  if (message.kind !== 'message') return message;
  return parseHello(message.body);
}

type Reassembled = { kind: 'message'; body: Uint8Array } | Exclude<ClientHelloVerdict, { kind: 'hello' }>;

/** Joins the handshake records' fragments until the whole ClientHello message is there. */
function reassemble(bytes: Uint8Array): Reassembled {
  const parts: Uint8Array[] = [];
  let have = 0;
  let want: number | undefined;
  let at = 0;
  for (let records = 0; ; records++) {
    if (records >= MAX_RECORDS) return other('the ClientHello is split over too many records');
    if (bytes.length < at + 5) {
      // Judge the first byte as soon as it is there: an HTTP request on :443 needs no more bytes to be sent on.
      return records === 0 && bytes.length > 0 && bytes[0] !== RECORD_HANDSHAKE ? other('not a TLS handshake record') : { kind: 'incomplete' };
    }
    if (bytes[at] !== RECORD_HANDSHAKE) return other(records === 0 ? 'not a TLS handshake record' : 'a non-handshake record inside the ClientHello');
    // Record versions 0x0300-0x0304 (clients send 0x0301 or 0x0303 here); a major other than 3 is not TLS.
    if (bytes[at + 1] !== 3) return other('not a TLS record version');
    const length = u16(bytes, at + 3);
    if (length === 0 || length > MAX_RECORD) return other(`a record length of ${length}`);
    const end = at + 5 + length;
    const fragment = bytes.subarray(at + 5, Math.min(end, bytes.length));
    parts.push(fragment);
    have += fragment.length;
    if (want === undefined && have >= 4) {
      const head = concat(parts, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return other('the first handshake message is not a ClientHello');
      const size = (head[1]! << 16) | (head[2]! << 8) | head[3]!;
      if (size > MAX_CLIENT_HELLO) return other(`a ClientHello of ${size} bytes (limit ${MAX_CLIENT_HELLO})`);
      if (size < 38) return other('a ClientHello too short to hold its fixed fields');
      want = size + 4;
    }
    if (want !== undefined && have >= want) return { kind: 'message', body: concat(parts, want).subarray(4) };
    if (end > bytes.length) return { kind: 'incomplete' };
    at = end;
  }
}

/** The ClientHello body: version, random, session id, cipher suites, compression methods, extensions. */
function parseHello(body: Uint8Array): ClientHelloVerdict {
  const r = new Reader(body);
  r.skip(2 + 32);
  const sessionId = r.u8();
  if (sessionId > 32) return other(`a session id of ${sessionId} bytes`);
  r.skip(sessionId);
  const suites = r.u16();
  if (r.failed) return other('the ClientHello ends inside its fixed fields');
  if (suites < 2 || suites % 2 !== 0) return other('a bad cipher_suites length');
  r.skip(suites);
  const compression = r.u8();
  if (compression < 1) return other('no compression methods');
  r.skip(compression);
  if (r.failed) return other('the ClientHello ends inside its fixed fields');
  let serverName: string | undefined;
  let alpn: string[] = [];
  if (r.remaining === 0) return { kind: 'hello', serverName, alpn };
  const extensions = r.sub(r.u16());
  if (r.failed || r.remaining !== 0) return other('the extensions length does not match the ClientHello');
  const seen = new Set<number>();
  while (extensions.remaining > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (extensions.failed) return other('an extension runs past the end of the ClientHello');
    // RFC 8446 section 4.2: a type appears at most once.
    if (seen.has(type)) return other(`extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(data);
      if (typeof name !== 'string' && name !== undefined) return name;
      serverName = name;
    } else if (type === EXT_ALPN) {
      const list = parseAlpn(data);
      if (!Array.isArray(list)) return list;
      alpn = list;
    }
  }
  return { kind: 'hello', serverName, alpn };
}

function parseServerName(data: Reader): string | undefined | Extract<ClientHelloVerdict, { kind: 'other' }> {
  // An empty extension is the server's acknowledgement form; a client sends a list.
  if (data.remaining === 0) return undefined;
  const list = data.sub(data.u16());
  if (data.failed || data.remaining !== 0) return other('a bad server_name list length');
  let name: string | undefined;
  while (list.remaining > 0) {
    const type = list.u8();
    const bytes = list.bytes(list.u16());
    if (list.failed) return other('a server name runs past its list');
    // Only host_name (0) exists; RFC 6066 section 3 allows one name of each type.
    if (type !== 0) continue;
    if (name !== undefined) return other('two host names in server_name');
    if (bytes.length === 0 || bytes.length > 255) return other('a server name of bad length');
    for (const b of bytes) if (b <= 0x20 || b >= 0x7f) return other('a server name with a byte outside printable ASCII');
    name = Buffer.from(bytes).toString('latin1').toLowerCase().replace(/\.$/, '');
  }
  return name;
}

function parseAlpn(data: Reader): string[] | Extract<ClientHelloVerdict, { kind: 'other' }> {
  const list = data.sub(data.u16());
  if (data.failed || data.remaining !== 0) return other('a bad ALPN list length');
  const out: string[] = [];
  while (list.remaining > 0) {
    const len = list.u8();
    const bytes = list.bytes(len);
    if (list.failed) return other('an ALPN protocol runs past its list');
    // RFC 7301 section 3.1: empty strings MUST NOT be included.
    if (len === 0) return other('an empty ALPN protocol name');
    if (out.length >= MAX_ALPN_ENTRIES) return other(`more than ${MAX_ALPN_ENTRIES} ALPN protocols`);
    out.push(Buffer.from(bytes).toString('latin1'));
  }
  if (out.length === 0) return other('an empty ALPN list');
  return out;
}

/** A bounds-checked cursor: reading past the end sets `failed` and yields zeros, never throws. */
class Reader {
  failed = false;
  private at = 0;
  constructor(private readonly buf: Uint8Array) {}
  get remaining(): number {
    return this.failed ? 0 : this.buf.length - this.at;
  }
  u8(): number {
    if (this.remaining < 1) return this.fail();
    return this.buf[this.at++]!;
  }
  u16(): number {
    if (this.remaining < 2) return this.fail();
    const v = u16(this.buf, this.at);
    this.at += 2;
    return v;
  }
  skip(n: number): void {
    if (this.remaining < n) this.fail();
    else this.at += n;
  }
  bytes(n: number): Uint8Array {
    if (this.remaining < n) {
      this.fail();
      return new Uint8Array(0);
    }
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  sub(n: number): Reader {
    const r = new Reader(this.bytes(n));
    r.failed = this.failed;
    return r;
  }
  private fail(): 0 {
    this.failed = true;
    return 0;
  }
}

function u16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

/** The first `n` bytes of the parts joined (the caller made sure they hold that many). */
function concat(parts: Uint8Array[], n: number): Uint8Array {
  return Buffer.concat(parts).subarray(0, n);
}

function other(reason: string): Extract<ClientHelloVerdict, { kind: 'other' }> {
  return { kind: 'other', reason };
}
