/**
 * A raw HTTP/2 client for hostile tests: it writes frames byte by byte
 * (RFC 9113 section 4.1) over TLS to 127.0.0.1, so a test can send what no
 * well-behaved client library would (floods of RST_STREAM, malformed header
 * blocks, a preface without SETTINGS acknowledgement), and it records the
 * frames the server sends back.
 */
import tls from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** One frame as bytes. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK string literal, not Huffman-coded (RFC 7541 section 5.2); lengths up to 126 fit one byte, longer use the integer continuation. */
function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(bytes.length, 7, 0), bytes]);
}

function hpackInt(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteFlags | value]);
  const out = [firstByteFlags | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/**
 * A header block for `GET path` to `authority` (static table entries for
 * :method GET, :scheme https; literals without indexing for the rest), plus
 * `extra` fields as literals. Names are sent as given: an uppercase one makes
 * the request malformed.
 */
export function requestBlock(authority: string, path = '/', extra: Array<[string, string]> = []): Buffer {
  const parts: Buffer[] = [Buffer.from([0x82, 0x87])];
  // :path and :authority: literal without indexing, indexed name (static table 4 and 1).
  parts.push(hpackInt(4, 4, 0), hpackString(path));
  parts.push(hpackInt(1, 4, 0), hpackString(authority));
  for (const [name, value] of extra) parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

export interface RawSession {
  /** Writes bytes (frames) now. */
  write(bytes: Buffer): void;
  /** The error code of the first GOAWAY the server sent, if any. */
  readonly goaway: number | undefined;
  /** RST_STREAM frames the server sent: [stream id, error code]. */
  readonly resets: Array<[number, number]>;
  /** `:status`-bearing HEADERS frames the server sent, by stream id (the header block is not decoded). */
  readonly headersOn: Set<number>;
  /** Whether the server acknowledged our SETTINGS, and sent its own. */
  readonly serverSettingsSeen: boolean;
  readonly closed: boolean;
  /** Resolves when the connection closes, or after `ms`. */
  closedWithin(ms: number): Promise<boolean>;
  destroy(): void;
}

/**
 * Opens a TLS connection offering only `h2`, sends the client preface and an
 * empty SETTINGS frame, and acknowledges the server's SETTINGS unless
 * `ackSettings` is false.
 */
export async function rawH2(port: number, servername: string, ca: string, options: { ackSettings?: boolean } = {}): Promise<RawSession> {
  const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['h2'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  if (socket.alpnProtocol !== 'h2') throw new Error(`the server chose ${String(socket.alpnProtocol)}, not h2`);
  const state = { goaway: undefined as number | undefined, resets: [] as Array<[number, number]>, headersOn: new Set<number>(), serverSettingsSeen: false, closed: false };
  let buffered = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => {
    buffered = Buffer.concat([buffered, d]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const type = buffered[3]!;
      const flags = buffered[4]!;
      const id = buffered.readUInt32BE(5) & 0x7fffffff;
      const payload = buffered.subarray(9, 9 + length);
      if (type === FRAME.GOAWAY) state.goaway ??= payload.readUInt32BE(4);
      if (type === FRAME.RST_STREAM) state.resets.push([id, payload.readUInt32BE(0)]);
      if (type === FRAME.HEADERS) state.headersOn.add(id);
      if (type === FRAME.SETTINGS && (flags & FLAG.ACK) === 0) {
        state.serverSettingsSeen = true;
        if (options.ackSettings !== false && !socket.destroyed) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      }
      if (type === FRAME.PING && (flags & FLAG.ACK) === 0 && !socket.destroyed) socket.write(frame(FRAME.PING, FLAG.ACK, 0, payload));
      buffered = buffered.subarray(9 + length);
    }
  });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    state.closed = true;
    resolve();
  }));
  socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  return {
    write: (bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    },
    get goaway() {
      return state.goaway;
    },
    resets: state.resets,
    headersOn: state.headersOn,
    get serverSettingsSeen() {
      return state.serverSettingsSeen;
    },
    get closed() {
      return state.closed;
    },
    closedWithin: (ms) => Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(state.closed), ms))]),
    destroy: () => socket.destroy(),
  };
}
