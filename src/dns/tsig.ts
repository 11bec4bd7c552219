/**
 * TSIG (RFC 8945): signs a DNS message with a shared key and checks the
 * server's signed answer. Pure: the time is passed in.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { PadlockError } from '../errors.js';
import { encodeName, lastRecordOffset, readName, u16, TYPE_TSIG } from './wire.js';

/** The HMAC algorithms padlock signs with (RFC 8945 section 6), by their DNS names. */
export const TSIG_ALGORITHMS = {
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
} as const;

export type TsigAlgorithm = keyof typeof TSIG_ALGORITHMS;

/** A TSIG key. `secret` is the raw key (decoded from base64); never logged. */
export interface TsigKey {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

/** RFC 8945 section 5.2.3: the default and recommended fudge, in seconds. */
const FUDGE = 300;
const CLASS_ANY = 255;

/** The TSIG variables (section 4.3.3) that the MAC covers besides the message. */
function variables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Buffer): Buffer {
  return Buffer.concat([encodeName(key.name), u16(CLASS_ANY), Buffer.alloc(4), encodeName(key.algorithm), time48(timeSigned), u16(fudge), u16(error), u16(other.length), other]);
}

function time48(seconds: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(seconds, 0, 6);
  return b;
}

function mac(key: TsigKey, data: Buffer[]): Buffer {
  const h = createHmac(TSIG_ALGORITHMS[key.algorithm], key.secret);
  for (const d of data) h.update(d);
  return h.digest();
}

/**
 * Appends a TSIG record to `message` (section 4.2: the last record of the
 * additional section) and returns the signed message and its MAC, which the
 * answer's MAC must cover (section 4.3.1).
 */
export function signMessage(message: Buffer, key: TsigKey, now: Date): { signed: Buffer; requestMac: Buffer } {
  const timeSigned = Math.floor(now.getTime() / 1000);
  const digest = mac(key, [message, variables(key, timeSigned, FUDGE, 0, Buffer.alloc(0))]);
  const id = message.readUInt16BE(0);
  const rdata = Buffer.concat([encodeName(key.algorithm), time48(timeSigned), u16(FUDGE), u16(digest.length), digest, u16(id), u16(0), u16(0)]);
  const record = Buffer.concat([encodeName(key.name), u16(TYPE_TSIG), u16(CLASS_ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const signed = Buffer.concat([message, record]);
  signed.writeUInt16BE(message.readUInt16BE(10) + 1, 10);
  return { signed, requestMac: digest };
}

/** What the server's TSIG said. `error` is the TSIG error (BADSIG 16, BADKEY 17, BADTIME 18), 0 when none. */
export interface TsigVerdict {
  signed: boolean;
  /** True when the answer carries a TSIG whose MAC checks out with our key. */
  verified: boolean;
  error: number;
}

/**
 * Checks the TSIG of an answer to a request signed with `requestMac`
 * (section 5.3). An answer without TSIG, or with a TSIG error and an empty
 * MAC (the server could not check ours), is reported, not thrown: the
 * caller turns the rcode into a message.
 */
export function verifyAnswer(answer: Buffer, key: TsigKey, requestMac: Buffer): TsigVerdict {
  const last = lastRecordOffset(answer);
  if (!last || last.type !== TYPE_TSIG || answer.readUInt16BE(10) === 0) return { signed: false, verified: false, error: 0 };
  const owner = readName(answer, last.offset);
  let off = owner.end + 10; // type, class, ttl, rdlength
  const alg = readName(answer, off);
  off = alg.end;
  const timeSigned = answer.readUIntBE(off, 6);
  const fudge = answer.readUInt16BE(off + 6);
  const macLen = answer.readUInt16BE(off + 8);
  const theirMac = answer.subarray(off + 10, off + 10 + macLen);
  off += 10 + macLen;
  const originalId = answer.readUInt16BE(off);
  const error = answer.readUInt16BE(off + 2);
  const otherLen = answer.readUInt16BE(off + 4);
  const other = answer.subarray(off + 6, off + 6 + otherLen);
  if (macLen === 0 || owner.name !== key.name.toLowerCase().replace(/\.$/, '') || alg.name !== key.algorithm) return { signed: true, verified: false, error };
  // Section 4.3.3: the MAC covers the answer as it was before the TSIG was added, with the original ID.
  const body = Buffer.from(answer.subarray(0, last.offset));
  body.writeUInt16BE(originalId, 0);
  body.writeUInt16BE(answer.readUInt16BE(10) - 1, 10);
  const expected = mac(key, [u16(requestMac.length), requestMac, body, variables(key, timeSigned, fudge, error, other)]);
  const verified = expected.length === theirMac.length && timingSafeEqual(expected, theirMac);
  return { signed: true, verified, error };
}

/** Parses the algorithm name a user wrote (`hmac-sha256`, `HMAC-SHA256.`); throws CONFIG_INVALID naming the ones padlock has. */
export function parseTsigAlgorithm(raw: string | undefined, where: string): TsigAlgorithm {
  const v = (raw ?? 'hmac-sha256').trim().toLowerCase().replace(/\.$/, '');
  if (v in TSIG_ALGORITHMS) return v as TsigAlgorithm;
  throw new PadlockError('CONFIG_INVALID', `${where}: the TSIG algorithm "${raw}" is not one padlock signs with (${Object.keys(TSIG_ALGORITHMS).join(', ')})`);
}
