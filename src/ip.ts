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
