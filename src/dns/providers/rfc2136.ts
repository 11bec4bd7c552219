/**
 * RFC 2136 dynamic updates, signed with TSIG (RFC 8945), to any
 * authoritative server that accepts them: BIND, Knot, PowerDNS, Windows DNS.
 * Adds and deletes single TXT records (never a whole RRset), so two values
 * at one name (an apex and its wildcard) live side by side.
 */
import { randomInt } from 'node:crypto';
import { PadlockError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import { DnsLookup } from '../lookup.js';
import { describeServer, exchange, parseServers, type DnsServer } from '../transport.js';
import { encodeUpdate, rcodeName } from '../wire.js';
import { parseTsigAlgorithm, signMessage, verifyAnswer, type TsigKey } from '../tsig.js';
import { need, type Credentials } from '../credentials.js';
import { providerError, type DnsProvider, type TxtRecord } from './provider.js';

export interface Rfc2136Options {
  server: DnsServer;
  /** Absent: unsigned updates (only for servers that allow them by address). */
  key?: TsigKey;
  /** TTL of the records padlock adds. Default 60 s. */
  ttl?: number;
  timeoutMs?: number;
  clock: Clock;
}

/** Reads `server` (IP[:port]), `port`, `name`, `secret` (base64) and `algorithm` (default hmac-sha256) from credentials. */
export function rfc2136Options(creds: Credentials, clock: Clock): Rfc2136Options {
  const [server] = parseServers([need(creds, 'server', 'rfc2136')], 'rfc2136 server', creds['port'] ? Number(creds['port']) : 53);
  const name = creds['name'];
  const secret = creds['secret'];
  if ((name === undefined) !== (secret === undefined)) throw new PadlockError('CONFIG_INVALID', 'the rfc2136 DNS provider needs both "name" and "secret" (the TSIG key), or neither');
  let key: TsigKey | undefined;
  if (name !== undefined && secret !== undefined) {
    const raw = Buffer.from(secret, 'base64');
    if (raw.length === 0 || !/^[A-Za-z0-9+/=\s]+$/.test(secret)) throw new PadlockError('CONFIG_INVALID', 'the rfc2136 "secret" must be the TSIG key in base64 (as tsig-keygen prints it)');
    key = { name: name.replace(/\.$/, '').toLowerCase(), algorithm: parseTsigAlgorithm(creds['algorithm'], 'rfc2136'), secret: raw };
  }
  return { server: server!, ...(key ? { key } : {}), clock };
}

export class Rfc2136Provider implements DnsProvider {
  readonly kind = 'rfc2136' as const;
  readonly key: string;
  constructor(private readonly opts: Rfc2136Options) {
    this.key = `rfc2136:${describeServer(opts.server)}:${opts.key?.name ?? 'unsigned'}`;
  }

  describe(): string {
    return `rfc2136 at ${describeServer(this.opts.server)}${this.opts.key ? ` (TSIG key ${this.opts.key.name})` : ''}`;
  }

  async prepare(): Promise<void> {}

  /** The primary knows its zones: ask it for the SOA, not a resolver that may not know an internal zone. */
  zoneFor(fqdn: string): Promise<string> {
    return new DnsLookup({ resolvers: [this.opts.server], ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}) }).findZone(fqdn);
  }

  present(record: TxtRecord): Promise<void> {
    return this.update(record, 'add');
  }

  cleanup(record: TxtRecord): Promise<void> {
    // Deleting an RR that is not there is a no-op for the server (RFC 2136 section 3.4.2.4).
    return this.update(record, 'delete');
  }

  private async update(record: TxtRecord, op: 'add' | 'delete'): Promise<void> {
    const id = randomInt(0, 65_536);
    const message = encodeUpdate(id, record.zone, [{ op, name: record.fqdn, value: record.value, ttl: this.opts.ttl ?? 60 }]);
    const key = this.opts.key;
    const signed = key ? signMessage(message, key, this.opts.clock.now()) : undefined;
    const doing = `${op === 'add' ? 'adding' : 'removing'} the TXT record ${record.fqdn}`;
    let answer: Buffer;
    try {
      answer = await exchange(this.opts.server, signed?.signed ?? message, { timeoutMs: this.opts.timeoutMs ?? 10_000 });
    } catch (err) {
      throw providerError(this.describe(), record.zone, `${doing}: ${(err as Error).message}`, { cause: err, retryable: true });
    }
    const rcode = answer.readUInt16BE(2) & 0xf;
    const tsig = key && signed ? verifyAnswer(answer, key, signed.requestMac) : undefined;
    if (tsig && tsig.error !== 0) {
      throw providerError(this.describe(), record.zone, `${doing}: the server refused the TSIG signature (${rcodeName(tsig.error)}): ${tsig.error === 17 ? 'the server does not know this key for this zone; check the key name in the credentials and the zone\'s update policy' : tsig.error === 18 ? 'check this machine\'s clock' : 'check the key name, secret and algorithm in the credentials'}`,
        { details: { rcode: rcodeName(rcode), tsigError: rcodeName(tsig.error) } });
    }
    if (rcode !== 0) {
      const why = rcode === 5 ? ': the server does not allow this key to update this zone (check its allow-update / ACL)'
        : rcode === 9 ? ': the server is not authoritative for the zone, or the key is unknown to it'
          : rcode === 10 ? ': the name is not in the zone' : '';
      throw providerError(this.describe(), record.zone, `${doing}: the server answered ${rcodeName(rcode)}${why}`, { retryable: rcode === 2, details: { rcode: rcodeName(rcode) } });
    }
    if (tsig && !tsig.verified) {
      throw providerError(this.describe(), record.zone, `${doing}: the server's answer is not signed with the TSIG key, so padlock cannot trust it`, { details: { rcode: 'NOERROR' } });
    }
  }
}
