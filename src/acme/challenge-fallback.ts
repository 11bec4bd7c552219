/**
 * The challenge fallback rule: when HTTP-01 fails because the CA could not
 * reach port 80, try TLS-ALPN-01 on port 443 at once, in a new order.
 *
 * Exactly: an order failed with ACME_CHALLENGE_FAILED for a name, the
 * failed challenge was `http-01`, the CA's problem type was `connection`
 * (RFC 8555 section 6.7: it could not connect: refused, timed out, reset; the
 * type CAs use when nothing answers on port 80), and the CA offered
 * `tls-alpn-01` for that name while a TLS-ALPN-01 solver is configured. Then
 * the next order uses the solvers after HTTP-01 in the list, only. Any other
 * problem (`dns`, `caa`, `unauthorized`/`incorrectResponse`: something else
 * answers on port 80, `rateLimited`) is not one port 443 would solve, so the
 * failure stands. One fallback per issuance: the new order's failure is final.
 */
import { PadlockError } from '../errors.js';
import type { ChallengeSolver, ChallengeType } from './solver.js';

/** Problem types (RFC 8555 section 6.7, short form) that send a failed HTTP-01 to TLS-ALPN-01. */
export const FALLBACK_PROBLEMS: readonly string[] = ['connection'];

/** What to do after a failed order. */
export interface Fallback {
  /** The solvers of the next order, in preference order. */
  solvers: ChallengeSolver[];
  /** The name whose validation failed. */
  name: string;
  from: ChallengeType;
  to: ChallengeType;
}

/** The fallback after `err` with `solvers` (the failed order's), or undefined when the failure stands. */
export function fallbackAfter(err: unknown, solvers: readonly ChallengeSolver[]): Fallback | undefined {
  if (!(err instanceof PadlockError) || err.code !== 'ACME_CHALLENGE_FAILED') return undefined;
  const { name, acmeType, challengeType, offered } = err.details as { name?: unknown; acmeType?: unknown; challengeType?: unknown; offered?: unknown };
  if (challengeType !== 'http-01' || typeof acmeType !== 'string' || !FALLBACK_PROBLEMS.includes(acmeType)) return undefined;
  if (typeof name !== 'string' || !Array.isArray(offered) || !offered.includes('tls-alpn-01')) return undefined;
  const at = solvers.findIndex((s) => s.type === 'http-01');
  const rest = solvers.slice(at + 1).filter((s) => s.type !== 'http-01');
  if (at < 0 || !rest.some((s) => s.type === 'tls-alpn-01')) return undefined;
  return { solvers: rest, name, from: 'http-01', to: 'tls-alpn-01' };
}
