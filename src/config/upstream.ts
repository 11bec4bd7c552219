/** Upstream URLs, as labels and the config file give them. Pure. */

/**
 * `http(s)://host[:port]` or `h2c://host[:port]` (cleartext HTTP/2 with prior
 * knowledge, for gRPC apps; as Caddy writes it) with no credentials, path,
 * query or fragment, normalised with an explicit port (h2c's default is 80,
 * as http's); or why not (the reason never repeats the value).
 */
export function parseUpstreamUrl(value: string): string | { reason: string } {
  const trimmed = value.trim();
  // `h2c:` is no special scheme to the URL parser (no host normalisation, no default port): parse it as http.
  const h2c = /^h2c:\/\//i.test(trimmed);
  let u: URL;
  try {
    u = new URL(h2c ? `http://${trimmed.slice(6)}` : trimmed);
  } catch {
    return { reason: 'it does not parse as a URL' };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { reason: `the scheme ${u.protocol.replace(/:$/, '')} is not http, https or h2c` };
  if (u.username || u.password) return { reason: 'it holds credentials' };
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) return { reason: 'it has a path, query or fragment' };
  if (!u.hostname) return { reason: 'it names no host' };
  // URL drops a default port (`:80` for http); spell it out so every upstream reads the same.
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return `${h2c ? 'h2c:' : u.protocol}//${u.hostname}:${port}`;
}

/** The schemes an upstream URL may have, as `padlock.proto` and the config's `proto` name them. */
export type UpstreamProto = 'http' | 'https' | 'h2c';

/** The scheme of an upstream URL `parseUpstreamUrl` returned. */
export function upstreamProto(url: string): UpstreamProto {
  return url.startsWith('h2c:') ? 'h2c' : url.startsWith('https:') ? 'https' : 'http';
}
