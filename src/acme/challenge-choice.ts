/**
 * Which challenge the daemon answers (`--challenge`, config `challenge`,
 * `PADLOCK_CHALLENGE`), as two pure choices: the challenge settings recorded
 * in each lineage (so `padlock renew` on the same store repeats them), and
 * the solvers an issuance gets from those settings, in preference order.
 *
 * - `http-01`: HTTP-01 on port 80 only.
 * - `tls-alpn-01`: TLS-ALPN-01 on port 443 only (for hosts whose port 80 is
 *   closed or taken).
 * - `auto` (the default): HTTP-01, and TLS-ALPN-01 as the fallback when the
 *   CA could not reach port 80 (acme/challenge-fallback.ts has the rule).
 *   In companion mode nginx holds port 443, so there is no fallback.
 */
import type { LineageMeta } from '../store/store.js';
import type { ChallengeSolver } from './solver.js';

export type ChallengeMode = 'auto' | 'http-01' | 'tls-alpn-01';

/** The challenge settings new lineages record: TLS-ALPN-01 on the HTTPS port, or the HTTP-01 settings given. */
export function daemonChallenge(mode: ChallengeMode, http01: LineageMeta['challenge'], httpsPort: number): LineageMeta['challenge'] {
  return mode === 'tls-alpn-01' ? { type: 'tls-alpn-01', port: httpsPort } : http01;
}

/**
 * The solvers for a lineage's recorded challenge: TLS-ALPN-01 alone for a
 * `tls-alpn-01` lineage; otherwise HTTP-01, followed by TLS-ALPN-01 in
 * `auto` mode when it is available (`tlsAlpn01` undefined: no fallback).
 */
export function daemonSolvers(
  mode: ChallengeMode,
  challenge: LineageMeta['challenge'],
  solvers: { http01: ChallengeSolver; tlsAlpn01: ChallengeSolver | undefined },
): ChallengeSolver[] {
  const { http01, tlsAlpn01 } = solvers;
  if (challenge.type === 'tls-alpn-01' && tlsAlpn01) return [tlsAlpn01];
  return mode === 'auto' && tlsAlpn01 ? [http01, tlsAlpn01] : [http01];
}
