/**
 * An HTTP/2 stream seen as the `ClientResponse` the forwarder writes to
 * (proxy/forward.ts), so both protocols share one forwarding path. It is a
 * thin layer over Node's core `ServerHttp2Stream` API rather than Node's
 * `Http2ServerResponse` compatibility layer, which measured at about half the
 * requests per second here (bare hello-world, h2load -c 50 -m 10).
 *
 * Trailers: a response with a `Content-Length` cannot have trailers (an
 * HTTP/1.1 upstream sends them only after a chunked body), so only a response
 * without one keeps its stream open after the last DATA frame
 * (`waitForTrailers`) and ends it with the upstream's trailer fields, or an
 * empty trailer section when there were none.
 */
import http2 from 'node:http2';
import type http from 'node:http';
import type { ClientResponse } from './forward.js';
import { h2ResponseHeaders } from './h2-headers.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;

/** One HTTP/2 stream's answer. Create one per stream; it keeps no reference once the stream closes. */
export class H2Response implements ClientResponse {
  statusMessage = '';
  private ended = false;
  private trailers: http.OutgoingHttpHeaders | undefined;
  private readonly sendTrailers = (): void => {
    try {
      this.stream.sendTrailers(this.trailers ?? {});
    } catch {
      // A field Node will not send (or a stream already gone): end without it.
      if (!this.stream.destroyed) this.stream.close();
    }
  };

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    /** A HEAD request: its answer has no body, so nothing to wait for. */
    private readonly head: boolean,
    /** A gRPC call (`content-type: application/grpc...`): padlock's own errors are answered as gRPC statuses. */
    readonly grpc = false,
  ) {}

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /**
   * Whether the answer was ended by padlock. (Not the stream's own
   * `writableFinished`: Node sets that too when the client resets the stream
   * and closes the connection at once, which would read as a complete answer.)
   */
  get writableFinished(): boolean {
    return this.ended;
  }

  get socket(): { readonly destroyed: boolean } | null {
    const session = this.stream.session;
    return session && !session.destroyed ? session.socket : null;
  }

  writeHead(status: number, _reason: string | undefined, headers: http.OutgoingHttpHeaders, complete = false): this {
    if (complete) {
      // The head is the whole answer (gRPC's trailers-only shape): one HEADERS frame that ends the stream.
      this.stream.respond(h2ResponseHeaders(status, headers), { endStream: true });
      this.ended = true;
      return this;
    }
    const waitForTrailers = !this.head && headers['content-length'] === undefined && status !== 204 && status !== 304;
    this.stream.respond(h2ResponseHeaders(status, headers), waitForTrailers ? { waitForTrailers } : undefined);
    if (waitForTrailers) this.stream.once('wantTrailers', this.sendTrailers);
    return this;
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  end(body?: string): this {
    this.ended = true;
    if (body === undefined) this.stream.end();
    else this.stream.end(body);
    return this;
  }

  /** Resets the stream (INTERNAL_ERROR): the client sees a failed request, never a short body that looks complete. */
  destroy(): this {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
    return this;
  }

  writeEarlyHints(hints: Record<string, string | string[]>): void {
    this.stream.additionalHeaders({ ...hints, ':status': 103 });
  }

  addTrailers(trailers: http.OutgoingHttpHeaders): void {
    this.trailers = { ...this.trailers, ...trailers };
  }

  once(event: 'close' | 'drain', listener: () => void): this {
    this.stream.once(event, listener);
    return this;
  }

  off(event: 'close' | 'drain', listener: () => void): this {
    this.stream.off(event, listener);
    return this;
  }
}
