// Drives the pair picker of a process trading several pairs in headless Chromium (see
// tests/pair_picker_browser.rs, which serves it against the mock exchange): the picker lists
// every pair of /api/pairs and shows the first; picking another puts `?pair=` in the address and
// shows that pair's board (its chart title, its run, its bars and fills, prices in its own
// range), and a reload keeps it. No console error, no CSP violation. Saves a screenshot.
//
//   node tests/browser/pairs.mjs URL SCREENSHOT_PATH PAIR MAX_PRICE
//
// PAIR is the pair to pick (not the first); every price of its board is below MAX_PRICE (the
// first pair's are above it). Exits 0 on success, 1 on a failed check, 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), DASHBOARD_TEST_TIMEOUT_MS (default 120000).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DESKTOP, fail, failOnProblems, runBrowserTest } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.DASHBOARD_TEST_TIMEOUT_MS || 120_000);
const STEP_TIMEOUT_MS = 45_000;

const log = (message) => console.log(`pairs test: ${message}`);

const [url, screenshotPath, pickedPair, maxPriceText] = process.argv.slice(2);
const maxPrice = Number(maxPriceText);
if (!url || !screenshotPath || !pickedPair || !Number.isFinite(maxPrice)) {
  console.error('usage: node tests/browser/pairs.mjs URL SCREENSHOT_PATH PAIR MAX_PRICE');
  process.exit(2);
}

function watch(page, problems) {
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /Content Security Policy/i.test(text)) problems.push(`console ${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`uncaught exception: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${res.request().method()} ${res.url()} answered ${res.status()}`);
  });
}

const live = (page, what) =>
  page
    .waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`${what}: the page never received its first snapshot`));

/// What the page shows of its board.
const shown = (page) =>
  page.evaluate(() => ({
    search: location.search,
    picker: document.getElementById('pair-picker').value,
    pickerShown: !document.getElementById('pair-picker').hidden,
    options: Array.from(document.querySelectorAll('#pair-picker option'), (o) => o.value),
    title: document.getElementById('chart-title').textContent,
    runInfo: document.getElementById('run-info').textContent,
    price: document.getElementById('price').textContent,
    bars: window.__nt.barCount,
  }));

const number = (text) => Number(String(text).replace(/,/g, ''));

await runBrowserTest('pairs test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, async (browser) => {
  const problems = [];
  const context = await browser.newContext();
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  await page.setViewportSize(DESKTOP);
  watch(page, problems);
  const api = async (p) => (await page.request.get(new URL(p, url).href)).json();

  await page.goto(url, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  await live(page, 'the first pair');
  const pairs = (await api('/api/pairs')).pairs;
  if (pairs.length < 2) fail(`/api/pairs lists ${pairs.length} pair(s): ${JSON.stringify(pairs)}`);
  const picked = pairs.find((p) => p.pair === pickedPair);
  if (!picked) fail(`/api/pairs has no ${pickedPair}: ${JSON.stringify(pairs)}`);
  await page
    .waitForFunction((n) => !document.getElementById('pair-picker').hidden && document.querySelectorAll('#pair-picker option').length === n, pairs.length, {
      timeout: STEP_TIMEOUT_MS,
    })
    .catch(() => fail('the pair picker never showed every pair'));
  const first = await shown(page);
  log(`first: ${JSON.stringify(first)}`);
  if (JSON.stringify(first.options) !== JSON.stringify(pairs.map((p) => p.pair))) fail(`the picker offers ${first.options}`);
  if (first.picker !== pairs[0].pair || !first.title.startsWith(`${pairs[0].pair} ·`)) fail(`without ?pair= the page shows ${first.picker} / ${first.title}`);

  // Pick the other pair: the address keeps it and the page shows its board.
  await Promise.all([page.waitForNavigation({ timeout: STEP_TIMEOUT_MS }), page.selectOption('#pair-picker', pickedPair)]);
  await live(page, pickedPair);
  const expectSearch = `?${new URLSearchParams({ pair: pickedPair })}`;
  const checkPicked = async (what) => {
    await page
      // (The picker fills in from /api/pairs on its own: waited for too, not raced.)
      .waitForFunction(
        (pair) => window.__nt.barCount > 0 && document.querySelectorAll('#trades-body tr').length > 0 && document.getElementById('pair-picker').value === pair,
        pickedPair,
        { timeout: STEP_TIMEOUT_MS },
      )
      .catch(() => fail(`${what}: no bars, no fills or no picked pair shown`));
    const now = await shown(page);
    log(`${what}: ${JSON.stringify(now)}`);
    if (now.search !== expectSearch) fail(`${what}: the address says ${now.search}, not ${expectSearch}`);
    if (now.picker !== pickedPair) fail(`${what}: the picker shows ${now.picker}`);
    if (!now.title.startsWith(`${pickedPair} ·`)) fail(`${what}: the chart is "${now.title}"`);
    if (!now.runInfo.startsWith(`run ${picked.run_id} `)) fail(`${what}: the run shown is "${now.runInfo}", not run ${picked.run_id}`);
    if (!(number(now.price) > 0 && number(now.price) < maxPrice)) fail(`${what}: the last price ${now.price} is not ${pickedPair}'s`);
    // The fills shown are that run's, with its prices.
    const rows = await page.evaluate(() => Array.from(document.querySelectorAll('#trades-body tr'), (tr) => ({ id: Number(tr.dataset.orderId), price: tr.cells[3].textContent })));
    const fills = (await api(`/api/fills?pair=${encodeURIComponent(pickedPair)}`)).fills;
    const ids = new Set(fills.map((f) => f.order_id));
    for (const row of rows) {
      if (!ids.has(row.id)) fail(`${what}: fill ${row.id} shown is not one of ${pickedPair}'s`);
      if (!(number(row.price) < maxPrice)) fail(`${what}: a fill at ${row.price} is not ${pickedPair}'s`);
    }
  };
  await checkPicked('picked');
  await page.reload({ waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  await live(page, 'reloaded');
  await checkPicked('reloaded');

  mkdirSync(path.dirname(screenshotPath), { recursive: true });
  await page.screenshot({ path: screenshotPath });
  const csp = await page.evaluate(() => window.__cspViolations);
  problems.push(...csp.map((v) => `CSP violation: ${v}`));
  failOnProblems(problems);
  log('passed');
});
