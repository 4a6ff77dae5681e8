// Drives the dashboard of a live broker's run in headless Chromium (see tests/dashboard_venue.rs,
// which serves it): the LIVE badge, the exchange's balances (rounded for people, exact in
// data-raw), the latest orders with their state, and the red halt banner at the top, whose Resume
// sends the Resume control; the banner goes once the status has no halt. A paper run's page shows
// none of it. No console error, no CSP violation. Saves desktop and phone screenshots.
//
//   node tests/browser/venue.mjs LIVE_URL PAPER_URL SCREENSHOT_PATH HALT_REASON
//
// Exits 0 on success, 1 on a failed check (with the reason on stderr), 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), DASHBOARD_TEST_TIMEOUT_MS (default 120000).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DESKTOP, PHONE, fail, failOnProblems, runBrowserTest } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.DASHBOARD_TEST_TIMEOUT_MS || 120_000);
const STEP_TIMEOUT_MS = 30_000;

const log = (message) => console.log(`venue test: ${message}`);

const [liveUrl, paperUrl, screenshotPath, haltReason] = process.argv.slice(2);
if (!liveUrl || !paperUrl || !screenshotPath || !haltReason) {
  console.error('usage: node tests/browser/venue.mjs LIVE_URL PAPER_URL SCREENSHOT_PATH HALT_REASON');
  process.exit(2);
}
const shot = (suffix) => screenshotPath.replace(/\.png$/, `${suffix}.png`);

function watch(page, label, problems) {
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /Content Security Policy/i.test(text)) problems.push(`${label} console ${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`${label} uncaught exception: ${err.message}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${label} ${res.request().method()} ${res.url()} answered ${res.status()}`);
  });
}

async function open(context, url, viewport, label, problems) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  watch(page, label, problems);
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const res = await page.goto(url, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  if (!res || !res.ok()) fail(`${label}: GET ${url} answered ${res ? res.status() : 'nothing'}`);
  await page
    .waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`${label}: the page never received its first snapshot`));
  return page;
}

const shown = (page, id) => page.evaluate((id) => {
  const el = document.getElementById(id);
  return !!el && !el.hidden && el.getClientRects().length > 0;
}, id);

async function checkHaltBanner(page) {
  await page
    .waitForFunction(() => !document.getElementById('halt-banner').hidden, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the halt banner never showed'));
  const banner = await page.evaluate(() => {
    const el = document.getElementById('halt-banner');
    const box = el.getBoundingClientRect();
    return {
      text: document.getElementById('halt-text').textContent,
      background: getComputedStyle(el).backgroundColor,
      top: box.top,
      height: box.height,
      tabsTop: document.querySelector('.tabs').getBoundingClientRect().top,
      button: !document.getElementById('btn-halt-resume').disabled,
      badge: document.getElementById('trading-badge').textContent,
    };
  });
  if (banner.text !== `Trading halted: ${haltReason}`) fail(`the halt banner says "${banner.text}"`);
  const [r, g, b] = (banner.background.match(/\d+/g) || []).map(Number);
  if (!(r > 150 && g < 80 && b < 80)) fail(`the halt banner is not red: ${banner.background}`);
  if (!(banner.height > 0 && banner.top < banner.tabsTop)) fail(`the halt banner is not at the top: ${JSON.stringify(banner)}`);
  if (!banner.button) fail('the halt banner has no enabled Resume button');
  if (banner.badge !== 'trading halted') fail(`the trading badge says "${banner.badge}" while halted`);
  log(`halt banner: "${banner.text}" (${banner.background})`);
}

async function checkBalances(page) {
  if (!(await shown(page, 'venue-card'))) fail('no exchange card on a live run');
  const card = await page.evaluate(() => ({
    broker: document.getElementById('venue-broker').textContent,
    stops: document.getElementById('venue-stops').hidden ? null : document.getElementById('venue-stops').textContent,
    rows: Array.from(document.querySelectorAll('#venue-balances dd')).map((dd) => ({
      name: dd.previousElementSibling.textContent,
      asset: dd.dataset.asset,
      raw: dd.dataset.raw,
      text: dd.textContent,
    })),
  }));
  if (card.broker !== 'kraken') fail(`the exchange card names "${card.broker}"`);
  if (card.stops !== 'Stops: on Kraken: stop-loss 2%, take-profit 4%') fail(`the stop rule shown: "${card.stops}"`);
  const expected = [
    { name: 'BTC', asset: 'XXBT', raw: '0.0123456789', text: '0.01234568' },
    { name: 'USD', asset: 'ZUSD', raw: '4321.0987', text: '4,321.10' },
  ];
  if (JSON.stringify(card.rows) !== JSON.stringify(expected)) fail(`balances shown: ${JSON.stringify(card.rows)}`);
  log(`balances: ${card.rows.map((r) => `${r.name} ${r.text}`).join(', ')}`);
}

async function checkOrders(page) {
  if (!(await shown(page, 'orders-tab'))) fail('no Orders tab on a live run');
  await page.click('#orders-tab');
  const rows = await page.evaluate(() =>
    Array.from(document.querySelectorAll('#orders-body tr')).map((tr) => ({
      id: tr.dataset.clOrdId,
      cells: Array.from(tr.cells).map((td) => td.textContent),
      idTitle: tr.cells[0].title,
    })),
  );
  if (rows.length !== 2) fail(`${rows.length} order rows, not 2: ${JSON.stringify(rows)}`);
  const [rejected, filled] = rows;
  const expect = (cond, what) => cond || fail(`order rows: ${what}: ${JSON.stringify(rows)}`);
  expect(rejected.id === '6f1c2b9e-4d7a-4c1e-9b2f-2a7d1e0c5b33' && rejected.idTitle === rejected.id, 'newest first, full id in the title');
  expect(rejected.cells[0] === '6f1c2b9e…' && filled.cells[0] === 'a3f90d42…', 'the client ids shortened');
  expect(rejected.cells[1] === '—', 'no txid before the exchange gave one');
  expect(rejected.cells[2] === '2026-12-07 12:30:00', 'the order time in UTC');
  expect(rejected.cells[3] === 'Buy' && rejected.cells[4] === 'limit', 'side and type');
  expect(rejected.cells[5] === '0.01000000' && rejected.cells[6] === '0.00000000', 'volume and filled');
  expect(/^60,123\.4/.test(rejected.cells[7]), 'the limit price');
  expect(rejected.cells[8] === 'rejected' && rejected.cells[9] === 'EOrder:Insufficient funds', 'state and detail');
  expect(filled.cells[1] === 'OUF4EM-FRGI2-MQMWZD' && filled.cells[8] === 'filled', 'the txid and state');
  expect(filled.cells[7] === '—' && filled.cells[3] === 'Sell' && filled.cells[4] === 'market', 'a market sell');
  log(`orders: ${rows.map((r) => r.cells.join(' | ')).join(' / ')}`);
}

runBrowserTest('venue test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, async (browser) => {
  const problems = [];
  const context = await browser.newContext();
  mkdirSync(path.dirname(screenshotPath), { recursive: true });

  const page = await open(context, liveUrl, DESKTOP, 'live', problems);
  const badges = await page.evaluate(() => ({
    paper: !document.getElementById('paper-badge').hidden,
    live: !document.getElementById('live-badge').hidden,
  }));
  if (!badges.live || badges.paper) fail(`a real-money run must show LIVE and not paper: ${JSON.stringify(badges)}`);
  await checkHaltBanner(page);
  await checkBalances(page);
  await page.screenshot({ path: screenshotPath });
  await checkOrders(page);
  await page.screenshot({ path: shot('-orders') });
  await page.setViewportSize(PHONE);
  await page.screenshot({ path: shot('-phone'), fullPage: true });
  await page.setViewportSize(DESKTOP);

  // Resume from the banner: the server's status loses the halt, and the banner goes.
  await page.click('#btn-halt-resume');
  await page
    .waitForFunction(() => document.getElementById('halt-banner').hidden, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the halt banner stayed after Resume'));
  await page
    .waitForFunction(() => document.getElementById('control-result').classList.contains('ok'), null, { timeout: STEP_TIMEOUT_MS })
    .catch(async () => fail(`Resume was not answered: "${await page.textContent('#control-result')}"`));
  const after = await page.evaluate(() => ({
    badge: document.getElementById('trading-badge').textContent,
    orders: document.querySelectorAll('#orders-body tr').length,
  }));
  if (after.badge !== 'trading active' || after.orders !== 2) fail(`after Resume: ${JSON.stringify(after)}`);
  log('Resume lifted the halt: the banner is gone');

  // A paper run: nothing of an exchange, no LIVE badge.
  const paper = await open(context, paperUrl, DESKTOP, 'paper', problems);
  await paper
    .waitForFunction(() => window.__nt && window.__nt.barCount > 0, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('the paper page drew no bars'));
  for (const id of ['venue-card', 'orders-tab', 'halt-banner', 'live-badge']) {
    if (await shown(paper, id)) fail(`a paper run shows #${id}`);
  }
  if (!(await shown(paper, 'paper-badge'))) fail('a paper run does not say paper');
  log('the paper run shows no exchange side and no LIVE badge');

  for (const p of [page, paper]) {
    const violations = await p.evaluate(() => window.__cspViolations || []);
    if (violations.length) problems.push(`CSP violations: ${violations.join('; ')}`);
  }
  failOnProblems(problems);
  log('passed');
});
