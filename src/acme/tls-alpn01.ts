/**
 * TLS-ALPN-01 (RFC 8737) as a challenge solver: while a name is validated,
 * a TLS handshake for it that offers ALPN `acme-tls/1` is answered with the
 * challenge certificate (acme/tls-alpn-cert.ts), `acme-tls/1` is negotiated,
 * and the connection is closed once the handshake is done (section 3: nothing
 * else is exchanged).
 *
 * Where the handshakes are answered is a publisher's job:
 * - the daemon's :443 (`AcmeTlsChallenges` read by proxy/acme-tls-gate.ts,
 *   which sends only `acme-tls/1` handshakes here);
 * - with `--workers`, every worker's :443 (proxy/cluster.ts; `present()`
 *   resolves once every worker has the certificate);
 * - `padlock issue --preferred-challenges tls-alpn-01`: a standalone TLS
 *   server on `--tls-alpn-01-port` for the duration of the run.
 */
import tls from 'node:tls';
import { StandaloneChallengeServer } from './challenge-listen.js';
import type { Challenge, ChallengeSolver } from './solver.js';
import { ACME_TLS_ALPN, acmeTlsServerName, createChallengeCertificate, type ChallengeCertificate } from './tls-alpn-cert.js';

/** A challenge certificate as published, with the token it answers (so one challenge's cleanup never removes another's). */
export interface AcmeTlsEntry extends ChallengeCertificate {
  token: string;
}

/** How long a challenge handshake may take (the CA's validation is one handshake). */
export const ACME_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The pending challenge certificates by SNI name, each with its TLS context
 * built once. Read on every `acme-tls/1` handshake; `size` is what :443 looks
 * at to decide whether to read ClientHellos at all.
 */
export class AcmeTlsChallenges {
  private readonly entries = new Map<string, { entry: AcmeTlsEntry; context: tls.SecureContext }>();
  /** Adds or replaces the certificate for `serverName`. @throws when the PEMs do not make a TLS context. */
  set(serverName: string, entry: AcmeTlsEntry): void {
    this.entries.set(serverName, { entry, context: tls.createSecureContext({ cert: entry.certPem, key: entry.keyPem }) });
  }
  /** Removes `serverName`'s certificate if it still answers `token` (a newer challenge for the name stays). */
  delete(serverName: string, token: string): void {
    if (this.entries.get(serverName)?.entry.token === token) this.entries.delete(serverName);
  }
  context(serverName: string): tls.SecureContext | undefined {
    return this.entries.get(serverName)?.context;
  }
  /** Every pending entry, for a worker that starts while challenges are pending. */
  list(): Array<[string, AcmeTlsEntry]> {
    return [...this.entries].map(([name, { entry }]) => [name, entry]);
  }
  get size(): number {
    return this.entries.size;
  }
}

/**
 * A TLS server that answers only `acme-tls/1` handshakes from `challenges`
 * and closes each connection once its handshake is done. A handshake for a
 * name with no pending challenge fails (no certificate to show); one that
 * does not offer `acme-tls/1` fails with `no_application_protocol`.
 * Not listening: the daemon hands it sockets (`emit('connection')`), the
 * standalone publisher listens with it.
 */
export function createAcmeTlsServer(challenges: AcmeTlsChallenges): tls.Server {
  const server = tls.createServer({
    ALPNProtocols: [ACME_TLS_ALPN],
    minVersion: 'TLSv1.2',
    handshakeTimeout: ACME_TLS_HANDSHAKE_TIMEOUT_MS,
    // Nothing is ever resumed: one handshake per validation.
    sessionTimeout: 0,
    SNICallback: (name, cb) => {
      const context = challenges.context(name.toLowerCase().replace(/\.$/, ''));
      if (context) cb(null, context);
      else cb(new Error('no TLS-ALPN-01 challenge is pending for this name'));
    },
  }, (socket) => {
    socket.on('error', () => socket.destroy());
    socket.end();
  });
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  return server;
}

/** Where challenge certificates are published (see the module comment). */
export interface AcmeTlsPublisher {
  /** Where the CA will connect, for progress and error messages. */
  describe(): string;
  /** Proves it can serve (a port bound); throws a CHALLENGE_* error if not. Idempotent. */
  prepare(): Promise<void>;
  /** Resolves once every process that accepts :443 connections answers `serverName` with `entry`. */
  present(serverName: string, entry: AcmeTlsEntry): Promise<void>;
  remove(serverName: string, token: string): Promise<void>;
  /** Releases what `prepare()` took. Idempotent. */
  close(): Promise<void>;
}

/** Publishes into a map a running :443 already reads (the daemon, one process). */
export class AcmeTlsMapPublisher implements AcmeTlsPublisher {
  constructor(private readonly challenges: AcmeTlsChallenges, private readonly where: string) {}
  describe(): string {
    return this.where;
  }
  async prepare(): Promise<void> {}
  async present(serverName: string, entry: AcmeTlsEntry): Promise<void> {
    this.challenges.set(serverName, entry);
  }
  async remove(serverName: string, token: string): Promise<void> {
    this.challenges.delete(serverName, token);
  }
  async close(): Promise<void> {}
}

/** padlock's own TLS server on `port` for the run (`--tls-alpn-01-port`, certbot's and lego's naming). */
export class StandaloneAcmeTlsPublisher extends StandaloneChallengeServer<tls.Server> implements AcmeTlsPublisher {
  readonly challenges = new AcmeTlsChallenges();
  constructor(port: number, address?: string) {
    super(port, address);
  }

  describe(): string {
    return `padlock's TLS server on ${this.address ?? '*'}:${this.port}`;
  }

  protected createServer(): tls.Server {
    return createAcmeTlsServer(this.challenges);
  }

  protected inUseMessage(where: string): string {
    return `port ${where} is already in use, so the TLS-ALPN-01 challenge cannot be served: stop the program using it (often a web server on 443), or pick --tls-alpn-01-port`;
  }

  async present(serverName: string, entry: AcmeTlsEntry): Promise<void> {
    this.challenges.set(serverName, entry);
  }

  async remove(serverName: string, token: string): Promise<void> {
    this.challenges.delete(serverName, token);
  }
}

/** TLS-ALPN-01 (RFC 8737) as a challenge solver over a publisher. */
export class TlsAlpn01Solver implements ChallengeSolver {
  readonly type = 'tls-alpn-01' as const;
  constructor(readonly publisher: AcmeTlsPublisher) {}
  describe(): string {
    return this.publisher.describe();
  }
  prepare(): Promise<void> {
    return this.publisher.prepare();
  }
  async present(challenge: Challenge): Promise<void> {
    const serverName = acmeTlsServerName(challenge.identifier);
    const cert = await createChallengeCertificate(challenge.identifier, challenge.keyAuthorization);
    await this.publisher.present(serverName, { ...cert, token: challenge.token });
  }
  async cleanup(challenge: Challenge): Promise<void> {
    let serverName: string;
    try {
      serverName = acmeTlsServerName(challenge.identifier);
    } catch {
      return;
    }
    await this.publisher.remove(serverName, challenge.token);
  }
  close(): Promise<void> {
    return this.publisher.close();
  }
  hint(acmeType: string, name: string): string {
    const where = this.publisher.describe();
    switch (acmeType) {
      case 'connection':
      case 'dns':
        return `The CA could not complete a TLS handshake with ${name} on port 443: check that ${name}'s DNS points to this machine and that port 443 is open to the internet and reaches ${where} (no TLS-terminating proxy or CDN in front).`;
      case 'caa':
        return `A CAA record on ${name} or a parent forbids this CA; add the CA's domain to it.`;
      case 'unauthorized':
      case 'incorrectResponse':
      case 'tls':
        return `The CA reached port 443 for ${name} but not padlock's challenge answer: check that connections for ${name} on port 443 reach ${where} directly (a proxy or load balancer that terminates TLS hides the acme-tls/1 handshake).`;
      case 'rateLimited':
        return 'The CA is rate limiting; wait until the time it names before retrying.';
      default:
        return `Check that TLS connections for ${name} on port 443 reach ${where}.`;
    }
  }
}
