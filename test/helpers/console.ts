/**
 * Browser-test helpers for the admin console (test/e2e): build the console when it is missing,
 * start the real stack (fake SIS, SQLite, Redis, BullMQ workers: `startHarness`) with the API
 * listening on loopback, launch Debian's Chromium through playwright-core (never downloaded),
 * log in with a token, save screenshots under test-output/console/ (gitignored).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { startHarness, type Harness } from './harness.js';

/** The built console (`npm run build:console`). */
export const CONSOLE_DIR = join(process.cwd(), 'dist', 'console');
/** Where browser tests save screenshots. */
export const SCREENSHOT_DIR = join(process.cwd(), 'test-output', 'console');
/** Debian's Chromium (`.ci/run` installs it with apt-get when missing). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Generous waits: a loaded 2-core machine (ms). */
export const UI_TIMEOUT = 120_000;

/**
 * The built console must be there: jest's global set-up (jest.global-setup.js) builds it
 * once when missing or stale. Throws naming the fix otherwise (e.g. a test file run with a
 * jest config of its own).
 */
export function ensureConsoleBuilt(): void {
  if (!existsSync(join(CONSOLE_DIR, 'index.html')))
    throw new Error(`${CONSOLE_DIR}/index.html is missing: run npm run build:console`);
}

/** Tokens of the browser tests: an admin, a viewer, an admin of another district only. */
export const CONSOLE_TOKENS = {
  admin: 'gst_e2e-admin-token-0123456789abcdefghijklmnopqrstuvw',
  viewer: 'gst_e2e-viewer-token-0123456789abcdefghijklmnopqrstuv',
  other: 'gst_e2e-other-district-admin-0123456789abcdefghijklmn',
} as const;
export const CONSOLE_TOKEN_ENTRIES: ApiTokenEntry[] = [
  { name: 'district-admin', sha256: hashToken(CONSOLE_TOKENS.admin), role: 'admin' },
  { name: 'district-viewer', sha256: hashToken(CONSOLE_TOKENS.viewer), role: 'viewer' },
  {
    name: 'other-admin',
    sha256: hashToken(CONSOLE_TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];

export interface ConsoleStack {
  h: Harness;
  app: ApiServer;
  /** `http://127.0.0.1:<port>` */
  base: string;
  browser: Browser;
  /** A new browser context (own cookies) logged in with `token`, on the Districts page. */
  loginAs(token: keyof typeof CONSOLE_TOKENS): Promise<Page>;
  /** Save a full-page screenshot as test-output/console/<name>.png. */
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

/** Start the stack and the browser (one browser per test file). */
export async function startConsoleStack(
  opts: Parameters<typeof startHarness>[0],
): Promise<ConsoleStack> {
  ensureConsoleBuilt();
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const h = await startHarness(opts);
  const app = await buildApiServer(h.ctx, {
    tokens: CONSOLE_TOKEN_ENTRIES,
    dashboard: false,
    consoleDir: CONSOLE_DIR,
    session: { secret: 'e2e-console-session-secret-0123456789abcdefghij' },
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  return {
    h,
    app,
    base,
    browser,
    async loginAs(token) {
      const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      context.setDefaultTimeout(UI_TIMEOUT);
      // Nothing may leave the host: every request goes to the API under test.
      await context.route(/.*/, route =>
        route.request().url().startsWith(base) ? route.continue() : route.abort(),
      );
      const page = await context.newPage();
      await page.goto(`${base}/console/`);
      await page.getByLabel('API token').fill(CONSOLE_TOKENS[token]);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByTestId('whoami').waitFor();
      return page;
    },
    async screenshot(page, name) {
      const path = join(SCREENSHOT_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async close() {
      await browser.close();
      await app.close();
      await h.close();
    },
  };
}
