/**
 * Domain names as padlock accepts them for certificates. Pure.
 *
 * Names are normalised (lowercase, no trailing dot) and checked against the
 * DNS rules a public CA applies, so a bad name fails here, before any order
 * is placed, instead of costing a failed order at the CA.
 */
import { isIP } from 'node:net';
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
    // RFC 8738: an IP identifier, in its canonical text (RFC 5952 for IPv6), as the CSR and the CA will show it.
    if (options.allowIp) return { name: isIP(bare) === 6 ? new URL(`http://[${bare}]/`).hostname.replace(/^\[|\]$/g, '') : bare };
    return { input, reason: 'IP addresses get a certificate only from padlock issue (RFC 8738); clients send no SNI for them, so padlock cannot route them here: use a DNS name' };
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
 * padlock's local CA, which also accepts a single label such as `localhost`.
 */
export function normaliseSiteHost(input: string, localSuffixes: readonly string[]): { name: string; issuer: 'acme' | 'local' } | NameProblem {
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

