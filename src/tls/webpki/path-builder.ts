/**
 * Path building with backtracking (RFC 4158, as Chromium, Go and
 * rustls-webpki build paths): from the leaf, find each certificate's issuers
 * among the trust anchors and the supplied pool, try them best first, and
 * back up whenever a path fails, until one path is valid or every path has
 * failed. Pure: the inputs are parsed values and a time.
 *
 * An issuer candidate has a subject equal, byte for byte, to the issuer name
 * (Baseline Requirements 7.1.4.1). Candidates are tried in this order:
 * trust anchors first; then those whose subjectKeyIdentifier equals the
 * child's authorityKeyIdentifier, then those where either is missing (a
 * mismatch is never an issuer); then those valid at the time; then the most
 * recently issued. A certificate never appears twice on a path, nor does a
 * subject with the same key (cross-sign loops).
 *
 * Limits, so a hostile pool cannot make it spin: at most
 * {@link DEFAULT_LIMITS}.maxIntermediates intermediates in a path, at most
 * maxSignatureChecks signature verifications and maxSteps candidates looked
 * at per verification. Each signature is checked at most once.
 */
import { algorithmName, keyLabel, keyProblem, signatureScheme, verifySignature } from './algorithms.js';
import type { AnchorIndex } from './anchor-index.js';
import { colonHex, type ParsedCertificate } from './certificate.js';
import { pathProblems, type Problem } from './checks.js';
import { sameBytes } from './names.js';

export interface Limits {
  /** Intermediates between the leaf and the anchor (rustls-webpki allows 6). */
  maxIntermediates: number;
  /** Signature verifications per call (rustls-webpki allows 100). */
  maxSignatureChecks: number;
  /** Candidate issuers looked at per call. */
  maxSteps: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = { maxIntermediates: 6, maxSignatureChecks: 100, maxSteps: 2000 };

export interface BuildInput {
  leaf: ParsedCertificate;
  /** Supplied intermediates, in any order, decoys and duplicates included. */
  pool: readonly ParsedCertificate[];
  anchors: AnchorIndex;
  /** Milliseconds since the epoch, in whole seconds. */
  at: number;
  limits?: Partial<Limits>;
}

/** One path tried: leaf first. `problems` is empty for the valid path; its first entry is the reason otherwise. */
export interface Attempt {
  path: ParsedCertificate[];
  /** Whether the path ends at a trust anchor (its last certificate). */
  anchored: boolean;
  problems: Problem[];
}

export interface BuildOutcome {
  /** The first valid path, if any. */
  valid?: Attempt;
  /** When no path is valid: the failure to report (see {@link bestFailure}). */
  best?: Attempt;
  /** Every path tried, in order (the valid one last). */
  attempts: Attempt[];
  /** True when a limit stopped the search before every path was tried. */
  exhausted: boolean;
  signatureChecks: number;
}

interface Candidate {
  cert: ParsedCertificate;
  anchor: boolean;
}

interface State {
  input: BuildInput;
  limits: Limits;
  poolBySubject: Map<string, ParsedCertificate[]>;
  attempts: Attempt[];
  /** Dead ends: certificates no candidate could issue (at `depth`); the deepest wins when nothing anchored. */
  deadEnds: { attempt: Attempt; depth: number }[];
  signatures: Map<string, boolean>;
  signatureChecks: number;
  steps: number;
  exhausted: boolean;
  valid?: Attempt;
}

/** Builds and validates paths for `input.leaf`; never throws for any parsed input. */
export function buildPath(input: BuildInput): BuildOutcome {
  const limits = { ...DEFAULT_LIMITS, ...input.limits };
  const poolBySubject = new Map<string, ParsedCertificate[]>();
  const seen = new Set<string>([input.leaf.fingerprint]);
  for (const cert of input.pool) {
    // A pool copy of an anchor is the anchor; a second copy adds nothing.
    if (seen.has(cert.fingerprint) || input.anchors.byFingerprint(cert.fingerprint)) continue;
    seen.add(cert.fingerprint);
    const list = poolBySubject.get(cert.subjectKey);
    if (list) list.push(cert);
    else poolBySubject.set(cert.subjectKey, [cert]);
  }
  const state: State = { input, limits, poolBySubject, attempts: [], deadEnds: [], signatures: new Map(), signatureChecks: 0, steps: 0, exhausted: false };

  // A leaf the user trusts as it is (a self-signed certificate in --roots) is a path of one.
  if (input.anchors.byFingerprint(input.leaf.fingerprint)) {
    const attempt: Attempt = { path: [input.leaf], anchored: true, problems: pathProblems([input.leaf], input.at) };
    state.attempts.push(attempt);
    if (attempt.problems.length === 0) state.valid = attempt;
  }
  if (!state.valid) extend([input.leaf], state);
  const outcome: BuildOutcome = { attempts: state.attempts, exhausted: state.exhausted, signatureChecks: state.signatureChecks };
  if (state.valid) outcome.valid = state.valid;
  else outcome.best = bestFailure(state);
  return outcome;
}

/**
 * The failure to report: the first anchored path tried (it got furthest, and
 * the order tried is the order of preference); else the dead end deepest in
 * the chain, first found; else, when limits cut the search short before any
 * of those, that.
 */
function bestFailure(state: State): Attempt {
  const anchored = state.attempts.find((a) => a.anchored);
  if (anchored) return anchored;
  if (!state.exhausted) {
    let best: { attempt: Attempt; depth: number } | undefined;
    for (const d of state.deadEnds) if (!best || d.depth > best.depth) best = d;
    if (best) return best.attempt;
  }
  const { maxSignatureChecks, maxSteps } = state.limits;
  return {
    path: [state.input.leaf],
    anchored: false,
    problems: [
      {
        reason: 'path-budget-exhausted',
        depth: 0,
        detail: `could not be checked: path building stopped after ${state.signatureChecks} signature checks and ${state.steps} candidates (limits ${maxSignatureChecks} and ${maxSteps}) without finding a trusted path`,
        facts: { signatureChecks: state.signatureChecks, steps: state.steps },
      },
    ],
  };
}

function candidatesFor(cert: ParsedCertificate, state: State): Candidate[] {
  const { anchors, at } = state.input;
  const list: Candidate[] = [
    ...anchors.bySubject(cert.issuerKey).map((c) => ({ cert: c, anchor: true })),
    ...(state.poolBySubject.get(cert.issuerKey) ?? []).map((c) => ({ cert: c, anchor: false })),
  ];
  const aki = cert.authorityKeyId?.keyId;
  const kidRank = (c: ParsedCertificate): number => {
    const ski = c.subjectKeyId;
    if (aki === undefined || ski === undefined) return 1;
    return sameBytes(aki, ski) ? 0 : 2;
  };
  const valid = (c: ParsedCertificate): number => (c.notBefore <= at && at <= c.notAfter ? 0 : 1);
  return list
    .map((c, order) => ({ c, order, kid: kidRank(c.cert), valid: valid(c.cert) }))
    .sort((a, b) => Number(b.c.anchor) - Number(a.c.anchor) || a.kid - b.kid || a.valid - b.valid || b.c.cert.notBefore - a.c.cert.notBefore || a.order - b.order)
    .map((x) => x.c);
}

function onPath(cand: ParsedCertificate, path: readonly ParsedCertificate[]): boolean {
  return path.some((p) => p.fingerprint === cand.fingerprint || (p.subjectKey === cand.subjectKey && sameBytes(p.spki, cand.spki)));
}

/** Tries every issuer of the last certificate of `path`; true once a valid path is found. */
function extend(path: ParsedCertificate[], state: State): boolean {
  const cert = path[path.length - 1]!;
  const depth = path.length - 1;
  const edgeFailures: Attempt[] = [];
  let candidates = 0;
  for (const cand of candidatesFor(cert, state)) {
    if (state.exhausted) return false;
    if (onPath(cand.cert, path)) continue;
    candidates++;
    if (++state.steps > state.limits.maxSteps) {
      state.exhausted = true;
      return false;
    }
    const next = [...path, cand.cert];
    const intermediates = path.length - 1 + (cand.anchor ? 0 : 1);
    const problem =
      !cand.anchor && intermediates > state.limits.maxIntermediates
        ? { reason: 'path-too-long' as const, depth, detail: `chains through more than ${state.limits.maxIntermediates} intermediates, more than padlock follows` }
        : edgeProblem(cert, cand.cert, depth, state);
    if (state.exhausted) return false;
    if (problem) {
      const failed: Attempt = { path: next, anchored: false, problems: [{ ...problem, issuer: cand.cert }] };
      edgeFailures.push(failed);
      state.attempts.push(failed);
      continue;
    }
    if (cand.anchor) {
      const attempt: Attempt = { path: next, anchored: true, problems: pathProblems(next, state.input.at) };
      state.attempts.push(attempt);
      if (attempt.problems.length === 0) {
        state.valid = attempt;
        return true;
      }
    } else if (extend(next, state)) {
      return true;
    }
  }
  if (edgeFailures.length === candidates) state.deadEnds.push(deadEnd(path, depth, edgeFailures, state));
  return false;
}

/** Why nothing could issue `path`'s last certificate: the attempt that explains it best. */
function deadEnd(path: ParsedCertificate[], depth: number, edgeFailures: Attempt[], state: State): { attempt: Attempt; depth: number } {
  const cert = path[depth]!;
  const rank = (a: Attempt): number => EDGE_RANK.indexOf(a.problems[0]!.reason);
  const best = [...edgeFailures].sort((a, b) => rank(a) - rank(b))[0];
  if (best && !cert.selfIssued) return { attempt: best, depth };
  const problem: Problem = cert.selfIssued
    ? { reason: 'untrusted-root', depth, detail: depth === 0 ? 'is self-signed and not a trusted root' : 'is a self-signed root that is not trusted' }
    : { reason: depth === 0 ? 'issuer-not-found' : 'untrusted-issuer', depth, detail: '' };
  const attempt: Attempt = { path, anchored: false, problems: [problem] };
  state.attempts.push(attempt);
  return { attempt, depth };
}

/** Which edge failure explains a dead end best: a real issuer whose signature fails before a mere look-alike. */
const EDGE_RANK: readonly string[] = [
  'signature-invalid',
  'signature-algorithm-not-allowed',
  'signature-algorithm-mismatch',
  'key-rsa-too-small',
  'key-rsa-too-large',
  'key-curve-not-allowed',
  'key-type-not-allowed',
  'key-malformed',
  'aki-ski-mismatch',
  'path-too-long',
];

/**
 * Whether `issuer` issued `child`: key identifiers agree, the issuer's key is
 * one the WebPKI allows, the child's signature algorithm is allowed and
 * consistent, and the signature verifies. Undefined when it did.
 */
function edgeProblem(child: ParsedCertificate, issuer: ParsedCertificate, depth: number, state: State): Problem | undefined {
  const aki = child.authorityKeyId?.keyId;
  const ski = issuer.subjectKeyId;
  if (aki !== undefined && ski !== undefined && !sameBytes(aki, ski)) {
    return {
      reason: 'aki-ski-mismatch',
      depth,
      detail: `was issued by the key with ID ${colonHex(aki)}, but the "{issuer}" supplied has the key ID ${colonHex(ski)} (another key); supply the intermediate with that key (--chain)`,
      facts: { authorityKeyId: colonHex(aki), issuerKeyId: colonHex(ski) },
    };
  }
  const key = issuer.keyInfo();
  if (key === undefined) return { reason: 'key-malformed', depth: depth + 1, detail: 'has a public key that cannot be read' };
  const weak = keyProblem(key);
  if (weak) return { reason: weak.reason, depth: depth + 1, detail: `has ${weak.detail}`, facts: { key: keyLabel(key) } };
  const scheme = signatureScheme(child.signatureAlgorithm);
  if (!scheme) {
    return {
      reason: 'signature-algorithm-not-allowed',
      depth,
      detail: `is signed with ${algorithmName(child.signatureAlgorithm)}, which the WebPKI does not accept`,
      facts: { algorithm: algorithmName(child.signatureAlgorithm) },
    };
  }
  if (!sameBytes(child.signatureAlgorithm, child.tbsSignatureAlgorithm)) {
    return { reason: 'signature-algorithm-mismatch', depth, detail: 'names one signature algorithm in its signed part and another outside it' };
  }
  const memo = `${child.fingerprint}:${issuer.fingerprint}`;
  let ok = state.signatures.get(memo);
  if (ok === undefined) {
    if (state.signatureChecks >= state.limits.maxSignatureChecks) {
      state.exhausted = true;
      return undefined;
    }
    state.signatureChecks++;
    ok = verifySignature(scheme, key, child.tbs, child.signature);
    state.signatures.set(memo, ok);
  }
  if (!ok) return { reason: 'signature-invalid', depth, detail: 'the signature on the {who} does not verify with the key of its issuer "{issuer}"' };
  return undefined;
}
