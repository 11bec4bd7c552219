/**
 * GeneralNames (RFC 5280 section 4.2.1.6) and NameConstraints (section
 * 4.2.1.10), read with the strict DER reader: subjectAltName entries and
 * name-constraint subtrees as plain values, with iPAddress kept as bytes
 * (address, or address then mask in a constraint) so a malformed mask is seen
 * as malformed.
 */
import { DerError, TAG, children, contextTag, encodingOf, readWhole, valueOf, type Tlv } from './der.js';
import type { CertificateDefect } from './certificate.js';

const NAME_CONSTRAINTS = '2.5.29.30';

/** One GeneralName (RFC 5280 section 4.2.1.6), with the forms padlock compares kept exactly. */
export type GeneralName =
  | { kind: 'dns'; value: string }
  | { kind: 'ip'; bytes: Uint8Array }
  | { kind: 'email'; value: string }
  | { kind: 'uri'; value: string }
  | { kind: 'dirname'; rdns: Uint8Array[] }
  /** otherName, x400Address, ediPartyName, registeredID: never compared. */
  | { kind: 'other'; tag: number };

/** One name-constraint subtree (RFC 5280 section 4.2.1.10). For `ip`, `bytes` is address then mask. */
export type Subtree = GeneralName;

export interface NameConstraintsValue {
  permitted: Subtree[];
  excluded: Subtree[];
}

/** GeneralNames / a GeneralName list. For name constraints (`subtree`), an iPAddress is address plus mask. */
export function readGeneralNames(buf: Uint8Array, seq: Tlv, subtree: boolean): GeneralName[] {
  return children(buf, seq).map((tlv) => readGeneralName(buf, tlv, subtree));
}

function ia5(bytes: Uint8Array, what: string): string {
  for (const b of bytes) if (b > 0x7f) throw new Error(`${what} is not an IA5String (byte 0x${b.toString(16)})`);
  return Buffer.from(bytes).toString('latin1');
}

function readGeneralName(buf: Uint8Array, tlv: Tlv, subtree: boolean): GeneralName {
  const v = valueOf(buf, tlv);
  switch (tlv.tag) {
    case contextTag(1, false):
      return { kind: 'email', value: ia5(v, 'rfc822Name') };
    case contextTag(2, false):
      return { kind: 'dns', value: ia5(v, 'dNSName') };
    case contextTag(6, false):
      return { kind: 'uri', value: ia5(v, 'uniformResourceIdentifier') };
    case contextTag(7, false): {
      const ok = subtree ? v.length === 8 || v.length === 32 : v.length === 4 || v.length === 16;
      if (!ok) throw new Error(`iPAddress of ${v.length} octets`);
      return { kind: 'ip', bytes: v };
    }
    case contextTag(4, true): {
      const name = readWhole(v, TAG.SEQUENCE, 'directoryName');
      return {
        kind: 'dirname',
        rdns: children(v, name).map((rdn) => {
          if (rdn.tag !== TAG.SET) throw new DerError('directoryName RDN is not a SET');
          return encodingOf(v, rdn);
        }),
      };
    }
    case contextTag(0, true): // otherName
    case contextTag(3, true): // x400Address
    case contextTag(5, true): // ediPartyName
    case contextTag(8, false): // registeredID
      return { kind: 'other', tag: tlv.tag & 0x1f };
    default:
      throw new Error(`unknown GeneralName tag 0x${tlv.tag.toString(16)}`);
  }
}

/**
 * NameConstraints (RFC 5280 section 4.2.1.10). Structure errors throw (a
 * malformed extension); rules the structure cannot express (an empty
 * extension, a minimum other than 0, a maximum, a bad mask, a name form
 * padlock cannot compare) are recorded as their own defects.
 */
export function readNameConstraints(value: Uint8Array): { value: NameConstraintsValue; defects: CertificateDefect[] } {
  const seq = readWhole(value, TAG.SEQUENCE, 'nameConstraints');
  const nc: NameConstraintsValue = { permitted: [], excluded: [] };
  const problems: CertificateDefect[] = [];
  const parts = children(value, seq);
  if (parts.length === 0) problems.push({ oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: 'nameConstraints is empty' });
  let lastTag = -1;
  for (const part of parts) {
    const which = part.tag === contextTag(0, true) ? nc.permitted : part.tag === contextTag(1, true) ? nc.excluded : undefined;
    if (which === undefined || part.tag <= lastTag) throw new DerError('nameConstraints holds something other than [0] permitted then [1] excluded');
    lastTag = part.tag;
    const subtrees = children(value, part);
    if (subtrees.length === 0) problems.push({ oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: 'a list of subtrees is empty' });
    for (const st of subtrees) {
      if (st.tag !== TAG.SEQUENCE) throw new DerError('GeneralSubtree is not a SEQUENCE');
      const [baseTlv, ...rest] = children(value, st);
      if (baseTlv === undefined) throw new DerError('GeneralSubtree has no base');
      for (const r of rest) {
        const isMin = r.tag === contextTag(0, false);
        if (!isMin && r.tag !== contextTag(1, false)) throw new DerError('GeneralSubtree has an unknown field');
        // RFC 5280: minimum MUST be zero (DER leaves the default out) and maximum MUST be absent.
        problems.push({ oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: `a subtree has a ${isMin ? 'minimum' : 'maximum'} (RFC 5280 section 4.2.1.10 forbids it)` });
      }
      const base = readGeneralName(value, baseTlv, true);
      const problem = subtreeProblem(base);
      if (problem) problems.push(problem);
      which.push(base);
    }
  }
  return { value: nc, defects: problems };
}

const CONSTRAINT_HOST = /^\.?([a-z0-9_-]+(\.[a-z0-9_-]+)*)?$/i;

function subtreeProblem(base: GeneralName): CertificateDefect | undefined {
  switch (base.kind) {
    case 'dns':
      return CONSTRAINT_HOST.test(base.value) ? undefined : { oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: `dNSName constraint "${base.value}" is not a domain` };
    case 'uri':
      return CONSTRAINT_HOST.test(base.value) ? undefined : { oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: `URI constraint "${base.value}" is not a host or domain` };
    case 'email': {
      const at = base.value.lastIndexOf('@');
      const host = at >= 0 ? base.value.slice(at + 1) : base.value;
      return (at !== 0 && CONSTRAINT_HOST.test(host) && host !== '') || base.value === ''
        ? undefined
        : { oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: `rfc822Name constraint "${base.value}" is not a mailbox, host or domain` };
    }
    case 'ip': {
      const half = base.bytes.length / 2;
      const mask = base.bytes.subarray(half);
      let seenZero = false;
      for (const byte of mask) {
        for (let bit = 7; bit >= 0; bit--) {
          const set = (byte >> bit) & 1;
          if (set && seenZero) return { oid: NAME_CONSTRAINTS, reason: 'name-constraints-malformed', detail: 'an iPAddress constraint has a non-contiguous mask' };
          if (!set) seenZero = true;
        }
      }
      return undefined;
    }
    case 'dirname':
      return undefined;
    case 'other':
      return { oid: NAME_CONSTRAINTS, reason: 'name-constraints-unsupported', detail: `a constraint of GeneralName form [${base.tag}], which padlock cannot compare` };
  }
}
