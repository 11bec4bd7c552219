/**
 * Amazon Route 53 through @aws-sdk/client-route-53, with credentials from
 * the standard AWS chain (environment, shared config and profiles, SSO,
 * container and instance roles). The SDK is about 18 MB on disk, so it is
 * imported only when a route53 provider is used.
 *
 * Route 53 keeps a TXT name as one record set: padlock reads the set, adds
 * or removes its one value, and writes the set back (UPSERT, or DELETE of
 * the last value), one change per name at a time in this process.
 */
import type { Route53Client } from '@aws-sdk/client-route-53';
import { PadlockError } from '../../errors.js';
import { checkApiUrl } from './http-api.js';
import type { Credentials } from '../credentials.js';
import { providerError, type DnsProvider, type TxtRecord } from './provider.js';
import type { Clock } from '../../clock.js';
import { abortableDelay } from '../../store/abortable-delay.js';

type Sdk = typeof import('@aws-sdk/client-route-53');

/** How long padlock waits for Route 53 to report a change INSYNC. */
export const ROUTE53_SYNC_TIMEOUT_MS = 120_000;

export class Route53Provider implements DnsProvider {
  readonly kind = 'route53' as const;
  readonly key: string;
  private sdk: Promise<{ sdk: Sdk; client: Route53Client }> | undefined;
  private readonly zoneIds = new Map<string, string>();
  /** One change per name at a time: two orders writing the same set would lose a value. */
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(private readonly creds: Credentials, private readonly clock: Clock, private readonly env: NodeJS.ProcessEnv = process.env) {
    if (creds['endpoint']) checkApiUrl(creds['endpoint'], 'the route53 endpoint');
    this.key = `route53:${creds['hosted_zone_id'] ?? 'auto'}`;
  }

  describe(): string {
    return 'route53';
  }

  private load(): Promise<{ sdk: Sdk; client: Route53Client }> {
    this.sdk ??= import('@aws-sdk/client-route-53').then((sdk) => {
      const id = this.creds['aws_access_key_id'];
      const secret = this.creds['aws_secret_access_key'];
      const client = new sdk.Route53Client({
        region: this.creds['region'] ?? this.env['AWS_REGION'] ?? 'us-east-1',
        ...(this.creds['endpoint'] ? { endpoint: this.creds['endpoint'] } : {}),
        ...(id && secret ? { credentials: { accessKeyId: id, secretAccessKey: secret, ...(this.creds['aws_session_token'] ? { sessionToken: this.creds['aws_session_token'] } : {}) } } : {}),
        maxAttempts: 3,
      });
      return { sdk, client };
    });
    return this.sdk;
  }

  /** Loads the SDK and resolves the credentials, so a missing or bad key fails before any order. */
  async prepare(): Promise<void> {
    const { client } = await this.load();
    try {
      await client.config.credentials();
    } catch (err) {
      throw providerError('route53', undefined, `no AWS credentials found (${(err as Error).message}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role`, { cause: err });
    }
  }

  async zoneFor(fqdn: string): Promise<string> {
    const { sdk, client } = await this.load();
    const fixed = this.creds['hosted_zone_id'];
    if (fixed) {
      const out = await this.send(() => client.send(new sdk.GetHostedZoneCommand({ Id: fixed })), undefined, `reading the hosted zone ${fixed}`);
      const name = out.HostedZone?.Name?.replace(/\.$/, '').toLowerCase();
      if (!name) throw providerError('route53', undefined, `the hosted zone ${fixed} has no name`);
      this.zoneIds.set(name, fixed);
      return name;
    }
    let name = fqdn.toLowerCase();
    while (name.includes('.')) {
      const out = await this.send(() => client.send(new sdk.ListHostedZonesByNameCommand({ DNSName: `${name}.`, MaxItems: 1 })), undefined, `looking up the zone of ${fqdn}`);
      const zone = out.HostedZones?.find((z) => z.Name?.replace(/\.$/, '').toLowerCase() === name && !z.Config?.PrivateZone);
      if (zone?.Id) {
        this.zoneIds.set(name, zone.Id.replace(/^\/hostedzone\//, ''));
        return name;
      }
      name = name.slice(name.indexOf('.') + 1);
    }
    throw providerError('route53', undefined, `no public hosted zone in this AWS account holds ${fqdn}`);
  }

  present(record: TxtRecord): Promise<void> {
    return this.serial(record.fqdn, () => this.change(record, (values) => (values.includes(record.value) ? values : [...values, record.value])));
  }

  cleanup(record: TxtRecord): Promise<void> {
    return this.serial(record.fqdn, () => this.change(record, (values) => values.filter((v) => v !== record.value)));
  }

  async close(): Promise<void> {
    const loaded = this.sdk;
    this.sdk = undefined;
    if (loaded) (await loaded.catch(() => undefined))?.client.destroy();
  }

  private async serial(name: string, job: () => Promise<void>): Promise<void> {
    const before = this.busy.get(name) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(job);
    this.busy.set(name, mine);
    try {
      await mine;
    } finally {
      if (this.busy.get(name) === mine) this.busy.delete(name);
    }
  }

  private async change(record: TxtRecord, next: (values: string[]) => string[]): Promise<void> {
    const { sdk, client } = await this.load();
    if (!this.zoneIds.has(record.zone)) await this.zoneFor(record.fqdn);
    const zoneId = this.zoneIds.get(record.zone);
    if (!zoneId) throw providerError('route53', record.zone, 'the zone is not a hosted zone of this account');
    const name = `${record.fqdn}.`;
    const listed = await this.send(() => client.send(new sdk.ListResourceRecordSetsCommand({ HostedZoneId: zoneId, StartRecordName: name, StartRecordType: 'TXT', MaxItems: 1 })), record.zone, `reading ${record.fqdn}`);
    const set = listed.ResourceRecordSets?.find((s) => s.Type === 'TXT' && s.Name?.toLowerCase() === name.toLowerCase());
    const current = (set?.ResourceRecords ?? []).map((r) => unquote(r.Value ?? ''));
    const wanted = next(current);
    if (sameList(current, wanted)) return;
    const ttl = set?.TTL ?? 60;
    const change = wanted.length === 0
      ? { Action: 'DELETE' as const, ResourceRecordSet: { Name: name, Type: 'TXT' as const, TTL: ttl, ResourceRecords: current.map((v) => ({ Value: `"${v}"` })) } }
      : { Action: 'UPSERT' as const, ResourceRecordSet: { Name: name, Type: 'TXT' as const, TTL: ttl, ResourceRecords: wanted.map((v) => ({ Value: `"${v}"` })) } };
    const out = await this.send(() => client.send(new sdk.ChangeResourceRecordSetsCommand({ HostedZoneId: zoneId, ChangeBatch: { Comment: 'padlock ACME challenge', Changes: [change] } })), record.zone, `changing ${record.fqdn}`);
    // Route 53 applies a change to all its servers within about 60 s; GetChange says when (INSYNC).
    const changeId = out.ChangeInfo?.Id;
    const deadline = this.clock.now().getTime() + ROUTE53_SYNC_TIMEOUT_MS;
    let status = out.ChangeInfo?.Status;
    while (changeId && status !== 'INSYNC') {
      if (this.clock.now().getTime() > deadline) throw providerError('route53', record.zone, `the change ${changeId} was not INSYNC within ${ROUTE53_SYNC_TIMEOUT_MS / 1000} s`, { retryable: true });
      await abortableDelay(1_000, undefined);
      status = (await this.send(() => client.send(new sdk.GetChangeCommand({ Id: changeId })), record.zone, 'waiting for the change')).ChangeInfo?.Status;
    }
  }

  private async send<T>(call: () => Promise<T>, zone: string | undefined, doing: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof PadlockError) throw err;
      const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      const hint = status === 403 || e.name === 'AccessDenied' ? '; check that the credentials may list hosted zones and change record sets in this zone' : '';
      throw providerError('route53', zone, `${doing}: ${e.name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}${hint}`, { cause: err, retryable: status === undefined || status >= 500 || status === 400 && e.name === 'Throttling', details: status ? { status } : {} });
    }
  }
}

function unquote(v: string): string {
  return /^".*"$/.test(v) ? v.slice(1, -1).replace(/"\s*"/g, '') : v;
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
