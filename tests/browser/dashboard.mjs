// Drives the dashboard of a running `nanotrader demo` in headless Chromium and checks what a
// user sees against the JSON API: the chart draws, the account equals GET /api/account, a new
// fill gets its marker and its Trades row, the controls answer, a replay is labelled as one (with
// its speed and the data's time, never "live"), the equity chart has its buy-and-hold line and
// legend, the page runs under the server's CSP without a single console error, its assets come
// compressed, and a reload revalidates them (304) instead of fetching them again. Saves a
// desktop and a phone screenshot.
//
//   node tests/browser/dashboard.mjs URL SCREENSHOT_PATH [SOURCE_LABEL]
//
// SOURCE_LABEL, when given, is what the source badge must say (e.g. "replay 3000x").
// URL is the `dashboard:` line nanotrader printed (with `#token=...` when it has one).
// Exits 0 on success, 1 on a failed check (with the reason on stderr), 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), DASHBOARD_TEST_TIMEOUT_MS (default 120000).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DESKTOP, PHONE, fail, failOnProblems, runBrowserTest, sleep } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.DASHBOARD_TEST_TIMEOUT_MS || 120_000);
const STEP_TIMEOUT_MS = 30_000;

const log = (message) => console.log(`dashboard test: ${message}`);

const [url, screenshotPath, sourceLabel] = process.argv.slice(2);
if (!url || !screenshotPath) {
  console.error('usage: node tests/browser/dashboard.mjs URL SCREENSHOT_PATH');
  process.exit(2);
}
const pageUrl = new URL(url);
const token = new URLSearchParams(pageUrl.hash.slice(1)).get('token');
const pair = pageUrl.searchParams.get('pair');

// The server answers before the run starts; the page is opened once the run shows.
async function waitForRun() {
  const until = Date.now() + STEP_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < until) {
    try {
      await api('/api/status');
      return;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  fail(`the run never showed on the dashboard: ${last}`);
}

async function api(route) {
  const target = new URL(route, pageUrl);
  target.hash = '';
  if (pair) target.searchParams.set('pair', pair);
  const res = await fetch(target, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  if (!res.ok) fail(`GET ${target.pathname} answered ${res.status}: ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

// Everything that would show in a developer's console: errors, uncaught exceptions, CSP
// violations, failed requests, HTTP errors.
function watch(page, label, problems) {
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || /Content Security Policy/i.test(text)) problems.push(`${label} console ${msg.type()}: ${text}`);
  });
  page.on('pageerror', (err) => problems.push(`${label} uncaught exception: ${err.message}`));
  page.on('requestfailed', (req) => {
    const reason = req.failure() ? req.failure().errorText : 'failed';
    // Closing the page aborts its open requests: not a page problem.
    if (!page.isClosed() && reason !== 'net::ERR_ABORTED') problems.push(`${label} request ${req.url()} ${reason}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`${label} ${res.request().method()} ${res.url()} answered ${res.status()}`);
  });
}

async function cspViolations(page) {
  return page.evaluate(() => window.__cspViolations || []);
}

async function openDashboard(context, viewport, label, problems) {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  watch(page, label, problems);
  // Registered by the test harness (not an inline script, so the page's CSP does not apply).
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || ''}:${e.lineNumber || ''})`);
    });
  });
  const res = await page.goto(pageUrl.href, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  if (!res || !res.ok()) fail(`${label}: GET ${pageUrl.origin}/ answered ${res ? res.status() : 'nothing'}`);
  const csp = res.headers()['content-security-policy'] || '';
  if (!/script-src 'self'/.test(csp) || /unsafe-inline|unsafe-eval/.test(csp)) fail(`${label}: the page's CSP is missing or weak: "${csp}"`);
  await page
    .waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`${label}: the page never received its first snapshot (body[data-state] is not "live")`));
  // The chart draws into canvases once it has bars.
  await page
    .waitForFunction(
      () => window.__nt && window.__nt.barCount > 0 && document.querySelectorAll('#price-chart canvas').length > 0,
      null,
      { timeout: STEP_TIMEOUT_MS },
    )
    .catch(() => fail(`${label}: the price chart did not draw (no canvas or no bars)`));
  // A paper run says so, and never shows the LIVE badge nor anything of an exchange.
  const badges = await page.evaluate(() => ({
    paper: !document.getElementById('paper-badge').hidden,
    live: !document.getElementById('live-badge').hidden,
    exchange: ['venue-card', 'orders-tab', 'halt-banner'].filter((id) => !document.getElementById(id).hidden),
  }));
  if (!badges.paper || badges.live || badges.exchange.length) {
    fail(`${label}: a paper run must show "paper", not "LIVE" nor an exchange: ${JSON.stringify(badges)}`);
  }
  return page;
}

// The page's account, recorded at every render: values move every bar, so the page is compared
// with the API for one account timestamp, whenever the page shows that timestamp.
async function recordAccount(page) {
  await page.evaluate(() => {
    const account = document.getElementById('account');
    const seen = new Map();
    window.__seenAccounts = seen;
    const record = () => {
      const ts = account.dataset.ts;
      if (ts === undefined) return;
      const values = {};
      for (const el of account.querySelectorAll('[data-field]')) values[el.dataset.field] = el.getAttribute('data-raw');
      if (!seen.has(ts)) seen.set(ts, []);
      const list = seen.get(ts);
      const text = JSON.stringify(values);
      if (!list.includes(text)) list.push(text);
      if (seen.size > 5000) seen.delete(seen.keys().next().value);
    };
    record();
    new MutationObserver(record).observe(account, { attributes: true, subtree: true, attributeFilter: ['data-raw', 'data-ts'] });
  });
}

async function checkAccount(page) {
  await page
    .waitForFunction(() => document.querySelector('#account [data-field="cash"][data-raw]') && document.getElementById('account').dataset.ts, null, {
      timeout: STEP_TIMEOUT_MS,
    })
    .catch(() => fail('the account never filled in (no data-raw on [data-field="cash"] or no data-ts)'));
  const fields = await page.evaluate(() => Array.from(document.querySelectorAll('#account [data-field]'), (el) => el.dataset.field));
  await recordAccount(page);
  let lastMismatch = 'the page never showed the timestamp the API answered';
  for (let attempt = 1; attempt <= 40; attempt++) {
    const account = await api('/api/account');
    const expected = {};
    for (const [key, value] of Object.entries(account)) {
      if (key === 'ts') continue;
      if (!fields.includes(key)) fail(`the page shows no [data-field="${key}"] for the API's account field "${key}"`);
      expected[key] = value === null ? null : String(value);
    }
    const ts = String(account.ts);
    // The page follows the API within a frame or two.
    const shown = await page
      .waitForFunction((want) => Number(document.getElementById('account').dataset.ts) >= want, Number(ts), { timeout: 5000 })
      .then(() => true)
      .catch(() => false);
    if (!shown) {
      lastMismatch = `the page's account stayed before ts ${ts}`;
      continue;
    }
    const versions = await page.evaluate((t) => (window.__seenAccounts.get(t) || []).map((v) => JSON.parse(v)), ts);
    for (const values of versions) {
      const diff = Object.keys(expected).filter((k) => values[k] !== expected[k]);
      if (diff.length === 0) {
        log(`account matches GET /api/account at ts ${ts} (attempt ${attempt}): ${Object.keys(expected).length} fields, equity ${expected.equity}`);
        return;
      }
      lastMismatch = `at ts ${ts}: ${diff.map((k) => `${k} page=${values[k]} api=${expected[k]}`).join(', ')}`;
    }
    await sleep(100);
  }
  fail(`the page's account never equalled GET /api/account for the same ts; last difference ${lastMismatch}`);
}

async function tradeRows(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('#trades-body tr'), (tr) => ({
    id: Number(tr.dataset.orderId),
    side: tr.cells[1].textContent.trim().toLowerCase(),
  })));
}

async function checkNewFill(page) {
  const before = await page.evaluate(() => ({ markers: window.__nt.markerCount, rows: document.querySelectorAll('#trades-body tr').length }));
  const rowsBefore = await tradeRows(page);
  const newestBefore = rowsBefore.length ? rowsBefore[0].id : 0;
  log(`waiting for a fill (${before.markers} markers, ${before.rows} rows so far)`);
  await page
    .waitForFunction(
      (b) => window.__nt.markerCount > b.markers && Number((document.querySelector('#trades-body tr') || { dataset: {} }).dataset.orderId || 0) > b.newest,
      { markers: before.markers, newest: newestBefore },
      { timeout: STEP_TIMEOUT_MS },
    )
    .catch(() => fail(`no new fill marker and Trades row within ${STEP_TIMEOUT_MS} ms (markers ${before.markers}, newest order ${newestBefore})`));
  const rows = await tradeRows(page);
  const newest = rows[0];
  if (rows.length <= before.rows && rows.length < 1000) fail(`the Trades table did not grow (${before.rows} -> ${rows.length} rows)`);
  for (let i = 1; i < rows.length; i++) {
    if (rows[i].id >= rows[i - 1].id) fail(`the Trades table is not newest first: order ${rows[i - 1].id} before ${rows[i].id}`);
  }
  const { fills } = await api('/api/fills?limit=50');
  const stored = fills.find((f) => f.order_id === newest.id);
  if (!stored) fail(`the page shows order ${newest.id}, which GET /api/fills does not have`);
  if (stored.side !== newest.side) fail(`order ${newest.id}: the page says ${newest.side}, the API ${stored.side}`);
  const markers = await page.evaluate(() => window.__nt.markerCount);
  log(`fill ${newest.id} (${newest.side}) shown: markers ${before.markers} -> ${markers}, rows ${before.rows} -> ${rows.length}`);
}

// Pause then resume through the buttons: the request carries the control header and token, the
// answer is shown, and the trading badge follows the status.
async function checkControls(page) {
  const paused = await page.evaluate(() => document.getElementById('trading-badge').textContent.includes('paused'));
  const steps = paused ? ['resume', 'pause'] : ['pause', 'resume'];
  for (const action of steps) {
    await page.click(`#btn-${action}`);
    await page
      .waitForFunction(() => /\bok\b|\berror\b/.test(document.getElementById('control-result').className), null, { timeout: STEP_TIMEOUT_MS })
      .catch(() => fail(`${action}: no answer shown after clicking the button`));
    const result = await page.evaluate(() => ({
      kind: document.getElementById('control-result').className,
      text: document.getElementById('control-result').textContent,
    }));
    if (!/\bok\b/.test(result.kind)) fail(`${action} was refused: "${result.text}"`);
    const want = action === 'pause' ? 'paused' : 'active';
    await page
      .waitForFunction((w) => document.getElementById('trading-badge').textContent.includes(w), want, { timeout: STEP_TIMEOUT_MS })
      .catch(() => fail(`after ${action}, the trading badge does not say "${want}"`));
    log(`${action}: "${result.text}"`);
  }
}

// A replay says so, with its speed, and shows the data's own time; nothing on the page calls it
// live or its feed connected. The status API carries the same mode and speed.
async function checkSourceLabels(page) {
  const { status } = await api('/api/status');
  if (status.mode === 'live') fail('the status API calls this run live');
  if (typeof status.speed !== 'string' || !/^(\d+(\.\d+)?x|max speed)$/.test(status.speed)) fail(`the status API's speed is ${JSON.stringify(status.speed)}`);
  const want = sourceLabel || `${status.mode} ${status.speed}`;
  if (sourceLabel && `${status.mode} ${status.speed}` !== sourceLabel) fail(`the status API says "${status.mode} ${status.speed}", expected "${sourceLabel}"`);
  await page
    .waitForFunction((w) => document.getElementById('source-badge').textContent === w, want, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`the source badge does not say "${want}"`));
  const shown = await page.evaluate(() => ({
    badges: document.querySelector('.badges').innerText,
    lag: document.getElementById('lag-badge').textContent,
    feedLag: document.getElementById('h-feed-lag').textContent,
    dataTime: document.getElementById('h-data-time').textContent,
  }));
  if (/\blive\b|feed connected/i.test(shown.badges)) fail(`a replay's badges say live or feed connected: "${shown.badges.replace(/\s+/g, ' ')}"`);
  if (!/^data \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(shown.lag)) fail(`the lag badge of a replay shows "${shown.lag}", not the data's time`);
  if (!/^\d{4}-\d\d-\d\d/.test(shown.dataTime)) fail(`the Health tab's data time is "${shown.dataTime}"`);
  if (/^-|lag/.test(shown.feedLag)) fail(`the Health tab's feed lag of a replay is "${shown.feedLag}"`);
  // The data's time is the replayed data's, years behind the wall clock: within its own days.
  const dataSecs = Date.parse(`${shown.lag.slice(5, 24).replace(' ', 'T')}Z`) / 1000;
  const first = (await api('/api/bars?limit=1&from=0')).bars[0];
  if (!(dataSecs >= first.t && dataSecs < Date.now() / 1000 - 86400)) fail(`the data time ${shown.lag} is not the replayed data's own time`);
  log(`source labelled "${want}", ${shown.lag}, feed lag "${shown.feedLag}"`);
}

// The equity chart has a buy-and-hold line beside the strategy, with a legend of both in USD.
async function checkBuyAndHold(page) {
  await page.click('.tab[data-tab="account"]');
  await page
    .waitForFunction(() => window.__nt.holdPoints > 0 && /^\d{1,3}(,\d{3})*\.\d\d$/.test(document.getElementById('lg-hold').textContent), null, {
      timeout: STEP_TIMEOUT_MS,
    })
    .catch(() => fail('no buy-and-hold line or legend value on the equity chart'));
  const legend = await page.evaluate(() => ({
    text: document.getElementById('equity-legend').innerText.replace(/\s+/g, ' '),
    points: window.__nt.holdPoints,
    bars: window.__nt.barCount,
    perf: document.getElementById('p-hold').textContent,
  }));
  if (!/Strategy [\d,]+\.\d\d/.test(legend.text) || !/Buy and hold [\d,]+\.\d\d/.test(legend.text)) fail(`the equity legend reads "${legend.text}"`);
  if (legend.points < legend.bars - 1) fail(`the buy-and-hold line has ${legend.points} points for ${legend.bars} bars`);
  if (!/^[+-]?\d[\d,]*\.\d\d%$/.test(legend.perf)) fail(`the Performance tab's buy and hold reads "${legend.perf}"`);
  log(`equity legend "${legend.text}" (${legend.points} buy-and-hold points)`);
  await page.click('.tab[data-tab="summary"]');
}

async function checkTabs(page) {
  for (const tab of ['account', 'trades', 'performance', 'health', 'summary']) {
    await page.click(`.tab[data-tab="${tab}"]`);
    const visible = await page.isVisible(`#tab-${tab}`);
    if (!visible) fail(`the ${tab} tab does not show its panel`);
  }
  // The equity chart sizes itself when its tab is first shown.
  await page.click('.tab[data-tab="account"]');
  await page
    .waitForFunction(() => Array.from(document.querySelectorAll('#equity-chart canvas')).some((c) => c.width > 50 && c.height > 50), null, { timeout: 5000 })
    .catch(() => fail('the equity chart did not draw on the Account tab'));
  const health = await page.evaluate(() => ({ frames: document.getElementById('h-frames').textContent, bars: document.getElementById('h-bars').textContent }));
  if (health.frames === '—' || health.bars === '—') fail(`the Health tab is empty (frames ${health.frames}, bars ${health.bars})`);
  await page.click('.tab[data-tab="summary"]');
}

// The first load's page and assets came compressed; a reload asks for each again with its ETag
// and gets a 304 (the page itself shows as a revalidated cache entry: headers only).
async function checkReload(page) {
  const isPageFile = (url) => {
    const { pathname } = new URL(url);
    return pathname === '/' || pathname.startsWith('/assets/');
  };
  const first = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((e) => ({ name: e.name, encoded: e.encodedBodySize, decoded: e.decodedBodySize })),
  );
  const library = first.find((e) => e.name.endsWith('/assets/lightweight-charts.js'));
  if (!library) fail('the chart library was not loaded');
  if (!(library.encoded > 0 && library.encoded < library.decoded / 2)) {
    fail(`the chart library came uncompressed: ${library.encoded} bytes for ${library.decoded}`);
  }
  const answers = [];
  const record = async (res) => {
    if (!isPageFile(res.url())) return;
    const conditional = (await res.request().allHeaders())['if-none-match'] || '';
    answers.push({ path: new URL(res.url()).pathname, status: res.status(), conditional });
  };
  page.on('response', record);
  await page.reload({ waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  await page
    .waitForFunction(() => document.body.dataset.state === 'live', null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail('after a reload the page never received its snapshot'));
  page.off('response', record);
  const assets = answers.filter((a) => a.path.startsWith('/assets/'));
  if (assets.length < 4) fail(`the reload asked for only ${assets.length} assets: ${JSON.stringify(answers)}`);
  for (const a of answers) {
    if (!a.conditional.startsWith('W/"')) fail(`the reload asked for ${a.path} without its ETag: ${JSON.stringify(a)}`);
  }
  // What crossed the network decides: a revalidated asset transfers headers only. (Chromium
  // sometimes reports a revalidated stylesheet's response event as its cached 200 when the page
  // is busy; its resource timing still shows the headers-only transfer.)
  const timings = await page.evaluate(() =>
    performance.getEntriesByType('resource').map((e) => ({ name: new URL(e.name).pathname, transfer: e.transferSize, encoded: e.encodedBodySize })),
  );
  const refetched = assets.filter((a) => {
    if (a.status === 304) return false;
    const t = timings.find((e) => e.name === a.path);
    return !t || t.transfer >= t.encoded;
  });
  if (refetched.length) fail(`the reload fetched again: ${JSON.stringify(refetched)} (timings ${JSON.stringify(timings)})`);
  const doc = await page.evaluate(() => {
    const e = performance.getEntriesByType('navigation')[0];
    return { transfer: e.transferSize, encoded: e.encodedBodySize };
  });
  if (!(doc.transfer < doc.encoded)) fail(`the reload fetched the page again: ${JSON.stringify(doc)}`);
  log(`reload: ${assets.length} assets answered 304, the page ${doc.transfer} bytes of headers; first load ${library.encoded} bytes for the ${library.decoded}-byte chart library`);
}

async function main(browser) {
  await waitForRun();
  const problems = [];
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1 });
  const page = await openDashboard(context, DESKTOP, 'desktop', problems);
  const nt = await page.evaluate(() => window.__nt);
  log(`live: ${nt.barCount} bars, ${nt.markerCount} fill markers, seq ${nt.lastSeq}`);

  await checkAccount(page);
  await checkSourceLabels(page);
  await checkBuyAndHold(page);
  await checkNewFill(page);
  await checkControls(page);
  await checkTabs(page);

  const nt2 = await page.evaluate(() => window.__nt);
  if (nt2.frames < 2 || nt2.lastSeq <= nt.lastSeq) fail(`the stream did not move: frames ${nt2.frames}, seq ${nt.lastSeq} -> ${nt2.lastSeq}`);
  await sleep(1000); // a settled frame for the picture
  mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
  await page.screenshot({ path: screenshotPath });
  log(`screenshot ${screenshotPath}`);

  const phone = await openDashboard(context, PHONE, 'phone', problems);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) fail(`on a ${PHONE.width} px wide phone the page scrolls sideways by ${overflow} px`);
  await sleep(1000);
  const phonePath = screenshotPath.replace(/(\.png)?$/i, '-phone.png');
  await phone.screenshot({ path: phonePath, fullPage: true });
  log(`screenshot ${phonePath}`);

  for (const [label, p] of [['desktop', page], ['phone', phone]]) {
    for (const v of await cspViolations(p)) problems.push(`${label} CSP violation: ${v}`);
  }
  await phone.close();
  await checkReload(page);
  for (const v of await cspViolations(page)) problems.push(`desktop after a reload, CSP violation: ${v}`);
  await page.close();
  failOnProblems(problems);
  log('all checks passed');
}

await runBrowserTest('dashboard test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, main);
