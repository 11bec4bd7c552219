/** Upstream URLs, as labels and the config file give them. Pure. */

/**
 * `http(s)://host[:port]` with no credentials, path, query or fragment,
 * normalised with an explicit port; or why not (the reason never repeats the value).
 */
export function parseUpstreamUrl(value: string): string | { reason: string } {
  let u: URL;
  try {
    u = new URL(value.trim());
  } catch {
    return { reason: 'it does not parse as a URL' };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { reason: `the scheme ${u.protocol.replace(/:$/, '')} is not http or https` };
  if (u.username || u.password) return { reason: 'it holds credentials' };
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) return { reason: 'it has a path, query or fragment' };
  if (!u.hostname) return { reason: 'it names no host' };
  // URL drops a default port (`:80` for http); spell it out so every upstream reads the same.
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return `${u.protocol}//${u.hostname}:${port}`;
}
