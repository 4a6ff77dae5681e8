// Drives the dashboard of a paper run halted by a protection (see tests/protections.rs, which
// starts it): the red halt banner at the top says why, the trading badge says halted, a paper
// run shows no exchange card; the banner's Resume sends the Resume control and the banner goes.
// No console error, no CSP violation.
//
//   node tests/browser/protection.mjs URL
//
// Exits 0 on success, 1 on a failed check (with the reason on stderr), 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), DASHBOARD_TEST_TIMEOUT_MS (default 120000).

import { DESKTOP, fail, failOnProblems, runBrowserTest } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.DASHBOARD_TEST_TIMEOUT_MS || 120_000);
const STEP_TIMEOUT_MS = 60_000;

const log = (message) => console.log(`protection test: ${message}`);

const [url] = process.argv.slice(2);
if (!url) {
  console.error('usage: node tests/browser/protection.mjs URL');
  process.exit(2);
}

runBrowserTest('protection test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, async (browser) => {
  const problems = [];
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.setViewportSize(DESKTOP);
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /Content Security Policy/i.test(text)) problems.push(`console ${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught exception: ${err.message}`));
  const res = await page.goto(url, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);
  await page
    .waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the page never received its first snapshot'));

  await page
    .waitForFunction(() => !document.getElementById('halt-banner').hidden, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the halt banner never showed'));
  const banner = await page.evaluate(() => ({
    text: document.getElementById('halt-text').textContent,
    badge: document.getElementById('trading-badge').textContent,
    venueCard: !document.getElementById('venue-card').hidden,
    button: !document.getElementById('btn-halt-resume').disabled,
  }));
  if (!banner.text.startsWith('Trading halted: max drawdown: equity ')) fail(`the halt banner says "${banner.text}"`);
  if (banner.badge !== 'trading halted') fail(`the trading badge says "${banner.badge}" while halted`);
  if (banner.venueCard) fail('a paper run shows an exchange card');
  if (!banner.button) fail('the halt banner has no enabled Resume button');
  log(`halt banner: "${banner.text}"`);

  // Resume from the banner: the halt is lifted and the banner goes (the rule may halt again
  // later, counted afresh: the lifted state is seen first).
  await page.click('#btn-halt-resume');
  await page
    .waitForFunction(() => document.getElementById('halt-banner').hidden, null, { timeout: STEP_TIMEOUT_MS, polling: 'raf' })
    .catch(() => fail('the halt banner stayed after Resume'));
  log('the banner went after Resume');
  const csp = await page.evaluate(() => window.__cspViolations || []);
  for (const v of csp) problems.push(`CSP violation: ${v}`);
  failOnProblems(problems);
});
