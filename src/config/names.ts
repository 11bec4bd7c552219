/**
 * Domain names and IP addresses as padlock accepts them for certificates. Pure.
 *
 * Names are normalised (lowercase, no trailing dot) and checked against the
 * DNS rules a public CA applies, so a bad name fails here, before any order
 * is placed, instead of costing a failed order at the CA.
 *
 * IP addresses (RFC 8738 identifiers) are kept in their canonical text
 * (dotted quad; RFC 5952 for IPv6), which is also how a connection's local
 * address reads, so a site's host, its lineage and the address a client
 * connected to compare as strings.
 */
import { canonicalIp, isIP, mappedIpv4 } from '../ip.js';
import { domainToASCII } from 'node:url';
import { PadlockError } from '../errors.js';

export type NameProblem = { input: string; reason: string };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Normalises one name, or says why it can't be on a certificate.
 * `allowWildcard` is false for HTTP-01, which cannot validate wildcards (RFC 8555 section 7.1.3).
 */
export function normaliseName(input: string, options: { allowWildcard?: boolean; allowIp?: boolean } = {}): { name: string } | NameProblem {
  const raw = input.trim();
  if (raw === '') return { input, reason: 'the name is empty' };
  const bare = raw.replace(/^\[|\]$/g, '');
  if (isIP(bare)) {
    if (options.allowIp) return normaliseIp(input);
    return { input, reason: 'an IP address is not a domain name here' };
  }
  let name = raw.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  // Checked before the WHATWG conversion, which reads a numeric last label as an IPv4 address.
  if (/^[0-9]+$/.test(name.split('.').pop() ?? '')) return { input, reason: 'the top-level label is all digits' };
  // Internationalised names go to the CA in their ASCII (punycode) form.
  const ascii = name.startsWith('*.') ? '*.' + domainToASCII(name.slice(2)) : domainToASCII(name);
  if (ascii === '' || ascii === '*.') return { input, reason: 'it is not a valid domain name' };
  name = ascii;
  if (name.length > 253) return { input, reason: `it is ${name.length} characters long; the limit is 253` };
  let labels = name.split('.');
  if (labels[0] === '*') {
    if (!options.allowWildcard) {
      return { input, reason: 'wildcard names need the DNS-01 challenge (--dns PROVIDER); HTTP-01 cannot validate them' };
    }
    labels = labels.slice(1);
  }
  if (labels.length < 2) return { input, reason: 'it has a single label; a public certificate needs a registered domain such as example.com' };
  for (const label of labels) {
    if (label === '') return { input, reason: 'it has an empty label (two dots in a row)' };
    if (label.length > 63) return { input, reason: `the label "${label.slice(0, 20)}…" is longer than 63 characters` };
    if (!LABEL.test(label)) {
      return { input, reason: `the label "${label}" may hold only letters, digits and inner hyphens` };
    }
  }
  return { name };
}

/**
 * An IP address as a certificate identifier and a site host (RFC 8738): its
 * canonical text (RFC 5952 for IPv6, as the CSR, the CA and a socket's
 * `localAddress` show it), or why it can't be one. Brackets are accepted
 * around IPv6. Refused: a zone (`fe80::1%eth0`, which names an interface,
 * not an address a certificate can hold), the unspecified addresses
 * (`0.0.0.0`, `::`), multicast and broadcast (no TLS connection reaches
 * them), and IPv4-mapped IPv6 (`::ffff:192.0.2.1`: clients and padlock see
 * the IPv4 address, so write that).
 */
export function normaliseIp(input: string): { name: string } | NameProblem {
  const bare = input.trim().replace(/^\[(.*)\]$/, '$1');
  const family = isIP(bare);
  if (family === 0) return { input, reason: 'it is not an IP address' };
  if (family === 4) {
    if (bare === '0.0.0.0') return { input, reason: '0.0.0.0 is the unspecified address, not one a client can connect to' };
    const first = Number(bare.split('.')[0]);
    if (first >= 224 && first <= 239) return { input, reason: 'it is a multicast address' };
    if (bare === '255.255.255.255') return { input, reason: 'it is the broadcast address' };
    return { name: bare };
  }
  if (bare.includes('%')) return { input, reason: 'an IPv6 zone (%interface) names a network interface and cannot be on a certificate; give the address alone' };
  const name = canonicalIp(bare)!;
  if (name === '::') return { input, reason: ':: is the unspecified address, not one a client can connect to' };
  if (name.startsWith('ff')) return { input, reason: 'it is a multicast address' };
  const v4 = mappedIpv4(name);
  if (v4) return { input, reason: `it is an IPv4-mapped IPv6 address; clients and padlock see it as ${v4}, so write that` };
  return { name };
}

/**
 * The certificate (lineage) name for an IP address, a valid folder name and
 * Redis key (store/store.ts `isValidLineageName`): IPv4 as it is
 * (`live/203.0.113.10/`, as `padlock issue -d 203.0.113.10` names it), IPv6
 * with each `:` as `-` and a `0` before a leading `-` (`2001-db8--1`; `0--1`
 * for `::1`, since `0::1` is the same address). No site name collides: a
 * DNS name's last label is never all digits (so never an IPv4 address), and
 * an IPv6 lineage name has no dot (its canonical text writes an embedded
 * IPv4 part in hex), while a site name without a dot is only ever
 * `localhost` or a configured local suffix. `ip` is canonical (normaliseIp).
 */
export function ipLineageName(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const dashed = ip.replace(/:/g, '-');
  return dashed.startsWith('-') ? `0${dashed}` : dashed;
}

/** True for an IPv4 or IPv6 address in any text form padlock reads (brackets allowed). */
export function isIpHost(host: string): boolean {
  return isIP(host.replace(/^\[(.*)\]$/, '$1')) !== 0;
}

/**
 * Normalises a list of names: every problem is reported at once, in one
 * NAME_INVALID error, and duplicates (after normalisation) are dropped while
 * keeping the first occurrence's position.
 */
export function normaliseNames(inputs: readonly string[], options: { allowWildcard?: boolean; allowIp?: boolean } = {}): string[] {
  const problems: NameProblem[] = [];
  const out: string[] = [];
  for (const input of inputs) {
    const r = normaliseName(input, options);
    if ('reason' in r) problems.push(r);
    else if (!out.includes(r.name)) out.push(r.name);
  }
  if (inputs.length === 0) problems.push({ input: '', reason: 'no domain given; pass at least one -d NAME' });
  if (problems.length) {
    throw new PadlockError(
      'NAME_INVALID',
      problems.map((p) => `"${p.input}": ${p.reason}`).join('; '),
      { details: { problems } },
    );
  }
  return out;
}

/** A configured local suffix as a bare name: lowercase, no leading `*.` or `.`, no trailing dot (`''` when nothing is left). */
export function normaliseLocalSuffix(raw: string): string {
  return raw.trim().toLowerCase().replace(/^\*?\.+/, '').replace(/\.$/, '');
}

/** `localhost`, or ends in (or is) one of the local suffixes (`internal`, `home.arpa`...). `name` is lowercase. */
export function isLocalName(name: string, localSuffixes: readonly string[]): boolean {
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return localSuffixes.some((raw) => {
    const suffix = normaliseLocalSuffix(raw);
    return suffix !== '' && (name === suffix || name.endsWith('.' + suffix));
  });
}

/**
 * A host name to serve, and who can certify it: public names by the rules of
 * normaliseName (for an ACME CA), local names (localhost, *.internal...) by
 * padlock's local CA, which also accepts a single label such as `localhost`,
 * and IP addresses (normaliseIp) by the ACME CA, as IP certificates.
 */
export function normaliseSiteHost(input: string, localSuffixes: readonly string[]): { name: string; issuer: 'acme' | 'local' } | NameProblem {
  // An IP address gets an IP certificate from the ACME CA (RFC 8738), never from the local CA (whose root excludes every IP).
  if (isIpHost(input.trim())) {
    const ip = normaliseIp(input);
    return 'reason' in ip ? ip : { name: ip.name, issuer: 'acme' };
  }
  const lowered = input.trim().toLowerCase().replace(/\.$/, '');
  if (lowered !== '' && !lowered.includes('.') && isLocalName(lowered, localSuffixes)) {
    // Borrow normaliseName's label rules by giving it a second label, then take it off again.
    const r = normaliseName(`${lowered}.localhost`);
    return 'name' in r ? { name: lowered, issuer: 'local' } : { input, reason: r.reason };
  }
  const r = normaliseName(input);
  if ('reason' in r) return r;
  return { name: r.name, issuer: isLocalName(r.name, localSuffixes) ? 'local' : 'acme' };
}

