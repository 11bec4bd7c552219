/**
 * Headless Debian Chromium for tests, driven by playwright-core, that can
 * reach only the loopback origins a test names.
 *
 * Chromium contacts outside hosts (updates, accounts, search preconnects)
 * even with the usual flags, so besides them every name resolves to
 * NOTFOUND (`--host-resolver-rules`), every connection goes to a dead proxy
 * on 127.0.0.1:9 except the named origins (`--proxy-bypass-list`), the
 * `*_proxy` variables are cleared, and HOME and the profile are fresh
 * temporary folders (removed by `close()`).
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env['PADLOCK_TEST_CHROMIUM'] ?? '/usr/bin/chromium';

/** Fails (does not skip) when Chromium is missing, naming the Debian package. */
export function requireChromium(): string {
  try {
    accessSync(CHROMIUM_PATH, fsConstants.X_OK);
    return CHROMIUM_PATH;
  } catch {
    throw new Error(`test harness: ${CHROMIUM_PATH} is missing; the dashboard test needs a real browser: install the Debian package: apt-get install chromium (never "npx playwright install": it downloads)`);
  }
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Every URL the page requested, in order. */
  requests: string[];
  /** Console errors and uncaught page errors (CSP violations show up here). */
  errors: string[];
  close(): Promise<void>;
}

/**
 * Launches Chromium that may reach only `origins` (`127.0.0.1:PORT`, loopback
 * only), and opens one page.
 */
export async function launchBrowser(
  origins: string[],
  options: { viewport?: { width: number; height: number }; httpCredentials?: { username: string; password: string } } = {},
): Promise<TestBrowser> {
  for (const o of origins) if (!/^127\.\d+\.\d+\.\d+:\d+$/.test(o)) throw new Error(`launchBrowser: ${o} is not a 127.x.x.x:PORT origin`);
  const executablePath = requireChromium();
  const home = await mkdtemp(join(tmpdir(), 'padlock-chromium-home-'));
  const profile = await mkdtemp(join(tmpdir(), 'padlock-chromium-profile-'));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/_proxy$/i.test(k)) env[k] = v;
  env['HOME'] = home;
  env['XDG_CONFIG_HOME'] = join(home, '.config');
  env['XDG_CACHE_HOME'] = join(home, '.cache');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      env,
      viewport: options.viewport ?? { width: 1280, height: 900 },
      ...(options.httpCredentials ? { httpCredentials: options.httpCredentials } : {}),
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-domain-reliability',
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
        '--proxy-server=http://127.0.0.1:9',
        `--proxy-bypass-list=${origins.join(';')}`,
      ],
      timeout: 30_000,
    });
  } catch (err) {
    await Promise.all([rm(home, { recursive: true, force: true }), rm(profile, { recursive: true, force: true })]);
    throw err;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const requests: string[] = [];
  const errors: string[] = [];
  context.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return {
    context,
    page,
    requests,
    errors,
    close: async () => {
      await context.close().catch(() => undefined);
      await Promise.all([rm(home, { recursive: true, force: true }), rm(profile, { recursive: true, force: true })]);
    },
  };
}
