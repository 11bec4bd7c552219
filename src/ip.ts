/**
 * `isIP` as node:net's, without its first-call cost on names.
 *
 * node:net's `isIP` tests IPv4 and then a very large IPv6 regular
 * expression, which V8 compiles on its first use: about 30 ms of the first
 * call with a DNS name (every `padlock issue` makes one; bench/issue CPU
 * profile). An IPv6 address always has a colon and a DNS name never does,
 * so names are answered by the IPv4 test alone.
 */
import { isIP as nodeIsIP, isIPv4 } from 'node:net';

/** 4 for an IPv4 address, 6 for an IPv6 address, 0 otherwise, exactly as `net.isIP`. */
export function isIP(text: string): 0 | 4 | 6 {
  if (text.includes(':')) return nodeIsIP(text) as 0 | 4 | 6;
  return isIPv4(text) ? 4 : 0;
}

/**
 * An address in the one text form padlock compares IP hosts in: dotted IPv4,
 * and IPv6 per RFC 5952 (the WHATWG URL serialiser: lowercase, zeros
 * compressed, `0:0:0:0:0:0:0:1` -> `::1`), as sites, certificates, Host
 * headers and a socket's local address are all written before they meet.
 * Undefined for anything else, and for an IPv6 zone (`fe80::1%eth0`), which
 * names an interface, not an address.
 */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6 || text.includes('%')) return undefined;
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}

/** The IPv4 address an IPv4-mapped IPv6 address stands for (`::ffff:c000:201` -> `192.0.2.1`; canonical text in), else undefined. */
export function mappedIpv4(canonical: string): string | undefined {
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return undefined;
  const [hi, lo] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
