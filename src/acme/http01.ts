/**
 * HTTP-01 challenge responders (RFC 8555 section 8.3).
 *
 * A responder makes `http://NAME/.well-known/acme-challenge/TOKEN` answer the
 * key authorization while an order is validated. Two kinds:
 * - standalone: padlock's own HTTP server, with a token map shared by every
 *   order in the process (so concurrent orders need one port, once);
 * - webroot: files under an existing web server's document root.
 *
 * `prepare()` proves the responder can work (port bound, folder writable)
 * before any order is placed, so a problem costs no failed validation at the CA.
 */
import type * as http from 'node:http';
import nodeHttp from '../node-http.js';
import { mkdir, writeFile, unlink, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { StandaloneChallengeServer } from './challenge-listen.js';
import { PadlockError, errorMessage } from '../errors.js';
import type { Challenge, ChallengeSolver } from './solver.js';

export const CHALLENGE_PREFIX = '/.well-known/acme-challenge/';
const TOKEN = /^[A-Za-z0-9_-]+$/;

/**
 * Where HTTP-01 key authorizations are published, by token. The ACME issuer
 * does not use this directly: `Http01Solver` adapts it to the challenge
 * solver interface (acme/solver.ts).
 */
export interface ChallengeResponder {
  /** What the CA will fetch, for progress and error messages. */
  describe(): string;
  /** Checks that challenges can be served; throws a CHALLENGE_* error if not. Idempotent. */
  prepare(): Promise<void>;
  present(token: string, keyAuthorization: string): Promise<void>;
  remove(token: string): Promise<void>;
  /** Releases the port or folder. Idempotent. */
  close(): Promise<void>;
}

/**
 * An in-memory token -> key authorization map, with an optional stateless
 * fallback.
 *
 * Stateless answering (RFC 8555 section 8.3 allows any server that can
 * compute the key authorization): with `setStateless(thumbprint)`, a token
 * this process never saw is answered with `token "." thumbprint`, the key
 * authorization of the account whose JWK thumbprint (RFC 7638) that is. Every
 * padlock replica sharing a store shares that account, so any replica (and
 * any worker) answers any validation at once, with nothing to propagate and
 * nothing to read from the store: no window in which a replica could be asked
 * for a token it does not know yet. It only ever proves control to an order
 * of that same account.
 */
export class TokenMap {
  private readonly tokens = new Map<string, string>();
  private thumbprint: string | undefined;
  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }
  delete(token: string): void {
    this.tokens.delete(token);
  }
  /** Answers tokens nobody presented here with `token.thumbprint` (undefined: only presented tokens). */
  setStateless(thumbprint: string | undefined): void {
    this.thumbprint = thumbprint;
  }
  get stateless(): string | undefined {
    return this.thumbprint;
  }
  get(token: string): string | undefined {
    const known = this.tokens.get(token);
    if (known !== undefined || this.thumbprint === undefined || !TOKEN.test(token) || token.length > 128) return known;
    return `${token}.${this.thumbprint}`;
  }
  get size(): number {
    return this.tokens.size;
  }
}

/**
 * Answers an ACME HTTP-01 request from `tokens`. Returns false when the path
 * is not a challenge path, so the caller can serve something else.
 */
export function handleChallengeRequest(tokens: TokenMap, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const path = (req.url ?? '').split('?')[0] ?? '';
  if (!path.startsWith(CHALLENGE_PREFIX)) return false;
  const token = path.slice(CHALLENGE_PREFIX.length);
  const keyAuthorization = TOKEN.test(token) ? tokens.get(token) : undefined;
  if (keyAuthorization === undefined || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown challenge token\n');
    return true;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(keyAuthorization) });
  res.end(req.method === 'HEAD' ? undefined : keyAuthorization);
  return true;
}

/** padlock's own HTTP server on `port` (certbot's --standalone). */
export class StandaloneResponder extends StandaloneChallengeServer<http.Server> implements ChallengeResponder {
  readonly tokens = new TokenMap();
  constructor(port: number, address?: string) {
    super(port, address);
  }

  describe(): string {
    return `padlock's HTTP server on ${this.address ?? '*'}:${this.port}`;
  }

  protected createServer(): http.Server {
    const server = nodeHttp.createServer((req, res) => {
      if (!handleChallengeRequest(this.tokens, req, res)) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.keepAliveTimeout = 2_000;
    return server;
  }

  protected inUseMessage(where: string): string {
    return `port ${where} is already in use, so the HTTP-01 challenge cannot be served: stop the program using it (often a web server), use --webroot with that server's document root, or pick --http-01-port`;
  }

  protected override beforeClose(server: http.Server): void {
    server.closeAllConnections();
  }

  async present(token: string, keyAuthorization: string): Promise<void> {
    this.tokens.set(token, keyAuthorization);
  }

  async remove(token: string): Promise<void> {
    this.tokens.delete(token);
  }
}

/** Token files under an existing web server's document root (certbot's --webroot -w DIR). */
export class WebrootResponder implements ChallengeResponder {
  private readonly dir: string;
  private readonly written = new Set<string>();
  /** The topmost folder prepare() created, if any, so close() removes only what padlock made. */
  private createdFrom: string | undefined;
  constructor(private readonly webroot: string) {
    this.dir = join(webroot, '.well-known', 'acme-challenge');
  }

  describe(): string {
    return `files in ${this.dir}`;
  }

  async prepare(): Promise<void> {
    const probe = join(this.dir, `.padlock-probe-${process.pid}`);
    try {
      const made = await mkdir(this.dir, { recursive: true, mode: 0o755 });
      if (made !== undefined) this.createdFrom ??= made;
      await writeFile(probe, 'probe', { mode: 0o644 });
      await unlink(probe);
    } catch (err) {
      throw new PadlockError('CHALLENGE_WEBROOT_UNWRITABLE',
        `cannot write challenge files in ${this.dir} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}): check that -w points at the document root your web server serves for these names and that padlock may write there`,
        { cause: err });
    }
  }

  async present(token: string, keyAuthorization: string): Promise<void> {
    if (!TOKEN.test(token)) throw new PadlockError('ACME_PROBLEM', `the CA sent a malformed challenge token`);
    // Web servers must be able to read it: 0644 (it is public by design).
    await writeFile(join(this.dir, token), keyAuthorization, { mode: 0o644 });
    this.written.add(token);
  }

  async remove(token: string): Promise<void> {
    this.written.delete(token);
    await rm(join(this.dir, token), { force: true });
  }

  async close(): Promise<void> {
    for (const token of [...this.written]) await this.remove(token);
    if (this.createdFrom !== undefined) {
      // Only remove folders padlock made, and only while empty.
      await rmdir(this.dir).catch(() => undefined);
      if (this.createdFrom !== this.dir) await rmdir(this.createdFrom).catch(() => undefined);
      this.createdFrom = undefined;
    }
  }
}

/**
 * Challenges answered by a server that already runs (the daemon's :80), from
 * the token map it shares. Nothing to bind or write.
 */
export class TokenMapResponder implements ChallengeResponder {
  constructor(private readonly tokens: TokenMap, private readonly where: string) {}
  describe(): string {
    return this.where;
  }
  async prepare(): Promise<void> {}
  async present(token: string, keyAuthorization: string): Promise<void> {
    this.tokens.set(token, keyAuthorization);
  }
  async remove(token: string): Promise<void> {
    this.tokens.delete(token);
  }
  async close(): Promise<void> {}
}

/**
 * HTTP-01 (RFC 8555 section 8.3) as a challenge solver: publishes each
 * challenge's key authorization under its token through `responder`.
 */
export class Http01Solver implements ChallengeSolver {
  readonly type = 'http-01' as const;
  constructor(readonly responder: ChallengeResponder) {}
  describe(): string {
    return this.responder.describe();
  }
  prepare(): Promise<void> {
    return this.responder.prepare();
  }
  present(challenge: Challenge): Promise<void> {
    return this.responder.present(challenge.token, challenge.keyAuthorization);
  }
  cleanup(challenge: Challenge): Promise<void> {
    return this.responder.remove(challenge.token);
  }
  close(): Promise<void> {
    return this.responder.close();
  }
  hint(acmeType: string, name: string): string {
    const where = this.responder.describe();
    switch (acmeType) {
      case 'connection':
        return `The CA could not fetch http://${name}/.well-known/acme-challenge/…: check that ${name}'s DNS points to this machine and that port 80 is open to the internet (served by ${where}). If port 80 must stay closed, answer TLS-ALPN-01 on port 443 instead (padlock issue --preferred-challenges tls-alpn-01, padlock run --challenge tls-alpn-01).`;
      case 'dns':
        return `The CA could not fetch http://${name}/.well-known/acme-challenge/…: check that ${name}'s DNS points to this machine and that port 80 is open to the internet (served by ${where}).`;
      case 'caa':
        return `A CAA record on ${name} or a parent forbids this CA; add the CA's domain to it.`;
      case 'unauthorized':
      case 'incorrectResponse':
        return `The CA fetched http://${name}/.well-known/acme-challenge/… but got the wrong answer: check that requests for ${name} on port 80 reach ${where} (no other server, proxy or redirect in between).`;
      case 'rateLimited':
        return 'The CA is rate limiting; wait until the time it names before retrying.';
      default:
        return `Check that http://${name}/.well-known/acme-challenge/… reaches ${where}.`;
    }
  }
}
