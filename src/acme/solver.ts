/**
 * The challenge solver interface (RFC 8555 section 8): how padlock proves
 * control of an identifier to a CA. The ACME issuer picks, for each
 * authorization, the first solver whose `type` the CA offers; it never
 * branches on how a solver works.
 *
 * Implementations: HTTP-01 through padlock's own server (standalone), files
 * in a web server's document root (webroot), or the daemon's shared token
 * map (acme/http01.ts). TLS-ALPN-01 and DNS-01 plug in here.
 */

/** The challenge types padlock knows (RFC 8555 section 8.3, RFC 8737, RFC 8555 section 8.4). */
export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01';

/** One challenge to answer: what the CA validates and what it expects. */
export interface Challenge {
  type: ChallengeType;
  /** The identifier's value: a DNS name (or an IP address, RFC 8738). */
  identifier: string;
  /** The CA's token (base64url). */
  token: string;
  /** token "." base64url(JWK thumbprint), RFC 8555 section 8.1. */
  keyAuthorization: string;
}

/**
 * Answers challenges of one type.
 *
 * - `prepare()` proves the solver can work (a port bound, a folder
 *   writable, credentials present) before any order is placed, so a problem
 *   costs no failed validation at the CA. Idempotent, safe to call
 *   concurrently. Throws a CHALLENGE_* error.
 * - `present()` resolves once the answer is visible to the CA (for a
 *   cluster: every worker answers it). `cleanup()` removes it; it never
 *   throws for an answer already gone.
 * - `close()` releases what `prepare()` took. Idempotent.
 */
export interface ChallengeSolver {
  readonly type: ChallengeType;
  /** Where the CA will look, for progress and error messages. */
  describe(): string;
  prepare(): Promise<void>;
  present(challenge: Challenge): Promise<void>;
  cleanup(challenge: Challenge): Promise<void>;
  close(): Promise<void>;
  /** What to check when the CA could not validate `name` (`acmeType` is the problem's short type). */
  hint(acmeType: string, name: string): string;
}
