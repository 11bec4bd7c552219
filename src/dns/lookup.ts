/**
 * The DNS questions DNS-01 needs, asked of servers padlock names itself:
 * where `_acme-challenge.NAME` really lives (CNAMEs followed), which zone
 * holds it (SOA), the zone's authoritative servers (NS and their addresses),
 * and what one of those servers answers for a TXT name (asked directly,
 * recursion off, so no cache sits in between).
 *
 * The resolvers are `--dns-resolvers` or, by default, the system's
 * (`dns.getServers()`); padlock never goes through the system's stub
 * resolver functions (getaddrinfo), so what it asks and whom is explicit.
 */
import { getServers } from 'node:dns';
import { randomInt } from 'node:crypto';
import type packet from 'dns-packet';
import { PadlockError } from '../errors.js';
import { decodeAnswer, encodeQuery, rcodeName, stripDot, txtValues, type DnsAnswer, type QueryType } from './wire.js';
import { describeServer, exchange, parseServers, type DnsServer } from './transport.js';

/** At most this many CNAMEs are followed from `_acme-challenge.NAME` (a loop or a long chain is an error). */
export const MAX_CNAME_CHAIN = 8;
/** Authoritative servers asked per zone, at most (real zones have 2 to 13). */
export const MAX_NAMESERVERS = 16;

export interface DnsLookupOptions {
  /** Recursive resolvers (or any server that knows the zones); default: the system's. */
  resolvers?: readonly DnsServer[];
  /** Per query and server. Default 3 s. */
  timeoutMs?: number;
  /** The port authoritative servers are asked on; 53 except in odd setups. */
  nameserverPort?: number;
}

/** The system's resolvers as servers (what /etc/resolv.conf names). */
export function systemResolvers(): DnsServer[] {
  return parseServers(getServers(), 'the system resolvers');
}

export class DnsLookup {
  readonly resolvers: readonly DnsServer[];
  private readonly timeoutMs: number;
  private readonly nameserverPort: number;

  constructor(options: DnsLookupOptions = {}) {
    this.resolvers = options.resolvers?.length ? options.resolvers : systemResolvers();
    this.timeoutMs = options.timeoutMs ?? 3_000;
    this.nameserverPort = options.nameserverPort ?? 53;
  }

  describeResolvers(): string {
    return this.resolvers.map(describeServer).join(', ');
  }

  /** Asks `servers` in turn until one answers (any rcode); throws the last failure when none does. */
  async ask(name: string, type: QueryType, servers: readonly DnsServer[] = this.resolvers, signal?: AbortSignal): Promise<DnsAnswer & { server: DnsServer }> {
    let last: unknown;
    const recursive = servers === this.resolvers;
    for (const server of servers) {
      const id = randomInt(0, 65_536);
      try {
        const raw = await exchange(server, encodeQuery(id, name, type, recursive), { timeoutMs: this.timeoutMs, ...(signal ? { signal } : {}) });
        return { ...decodeAnswer(raw), server };
      } catch (err) {
        if (signal?.aborted) throw err;
        last = err;
      }
    }
    throw last ?? new PadlockError('DNS_QUERY_FAILED', `no DNS server to ask for ${name}`);
  }

  /**
   * The name the TXT record must be written at: `name` itself, or the end of
   * its CNAME chain (RFC 8555 section 8.4 lets the CA follow CNAMEs, which
   * is how acme-dns and other delegations work).
   */
  async followCnames(name: string, signal?: AbortSignal): Promise<{ name: string; chain: string[] }> {
    const chain: string[] = [];
    let current = stripDot(name).toLowerCase();
    for (let i = 0; i <= MAX_CNAME_CHAIN; i++) {
      const a = await this.ask(current, 'CNAME', this.resolvers, signal);
      const cname = a.answers.find((r): r is packet.StringAnswer => r.type === 'CNAME' && stripDot(r.name).toLowerCase() === current);
      if (!cname) return { name: current, chain };
      const next = stripDot(cname.data).toLowerCase();
      if (next === current || chain.includes(next)) {
        throw new PadlockError('DNS_ZONE_NOT_FOUND', `the CNAMEs from ${name} loop (${[name, ...chain, next].join(' -> ')}); fix them so they end at a TXT name`);
      }
      chain.push(next);
      current = next;
    }
    throw new PadlockError('DNS_ZONE_NOT_FOUND', `more than ${MAX_CNAME_CHAIN} CNAMEs from ${name} (${chain.join(' -> ')})`);
  }

  /** The zone (the owner of the closest SOA) that holds `name`, walking up one label at a time. */
  async findZone(name: string, signal?: AbortSignal): Promise<string> {
    let current = stripDot(name).toLowerCase();
    while (current.includes('.')) {
      const a = await this.ask(current, 'SOA', this.resolvers, signal);
      if (a.rcode === 0 || a.rcode === 3) {
        const soa = [...a.answers, ...a.authorities].find((r) => r.type === 'SOA');
        if (soa) return stripDot(soa.name).toLowerCase();
      }
      current = current.slice(current.indexOf('.') + 1);
    }
    throw new PadlockError('DNS_ZONE_NOT_FOUND',
      `no DNS zone holds ${name}: ${this.describeResolvers()} answered no SOA for it or any parent; check the name, or pass --dns-resolvers servers that know the zone`);
  }

  /** The zone's authoritative servers (NS names and their IPv4 addresses, else IPv6), on the nameserver port. */
  async nameservers(zone: string, signal?: AbortSignal): Promise<Array<DnsServer & { name: string }>> {
    const a = await this.ask(zone, 'NS', this.resolvers, signal);
    const names = [...new Set(a.answers.flatMap((r) => (r.type === 'NS' && stripDot(r.name).toLowerCase() === zone ? [stripDot(r.data).toLowerCase()] : [])))].slice(0, MAX_NAMESERVERS);
    if (names.length === 0) {
      throw new PadlockError('DNS_ZONE_NOT_FOUND', `the zone ${zone} has no NS records at ${this.describeResolvers()} (${rcodeName(a.rcode)}), so padlock cannot tell which servers must see the record`);
    }
    const out: Array<DnsServer & { name: string }> = [];
    for (const ns of names) {
      const glue = a.additionals.flatMap((r) => (r.type === 'A' && stripDot(r.name).toLowerCase() === ns ? [r.data] : []));
      let addresses = glue;
      if (addresses.length === 0) addresses = await this.addresses(ns, 'A', signal);
      if (addresses.length === 0) addresses = await this.addresses(ns, 'AAAA', signal);
      if (addresses.length === 0) throw new PadlockError('DNS_ZONE_NOT_FOUND', `the nameserver ${ns} of ${zone} has no address at ${this.describeResolvers()}`);
      for (const host of addresses) out.push({ name: ns, host, port: this.nameserverPort });
    }
    return out;
  }

  private async addresses(name: string, type: 'A' | 'AAAA', signal?: AbortSignal): Promise<string[]> {
    const a = await this.ask(name, type, this.resolvers, signal);
    return a.answers.flatMap((r) => (r.type === type && typeof r.data === 'string' ? [r.data] : []));
  }

  /** The TXT values one authoritative server gives for `name` now (recursion off). */
  async txtAt(server: DnsServer, name: string, signal?: AbortSignal): Promise<{ rcode: number; values: string[] }> {
    const a = await this.ask(name, 'TXT', [server], signal);
    return { rcode: a.rcode, values: txtValues(a.answers, name) };
  }
}
