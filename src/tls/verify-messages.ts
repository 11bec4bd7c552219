/**
 * The words for a failed verification: one line naming the certificate at
 * fault and the reason, and the JSON-safe report of the paths tried. Pure.
 */
import { colonHex, type ParsedCertificate } from './webpki/certificate.js';
import type { Problem } from './webpki/checks.js';
import type { Attempt } from './webpki/path-builder.js';
import { REASONS, type ReasonCode } from './webpki/reasons.js';

/** How to name certificates in messages (the caller knows their distinguished names). */
export interface Namer {
  /** A certificate's short name: its subject CN, else its whole subject. */
  name(cert: ParsedCertificate): string;
  /** The short name of a certificate's issuer (CN, else O, else the whole issuer). */
  issuerName(cert: ParsedCertificate): string;
}

/** One path tried, for `--json` and logs. */
export interface PathReport {
  /** Leaf first; the last is the trust anchor when `anchored`. */
  path: { subject: string; fingerprint256: string }[];
  anchored: boolean;
  /** Absent on the valid path. */
  reasonCode?: ReasonCode;
  message?: string;
}

/** The most paths listed in a report; a hostile pool may make hundreds. */
export const MAX_REPORTED_PATHS = 20;

/** Who a problem is about: `certificate for LEAF`, or `CA certificate "NAME" in the chain for LEAF`. */
function who(path: readonly ParsedCertificate[], depth: number, leafName: string, namer: Namer): string {
  const cert = path[depth];
  return depth === 0 || cert === undefined ? `certificate for ${leafName}` : `CA certificate "${namer.name(cert)}" in the chain for ${leafName}`;
}

/** The one-line message for `problem`, found on `path` (leaf first). */
export function problemMessage(problem: Problem, path: readonly ParsedCertificate[], leafName: string, namer: Namer): string {
  const cert = path[problem.depth] ?? path[0]!;
  switch (problem.reason) {
    case 'issuer-not-found':
      return `certificate for ${leafName} was issued by "${namer.issuerName(cert)}", which is neither in the supplied chain nor a trusted root; supply that intermediate (--chain), or trust it if it is a root`;
    case 'untrusted-issuer':
      return `certificate for ${leafName} chains up to "${namer.name(cert)}", issued by "${namer.issuerName(cert)}", which is not a trusted root (nor in the supplied chain)`;
    case 'untrusted-root':
      return problem.depth === 0
        ? `certificate for ${leafName} is self-signed and not a trusted root`
        : `certificate for ${leafName} chains to root "${namer.name(cert)}", which is not trusted`;
    default: {
      const subject = who(path, problem.depth, leafName, namer);
      const issuer = problem.issuer ? namer.name(problem.issuer) : 'its issuer';
      const text = problem.detail.replace(/\{issuer\}/g, issuer);
      return text.includes('{who}') ? text.replace(/\{who\}/g, subject) : `${subject} ${text}`;
    }
  }
}

/** A report of one attempt, for `--json`. */
export function pathReport(attempt: Attempt, leafName: string, namer: Namer): PathReport {
  const first = attempt.problems[0];
  return {
    path: attempt.path.map((c) => ({ subject: namer.name(c), fingerprint256: colonHex(c.fingerprint) })),
    anchored: attempt.anchored,
    ...(first ? { reasonCode: first.reason, message: problemMessage(first, attempt.path, leafName, namer) } : {}),
  };
}

/** The `details` of the error for a failed verification: reason code, clause, every problem of the best path, and the paths tried. */
export function failureDetails(best: Attempt, attempts: readonly Attempt[], exhausted: boolean, leafName: string, namer: Namer): Record<string, unknown> {
  const first = best.problems[0]!;
  return {
    reasonCode: first.reason,
    clause: REASONS[first.reason].clause,
    certificate: namer.name(best.path[first.depth] ?? best.path[0]!),
    depth: first.depth,
    ...(first.facts ?? {}),
    problems: best.problems.map((p) => ({
      reasonCode: p.reason,
      code: REASONS[p.reason].code,
      depth: p.depth,
      certificate: namer.name(best.path[p.depth] ?? best.path[0]!),
      message: problemMessage(p, best.path, leafName, namer),
    })),
    paths: attempts.slice(0, MAX_REPORTED_PATHS).map((a) => pathReport(a, leafName, namer)),
    ...(attempts.length > MAX_REPORTED_PATHS ? { pathsNotListed: attempts.length - MAX_REPORTED_PATHS } : {}),
    ...(exhausted ? { searchCutShort: true } : {}),
  };
}
