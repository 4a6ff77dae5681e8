// Drives the fleet dashboard (`nanotrader serve`, see tests/fleet.rs, which serves it) in
// headless Chromium: the runs list shows every run (strategy, pair, state, equity), updates by
// itself while a run writes, and a run's link opens its board, which receives its snapshot. No
// console error, no CSP violation, no failed request. Saves a screenshot of each page.
//
//   node tests/browser/fleet.mjs BASE_URL SCREENSHOT_PATH RUNS
//
// Exits 0 on success, 1 on a failed check (with the reason on stderr), 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), DASHBOARD_TEST_TIMEOUT_MS (default 120000).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DESKTOP, fail, failOnProblems, runBrowserTest } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.DASHBOARD_TEST_TIMEOUT_MS || 120_000);
const STEP_TIMEOUT_MS = 60_000;
const log = (message) => console.log(`fleet test: ${message}`);

const [baseUrl, screenshotPath, runsText] = process.argv.slice(2);
const expectedRuns = Number(runsText);
if (!baseUrl || !screenshotPath || !(expectedRuns > 0)) {
  console.error('usage: node tests/browser/fleet.mjs BASE_URL SCREENSHOT_PATH RUNS');
  process.exit(2);
}

await runBrowserTest('fleet test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, async (browser) => {
  mkdirSync(path.dirname(screenshotPath), { recursive: true });
  const problems = [];
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.setViewportSize(DESKTOP);
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /Content Security Policy/i.test(text)) problems.push(`console ${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught exception: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.request().method()} ${res.url()} answered ${res.status()}`);
  });

  const res = await page.goto(`${baseUrl}/`, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  if (!res || !res.ok()) fail(`GET ${baseUrl}/ answered ${res ? res.status() : 'nothing'}`);
  await page
    .waitForFunction((n) => window.__ntRuns && window.__ntRuns.runs.length >= n, expectedRuns, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`the runs list never showed ${expectedRuns} runs`));
  const rows = await page.evaluate(() =>
    Array.from(document.querySelectorAll('#runs-body tr')).map((tr) => Array.from(tr.cells, (td) => td.textContent)),
  );
  log(`runs list: ${JSON.stringify(rows)}`);
  if (rows.length !== expectedRuns) fail(`${rows.length} rows, expected ${expectedRuns}`);
  for (const row of rows) {
    if (!/^sma-cross \d+\/\d+$/.test(row[1])) fail(`strategy cell '${row[1]}'`);
    if (row[2] !== 'BTC/USD') fail(`pair cell '${row[2]}'`);
    if (!/^[\d,]+\.\d\d$/.test(row[6])) fail(`equity cell '${row[6]}'`);
  }
  if (!rows.some((row) => row[5] === 'live')) fail('no run shown live while one writes');

  // Live: the list arrives again by itself while a run writes (no reload).
  const lists = await page.evaluate(() => window.__ntRuns.lists);
  await page
    .waitForFunction((n) => window.__ntRuns.lists > n + 2, lists, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the runs list did not update by itself'));
  await page.screenshot({ path: screenshotPath });

  // A run's link opens its board: the same page as a run's own dashboard, fed from the store.
  const live = await page.evaluate(() => window.__ntRuns.runs.find((r) => r.live).id);
  await Promise.all([
    page.waitForURL(`${baseUrl}/runs/${live}`, { timeout: STEP_TIMEOUT_MS }),
    page.click(`#runs-body tr[data-run="${live}"] a`),
  ]);
  await page
    .waitForFunction(() => window.__nt && window.__nt.snapshots >= 1 && window.__nt.barCount > 0, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the run\'s board never received its snapshot'));
  const frames = await page.evaluate(() => window.__nt.frames);
  await page
    .waitForFunction((n) => window.__nt.frames > n, frames, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the board received no frame after its snapshot'));
  const pair = await page.evaluate(() => document.getElementById('pair').textContent);
  if (pair !== 'BTC/USD') fail(`the board shows pair '${pair}'`);
  const violations = await page.evaluate(() => window.__cspViolations || []);
  if (violations.length) fail(`CSP violations: ${violations.join(', ')}`);
  await page.screenshot({ path: screenshotPath.replace(/\.png$/, '-board.png') });
  failOnProblems(problems);
  log('passed');
});
