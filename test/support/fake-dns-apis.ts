/**
 * Small fakes of DNS provider HTTP APIs that cannot run here (Cloudflare,
 * Route 53, acme-dns), each on 127.0.0.1 port 0. They keep records the way
 * the real API does, and write every change into a real zone on a Knot
 * server (test/support/knot.ts), so Pebble validates against real DNS and a
 * test sees the whole chain. Only the endpoints padlock calls exist.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Knot } from './knot.js';

export interface FakeApi {
  url: string;
  /** Every request, as `METHOD path`. */
  requests: string[];
  close(): Promise<void>;
}

async function listen(handler: (req: http.IncomingMessage, body: string, url: URL) => Promise<{ status: number; body: string; type?: string }>): Promise<FakeApi> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      handler(req, body, url).then(
        (r) => res.writeHead(r.status, { 'content-type': r.type ?? 'application/json' }).end(r.body),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err.message),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const json = (status: number, value: unknown) => ({ status, body: JSON.stringify(value) });

/** The zone (of `zones`) that holds `name`. */
function zoneOf(name: string, zones: readonly string[]): string | undefined {
  return zones.filter((z) => name === z || name.endsWith(`.${z}`)).sort((a, b) => b.length - a.length)[0];
}

/**
 * Cloudflare's v4 API: token verify, zones by name, TXT records (create,
 * list by name, delete by id). A wrong token gets 403 with Cloudflare's
 * error shape; `forbiddenZones` answer 403 for record writes (a token
 * without Zone:DNS:Edit there).
 */
export async function startFakeCloudflare(knot: Knot, opts: { token: string; zones: string[]; forbiddenZones?: string[] }): Promise<FakeApi> {
  const records = new Map<string, { id: string; zone: string; name: string; content: string }>();
  const zoneId = (z: string) => `zone-${z.replace(/\./g, '-')}`;
  const sync = async (zone: string, name: string) => knot.setTxt(zone, name, [...records.values()].filter((r) => r.name === name).map((r) => r.content));
  return listen(async (req, body, url) => {
    if (req.headers.authorization !== `Bearer ${opts.token}`) return json(403, { success: false, errors: [{ code: 10000, message: 'Authentication error' }] });
    const path = url.pathname.replace(/^\/client\/v4/, '');
    if (path === '/user/tokens/verify') return json(200, { success: true, result: { id: 'tok', status: 'active' } });
    if (path === '/zones' && req.method === 'GET') {
      const name = url.searchParams.get('name') ?? '';
      return json(200, { success: true, result: opts.zones.includes(name) ? [{ id: zoneId(name), name }] : [] });
    }
    const m = /^\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(path);
    const zone = opts.zones.find((z) => zoneId(z) === m?.[1]);
    if (!m || !zone) return json(404, { success: false, errors: [{ code: 7003, message: 'Could not route' }] });
    if (opts.forbiddenZones?.includes(zone) && req.method !== 'GET') return json(403, { success: false, errors: [{ code: 10000, message: 'Authentication error' }] });
    if (req.method === 'POST') {
      const rec = JSON.parse(body) as { type: string; name: string; content: string };
      const id = randomUUID().replace(/-/g, '');
      records.set(id, { id, zone, name: rec.name, content: rec.content });
      await sync(zone, rec.name);
      return json(200, { success: true, result: { id, ...rec } });
    }
    if (req.method === 'GET') {
      const name = url.searchParams.get('name');
      // The real API returns TXT content quoted.
      return json(200, { success: true, result: [...records.values()].filter((r) => r.zone === zone && (!name || r.name === name)).map((r) => ({ id: r.id, type: 'TXT', name: r.name, content: `"${r.content}"` })) });
    }
    if (req.method === 'DELETE' && m[2]) {
      const rec = records.get(m[2]);
      if (!rec) return json(404, { success: false, errors: [{ code: 81044, message: 'Record does not exist.' }] });
      records.delete(m[2]);
      await sync(zone, rec.name);
      return json(200, { success: true, result: { id: rec.id } });
    }
    return json(405, { success: false, errors: [{ code: 0, message: 'method not allowed' }] });
  });
}

/** acme-dns's POST /update: keeps the two latest values of the subdomain, as acme-dns does. */
export async function startFakeAcmeDns(knot: Knot, opts: { zone: string; username: string; password: string; subdomain: string; fulldomain: string }): Promise<FakeApi> {
  const values: string[] = [];
  return listen(async (req, body, url) => {
    if (url.pathname !== '/update' || req.method !== 'POST') return { status: 404, body: '{"error":"not found"}' };
    if (req.headers['x-api-user'] !== opts.username || req.headers['x-api-key'] !== opts.password) return { status: 401, body: '{"error":"forbidden"}' };
    const { subdomain, txt } = JSON.parse(body) as { subdomain: string; txt: string };
    if (subdomain !== opts.subdomain || txt.length !== 43) return { status: 400, body: '{"error":"bad_subdomain"}' };
    values.push(txt);
    await knot.setTxt(opts.zone, opts.fulldomain, values.slice(-2));
    return json(200, { txt });
  });
}

/**
 * Route 53's REST-XML API, the calls padlock makes: ListHostedZonesByName,
 * GetHostedZone, ListResourceRecordSets, ChangeResourceRecordSets (UPSERT
 * and DELETE of a TXT set) and GetChange. Signatures are not checked, but a
 * request without an AWS SigV4 Authorization header gets 403.
 */
export async function startFakeRoute53(knot: Knot, opts: { zones: string[] }): Promise<FakeApi & { sets: Map<string, string[]> }> {
  const sets = new Map<string, string[]>();
  const id = (z: string) => `Z${z.replace(/[^a-z0-9]/gi, '').toUpperCase()}`;
  const xml = (body: string) => ({ status: 200, type: 'text/xml', body: `<?xml version="1.0" encoding="UTF-8"?>\n${body}` });
  const ns = 'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"';
  const api = await listen(async (req, body, url) => {
    if (!/^AWS4-HMAC-SHA256 /.test(String(req.headers.authorization ?? ''))) return { status: 403, type: 'text/xml', body: `<ErrorResponse ${ns}><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>no signature</Message></Error></ErrorResponse>` };
    const p = url.pathname;
    if (p === '/2013-04-01/hostedzonesbyname') {
      const name = (url.searchParams.get('dnsname') ?? '').replace(/\.$/, '');
      const zone = opts.zones.find((z) => z === name);
      const zones = zone ? `<HostedZone><Id>/hostedzone/${id(zone)}</Id><Name>${zone}.</Name><CallerReference>x</CallerReference><Config><PrivateZone>false</PrivateZone></Config></HostedZone>` : '';
      return xml(`<ListHostedZonesByNameResponse ${ns}><HostedZones>${zones}</HostedZones><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListHostedZonesByNameResponse>`);
    }
    const m = /^\/2013-04-01\/hostedzone\/([^/]+)\/rrset\/?$/.exec(p);
    const zone = opts.zones.find((z) => id(z) === m?.[1]);
    if (m && zone && req.method === 'GET') {
      const name = (url.searchParams.get('name') ?? '').replace(/\.$/, '').toLowerCase();
      const values = sets.get(name);
      const set = values ? `<ResourceRecordSet><Name>${name}.</Name><Type>TXT</Type><TTL>60</TTL><ResourceRecords>${values.map((v) => `<ResourceRecord><Value>"${v}"</Value></ResourceRecord>`).join('')}</ResourceRecords></ResourceRecordSet>` : '';
      return xml(`<ListResourceRecordSetsResponse ${ns}><ResourceRecordSets>${set}</ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>`);
    }
    if (m && zone && req.method === 'POST') {
      for (const change of body.match(/<Change>[\s\S]*?<\/Change>/g) ?? []) {
        const action = /<Action>(\w+)<\/Action>/.exec(change)?.[1];
        const name = (/<Name>([^<]+)<\/Name>/.exec(change)?.[1] ?? '').replace(/\.$/, '').toLowerCase();
        const values = [...change.matchAll(/<Value>([^<]*)<\/Value>/g)].map((v) => v[1]!.replace(/&quot;/g, '"').replace(/^"|"$/g, ''));
        if (action === 'DELETE') {
          if (JSON.stringify(sets.get(name)) !== JSON.stringify(values)) return { status: 400, type: 'text/xml', body: `<ErrorResponse ${ns}><Error><Type>Sender</Type><Code>InvalidChangeBatch</Code><Message>values do not match</Message></Error></ErrorResponse>` };
          sets.delete(name);
        } else sets.set(name, values);
        await knot.setTxt(zoneOf(name, opts.zones)!, name, sets.get(name) ?? []);
      }
      return xml(`<ChangeResourceRecordSetsResponse ${ns}><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`);
    }
    if (p.startsWith('/2013-04-01/change/')) {
      return xml(`<GetChangeResponse ${ns}><ChangeInfo><Id>/change/C1</Id><Status>INSYNC</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>`);
    }
    return { status: 404, type: 'text/xml', body: `<ErrorResponse ${ns}><Error><Code>NoSuchHostedZone</Code><Message>no such zone</Message></Error></ErrorResponse>` };
  });
  return { ...api, sets };
}
