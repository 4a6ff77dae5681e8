// What the browser tests share: the Chromium they drive and its flags, how a check fails, the
// list of problems a page reported, and a run that ends within a deadline, closes the browser
// and exits 0 (passed) or 1 (failed) whatever happens.
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };
// The flags design.md found to work for headless screenshots of a loopback page.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export class CheckFailed extends Error {}
export const fail = (message) => {
  throw new CheckFailed(message);
};
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/// Fails with every problem collected, repeated ones counted once.
export function failOnProblems(problems) {
  if (!problems.length) return;
  const counts = new Map();
  for (const p of problems) counts.set(p, (counts.get(p) || 0) + 1);
  const lines = Array.from(counts, ([p, n]) => (n > 1 ? `${p} (x${n})` : p));
  fail(`the browser reported ${problems.length} problem(s):\n  ${lines.slice(0, 20).join('\n  ')}`);
}

/// Runs `main(browser)` with Chromium started, within `timeoutMs` for everything: a hung page or
/// server must not hang CI. `name` starts the failure line.
export async function runBrowserTest(name, timeoutMs, stepTimeoutMs, main) {
  let browser = null;
  const deadline = setTimeout(async () => {
    console.error(`${name} FAILED: no result within ${timeoutMs} ms`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }, timeoutMs);
  try {
    browser = await chromium
      .launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: stepTimeoutMs })
      .catch((e) => fail(`cannot start Chromium at ${CHROMIUM}: ${e.message.split('\n')[0]}`));
    await main(browser);
    clearTimeout(deadline);
    await browser.close();
    process.exit(0);
  } catch (e) {
    clearTimeout(deadline);
    console.error(`${name} FAILED: ${e instanceof CheckFailed ? e.message : e.stack || e}`);
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}
