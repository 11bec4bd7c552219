/**
 * The dashboard's files, as the admin listener serves them: path -> type and
 * body. The HTML loads the CSS and JS from the same origin, so the page runs
 * under a strict Content-Security-Policy (no inline script or style, no
 * external origin).
 */
import { DASHBOARD_HTML, DASHBOARD_ICON } from './page.js';
import { DASHBOARD_CSS } from './style.js';
import { DASHBOARD_JS } from './app.js';

export interface Asset {
  type: string;
  body: Buffer;
}

export const DASHBOARD_ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/', { type: 'text/html; charset=utf-8', body: Buffer.from(DASHBOARD_HTML) }],
  ['/dashboard.css', { type: 'text/css; charset=utf-8', body: Buffer.from(DASHBOARD_CSS) }],
  ['/dashboard.js', { type: 'text/javascript; charset=utf-8', body: Buffer.from(DASHBOARD_JS) }],
  ['/favicon.svg', { type: 'image/svg+xml', body: Buffer.from(DASHBOARD_ICON) }],
  ['/favicon.ico', { type: 'image/svg+xml', body: Buffer.from(DASHBOARD_ICON) }],
]);

/** Sent with every dashboard file. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-cache',
});
