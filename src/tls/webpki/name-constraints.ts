/**
 * Name constraints (RFC 5280 sections 4.2.1.10 and 6.1.3 (b)(c)): whether a
 * certificate's names lie inside what a CA above it may certify. Pure.
 *
 * For each name form a CA constrains, a name of that form must be inside at
 * least one permitted subtree of the form (when the CA lists any) and inside
 * no excluded subtree. Forms the CA does not list are not constrained.
 * Names checked: the subject (directoryName), subject emailAddress
 * attributes (rfc822Name), every subjectAltName, and, for the leaf, a common
 * name that looks like a host (as Chromium and Go do, so a CN cannot carry a
 * name past the constraints).
 */
import type { GeneralName, NameConstraintsValue, ParsedCertificate, Subtree } from './certificate.js';
import { commonNameAsHost, ipText, sameBytes } from './names.js';

/** One name that breaks a constraint. */
export interface ConstraintViolation {
  /** The name form: `dns`, `ip`, `email`, `uri`, `dirname`. */
  form: string;
  /** The name as text. */
  name: string;
  /** Where the name came from: `subjectAltName`, `subject`, `subject CN`, `subject emailAddress`. */
  source: string;
  /** `not permitted` (outside every permitted subtree) or `excluded` (inside this excluded subtree). */
  why: 'not permitted' | 'excluded';
  /** The excluded subtree, or the permitted ones, as text. */
  subtrees: string[];
}

/**
 * The first name of `cert` that `constraints` forbid, or undefined when all
 * are allowed. `isLeaf` adds the host-looking common name.
 */
export function constraintViolation(constraints: NameConstraintsValue, cert: ParsedCertificate, isLeaf: boolean): ConstraintViolation | undefined {
  const names: { name: GeneralName; source: string }[] = [];
  if (cert.subjectRdns.length > 0) names.push({ name: { kind: 'dirname', rdns: cert.subjectRdns }, source: 'subject' });
  for (const value of cert.subjectEmails) names.push({ name: { kind: 'email', value }, source: 'subject emailAddress' });
  for (const name of cert.subjectAltName ?? []) names.push({ name, source: 'subjectAltName' });
  if (isLeaf) {
    for (const cn of cert.commonNames) {
      const host = commonNameAsHost(cn);
      if (host?.kind === 'dns') names.push({ name: { kind: 'dns', value: host.name }, source: 'subject CN' });
      else if (host?.kind === 'ip') names.push({ name: { kind: 'ip', bytes: host.bytes }, source: 'subject CN' });
    }
  }
  for (const { name, source } of names) {
    if (name.kind === 'other') continue;
    const permitted = constraints.permitted.filter((s) => s.kind === name.kind);
    if (permitted.length > 0 && !permitted.some((s) => within(name, s, 'permitted'))) {
      return { form: name.kind, name: nameText(name), source, why: 'not permitted', subtrees: permitted.map(subtreeText) };
    }
    const hit = constraints.excluded.find((s) => s.kind === name.kind && within(name, s, 'excluded'));
    if (hit !== undefined) return { form: name.kind, name: nameText(name), source, why: 'excluded', subtrees: [subtreeText(hit)] };
  }
  return undefined;
}

/**
 * Whether `name` is inside subtree `base` of the same form. For a wildcard
 * DNS name, "inside" means every name it can match when the subtree is
 * permitted, and any name it can match when it is excluded.
 */
function within(name: GeneralName, base: Subtree, mode: 'permitted' | 'excluded'): boolean {
  switch (name.kind) {
    case 'dns':
      return base.kind === 'dns' && dnsWithin(name.value.toLowerCase(), base.value.toLowerCase(), mode);
    case 'ip':
      return base.kind === 'ip' && ipWithin(name.bytes, base.bytes);
    case 'email':
      return base.kind === 'email' && emailWithin(name.value, base.value);
    case 'uri':
      return base.kind === 'uri' && uriWithin(name.value, base.value.toLowerCase());
    case 'dirname':
      return base.kind === 'dirname' && base.rdns.length <= name.rdns.length && base.rdns.every((rdn, i) => sameBytes(rdn, name.rdns[i]!));
    case 'other':
      return false;
  }
}

/**
 * `example.com` holds itself and every name under it; `.example.com` only the
 * names under it; the empty constraint holds every name.
 */
export function hostWithin(host: string, constraint: string): boolean {
  if (constraint === '') return true;
  if (constraint.startsWith('.')) return host.endsWith(constraint) && host.length > constraint.length;
  return host === constraint || host.endsWith(`.${constraint}`);
}

function dnsWithin(name: string, constraint: string, mode: 'permitted' | 'excluded'): boolean {
  if (!name.startsWith('*.')) return hostWithin(name, constraint);
  const base = name.slice(2);
  const domain = constraint.replace(/^\./, '');
  // Every name *.base matches is under the constraint exactly when base is at or under its domain.
  if (constraint === '' || base === domain || base.endsWith(`.${domain}`)) return true;
  // An excluded single name one label under base (`a.example.com` against `*.example.com`) is one of the names the wildcard matches.
  if (mode === 'excluded' && !constraint.startsWith('.')) {
    const dot = domain.indexOf('.');
    return dot > 0 && domain.slice(dot + 1) === base;
  }
  return false;
}

function ipWithin(address: Uint8Array, subtree: Uint8Array): boolean {
  if (subtree.length !== address.length * 2) return false;
  for (let i = 0; i < address.length; i++) {
    const mask = subtree[address.length + i]!;
    if ((address[i]! & mask) !== (subtree[i]! & mask)) return false;
  }
  return true;
}

function emailWithin(mailbox: string, constraint: string): boolean {
  const at = mailbox.lastIndexOf('@');
  if (at <= 0) return false; // not a mailbox: it cannot be shown to be inside anything
  const host = mailbox.slice(at + 1).toLowerCase();
  if (constraint.includes('@')) {
    const cAt = constraint.lastIndexOf('@');
    return mailbox.slice(0, at) === constraint.slice(0, cAt) && host === constraint.slice(cAt + 1).toLowerCase();
  }
  const c = constraint.toLowerCase();
  return c.startsWith('.') ? hostWithin(host, c) : host === c;
}

function uriWithin(uri: string, constraint: string): boolean {
  // RFC 5280: the constraint applies to the host part; a URI without one cannot be inside.
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i.exec(uri);
  const host = m?.[1]?.toLowerCase();
  if (host === undefined || host === '') return false;
  return hostWithin(host, constraint);
}

function nameText(name: GeneralName): string {
  switch (name.kind) {
    case 'ip':
      return ipText(name.bytes);
    case 'dirname':
      return `a directory name of ${name.rdns.length} RDNs`;
    case 'other':
      return `GeneralName [${name.tag}]`;
    default:
      return name.value;
  }
}

function subtreeText(base: Subtree): string {
  if (base.kind !== 'ip') return nameText(base);
  const half = base.bytes.length / 2;
  let bits = 0;
  for (const b of base.bytes.subarray(half)) bits += b.toString(2).replace(/0/g, '').length;
  return `${ipText(base.bytes.subarray(0, half))}/${bits}`;
}
