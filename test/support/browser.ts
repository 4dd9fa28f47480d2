/**
 * Debian's chromium, headless, driven by puppeteer-core (which downloads nothing: it drives the system browser
 * given by path). One browser per test file: starting chromium costs ~0.5-1 s of CPU on this 2-core VM, a page
 * a few tens of ms.
 */
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';

/** The system browser (scripts/setup.sh installs Debian's `chromium`). */
export const CHROMIUM = '/usr/bin/chromium';

/** Where tests keep what a reader may want to look at after a run (screenshots). */
export const ARTIFACT_DIR = path.resolve(__dirname, '..', '..', '..', '.cache', 'test-artifacts');

/** Why browser tests cannot run here, or null when they can. */
export function browserMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh does)`;
}

/** Start headless chromium (no sandbox: tests run as root in CI containers; no GPU, no network besides the page's). */
export function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--mute-audio',
      // Media plays without a user gesture (the test presses no key before the preview plays).
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
}

/** A new page of `browser` at a tablet's size (1024×768 CSS px), with its console errors collected. */
export async function tabletPage(browser: Browser): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1024, height: 768, deviceScaleFactor: 1, hasTouch: true });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return { page, errors };
}

/** Save a screenshot of `page` as `<name>.png` in {@link ARTIFACT_DIR}; resolves with its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  await fsp.mkdir(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, `${name}.png`);
  await page.screenshot({ path: file, type: 'png' });
  return file;
}
