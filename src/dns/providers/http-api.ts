/**
 * One HTTPS request to a DNS provider's API, through undici, with a total
 * deadline and a cap on the answer's size. Shared by the providers that
 * speak JSON over HTTP (Cloudflare, acme-dns).
 */
import { isIP } from '../../ip.js';
import { PadlockError } from '../../errors.js';

/** Largest API answer padlock reads (a page of DNS records is a few kilobytes). */
export const MAX_API_RESPONSE_BYTES = 1024 * 1024;
export const API_TIMEOUT_MS = 30_000;

export interface ApiResponse {
  status: number;
  body: unknown;
  text: string;
}

/**
 * A provider API base URL: https, or http only to a loopback address (a
 * local fake or proxy), so a token never crosses a network in clear text.
 */
export function checkApiUrl(raw: string, what: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new PadlockError('CONFIG_INVALID', `${what} "${raw}" is not a URL`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback)) {
    throw new PadlockError('CONFIG_INVALID', `${what} "${raw}" must be https:// (http:// only to a loopback address)`);
  }
  return raw.replace(/\/+$/, '');
}

/** Sends one request; network failures and timeouts reject (the caller wraps them with its provider and zone). */
export async function apiRequest(method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<ApiResponse> {
  // undici's index (fetch, WebSocket, cache: about 110 modules) loads with the first provider call, not with every CLI command.
  const { request } = await import('undici');
  const res = await request(url, {
    method: method as 'GET',
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    headersTimeout: API_TIMEOUT_MS,
    bodyTimeout: API_TIMEOUT_MS,
    signal: AbortSignal.timeout(API_TIMEOUT_MS),
  });
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_API_RESPONSE_BYTES) {
      res.body.destroy();
      throw new Error(`the API sent more than ${MAX_API_RESPONSE_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.statusCode, body: parsed, text };
}
