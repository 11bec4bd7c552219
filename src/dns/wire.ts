/**
 * DNS messages on the wire: queries and their answers through dns-packet,
 * and RFC 2136 dynamic updates, which dns-packet cannot express (it has no
 * class NONE, RFC 2136 section 2.5.4). Pure: buffers in, values out.
 */
import packet from 'dns-packet';
import { PadlockError } from '../errors.js';

/** Record types padlock asks for. */
export type QueryType = 'TXT' | 'SOA' | 'NS' | 'A' | 'AAAA' | 'CNAME';

const TYPE_TXT = 16;
const TYPE_SOA = 6;
const TYPE_TSIG = 250;
const CLASS_IN = 1;
const CLASS_NONE = 254;
const OPCODE_UPDATE = 5;
/** Largest DNS message padlock accepts over TCP; real answers for its queries are far below. */
export const MAX_MESSAGE_BYTES = 65_535;

/** RFC 1035 section 4.1.1 and RFC 8945 section 3 response codes, for messages. */
const RCODES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED',
  6: 'YXDOMAIN', 7: 'YXRRSET', 8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE',
  16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC',
};

export function rcodeName(code: number): string {
  return RCODES[code] ?? `RCODE${code}`;
}

/** A query for one name and type, RD set when asking a resolver, clear when asking an authoritative server. */
export function encodeQuery(id: number, name: string, type: QueryType, recursionDesired: boolean): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: recursionDesired ? packet.RECURSION_DESIRED : 0,
    questions: [{ type, name: stripDot(name), class: 'IN' }],
  });
}

/** One change of an update: add the TXT value, or delete exactly that value (never the whole RRset: other values may be another order's). */
export interface TxtChange {
  op: 'add' | 'delete';
  /** Absolute name, without the trailing dot. */
  name: string;
  value: string;
  ttl: number;
}

/**
 * An RFC 2136 UPDATE for `zone` (section 2.3: the zone section holds the
 * zone's SOA question) with no prerequisites: adds use class IN
 * (section 2.5.1), deletes of one RR use class NONE and TTL 0 (section 2.5.4).
 */
export function encodeUpdate(id: number, zone: string, changes: readonly TxtChange[]): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4); // ZOCOUNT
  header.writeUInt16BE(0, 6); // PRCOUNT
  header.writeUInt16BE(changes.length, 8); // UPCOUNT
  header.writeUInt16BE(0, 10); // ADCOUNT
  parts.push(header, encodeName(zone), u16(TYPE_SOA), u16(CLASS_IN));
  for (const c of changes) {
    const text = Buffer.from(c.value, 'utf8');
    if (text.length > 255) throw new PadlockError('DNS_PROVIDER_FAILED', 'a TXT value longer than 255 bytes needs several strings; challenge values are 43');
    const rdata = Buffer.concat([u16(text.length + 1), Buffer.from([text.length]), text]); // RDLENGTH, then one <character-string>
    const ttl = Buffer.alloc(4);
    ttl.writeUInt32BE(c.op === 'add' ? c.ttl : 0, 0);
    parts.push(encodeName(c.name), u16(TYPE_TXT), u16(c.op === 'add' ? CLASS_IN : CLASS_NONE), ttl, rdata);
  }
  return Buffer.concat(parts);
}

/** A name in uncompressed wire form, lowercased (the canonical form TSIG needs too). */
export function encodeName(name: string): Buffer {
  const n = stripDot(name).toLowerCase();
  if (n === '') return Buffer.from([0]);
  const out: Buffer[] = [];
  for (const label of n.split('.')) {
    const b = Buffer.from(label, 'utf8');
    if (b.length === 0 || b.length > 63) throw new PadlockError('NAME_INVALID', `"${name}" has an empty or too long label`);
    out.push(Buffer.from([b.length]), b);
  }
  out.push(Buffer.from([0]));
  return Buffer.concat(out);
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

/** A decoded answer, with the header fields padlock looks at. */
export interface DnsAnswer {
  id: number;
  rcode: number;
  truncated: boolean;
  authoritative: boolean;
  answers: packet.Answer[];
  authorities: packet.Answer[];
  additionals: packet.Answer[];
}

/** Decodes a message; throws DNS_QUERY_FAILED on garbage. */
export function decodeAnswer(buf: Buffer): DnsAnswer {
  if (buf.length < 12) throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a message shorter than a header');
  const flags = buf.readUInt16BE(2);
  try {
    const d = packet.decode(buf);
    return {
      id: buf.readUInt16BE(0), rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, authoritative: (flags & 0x0400) !== 0,
      answers: d.answers ?? [], authorities: d.authorities ?? [], additionals: d.additionals ?? [],
    };
  } catch {
    // A header is still readable when the body is not (an update answer with a record dns-packet cannot read).
    return { id: buf.readUInt16BE(0), rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, authoritative: (flags & 0x0400) !== 0, answers: [], authorities: [], additionals: [] };
  }
}

/** The strings of a TXT answer's data, joined per record (RFC 7208 style: several strings make one value). */
export function txtValues(answers: readonly packet.Answer[], name: string): string[] {
  const want = stripDot(name).toLowerCase();
  return answers.flatMap((a) => {
    if (a.type !== 'TXT' || stripDot(a.name).toLowerCase() !== want) return [];
    const data = Array.isArray(a.data) ? a.data : [a.data];
    return [data.map((d) => (Buffer.isBuffer(d) ? d.toString('utf8') : String(d))).join('')];
  });
}

/** Offsets of a message's sections, found by walking it (needed to strip a TSIG, which must be the last record). */
export function lastRecordOffset(buf: Buffer): { offset: number; type: number } | undefined {
  const qd = buf.readUInt16BE(4);
  const total = buf.readUInt16BE(6) + buf.readUInt16BE(8) + buf.readUInt16BE(10);
  let off = 12;
  for (let i = 0; i < qd; i++) off = skipName(buf, off) + 4;
  let last: { offset: number; type: number } | undefined;
  for (let i = 0; i < total; i++) {
    const start = off;
    off = skipName(buf, off);
    if (off + 10 > buf.length) throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a truncated record');
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    off += 10 + rdlen;
    if (off > buf.length) throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a truncated record');
    last = { offset: start, type };
  }
  return last;
}

/** Past a (possibly compressed) name starting at `off`. */
export function skipName(buf: Buffer, off: number): number {
  for (let guard = 0; guard < 128; guard++) {
    if (off >= buf.length) throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a malformed name');
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2;
    off += 1 + len;
  }
  throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a name with too many labels');
}

/** Reads an uncompressed name at `off` (the TSIG owner and algorithm names, RFC 8945 section 4.2, are never compressed). */
export function readName(buf: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  for (let guard = 0; guard < 128; guard++) {
    if (off >= buf.length) break;
    const len = buf[off]!;
    if (len === 0) return { name: labels.join('.'), end: off + 1 };
    if ((len & 0xc0) !== 0) throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server compressed a TSIG name');
    labels.push(buf.subarray(off + 1, off + 1 + len).toString('latin1').toLowerCase());
    off += 1 + len;
  }
  throw new PadlockError('DNS_QUERY_FAILED', 'the DNS server sent a malformed name');
}

export { TYPE_TSIG };

export function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}
