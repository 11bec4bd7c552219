/**
 * Host names and IP addresses as the WebPKI compares them: pure functions
 * over strings and bytes.
 *
 * - A DNS name in a certificate (a "presented identifier") is LDH labels
 *   joined by dots, with at most a wildcard as the whole left-most label
 *   (RFC 5280 section 4.2.1.6, RFC 1034 section 3.5, Baseline Requirements
 *   7.1.2.7.12). No `_`, no empty label (so no leading, trailing or double
 *   dot), no label that starts or ends with `-`, no all-numeric last label
 *   (that is an IPv4 address written as a name).
 * - A requested name (a "reference identifier") is compared
 *   case-insensitively, a wildcard matching exactly one non-empty label
 *   (RFC 6125 section 6.4.3).
 * - An IP address is compared as bytes, only against iPAddress entries.
 */
import { isIP } from '../../ip.js';

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const MAX_NAME = 253;

/**
 * Why `name` is not a valid DNS name for a certificate's subjectAltName, or
 * undefined when it is one. `name` is the IA5String as text.
 */
export function presentedDnsNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME) return `it is longer than ${MAX_NAME} characters`;
  if (name.startsWith('.')) return 'it starts with a dot';
  if (name.endsWith('.')) return 'it ends with a dot';
  const labels = name.toLowerCase().split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label === '') return 'it has an empty label';
    if (label === '*' && i === 0) continue;
    if (label.includes('*')) return i === 0 ? 'its wildcard is not the whole left-most label' : 'it has a wildcard that is not the left-most label';
    if (label.includes('_')) return 'it contains "_"';
    if (label.length > 63) return 'it has a label longer than 63 characters';
    if (!LABEL.test(label)) return /^-|-$/.test(label) ? 'it has a label that starts or ends with "-"' : 'it has a character other than letters, digits, "-" and "."';
  }
  if (labels[0] === '*' && labels.length < 3) return 'its wildcard covers a whole top-level domain';
  if (/^\d+$/.test(labels[labels.length - 1]!)) return 'its last label is all digits (an IP address belongs in an iPAddress entry)';
  return undefined;
}

/** A requested name, normalised: a lowercase DNS name without a trailing dot, or an IP address as bytes. */
export type ReferenceName = { kind: 'dns'; name: string } | { kind: 'ip'; bytes: Uint8Array; text: string };

/** Normalises what a caller asked to be covered: lowercase, no trailing dot; `[v6]` and IP literals become bytes. */
export function referenceName(raw: string): ReferenceName {
  const trimmed = raw.trim();
  const unbracketed = trimmed.replace(/^\[(.*)\]$/, '$1');
  const bytes = ipBytes(unbracketed);
  if (bytes !== undefined) return { kind: 'ip', bytes, text: unbracketed };
  return { kind: 'dns', name: trimmed.toLowerCase().replace(/\.$/, '') };
}

/**
 * Whether a certificate DNS name (already syntax-checked) covers `reference`.
 * `*.example.com` covers `a.example.com`, not `example.com` nor `a.b.example.com`;
 * a requested wildcard is covered only by the same wildcard.
 */
export function dnsNameMatches(presented: string, reference: string): boolean {
  const p = presented.toLowerCase();
  if (p === reference) return true;
  if (!p.startsWith('*.') || reference.startsWith('*.')) return false;
  const dot = reference.indexOf('.');
  return dot > 0 && reference.slice(dot + 1) === p.slice(2);
}

/** An IPv4 or IPv6 literal as 4 or 16 bytes; undefined when `text` is not one. */
export function ipBytes(text: string): Uint8Array | undefined {
  const family = isIP(text);
  if (family === 4) return Uint8Array.from(text.split('.').map(Number));
  if (family !== 6) return undefined;
  let head = text;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    tail = v4[1]!.split('.').map(Number);
    head = text.slice(0, -v4[1]!.length);
    head = head.endsWith('::') ? head : head.replace(/:$/, '');
  }
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const [left, right] = head.includes('::') ? (head.split('::') as [string, string]) : [head, undefined];
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const missing = 8 - tail.length / 2 - l.length - r.length;
  const words = [...l, ...Array<number>(right === undefined ? 0 : missing).fill(0), ...r];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  out.set(tail, 16 - tail.length);
  return out;
}

/** An IP address's bytes as text (dotted IPv4, or IPv6 groups), for messages. */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) return Buffer.from(bytes).toString('hex');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return words.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

/** Byte equality of two addresses (different lengths never match: IPv4 is not an IPv6-mapped address here). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Whether a subject common name looks like a host, so that name constraints
 * apply to it (as Chromium and Go apply them): a valid DNS name with at
 * least one dot, or an IP literal.
 */
export function commonNameAsHost(cn: string): ReferenceName | undefined {
  if (ipBytes(cn) !== undefined) return referenceName(cn);
  if (!cn.includes('.') || presentedDnsNameProblem(cn) !== undefined) return undefined;
  return { kind: 'dns', name: cn.toLowerCase() };
}
