/**
 * How a rejected value is shown in an error message: never a secret. Values
 * of secret-looking keys are hidden, URLs lose their credentials, path and
 * query (a webhook path is often a token), long values are cut.
 */

const SECRET_KEY = /(token|password|secret|hmac|webhook|url|auth|credential|cookie|passphrase)/i;

/**
 * A URL as safe to print: scheme, host and port, never credentials or a
 * query. The path is kept only with `keepPath` (for ACME directory URLs,
 * where a wrong path is the usual mistake). Anything that doesn't parse is hidden.
 */
export function shownUrl(input: string, options: { keepPath?: boolean } = {}): string {
  try {
    const u = new URL(input.includes('://') ? input : `http://${input}`);
    const rest = options.keepPath ? u.pathname + (u.search || u.hash ? '?…' : '') : u.pathname !== '/' || u.search || u.hash ? '/…' : '';
    return `${u.protocol}//${u.username || u.password ? '…@' : ''}${u.host}${rest}`;
  } catch {
    return '(a value that is not a URL)';
  }
}

/** ` (got "…")` for an error message, or ` (value hidden)` for secret-looking keys. */
export function shownValue(key: string, value: unknown): string {
  if (SECRET_KEY.test(key)) return typeof value === 'string' && /url/i.test(key) ? ` (got ${JSON.stringify(shownUrl(value))})` : ' (value hidden)';
  const text = JSON.stringify(value) ?? String(value);
  return ` (got ${text.length > 80 ? text.slice(0, 77) + '…' : text})`;
}
