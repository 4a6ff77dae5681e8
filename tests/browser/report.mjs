// Opens backtest HTML reports (written by tests/report_browser.rs through
// nanotrader_backtest::render_report) from file:// in headless Chromium, with every network
// request refused, and checks what a reader sees: the charts draw, the heatmap, tables and
// summary hold what the data says, hovering answers, and nothing reaches the console.
//
//   node tests/browser/report.mjs SPEC.json
//
// SPEC.json: { "cases": [ { "name", "file", "screenshot"?, "phone_screenshot"?, "title",
//   "expect": { "charts", "candles", "lines", "markers", "fillRows", "fillsCount", "summaryRows",
//   "summaryLabels", "assumptions", "heatmapCells", "heatmapEmptyCells", "topRows", "sweep", "priceDecimals", "sweepNote",
//   "gridRows", "wfFolds", "wfPoints", "wfWarnings" } } ] }
// Exits 0 on success, 1 on a failed check (with the reason on stderr), 2 on a usage error.
// Env: CHROMIUM_PATH (default /usr/bin/chromium), REPORT_TEST_TIMEOUT_MS (default 90000).

import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DESKTOP, PHONE, fail, failOnProblems, runBrowserTest, sleep } from './harness.mjs';

const OVERALL_TIMEOUT_MS = Number(process.env.REPORT_TEST_TIMEOUT_MS || 90_000);
const STEP_TIMEOUT_MS = 20_000;

const log = (message) => console.log(`report test: ${message}`);

const [specPath] = process.argv.slice(2);
if (!specPath) {
  console.error('usage: node tests/browser/report.mjs SPEC.json');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specPath, 'utf8'));

// Console errors, uncaught exceptions, CSP violations and any request that is not the file.
function watch(page, label, pageUrl, problems) {
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() === 'error' || msg.type() === 'warning' || /Content Security Policy/i.test(text)) {
      problems.push(`${label} console ${msg.type()}: ${text}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`${label} uncaught exception: ${err.message}`));
  page.on('request', (req) => {
    const url = req.url();
    if (url !== pageUrl && !url.startsWith('data:')) problems.push(`${label} made a request: ${req.method()} ${url}`);
  });
  page.on('requestfailed', (req) => {
    if (req.url() === pageUrl) problems.push(`${label} could not load the report: ${req.failure()?.errorText}`);
  });
}

async function open(context, c, viewport, label, problems) {
  const pageUrl = pathToFileURL(path.resolve(c.file)).href;
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  watch(page, label, pageUrl, problems);
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });
  await page.goto(pageUrl, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS });
  await page
    .waitForFunction(() => window.__report && window.__report.ready, null, { timeout: STEP_TIMEOUT_MS })
    .catch(() => fail(`${label}: the report never finished drawing (window.__report.ready is not true)`));
  return page;
}

async function canvasSizes(page, id) {
  return page.evaluate(
    (sel) => Array.from(document.querySelectorAll(`#${sel} canvas`), (c) => [c.width, c.height]),
    id,
  );
}

async function checkCase(context, c, problems) {
  const label = c.name;
  const e = c.expect;
  const started = Date.now();
  const page = await open(context, c, DESKTOP, label, problems);
  const r = await page.evaluate(() => ({ ...window.__report, state: document.body.dataset.state }));
  log(`${label}: drawn in ${Date.now() - started} ms: ${JSON.stringify(r)}`);
  if (r.errors.length) fail(`${label}: the page reported errors: ${r.errors.join('; ')}`);
  if (r.state !== 'ready') fail(`${label}: body[data-state] is "${r.state}", not "ready"`);
  if (await page.evaluate(() => window.__pwned !== undefined)) fail(`${label}: a script from the data ran`);

  const title = await page.evaluate(() => ({ h1: document.getElementById('title').textContent, doc: document.title }));
  if (title.h1 !== c.title) fail(`${label}: the heading is ${JSON.stringify(title.h1)}, not ${JSON.stringify(c.title)}`);
  if (!title.doc.startsWith(c.title)) fail(`${label}: the document title is ${JSON.stringify(title.doc)}`);

  for (const [key, want] of Object.entries({
    candles: e.candles,
    lines: e.lines,
    markers: e.markers,
    fillRows: e.fillRows,
    summaryRows: e.summaryRows,
    assumptions: e.assumptions,
    heatmapCells: e.heatmapCells,
    heatmapEmptyCells: e.heatmapEmptyCells,
    topRows: e.topRows,
    gridRows: e.gridRows,
    wfFolds: e.wfFolds,
    wfPoints: e.wfPoints,
    wfWarnings: e.wfWarnings,
  })) {
    if (want !== undefined && r[key] !== want) fail(`${label}: ${key} is ${r[key]}, expected ${want}`);
  }

  // Charts: canvases with a real size, or the "no data" note instead.
  for (const id of ['price-chart', 'equity-chart', 'drawdown-chart']) {
    const sizes = await canvasSizes(page, id);
    const drawn = sizes.some(([w, h]) => w > 100 && h > 100);
    if (e.charts && !drawn) fail(`${label}: #${id} has no sized canvas (${JSON.stringify(sizes)})`);
    if (!e.charts) {
      const note = id.replace('-chart', '-empty');
      if (drawn || !(await page.isVisible(`#${note}`))) fail(`${label}: #${id} should show #${note} instead of a chart`);
    }
  }

  // A walk-forward: its chart drawn, its table and warning shown.
  if (e.wfPoints > 0) {
    const sizes = await canvasSizes(page, 'wf-chart');
    if (!sizes.some(([w, h]) => w > 100 && h > 100)) fail(`${label}: #wf-chart has no sized canvas (${JSON.stringify(sizes)})`);
    const wf = await page.evaluate(() => ({
      rows: document.querySelectorAll('#wf-body tr').length,
      warning: document.getElementById('wf-warning').hidden ? '' : document.getElementById('wf-warning').textContent,
    }));
    if (wf.rows !== e.wfFolds) fail(`${label}: the walk-forward table has ${wf.rows} rows, expected ${e.wfFolds}`);
    if ((e.wfWarnings > 0) !== wf.warning.includes('disagree')) fail(`${label}: the walk-forward warning is "${wf.warning}"`);
  }

  // What the DOM shows matches the counters.
  const dom = await page.evaluate(() => ({
    summary: Array.from(document.querySelectorAll('#summary-body tr'), (tr) => tr.cells[0].textContent),
    assumptions: document.querySelectorAll('#assumptions li').length,
    fills: document.querySelectorAll('#fills-body tr').length,
    fillsCount: document.getElementById('fills-count').textContent,
    cells: document.querySelectorAll('#heatmap .hm-cell').length,
    noneCells: document.querySelectorAll('#heatmap .hm-cell.none').length,
    top: document.querySelectorAll('#top-body tr').length,
    sweepShown: !document.getElementById('sweep').hidden,
    fillsEmptyShown: !document.getElementById('fills-empty').hidden,
  }));
  if (dom.summary.length !== e.summaryRows) fail(`${label}: the summary table has ${dom.summary.length} rows, expected ${e.summaryRows}`);
  for (const want of e.summaryLabels || []) {
    if (!dom.summary.includes(want)) fail(`${label}: the summary table has no "${want}" row (${dom.summary.join(', ')})`);
  }
  if (dom.assumptions !== e.assumptions) fail(`${label}: ${dom.assumptions} assumptions listed, expected ${e.assumptions}`);
  if (dom.fills !== e.fillRows) fail(`${label}: the fills table has ${dom.fills} rows, expected ${e.fillRows}`);
  if (!dom.fillsCount.includes(e.fillsCount)) fail(`${label}: the fills count says "${dom.fillsCount}", expected "${e.fillsCount}" in it`);
  if ((e.fillRows === 0) !== dom.fillsEmptyShown) fail(`${label}: the "no fills" note is ${dom.fillsEmptyShown ? 'shown' : 'hidden'}`);
  if (dom.sweepShown !== e.sweep) fail(`${label}: the sweep section is ${dom.sweepShown ? 'shown' : 'hidden'}`);
  if (e.sweep) {
    if (dom.cells !== e.heatmapCells) fail(`${label}: the heatmap has ${dom.cells} cells, expected ${e.heatmapCells}`);
    if (dom.noneCells !== e.heatmapEmptyCells) fail(`${label}: ${dom.noneCells} greyed cells, expected ${e.heatmapEmptyCells}`);
    if (dom.top !== e.topRows) fail(`${label}: the top table has ${dom.top} rows, expected ${e.topRows}`);
  }
  // Prices at the pair's tick, and the sweep's note (why some ratios are not shown) when given.
  const shown = await page.evaluate(() => ({
    close: document.getElementById('lg-c').textContent,
    note: document.getElementById('sweep-note').hidden ? null : document.getElementById('sweep-note').textContent,
  }));
  if (e.charts && Number.isInteger(e.priceDecimals)) {
    const decimals = (shown.close.split('.')[1] || '').length;
    if (decimals !== e.priceDecimals) fail(`${label}: the close shows as "${shown.close}", expected ${e.priceDecimals} decimals (the tick)`);
  }
  if ((e.sweepNote || null) !== shown.note) fail(`${label}: the sweep note is ${JSON.stringify(shown.note)}, expected ${JSON.stringify(e.sweepNote)}`);

  if (e.sweep && e.heatmapCells > 0) {
    // Hovering a valued cell names its combination and value.
    const cell = page.locator('#heatmap .hm-cell:not(.none)').first();
    const want = await cell.evaluate((n) => ({ short: n.dataset.short, long: n.dataset.long, title: n.title }));
    await cell.hover();
    const readout = await page.textContent('#heatmap-readout');
    if (!readout.includes(`short ${want.short}`) || !readout.includes(`long ${want.long}`)) {
      fail(`${label}: hovering short ${want.short} long ${want.long} shows "${readout}"`);
    }
    if (!/short \d+ · long \d+ · .+ -?\d/.test(want.title)) fail(`${label}: a heatmap cell's title is "${want.title}"`);
    log(`${label}: heatmap hover -> "${readout}"`);
  }

  if (e.charts) {
    // The crosshair on the price chart moves the legends of all three charts.
    const before = await page.evaluate(() => [document.getElementById('lg-time').textContent, document.getElementById('lg-equity').textContent]);
    await page.locator('#price-chart').scrollIntoViewIfNeeded();
    const box = await page.locator('#price-chart').boundingBox();
    await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.5);
    await sleep(150);
    const after = await page.evaluate(() => [document.getElementById('lg-time').textContent, document.getElementById('lg-equity').textContent]);
    if (e.candles > 1 && after[0] === before[0]) fail(`${label}: hovering the price chart did not change its legend (${before[0]})`);
    if (e.candles > 1 && after[1] === before[1]) fail(`${label}: hovering the price chart did not move the equity legend (${before[1]})`);
    log(`${label}: crosshair ${before[0]} -> ${after[0]}, equity ${before[1]} -> ${after[1]}`);
    await page.mouse.move(1, 1);
    await page.evaluate(() => window.scrollTo(0, 0));
  }

  for (const v of await page.evaluate(() => window.__cspViolations || [])) problems.push(`${label} CSP violation: ${v}`);
  if (c.screenshot) {
    await sleep(300);
    mkdirSync(path.dirname(path.resolve(c.screenshot)), { recursive: true });
    await page.screenshot({ path: c.screenshot, fullPage: true });
    log(`${label}: screenshot ${c.screenshot}`);
  }
  await page.close();

  if (c.phone_screenshot) {
    const phone = await open(context, c, PHONE, `${label} (phone)`, problems);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) fail(`${label}: on a ${PHONE.width} px wide phone the page scrolls sideways by ${overflow} px`);
    await sleep(300);
    await phone.screenshot({ path: c.phone_screenshot, fullPage: true });
    log(`${label}: screenshot ${c.phone_screenshot}`);
    await phone.close();
  }
}

async function main(browser) {
  // Offline, and anything but the report file itself is refused.
  const context = await browser.newContext({ viewport: DESKTOP, deviceScaleFactor: 1, offline: true });
  const blocked = [];
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
    blocked.push(url);
    return route.abort('blockedbyclient');
  });
  const problems = [];
  for (const c of spec.cases) await checkCase(context, c, problems);
  for (const url of blocked) problems.push(`blocked a request to ${url}`);
  failOnProblems(problems);
  log(`all checks passed (${spec.cases.length} reports)`);
}

await runBrowserTest('report test', OVERALL_TIMEOUT_MS, STEP_TIMEOUT_MS, main);
