/**
 * Cloudflare DNS through its v4 REST API, with an API token scoped to the
 * zones (Zone:DNS:Edit). padlock uses four endpoints, so it calls them
 * through undici rather than the official `cloudflare` package (a large
 * generated client for the whole Cloudflare API).
 */
import { apiRequest, checkApiUrl, type ApiResponse } from './http-api.js';
import { need, type Credentials } from '../credentials.js';
import { providerError, type DnsProvider, type TxtRecord } from './provider.js';

export const CLOUDFLARE_API = 'https://api.cloudflare.com/client/v4';

interface CfEnvelope<T> {
  success?: boolean;
  errors?: Array<{ code?: number; message?: string }>;
  result?: T;
}

export class CloudflareProvider implements DnsProvider {
  readonly kind = 'cloudflare' as const;
  readonly key: string;
  private readonly token: string;
  private readonly api: string;
  private readonly zoneIds = new Map<string, string>();

  constructor(creds: Credentials) {
    this.token = need(creds, 'api_token', 'cloudflare');
    this.api = checkApiUrl(creds['api_url'] ?? CLOUDFLARE_API, 'the cloudflare api_url');
    // The token's own text never appears in the key (it is stored); a short fingerprint does not help either, so: the API only.
    this.key = `cloudflare:${this.api}`;
  }

  describe(): string {
    return 'cloudflare';
  }

  /** GET /user/tokens/verify: a revoked or mistyped token fails before any order. */
  async prepare(): Promise<void> {
    const r = await this.call('GET', '/user/tokens/verify', undefined, undefined, 'checking the API token');
    const status = (r.body as CfEnvelope<{ status?: string }>).result?.status;
    if (status && status !== 'active') throw providerError('cloudflare', undefined, `the API token is ${status}; create an active token with Zone:DNS:Edit`);
  }

  /** The closest enclosing zone in this account (GET /zones?name=...), walking up from `fqdn`. */
  async zoneFor(fqdn: string): Promise<string> {
    let name = fqdn.toLowerCase();
    while (name.includes('.')) {
      if (this.zoneIds.has(name)) return name;
      const r = await this.call('GET', `/zones?name=${encodeURIComponent(name)}&status=active`, undefined, undefined, `looking up the zone of ${fqdn}`);
      const zones = (r.body as CfEnvelope<Array<{ id?: string; name?: string }>>).result ?? [];
      const hit = zones.find((z) => z.name?.toLowerCase() === name && typeof z.id === 'string');
      if (hit) {
        this.zoneIds.set(name, hit.id!);
        return name;
      }
      name = name.slice(name.indexOf('.') + 1);
    }
    throw providerError('cloudflare', undefined, `no zone in this Cloudflare account (that the token may see) holds ${fqdn}; give the token Zone:DNS:Edit on it`);
  }

  async present(record: TxtRecord): Promise<void> {
    const id = await this.zoneId(record.zone);
    await this.call('POST', `/zones/${id}/dns_records`, { type: 'TXT', name: record.fqdn, content: record.value, ttl: 60, comment: 'padlock ACME challenge' }, record.zone, `adding the TXT record ${record.fqdn}`);
  }

  async cleanup(record: TxtRecord): Promise<void> {
    const id = await this.zoneId(record.zone);
    const r = await this.call('GET', `/zones/${id}/dns_records?type=TXT&name=${encodeURIComponent(record.fqdn)}&per_page=100`, undefined, record.zone, `listing the TXT records at ${record.fqdn}`);
    const records = (r.body as CfEnvelope<Array<{ id?: string; content?: string }>>).result ?? [];
    // Only padlock's own value: another order's value (or the user's own TXT) at the same name stays.
    for (const rec of records.filter((x) => typeof x.id === 'string' && unquote(x.content) === record.value)) {
      await this.call('DELETE', `/zones/${id}/dns_records/${rec.id}`, undefined, record.zone, `removing the TXT record ${record.fqdn}`);
    }
  }

  private async zoneId(zone: string): Promise<string> {
    if (!this.zoneIds.has(zone)) await this.zoneFor(zone);
    const id = this.zoneIds.get(zone);
    if (!id) throw providerError('cloudflare', zone, 'the zone is not in this account');
    return id;
  }

  private async call(method: string, path: string, body: unknown, zone: string | undefined, doing: string): Promise<ApiResponse> {
    let r: ApiResponse;
    try {
      r = await apiRequest(method, `${this.api}${path}`, { authorization: `Bearer ${this.token}` }, body);
    } catch (err) {
      throw providerError('cloudflare', zone, `${doing}: the API could not be reached (${(err as Error).message})`, { cause: err, retryable: true });
    }
    const env = (r.body ?? {}) as CfEnvelope<unknown>;
    if (r.status >= 200 && r.status < 300 && env.success !== false) return r;
    const errors = (env.errors ?? []).map((e) => `${e.code ?? '?'}: ${e.message ?? 'no message'}`).join('; ') || r.text.slice(0, 200);
    const hint = r.status === 403 || r.status === 401 ? '; check that the API token is valid and has Zone:DNS:Edit on this zone' : '';
    throw providerError('cloudflare', zone, `${doing}: HTTP ${r.status} (${errors})${hint}`, { retryable: r.status === 429 || r.status >= 500, details: { status: r.status } });
  }
}

/** Cloudflare may return a TXT content with its quotes. */
function unquote(content: string | undefined): string | undefined {
  return content && /^".*"$/.test(content) ? content.slice(1, -1) : content;
}
