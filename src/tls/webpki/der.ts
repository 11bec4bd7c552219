/**
 * A strict DER reader (ITU-T X.690 section 10): tag, definite length, value,
 * as offsets into the caller's bytes.
 *
 * Why this and not only @peculiar/asn1-x509: the path builder needs the exact
 * bytes of each certificate's tbsCertificate, issuer, subject and
 * subjectPublicKeyInfo (names chain byte for byte, Baseline Requirements
 * 7.1.4.1; signatures cover the bytes as sent), which the library does not keep;
 * a full parse through it measured about 0.5 ms per certificate here, a
 * quarter of the whole 2 ms budget for a chain; and its iPAddress converter
 * turns a non-contiguous name-constraint mask into a prefix length. The
 * library still decodes the extension bodies it decodes losslessly (see
 * certificate.ts).
 *
 * Every read is bounds-checked; anything that is not DER (indefinite or
 * non-minimal lengths, high tag numbers, a value running past its parent)
 * throws {@link DerError}, which the certificate parser turns into a reason
 * code. Nothing here recurses, so no input can exhaust the stack.
 */

/** One TLV: the tag octet, and where its value starts and ends in the buffer. */
export interface Tlv {
  tag: number;
  /** Offset of the tag octet. */
  start: number;
  /** Offset of the first value octet. */
  valueStart: number;
  /** Offset just past the last value octet. */
  end: number;
}

/** The input is not DER where DER was required. Internal: callers map it to a reason code. */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

/** Universal and context tags used by X.509, as the full identifier octet. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag `[n]`, constructed or primitive. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

/**
 * Reads the TLV at `pos`, which must end at or before `limit`.
 * @throws DerError for anything that is not a DER TLV inside the bounds.
 */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated TLV');
  const tag = buf[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in X.509');
  const first = buf[pos + 1]!;
  let len: number;
  let valueStart: number;
  if (first < 0x80) {
    len = first;
    valueStart = pos + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (pos + 2 + n > limit) throw new DerError('truncated length');
    if (buf[pos + 2] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos + 2 + i]!;
    if (len < 0x80) throw new DerError('non-minimal length');
    valueStart = pos + 2 + n;
  }
  const end = valueStart + len;
  if (end > limit) throw new DerError('value runs past its container');
  return { tag, start: pos, valueStart, end };
}

/** Reads a TLV with the expected tag. @throws DerError otherwise. */
export function expectTlv(buf: Uint8Array, pos: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, pos, limit);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The TLVs directly inside a constructed `parent`, in order. @throws DerError if they do not tile its value exactly. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let pos = parent.valueStart;
  while (pos < parent.end) {
    const tlv = readTlv(buf, pos, parent.end);
    out.push(tlv);
    pos = tlv.end;
  }
  return out;
}

/** Reads `bytes` as exactly one TLV with `tag` and nothing after it. @throws DerError otherwise. */
export function readWhole(bytes: Uint8Array, tag: number, what: string): Tlv {
  const tlv = expectTlv(bytes, 0, bytes.length, tag, what);
  if (tlv.end !== bytes.length) throw new DerError(`${what}: trailing bytes`);
  return tlv;
}

/** The value octets of `tlv` (a view, not a copy). */
export function valueOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.valueStart, tlv.end);
}

/** The whole encoding of `tlv`, tag and length included (a view). */
export function encodingOf(buf: Uint8Array, tlv: Tlv): Uint8Array {
  return buf.subarray(tlv.start, tlv.end);
}

/**
 * An OBJECT IDENTIFIER's value octets as dotted text.
 * @throws DerError for an empty or non-minimal encoding, or an arc above 2^53.
 */
export function oidText(bytes: Uint8Array): string {
  if (bytes.length === 0) throw new DerError('empty OID');
  const arcs: number[] = [];
  let value = 0;
  let started = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (!started && b === 0x80) throw new DerError('non-minimal OID arc');
    started = true;
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError('OID arc too large');
    if ((b & 0x80) === 0) {
      arcs.push(value);
      value = 0;
      started = false;
    }
  }
  if (started) throw new DerError('truncated OID');
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join('.');
}

/** A BOOLEAN's value. @throws DerError unless it is one octet, 0x00 or 0xFF (DER). */
export function readBoolean(buf: Uint8Array, tlv: Tlv): boolean {
  if (tlv.tag !== TAG.BOOLEAN || tlv.end - tlv.valueStart !== 1) throw new DerError('bad BOOLEAN');
  const v = buf[tlv.valueStart]!;
  if (v !== 0 && v !== 0xff) throw new DerError('BOOLEAN is not DER');
  return v === 0xff;
}

/**
 * A small non-negative INTEGER (version, pathLenConstraint, subtree bounds).
 * @throws DerError for a negative, non-minimal or too large one.
 */
export function readSmallInteger(buf: Uint8Array, tlv: Tlv, tag: number = TAG.INTEGER): number {
  const v = buf.subarray(tlv.valueStart, tlv.end);
  if (tlv.tag !== tag || v.length === 0 || v.length > 4) throw new DerError('bad INTEGER');
  if ((v[0]! & 0x80) !== 0) throw new DerError('negative INTEGER');
  if (v.length > 1 && v[0] === 0 && (v[1]! & 0x80) === 0) throw new DerError('non-minimal INTEGER');
  let n = 0;
  for (const b of v) n = n * 256 + b;
  return n;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * A UTCTime or GeneralizedTime in RFC 5280 section 4.1.2.5's only allowed
 * forms (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`), as milliseconds since the epoch.
 * UTCTime years 50-99 are 19xx, 00-49 are 20xx.
 * @throws DerError for any other form or an impossible date.
 */
export function readTime(buf: Uint8Array, tlv: Tlv): number {
  const len = tlv.end - tlv.valueStart;
  const utc = tlv.tag === TAG.UTC_TIME && len === 13;
  if (!(utc || (tlv.tag === TAG.GENERALIZED_TIME && len === 15)) || buf[tlv.end - 1] !== 0x5a /* Z */) {
    throw new DerError('a time is not in an RFC 5280 form (YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ)');
  }
  const digits: number[] = [];
  for (let i = tlv.valueStart; i < tlv.end - 1; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw new DerError('a time has a character that is not a digit');
    digits.push(d);
  }
  const two = (at: number): number => digits[at]! * 10 + digits[at + 1]!;
  let year: number;
  let p: number;
  if (utc) {
    const yy = two(0);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p = 2;
  } else {
    year = two(0) * 100 + two(2);
    p = 4;
  }
  const [month, day, hour, minute, second] = [two(p), two(p + 2), two(p + 4), two(p + 6), two(p + 8)];
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const maxDay = month === 2 && !leap ? 28 : (DAYS_IN_MONTH[month - 1] ?? 0);
  if (month < 1 || month > 12 || day < 1 || day > maxDay || hour > 23 || minute > 59 || second > 59) {
    throw new DerError('a time is not a real date');
  }
  const at = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  at.setUTCFullYear(year); // Date.UTC maps years 0-99 to 19xx
  return at.getTime();
}
