/**
 * Which upstream addresses padlock refuses to forward to. Pure: no sockets,
 * no DNS, no clock; the I/O hooks that apply it live in upstream-connect.ts.
 *
 * Labels are written by whoever can start a container, so an upstream is
 * hostile input. Two rules:
 *
 * 1. **padlock's own listeners, always** (no override): an address that is
 *    loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::) or one of this
 *    host's interface addresses, on a port padlock itself listens on (HTTP,
 *    HTTPS, admin). A route there would publish the admin API (which trusts
 *    loopback) or loop the proxy into itself.
 * 2. **Link-local and cloud metadata, unless `--allow-upstream` covers the
 *    address**: 169.254.0.0/16, fe80::/10 (and their IPv4-mapped forms) and
 *    the well-known metadata addresses below. A metadata service hands out
 *    the host's cloud credentials to anyone who can reach it.
 *
 * Addresses are matched with `net.BlockList`, which also matches an
 * IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) against IPv4 rules.
 */
import { BlockList } from 'node:net';
import { isIP } from '../ip.js';

/** The rule that refused an upstream. */
export type UpstreamRule = 'own-listener' | 'metadata' | 'link-local';

/** Why an upstream address is refused: the rule, and a clause a person can act on. */
export interface UpstreamRefusal {
  readonly rule: UpstreamRule;
  readonly address: string;
  readonly port: number;
  /** `goes to ...; padlock ...`, naming the rule and, for link-local and metadata, the override. Never anything secret. */
  readonly reason: string;
}

/** What a guard is built from: plain data, so it can cross to proxy worker processes. */
export interface UpstreamGuardSpec {
  /** CIDRs (or single addresses) exempt from the link-local and metadata rule (`--allow-upstream`). Never from the own-listener rule. */
  readonly allow?: readonly string[];
  /** Ports padlock listens on (HTTP, HTTPS, admin), as bound. */
  readonly ownPorts?: readonly number[];
  /** This host's interface addresses; loopback and unspecified addresses count as local without being listed. */
  readonly localAddresses?: readonly string[];
}

/**
 * Cloud metadata services, refused even where they are not link-local.
 * - 169.254.169.254: the instance metadata service of AWS EC2 (IMDS), Google
 *   Cloud, Azure (IMDS), Oracle Cloud, OpenStack and DigitalOcean.
 * - 169.254.170.2: AWS ECS task metadata and task-role credentials
 *   (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
 * - fd00:ec2::254: the IPv6 address of AWS EC2's IMDS on Nitro instances
 *   (a unique-local address, not link-local).
 * - 100.100.100.200: Alibaba Cloud ECS metadata (inside 100.64.0.0/10, not link-local).
 */
export const METADATA_ADDRESSES: readonly string[] = Object.freeze(['169.254.169.254', '169.254.170.2', 'fd00:ec2::254', '100.100.100.200']);

const METADATA = new BlockList();
for (const a of METADATA_ADDRESSES) METADATA.addAddress(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');

const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');

/** Addresses that are this host whatever its interfaces: loopback and unspecified (Linux connects 0.0.0.0 to itself). */
const ALWAYS_LOCAL = new BlockList();
ALWAYS_LOCAL.addSubnet('127.0.0.0', 8, 'ipv4');
ALWAYS_LOCAL.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_LOCAL.addAddress('::1', 'ipv6');
ALWAYS_LOCAL.addAddress('::', 'ipv6');

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** The addresses an upstream host names without DNS: an IP literal, or a loopback name (RFC 6761 section 6.3). */
function literalAddresses(hostname: string): string[] | undefined {
  const h = bare(hostname).toLowerCase().replace(/\.$/, '');
  if (isIP(h)) return [h];
  if (h === 'localhost' || h.endsWith('.localhost')) return ['127.0.0.1', '::1'];
  return undefined;
}

/** An address without IPv6 brackets or zone (`[fe80::1%eth0]` -> `fe80::1`). */
function bare(address: string): string {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  return a;
}

/**
 * Whether `address` (an IP, with or without brackets or zone) is in `list`.
 * False for anything that is not an IP address, never a throw.
 */
export function addressIn(list: BlockList, address: string): boolean {
  const a = bare(address);
  const family = isIP(a);
  if (family === 0) return false;
  return list.check(a, family === 6 ? 'ipv6' : 'ipv4');
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string): boolean {
  return addressIn(LOOPBACK, address);
}

/**
 * Adds one `ADDRESS/PREFIX` (or a bare address, meaning /32 or /128) to
 * `list`. Returns why not when `text` is not one; `list` is then unchanged.
 * Node's BlockList validates the address and the prefix range.
 */
export function addCidr(list: BlockList, text: string): string | undefined {
  const value = text.trim();
  const slash = value.lastIndexOf('/');
  const address = slash < 0 ? value : value.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return `"${text}" is not an IP address or CIDR (such as 169.254.10.0/24 or fd00::/8)`;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (slash < 0) {
    list.addAddress(address, type);
    return undefined;
  }
  const max = family === 6 ? 128 : 32;
  const prefix = value.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return `"${text}" has a bad prefix length: an IPv${family} CIDR takes /0 to /${max}`;
  list.addSubnet(address, Number(prefix), type);
  return undefined;
}

/** Why a CIDR (or address) from the config does not parse, or undefined when it does. */
export function cidrProblem(text: string): string | undefined {
  return addCidr(new BlockList(), text);
}

/**
 * A BlockList of `cidrs`, or undefined when the list is empty (so callers can
 * skip the check entirely). Throws on an entry that does not parse: validate
 * config with `cidrProblem` first.
 */
export function cidrList(cidrs: readonly string[] | undefined): BlockList | undefined {
  if (!cidrs || cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const c of cidrs) {
    const problem = addCidr(list, c);
    if (problem) throw new TypeError(problem);
  }
  return list;
}

/**
 * The refusal rules, compiled. Immutable: a change (a port bound later)
 * builds a new guard. `check` is a few BlockList lookups, cheap enough for
 * every new upstream connection.
 */
export class UpstreamGuard {
  private readonly allow: BlockList | undefined;
  private readonly local: BlockList;
  private readonly ownPorts: ReadonlySet<number>;

  /** Throws a TypeError on an `allow` entry that does not parse (config validation reports them first). */
  constructor(readonly spec: UpstreamGuardSpec = {}) {
    this.allow = cidrList(spec.allow);
    this.ownPorts = new Set((spec.ownPorts ?? []).filter((p) => p > 0));
    this.local = new BlockList();
    for (const a of spec.localAddresses ?? []) {
      const ip = bare(a);
      const family = isIP(ip);
      if (family) this.local.addAddress(ip, family === 6 ? 'ipv6' : 'ipv4');
    }
  }

  /** The same rules with `ownPorts` replaced. */
  withOwnPorts(ownPorts: readonly number[]): UpstreamGuard {
    return new UpstreamGuard({ ...this.spec, ownPorts });
  }

  /**
   * Why a connection to `address`:`port` is refused, or undefined when it is
   * allowed. `address` is an IP (brackets and zone are ignored); anything
   * else is allowed here, because only resolved addresses can be judged.
   */
  check(address: string, port: number): UpstreamRefusal | undefined {
    const ip = bare(address);
    if (isIP(ip) === 0) return undefined;
    if (this.ownPorts.has(port) && (addressIn(ALWAYS_LOCAL, ip) || addressIn(this.local, ip))) {
      return { rule: 'own-listener', address: ip, port, reason: `goes to padlock's own listener (${ip} port ${port}); padlock never forwards a request to itself` };
    }
    if (this.allow && addressIn(this.allow, ip)) return undefined;
    const override = `--allow-upstream ${ip}/${isIP(ip) === 6 ? 128 : 32}`;
    if (addressIn(METADATA, ip)) {
      return { rule: 'metadata', address: ip, port, reason: `goes to ${ip}, a cloud metadata service address; padlock refuses it unless --allow-upstream covers it (${override})` };
    }
    if (addressIn(LINK_LOCAL, ip)) {
      return {
        rule: 'link-local',
        address: ip,
        port,
        reason: `goes to ${ip}, a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services live; padlock refuses it unless --allow-upstream covers it (${override})`,
      };
    }
    return undefined;
  }

  /**
   * The refusal for an upstream URL (`http://HOST:PORT`) whose host needs no
   * DNS: an IP literal or a `localhost` name. Undefined for other names (they
   * are checked when a connection resolves them) and for allowed addresses.
   */
  checkUrl(url: string): UpstreamRefusal | undefined {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return undefined;
    }
    const addresses = literalAddresses(u.hostname);
    if (!addresses) return undefined;
    const port = Number(u.port) || (u.protocol === 'https:' ? 443 : 80);
    for (const a of addresses) {
      const refusal = this.check(a, port);
      if (refusal) return refusal;
    }
    return undefined;
  }
}

/** The ports a config names for padlock's listeners (0, "pick one", is left out: the bound port is added later). */
export function configuredOwnPorts(config: { httpPort: number; httpsPort: number; adminListen: string }): number[] {
  const admin = Number(/:(\d{1,5})$/.exec(config.adminListen)?.[1] ?? 0);
  return [config.httpPort, config.httpsPort, admin].filter((p) => p > 0);
}
