/**
 * acme-dns (github.com/joohoi/acme-dns): a small DNS server that holds only
 * challenge records, updated over HTTP. `_acme-challenge.NAME` is a CNAME to
 * the registration's `fulldomain`, so padlock's own DNS credentials never
 * reach the real zone. acme-dns keeps the two latest values of a
 * subdomain, enough for an apex and its wildcard, and has no delete: the
 * values simply rotate out.
 */
import { apiRequest, checkApiUrl, type ApiResponse } from './http-api.js';
import { need, type Credentials } from '../credentials.js';
import { providerError, type DnsProvider, type TxtRecord } from './provider.js';

export class AcmeDnsProvider implements DnsProvider {
  readonly kind = 'acme-dns' as const;
  readonly key: string;
  private readonly api: string;
  private readonly username: string;
  private readonly password: string;
  private readonly subdomain: string;
  private readonly fulldomain: string | undefined;

  constructor(creds: Credentials) {
    this.api = checkApiUrl(need(creds, 'api_url', 'acme-dns'), 'the acme-dns api_url');
    this.username = need(creds, 'username', 'acme-dns');
    this.password = need(creds, 'password', 'acme-dns');
    this.subdomain = need(creds, 'subdomain', 'acme-dns');
    this.fulldomain = creds['fulldomain']?.replace(/\.$/, '').toLowerCase();
    this.key = `acme-dns:${this.api}:${this.subdomain}`;
  }

  describe(): string {
    return `acme-dns at ${this.api}`;
  }

  async prepare(): Promise<void> {}

  async present(record: TxtRecord): Promise<void> {
    // The CNAME must end at this registration, or the CA would look somewhere padlock does not write.
    if (this.fulldomain && record.fqdn !== this.fulldomain) {
      throw providerError(this.describe(), record.zone,
        `the challenge name leads to ${record.fqdn}, not to this registration's ${this.fulldomain}; add a CNAME from _acme-challenge.NAME to ${this.fulldomain}`);
    }
    let r: ApiResponse;
    try {
      r = await apiRequest('POST', `${this.api}/update`, { 'x-api-user': this.username, 'x-api-key': this.password }, { subdomain: this.subdomain, txt: record.value });
    } catch (err) {
      throw providerError(this.describe(), record.zone, `updating ${this.subdomain}: the API could not be reached (${(err as Error).message})`, { cause: err, retryable: true });
    }
    if (r.status !== 200) {
      const hint = r.status === 401 || r.status === 403 ? '; check username, password and subdomain' : '';
      throw providerError(this.describe(), record.zone, `updating ${this.subdomain}: HTTP ${r.status} (${r.text.slice(0, 200)})${hint}`, { retryable: r.status >= 500, details: { status: r.status } });
    }
  }

  /** acme-dns has no delete; the value rotates out with the next two updates. */
  async cleanup(): Promise<void> {}
}
