/**
 * The dashboard in a real browser: headless Debian Chromium (playwright-core)
 * loads `/` from a real AdminServer on 127.0.0.1 whose status provider
 * describes a few routes, one with a failing certificate, an upstream down
 * and a rejected container. The assertions read what a person sees.
 * The browser can reach only the admin origin (test/support/browser.ts).
 * Screenshot: .test-results/dashboard.png.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AdminServer } from '../../src/observe/admin.js';
import { buildStatusDocument, type CertificateInput } from '../../src/observe/status.js';
import type { RouteProblem, SiteSpec } from '../../src/state/desired-state.js';
import { launchBrowser, requireChromium, type TestBrowser } from '../support/browser.js';
import { repoRoot } from '../support/cli.js';

const NOW = new Date('2026-11-26T12:00:00Z');
const HINT = 'Make sure port 80 of shop.example.com reaches padlock (a firewall or another web server may be answering it), then wait for the next attempt.';
const site = (host: string, upstreams: Array<[string, string]>): SiteSpec => ({
  host, upstreams: upstreams.map(([url, containerName]) => ({ url, containerName })), https: true, redirect: true, issuer: 'acme',
});

const SITES = [
  site('app.example.com', [['http://10.0.0.1:80', 'app-1']]),
  site('api.example.com', [['http://10.0.0.2:8080', 'api-1'], ['http://10.0.0.3:8080', 'api-2']]),
  site('shop.example.com', [['http://10.0.0.4:3000', 'shop-1']]),
];
const VALID = (name: string): CertificateInput => ({
  name, state: 'valid', issuer: 'acme', notBefore: '2026-11-01T00:00:00.000Z', notAfter: '2027-01-30T00:00:00.000Z', renewAt: '2026-12-31T00:00:00.000Z', renewReason: 'lifetime-share',
});
const FAILING: CertificateInput = {
  name: 'shop.example.com', state: 'valid', issuer: 'acme', notBefore: '2026-09-01T00:00:00.000Z', notAfter: '2026-11-30T18:00:00.000Z', renewAt: '2026-10-31T00:00:00.000Z',
  nextAttemptAt: '2026-11-26T13:40:00.000Z',
  lastError: { code: 'ACME_CHALLENGE_FAILED', acmeType: 'unauthorized', message: `the CA could not validate shop.example.com (unauthorized): Invalid response from http://shop.example.com/.well-known/acme-challenge/x: 404. ${HINT}` },
};
const REJECTED: RouteProblem = {
  code: 'LABEL_INVALID_PORT', containerName: 'web-9', source: 'padlock.port',
  message: 'padlock.port on container <b>web-9</b>: "eighty" is not a port; set it to the port the app listens on',
};

describe('dashboard in headless Chromium', () => {
  let admin: AdminServer;
  let origin: string;
  let browser: TestBrowser;
  let shopFixed = false;

  before(async () => {
    requireChromium();
    admin = new AdminServer({
      listen: '127.0.0.1:0',
      ready: () => true,
      status: () =>
        buildStatusDocument({
          now: NOW,
          ready: true,
          listeners: { http: 80, https: 443, admin: 9180 },
          docker: { connected: true, since: '2026-11-26T11:00:00.000Z' },
          sites: SITES,
          problems: [REJECTED],
          certificates: [VALID('app.example.com'), VALID('api.example.com'), shopFixed ? VALID('shop.example.com') : FAILING],
          upstreams: [{ host: 'api.example.com', upstreams: [{ url: 'http://10.0.0.2:8080', healthy: false, downUntil: '2026-11-26T12:00:08.000Z' }, { url: 'http://10.0.0.3:8080', healthy: true }] }],
          proxy: { openConnections: 12, websockets: 3, inFlight: 2, requestsByStatus: { '200': 1500, '502': 4 }, upstreamConnectionsOpened: 40, upstreamRetries: 1, routes: 3, upstreamsDown: 1, certificates: { names: 3, cachedContexts: 3, builtContexts: 3 } },
        }),
    });
    const { port } = await admin.listen();
    origin = `127.0.0.1:${port}`;
    browser = await launchBrowser([origin]);
    // Page timers are faked so the 5-second refresh can be driven without waiting.
    await browser.page.clock.install({ time: NOW });
    await browser.page.goto(`http://${origin}/`);
    await browser.page.locator('body[data-loaded="true"]').waitFor({ timeout: 15_000 });
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
  });

  it('says at the top how many problems need attention', async () => {
    const overall = browser.page.getByRole('status');
    assert.equal(await overall.textContent(), '3 problems need attention; 3 names served');
  });

  it('shows problems first: the failing certificate with its ACME type and fix hint, then the rejected container', async () => {
    const { page } = browser;
    const attention = page.getByRole('region', { name: 'Needs attention' });
    const names = page.getByRole('region', { name: 'Names' });
    const [a, n] = [await attention.boundingBox(), await names.boundingBox()];
    assert.ok(a && n && a.y < n.y, 'the problems are above the names');
    const items = attention.getByRole('listitem');
    assert.equal(await items.count(), 3);
    const first = (await items.nth(0).innerText()).replace(/\s+/g, ' ');
    assert.match(first, /^shop\.example\.com: renewal failed; the current certificate keeps serving \(unauthorized\)/);
    assert.ok(first.includes(HINT), first);
    assert.match(first, /Next attempt in 2 h \(2026-11-26 13:40 UTC\)/);
    const second = await items.nth(1).innerText();
    assert.match(second, /web-9: route refused \(LABEL_INVALID_PORT\)/);
    assert.ok(second.includes('padlock.port on container <b>web-9</b>'), 'markup in a message is shown as text, never rendered');
    assert.equal(await attention.locator('b').count(), 0);
    assert.match(await items.nth(2).innerText(), /api\.example\.com: 1 of 2 upstreams down/);
  });

  it('lists every name with its route, upstream health and certificate, the failing one first', async () => {
    const { page } = browser;
    const cards = page.locator('article.name');
    assert.deepEqual(await cards.locator('h3').allInnerTexts(), ['shop.example.com', 'api.example.com', 'app.example.com']);
    const shop = (await cards.nth(0).innerText()).replace(/\s+/g, ' ');
    assert.match(shop, /Problem/);
    assert.match(shop, /Route https:\/\/shop\.example\.com \(HTTP redirects to HTTPS\)/);
    assert.match(shop, /Certificate Renewal failed, issuer acme/);
    assert.match(shop, /Expires 2026-11-30 18:00 UTC \(4 days left\)/);
    assert.match(shop, /Last error the CA could not validate/);
    const api = (await cards.nth(1).innerText()).replace(/\s+/g, ' ');
    assert.match(api, /Warning/);
    assert.match(api, /http:\/\/10\.0\.0\.2:8080 \(api-1\): down, retried in 8 s/);
    assert.match(api, /http:\/\/10\.0\.0\.3:8080 \(api-2\): up/);
    const app = (await cards.nth(2).innerText()).replace(/\s+/g, ' ');
    assert.match(app, /OK/);
    assert.match(app, /64 days left/);
    assert.match(app, /Next renewal 2026-12-31 00:00 UTC \(in 35 days\): a third of the lifetime left/);
  });

  it('draws a lifetime timeline per certificate with a text alternative (issued, renewal window, expiry)', async () => {
    const { page } = browser;
    const timeline = page.getByRole('img', { name: /^Certificate lifetime: issued 2026-11-01, renewal window from 2026-12-31, expires 2027-01-30; 64 days left\.$/ });
    assert.equal(await timeline.count(), 2, 'app and api');
    const shop = page.locator('article[data-host="shop.example.com"] .timeline');
    assert.match(String(await shop.getAttribute('aria-label')), /expires 2026-11-30; 4 days left/);
    // The "now" marker sits between issue and expiry.
    const bar = await page.locator('article[data-host="app.example.com"] .bar').boundingBox();
    const now = await page.locator('article[data-host="app.example.com"] .now').boundingBox();
    assert.ok(bar && now && now.x > bar.x && now.x < bar.x + bar.width / 2);
  });

  it('saves a screenshot', async () => {
    const dir = join(repoRoot, '.test-results');
    await mkdir(dir, { recursive: true });
    const buf = await browser.page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });
    assert.ok(buf.length > 10_000);
  });

  it('refreshes itself every 5 seconds: a fixed certificate leaves the problem list', async () => {
    const { page } = browser;
    shopFixed = true;
    const before = browser.requests.filter((u) => u.endsWith('/api/status')).length;
    await page.clock.runFor(5_000);
    await page.getByRole('status').filter({ hasText: '2 problems need attention' }).waitFor({ timeout: 10_000 });
    assert.ok(browser.requests.filter((u) => u.endsWith('/api/status')).length > before);
    const items = page.getByRole('region', { name: 'Needs attention' }).getByRole('listitem');
    assert.doesNotMatch((await items.allInnerTexts()).join('\n'), /shop\.example\.com/);
    assert.equal(await page.locator('article[data-host="shop.example.com"] .badge').innerText(), 'OK');
  });

  it('loads nothing but its own origin, and runs without script errors or CSP violations', () => {
    assert.ok(browser.requests.length >= 4);
    for (const url of browser.requests) assert.ok(url.startsWith(`http://${origin}/`), `unexpected request ${url}`);
    assert.deepEqual(browser.errors, []);
  });
});

describe('dashboard behind the admin token', () => {
  it('opens with the browser\'s Basic login (the token as password) and fails closed without it', async () => {
    requireChromium();
    const token = 'dashboard-token-0123456789abcdef';
    const admin = new AdminServer({ listen: '127.0.0.1:0', token, requireToken: true, ready: () => true, status: () => buildStatusDocument({ now: NOW, ready: true, listeners: { http: 80, https: 443, admin: 0 }, docker: 'disabled', sites: [SITES[0]!], problems: [], certificates: [VALID('app.example.com')] }) });
    const { port } = await admin.listen();
    const browsers: TestBrowser[] = [];
    try {
      const denied = await launchBrowser([`127.0.0.1:${port}`]);
      browsers.push(denied);
      // Without credentials the login is cancelled: Chromium shows the 401, or Playwright reports the cancelled login.
      const outcome = await denied.page.goto(`http://127.0.0.1:${port}/`).then((r) => `HTTP ${r?.status()}`, (e: Error) => e.message);
      assert.match(outcome, /HTTP 401|ERR_INVALID_AUTH_CREDENTIALS/);
      assert.equal(await denied.page.locator('#overall').count(), 0, 'no dashboard without the token');
      const browser = await launchBrowser([`127.0.0.1:${port}`], { httpCredentials: { username: 'admin', password: token } });
      browsers.push(browser);
      await browser.page.goto(`http://127.0.0.1:${port}/`);
      await browser.page.locator('body[data-loaded="true"]').waitFor({ timeout: 15_000 });
      assert.equal(await browser.page.getByRole('status').textContent(), 'All 1 name OK');
      assert.deepEqual(browser.errors, []);
    } finally {
      for (const b of browsers) await b.close();
      await admin.close();
    }
  });
});

describe('dashboard: a name in its grace period (its container stopped)', () => {
  it('says the name answers 503 until its grace period ends, and when the name is dropped', async () => {
    requireChromium();
    const graced: SiteSpec = { ...site('gone.example.com', []), graceUntil: '2026-11-26T12:04:00.000Z' };
    const admin = new AdminServer({
      listen: '127.0.0.1:0',
      ready: () => true,
      status: () => buildStatusDocument({
        now: NOW, ready: true, listeners: { http: 80, https: 443, admin: 0 }, docker: { connected: true, since: '2026-11-26T11:00:00.000Z' },
        sites: [graced], problems: [], certificates: [VALID('gone.example.com')],
      }),
    });
    const { port } = await admin.listen();
    const origin = `127.0.0.1:${port}`;
    let browser: TestBrowser | undefined;
    try {
      browser = await launchBrowser([origin]);
      await browser.page.clock.install({ time: NOW });
      await browser.page.goto(`http://${origin}/`);
      await browser.page.locator('body[data-loaded="true"]').waitFor({ timeout: 15_000 });
      const card = (await browser.page.locator('article[data-host="gone.example.com"]').innerText()).replace(/\s+/g, ' ');
      assert.match(card, /Grace period No container is running\. Requests get 503 until 2026-11-26 12:04 UTC \(in 4 min\), then the name is no longer served\./);
      assert.doesNotMatch(card, /Upstreams/, 'no empty upstream list in its place');
      const item = browser.page.getByRole('region', { name: 'Needs attention' }).locator('li[data-kind="grace"]');
      assert.match(await item.innerText(), /gone\.example\.com/);
      assert.match(await item.innerText(), /Name dropped in 4 min \(2026-11-26 12:04 UTC\)/);
      assert.deepEqual(browser.errors, []);
    } finally {
      await browser?.close();
      await admin.close();
    }
  });
});
