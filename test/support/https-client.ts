/**
 * One HTTPS client API over two protocols, so a test suite can run unchanged
 * over HTTP/1.1 (`https.request`) and HTTP/2 (`http2.connect`). Every
 * connection goes to 127.0.0.1 with an explicit `servername`: no name is ever
 * resolved.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type tls from 'node:tls';

export type ClientProtocol = 'http/1.1' | 'h2';

export interface Ask {
  host: string;
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  /** A string or buffer is sent with a length; an array of buffers is written piece by piece with no length (chunked, or h2 DATA frames). */
  body?: string | Buffer | Buffer[];
  /** SNI name (default `host`). */
  servername?: string;
  /** Reuse this connection (keep-alive, or one h2 session); default a new connection, closed after the answer. */
  connection?: Connection;
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  raw: Buffer;
  trailers: Record<string, string | string[] | undefined>;
  /** SHA-256 fingerprint of the server certificate of the connection that answered. */
  fingerprint?: string;
  /** The connection that answered (compare for identity: same object, same connection). */
  socket: object;
}

/** A reusable connection; close it when done. */
export interface Connection {
  close(): void;
}

export interface HttpsClient {
  readonly protocol: ClientProtocol;
  request(port: number, ask: Ask): Promise<Reply>;
  /** A connection for several requests to `port` (h1: a keep-alive agent of one socket; h2: one session). */
  connection(port: number): Connection;
  /** Reads the first piece of the answer, then gives up on it (closes the socket, or resets the stream). */
  readThenHangUp(port: number, ask: Ask): Promise<void>;
}

/** The client for `protocol`, trusting only `ca()` (read at each request, so a suite may change its root). */
export function httpsClient(protocol: ClientProtocol, ca: () => string): HttpsClient {
  return protocol === 'h2' ? new H2Client(ca) : new H1Client(ca);
}

class H1Connection implements Connection {
  readonly agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  close(): void {
    this.agent.destroy();
  }
}

class H1Client implements HttpsClient {
  readonly protocol = 'http/1.1';
  constructor(private readonly ca: () => string) {}

  connection(): Connection {
    return new H1Connection();
  }

  private start(port: number, ask: Ask, onResponse: (res: http.IncomingMessage, req: http.ClientRequest) => void, onError: (err: Error) => void): http.ClientRequest {
    const chunked = Array.isArray(ask.body);
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: ask.path ?? '/',
        method: ask.method ?? 'GET',
        servername: ask.servername ?? ask.host,
        ca: this.ca(),
        headers: { host: ask.host, ...ask.headers },
        agent: ask.connection instanceof H1Connection ? ask.connection.agent : false,
      },
      (res) => onResponse(res, req),
    );
    req.on('error', onError);
    req.setTimeout(ask.timeoutMs ?? 10_000, () => req.destroy(new Error('client timeout')));
    if (chunked) {
      for (const piece of ask.body as Buffer[]) req.write(piece);
      req.end();
    } else {
      req.end(ask.body);
    }
    return req;
  }

  request(port: number, ask: Ask): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.start(port, ask, (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket as tls.TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: raw.toString('utf8'), raw, trailers: res.trailers, fingerprint, socket });
        });
        res.on('error', reject);
      }, reject);
    });
  }

  readThenHangUp(port: number, ask: Ask): Promise<void> {
    return new Promise((resolve, reject) => {
      this.start(port, ask, (res, req) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      }, (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    });
  }
}

class H2Connection implements Connection {
  session: http2.ClientHttp2Session | undefined;
  constructor(readonly port: number) {}
  close(): void {
    this.session?.close();
  }
}

class H2Client implements HttpsClient {
  readonly protocol = 'h2';
  constructor(private readonly ca: () => string) {}

  connection(port: number): Connection {
    return new H2Connection(port);
  }

  private session(port: number, ask: Ask): { session: http2.ClientHttp2Session; own: boolean } {
    const reuse = ask.connection instanceof H2Connection ? ask.connection : undefined;
    if (reuse?.session && !reuse.session.closed && !reuse.session.destroyed) return { session: reuse.session, own: false };
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: ask.servername ?? ask.host, ca: this.ca() });
    session.on('error', () => undefined);
    if (reuse) reuse.session = session;
    return { session, own: !reuse };
  }

  private start(port: number, ask: Ask): { stream: http2.ClientHttp2Stream; session: http2.ClientHttp2Session; own: boolean } {
    const { session, own } = this.session(port, ask);
    const headers: http2.OutgoingHttpHeaders = { ':method': ask.method ?? 'GET', ':path': ask.path ?? '/', ':authority': ask.host, ...ask.headers };
    const stream = session.request(headers, { endStream: ask.body === undefined });
    stream.setTimeout(ask.timeoutMs ?? 10_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    if (Array.isArray(ask.body)) {
      for (const piece of ask.body) stream.write(piece);
      stream.end();
    } else if (ask.body !== undefined) {
      stream.end(ask.body);
    }
    return { stream, session, own };
  }

  request(port: number, ask: Ask): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const { stream, session, own } = this.start(port, ask);
      let headers: (http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) | undefined;
      let trailers: Record<string, string | string[] | undefined> = {};
      let fingerprint: string | undefined;
      let socket: object = session;
      let ended = false;
      let failure: Error | undefined;
      const chunks: Buffer[] = [];
      stream.on('response', (h) => {
        headers = h;
        const tlsSocket = session.socket as tls.TLSSocket | undefined;
        fingerprint = tlsSocket?.getPeerCertificate().fingerprint256;
        socket = tlsSocket ?? session;
      });
      stream.on('trailers', (t) => (trailers = { ...t }));
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => (ended = true));
      stream.on('error', (err) => (failure = err));
      // Settled on 'close': only then is it known whether the stream ended or was reset.
      stream.on('close', () => {
        if (own) session.close();
        const code = stream.rstCode ?? 0;
        if (failure) return reject(failure);
        if (!headers || !ended || code !== http2.constants.NGHTTP2_NO_ERROR) {
          return reject(Object.assign(new Error(`stream closed without a complete answer (RST_STREAM code ${code})`), { code: 'ERR_HTTP2_STREAM_RESET', rstCode: code }));
        }
        const raw = Buffer.concat(chunks);
        const { ':status': status, ...rest } = headers;
        resolve({ status: Number(status ?? 0), headers: rest as http.IncomingHttpHeaders, body: raw.toString('utf8'), raw, trailers, ...(fingerprint ? { fingerprint } : {}), socket });
      });
    });
  }

  readThenHangUp(port: number, ask: Ask): Promise<void> {
    return new Promise((resolve, reject) => {
      const { stream, session, own } = this.start(port, ask);
      stream.on('error', reject);
      stream.once('data', () => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        if (own) session.close();
        resolve();
      });
    });
  }
}

/** What a GET to an IP literal saw: the answer and the connection it came over. */
export interface IpAnswer {
  status: number;
  body: string;
  /** The IP addresses and DNS names of the certificate the server presented. */
  san: string;
  protocol: string;
  reused: boolean;
}

/**
 * One GET over HTTP/2 to an IP literal (Node sends no SNI for it), trusting
 * `ca`. `:authority` is written as browsers write it (`[::1]:PORT`), unless
 * `authority` overrides it: Node's own default leaves IPv6 unbracketed.
 */
export function h2GetIp(ip: string, port: number, ca: string, authority?: string): Promise<IpAnswer> {
  const hostPart = ip.includes(':') ? `[${ip}]` : ip;
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://${hostPart}:${port}`, { ca });
    session.on('error', reject);
    const stream = session.request({ ':path': '/', ':authority': authority ?? `${hostPart}:${port}` });
    let body = '';
    let status = 0;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.setEncoding('utf8').on('data', (d: string) => (body += d));
    stream.on('error', (e) => {
      session.close();
      reject(e);
    });
    stream.on('end', () => {
      const socket = session.socket as tls.TLSSocket;
      const answer = { status, body, san: socket.getPeerCertificate().subjectaltname ?? '', protocol: String(socket.alpnProtocol), reused: socket.isSessionReused() };
      session.close();
      resolve(answer);
    });
  });
}
