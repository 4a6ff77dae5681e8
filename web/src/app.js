// nanotrader dashboard: one WebSocket (snapshot, then deltas; see docs/dashboard.md), a few
// charts and tables. Plain JS, no build step. The server sends a strict CSP: every value is set
// with textContent, nothing is parsed as HTML, nothing is evaluated.
'use strict';

(() => {
  const LC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);

  const COLORS = {
    up: '#26a69a',
    down: '#ef5350',
    upVolume: 'rgba(38, 166, 154, 0.45)',
    downVolume: 'rgba(239, 83, 80, 0.45)',
    lines: ['#f0b90b', '#2962ff', '#e040fb', '#00bcd4'],
    hold: '#5b86ff',
    grid: '#1c2030',
    border: '#2a2e39',
    text: '#b2b5be',
    bg: '#131722',
  };
  const RECENT_FILLS = 8;
  const TABLE_ROWS = 1000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // The server sends a status event at least once a second while a run is live.
  const SILENT_WARN_MS = 5000;
  const SILENT_RECONNECT_MS = 15000;
  const INITIAL_VISIBLE_BARS = 180;
  // The chart grows by one bar per interval; past this a fresh snapshot trims it (flat memory
  // over a run of weeks).
  const MAX_CHART_BARS = 20000;

  // ---- Token: taken from the URL fragment (never sent to the server), kept for this tab only.
  const TOKEN_KEY = 'nanotrader.token';
  let token = null;
  function takeTokenFromFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (!fragment.has('token')) return false;
    token = fragment.get('token').trim() || null;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      // sessionStorage can be disabled: the token then lasts until a reload.
    }
    // Off the address bar, so it is not shared with a screenshot or a copied link.
    history.replaceState(null, '', location.pathname + location.search);
    return true;
  }
  if (!takeTokenFromFragment()) {
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      token = null;
    }
  }
  // Which board: `?pair=` on a run's own dashboard, `/runs/{id}` on the fleet dashboard
  // (`nanotrader serve`); every request of the page names it the same way.
  const pair = new URLSearchParams(location.search).get('pair');
  const fleetRun = /^\/runs\/(\d+)$/.exec(location.pathname);
  const boardParams = new URLSearchParams();
  if (pair) boardParams.set('pair', pair);
  if (fleetRun) boardParams.set('run', fleetRun[1]);
  const pairQuery = boardParams.toString() ? `?${boardParams}` : '';

  // ---- Counters the browser test reads.
  const nt = { snapshots: 0, frames: 0, lastSeq: null, barCount: 0, markerCount: 0, holdPoints: 0 };
  window.__nt = nt;

  // ---- Formatting. Money arrives as exact decimal strings: format the digits themselves rather
  // than going through a float, so what is shown is the received value rounded, nothing else.
  function fmtDec(text, minDp, maxDp) {
    if (text === null || text === undefined || text === '') return '—';
    const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
    if (!m || (m[2] === '' && !m[3])) {
      const n = Number(text); // an exponent spelling: rare, a float is good enough to show it
      if (!Number.isFinite(n)) return String(text);
      return n.toLocaleString('en-US', { minimumFractionDigits: minDp, maximumFractionDigits: maxDp });
    }
    const sign = m[1];
    let int = m[2] || '0';
    let frac = m[3] || '';
    if (frac.length > maxDp) {
      const roundUp = frac.charCodeAt(maxDp) >= 53; // '5' or more: half away from zero
      frac = frac.slice(0, maxDp);
      if (roundUp) {
        const digits = (int + frac).split('');
        let i = digits.length - 1;
        for (; i >= 0 && digits[i] === '9'; i--) digits[i] = '0';
        if (i < 0) digits.unshift('1');
        else digits[i] = String(Number(digits[i]) + 1);
        const all = digits.join('');
        int = all.slice(0, all.length - frac.length);
        frac = all.slice(all.length - frac.length);
      }
    }
    frac = frac.replace(/0+$/, '');
    while (frac.length < minDp) frac += '0';
    int = int.replace(/^0+(?=\d)/, '');
    const zero = /^0*$/.test(int + frac);
    const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return (sign === '-' && !zero ? '-' : '') + grouped + (frac ? `.${frac}` : '');
  }
  // Money to the cent, amounts to 8 places, prices at the pair's tick (status.price_decimals),
  // all rounded half away from zero as the server's text is (src/human_format.rs).
  const usd = (s) => fmtDec(s, 2, 2);
  const btc = (s) => fmtDec(s, 8, 8);
  let priceDp = 2;
  const price = (s) => fmtDec(s, priceDp, priceDp);
  const priceNum = (n) =>
    n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { minimumFractionDigits: priceDp, maximumFractionDigits: priceDp });
  const money = (n) => (n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
  let baseCode = 'BTC';
  let quoteCode = 'USD';
  // Sign as shown at 2 decimals: a value that rounds to 0.00 is neither gain nor loss.
  const shownSign = (s) => {
    const text = fmtDec(s, 2, 2);
    if (text === '—' || /^[0.,]*$/.test(text)) return 0;
    return text.startsWith('-') ? -1 : 1;
  };
  const isPos = (s) => s !== null && s !== undefined && shownSign(s) > 0;
  const signed = (s, f) => (isPos(s) ? '+' : '') + f(s);
  const pctNum = (n, dp = 2) => (n === null || n === undefined || !Number.isFinite(n) ? '—' : `${n.toFixed(dp)}%`);
  const signedPctNum = (n) => (n === null || n === undefined || !Number.isFinite(n) ? '—' : `${n > 0 ? '+' : ''}${n.toFixed(2)}%`);
  const int = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  const utc = (t) => new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19);
  // Lags and ages in human units, never negative (a clock a little ahead is no lag at all).
  function ms(n) {
    if (n === null || n === undefined || !Number.isFinite(n)) return '—';
    const v = Math.max(0, n);
    if (v < 999.5) return `${Math.round(v)} ms`;
    if (v < 59950) return `${(v / 1000).toFixed(1)} s`;
    if (v < 3570000) return `${Math.round(v / 60000)} min`;
    if (v < 86400000) return `${(v / 3600000).toFixed(1)} h`;
    return `${(v / 86400000).toFixed(1)} days`;
  }
  function intervalName(secs) {
    if (secs % 86400 === 0) return `${secs / 86400}d`;
    if (secs % 3600 === 0) return `${secs / 3600}h`;
    if (secs % 60 === 0) return `${secs / 60}m`;
    return `${secs}s`;
  }
  // A fraction string ("0.004") as a percentage ("0.4%"), exactly.
  function fractionPct(s) {
    const n = Number(s);
    return Number.isFinite(n) ? `${parseFloat((n * 100).toPrecision(10))}%` : String(s);
  }

  // kind: 'pos' (green), 'neg' (red), '' (neither), or absent to leave the colour alone.
  function setText(el, text, kind) {
    el.textContent = text;
    if (kind !== undefined) {
      el.classList.toggle('pos', kind === 'pos');
      el.classList.toggle('neg', kind === 'neg');
    }
  }
  const tone = (s) => ({ 1: 'pos', '-1': 'neg' })[shownSign(s)] || '';
  const toneNum = (n) => (n > 0 ? 'pos' : n < 0 ? 'neg' : '');

  // ---- Tabs.
  const tabs = Array.from(document.querySelectorAll('.tab'));
  let followLatest = true; // was the price chart showing the newest bar when its tab was left?
  let catchUp = false; // scroll to the newest bar once the chart has its size back
  function showTab(name) {
    const leaving = document.querySelector('.tab.active');
    if (leaving && leaving.dataset.tab === 'summary' && name !== 'summary' && nt.barCount > 0) {
      const range = priceChart.timeScale().getVisibleLogicalRange();
      followLatest = catchUp || !range || range.to >= nt.barCount - 1; // catchUp: not yet redrawn
    }
    for (const tab of tabs) {
      const on = tab.dataset.tab === name;
      tab.classList.toggle('active', on);
      tab.setAttribute('aria-selected', String(on));
      $(`tab-${tab.dataset.tab}`).classList.toggle('active', on);
    }
    // A chart in a hidden tab has no width: once shown (and resized), fit its whole history.
    // The price chart, hidden, cannot follow new bars: back in view, it catches up if it was.
    const overview = { account: () => equityChart, performance: () => drawdownChart }[name];
    if (overview) requestAnimationFrame(() => requestAnimationFrame(() => overview().timeScale().fitContent()));
    if (name === 'summary' && followLatest) {
      catchUp = true;
      requestAnimationFrame(() => requestAnimationFrame(() => priceChart.timeScale().scrollToRealTime()));
    }
    try {
      sessionStorage.setItem('nanotrader.tab', name);
    } catch (_) {
      /* not kept: fine */
    }
  }
  for (const tab of tabs) tab.addEventListener('click', () => showTab(tab.dataset.tab));
  try {
    const saved = sessionStorage.getItem('nanotrader.tab');
    if (saved && $(`tab-${saved}`)) showTab(saved);
  } catch (_) {
    /* default tab */
  }

  // ---- Charts. autoSize follows the container, also when a hidden tab is shown.
  const chartBase = {
    autoSize: true,
    layout: {
      background: { type: 'solid', color: COLORS.bg },
      textColor: COLORS.text,
      fontSize: 11,
      fontFamily: '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Ubuntu, sans-serif',
      attributionLogo: true, // required by the library's licence
      panes: { separatorColor: COLORS.border, separatorHoverColor: 'rgba(41, 98, 255, 0.3)' },
    },
    grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
    rightPriceScale: { borderColor: COLORS.border },
    timeScale: { borderColor: COLORS.border, timeVisible: true, secondsVisible: false, rightOffset: 4 },
    crosshair: { mode: LC.CrosshairMode.Normal },
  };

  const priceChart = LC.createChart($('price-chart'), chartBase);
  const candles = priceChart.addSeries(LC.CandlestickSeries, {
    upColor: COLORS.up,
    downColor: COLORS.down,
    borderUpColor: COLORS.up,
    borderDownColor: COLORS.down,
    wickUpColor: COLORS.up,
    wickDownColor: COLORS.down,
  });
  // Volume in its own pane, below the price.
  const volume = priceChart.addSeries(
    LC.HistogramSeries,
    { priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: false },
    1,
  );
  priceChart.panes()[0].setStretchFactor(4);
  priceChart.panes()[1].setStretchFactor(1);
  const markers = LC.createSeriesMarkers(candles, []);
  priceChart.timeScale().subscribeSizeChange((width) => {
    if (width > 0 && catchUp) {
      catchUp = false;
      priceChart.timeScale().scrollToRealTime();
    }
  });
  let lineSeries = [];

  const equityChart = LC.createChart($('equity-chart'), chartBase);
  let equitySeries = null;
  let holdSeries = null; // buy and hold, beside the equity (as in the backtest report)

  const drawdownChart = LC.createChart($('drawdown-chart'), chartBase);
  const drawdown = drawdownChart.addSeries(LC.BaselineSeries, {
    baseValue: { type: 'price', price: 0 },
    topLineColor: COLORS.down,
    bottomLineColor: COLORS.down,
    topFillColor1: 'rgba(0, 0, 0, 0)',
    topFillColor2: 'rgba(0, 0, 0, 0)',
    bottomFillColor1: 'rgba(239, 83, 80, 0.08)',
    bottomFillColor2: 'rgba(239, 83, 80, 0.35)',
    lineWidth: 2,
    priceLineVisible: false,
    priceFormat: { type: 'custom', minMove: 0.01, formatter: (v) => `${v.toFixed(2)}%` },
  });
  let equityPeak = null;

  // ---- State of the page (the chart holds the bars themselves).
  let meta = null;
  let status = null;
  let lastBarTime = null; // the newest time on the chart (closed or forming)
  let markerList = [];
  const fillsByBar = new Map(); // bar time -> fills on it, for the legend
  let lastClosed = null; // the newest closed bar, for the legend when the cursor is away
  let forming = null;
  let latencyMs = null; // wall clock now minus the frame's sent_ms
  let lastGapText = '';

  const barTime = (t) => (meta ? Math.floor(t / meta.interval_secs) * meta.interval_secs : t);
  const candle = (b) => ({ time: b.t, open: b.o, high: b.h, low: b.l, close: b.c });
  const vol = (b) => ({ time: b.t, value: b.v, color: b.c >= b.o ? COLORS.upVolume : COLORS.downVolume });
  const linePoint = (b, i) => (b.lines[i] === null || b.lines[i] === undefined ? { time: b.t } : { time: b.t, value: b.lines[i] });
  const eqPoint = (b) => ({ time: b.t, value: b.eq });
  // Null until the run's first close: a gap (whitespace) on the chart, not a zero.
  const holdPoint = (b) => (typeof b.bh === 'number' && Number.isFinite(b.bh) ? { time: b.t, value: b.bh } : { time: b.t });
  // Drawdown against the highest equity seen so far (a forming bar can raise the peak: fine).
  function ddPoint(b) {
    equityPeak = equityPeak === null ? b.eq : Math.max(equityPeak, b.eq);
    return { time: b.t, value: equityPeak > 0 ? (b.eq / equityPeak - 1) * 100 : 0 };
  }

  const priceFormat = () => ({ type: 'price', precision: priceDp, minMove: 10 ** -priceDp });
  function applyPriceFormat() {
    candles.applyOptions({ priceFormat: priceFormat() });
    for (const s of lineSeries) s.applyOptions({ priceFormat: priceFormat() });
  }

  function setupLines(names) {
    for (const s of lineSeries) priceChart.removeSeries(s);
    lineSeries = names.map((name, i) =>
      priceChart.addSeries(LC.LineSeries, {
        color: COLORS.lines[i % COLORS.lines.length],
        lineWidth: 2,
        title: name,
        priceLineVisible: false,
        lastValueVisible: false,
        crosshairMarkerVisible: false,
        priceFormat: priceFormat(),
      }),
    );
    const legend = $('lines-legend');
    legend.replaceChildren();
    names.forEach((name, i) => {
      const item = document.createElement('span');
      item.className = `legend-item line-${i % COLORS.lines.length}`;
      const label = document.createElement('span');
      label.textContent = `${name} `;
      const value = document.createElement('b');
      value.id = `lg-line-${i}`;
      value.textContent = '—';
      item.append(label, value);
      legend.append(item);
    });
  }

  function setupEquity(initialCash) {
    if (equitySeries) equityChart.removeSeries(equitySeries);
    if (holdSeries) equityChart.removeSeries(holdSeries);
    holdSeries = equityChart.addSeries(LC.LineSeries, {
      color: COLORS.hold,
      lineWidth: 1,
      priceLineVisible: false,
      lastValueVisible: true,
      title: 'Buy and hold',
    });
    // Green above the starting cash, red below: the run's result at a glance.
    equitySeries = equityChart.addSeries(LC.BaselineSeries, {
      baseValue: { type: 'price', price: Number(initialCash) || 0 },
      topLineColor: COLORS.up,
      topFillColor1: 'rgba(38, 166, 154, 0.28)',
      topFillColor2: 'rgba(38, 166, 154, 0.04)',
      bottomLineColor: COLORS.down,
      bottomFillColor1: 'rgba(239, 83, 80, 0.04)',
      bottomFillColor2: 'rgba(239, 83, 80, 0.28)',
      lineWidth: 2,
      priceLineVisible: false,
    });
  }

  // Fill markers sit on the bar holding the fill's time.
  function fillMarker(f) {
    const buy = f.side === 'buy';
    return {
      time: barTime(f.t),
      position: buy ? 'belowBar' : 'aboveBar',
      shape: buy ? 'arrowUp' : 'arrowDown',
      color: buy ? COLORS.up : COLORS.down,
      id: String(f.order_id),
    };
  }

  function showLegend(bar) {
    $('lg-o').textContent = bar ? priceNum(bar.o) : '—';
    $('lg-h').textContent = bar ? priceNum(bar.h) : '—';
    $('lg-l').textContent = bar ? priceNum(bar.l) : '—';
    $('lg-c').textContent = bar ? priceNum(bar.c) : '—';
    $('lg-v').textContent = bar ? bar.v.toLocaleString('en-US', { maximumFractionDigits: 4 }) : '—';
    lineSeries.forEach((_, i) => {
      const el = $(`lg-line-${i}`);
      if (el) el.textContent = bar ? priceNum(bar.lines ? bar.lines[i] : null) : '—';
    });
    $('lg-c').classList.toggle('pos', !!bar && bar.c >= bar.o);
    $('lg-c').classList.toggle('neg', !!bar && bar.c < bar.o);
  }

  // Crosshair legend: the hovered bar's OHLCV and lines, and its fills if any.
  let hovering = false;
  priceChart.subscribeCrosshairMove((param) => {
    hovering = !!(param && param.time !== undefined);
    if (!hovering || !param.seriesData) {
      showLegend(forming || lastClosed);
      $('fill-legend').textContent = '';
      return;
    }
    const c = param.seriesData.get(candles);
    const v = param.seriesData.get(volume);
    const lines = lineSeries.map((s) => {
      const p = param.seriesData.get(s);
      return p && p.value !== undefined ? p.value : null;
    });
    showLegend(c ? { o: c.open, h: c.high, l: c.low, c: c.close, v: v ? v.value : 0, lines } : null);
    const fills = fillsByBar.get(param.time) || [];
    $('fill-legend').textContent = fills.map((f) => `${f.side === 'buy' ? 'Buy' : 'Sell'} ${btc(f.qty)} @ ${price(f.price)}`).join(' · ');
  });

  // The equity legend: the strategy and buy and hold at the hovered bar, else the latest.
  function showEquityLegend(eq, bh) {
    const initial = meta ? Number(meta.initial_cash) : NaN;
    setText($('lg-equity'), money(eq), Number.isFinite(eq) && Number.isFinite(initial) ? toneNum(eq - initial) : '');
    setText($('lg-hold'), money(bh));
  }
  function showLatestEquity() {
    const bar = forming || lastClosed;
    showEquityLegend(bar ? bar.eq : null, bar && typeof bar.bh === 'number' ? bar.bh : null);
    const initial = meta ? Number(meta.initial_cash) : NaN;
    const hold = bar && typeof bar.bh === 'number' && initial > 0 ? (bar.bh / initial - 1) * 100 : null;
    setText($('p-hold'), signedPctNum(hold), toneNum(hold || 0));
  }
  let hoveringEquity = false;
  equityChart.subscribeCrosshairMove((param) => {
    hoveringEquity = !!(param && param.time !== undefined && param.seriesData);
    if (!hoveringEquity) {
      showLatestEquity();
      return;
    }
    const e = param.seriesData.get(equitySeries);
    const h = param.seriesData.get(holdSeries);
    showEquityLegend(e && e.value !== undefined ? e.value : null, h && h.value !== undefined ? h.value : null);
  });

  // ---- Applying what the server sends.
  function applyMeta(m) {
    const linesChanged = !meta || JSON.stringify(meta.lines) !== JSON.stringify(m.lines);
    const cashChanged = !meta || meta.initial_cash !== m.initial_cash;
    meta = m;
    if (linesChanged) setupLines(m.lines || []);
    if (cashChanged) setupEquity(m.initial_cash);
    $('pair').textContent = m.pair;
    $('pair-picker').value = m.pair;
    [baseCode, quoteCode] = String(m.pair || 'BTC/USD').split('/');
    quoteCode = quoteCode || 'USD';
    $('equity-title').textContent = `Equity (${quoteCode}, at each bar's close)`;
    // What the source is (live, replay 60x, simulation) comes with the status.
    $('source-badge').title = `Market data: ${m.data || m.source}`;
    $('paper-badge').hidden = !m.paper;
    // Real orders: unmistakable.
    $('live-badge').hidden = !!m.paper;
    $('chart-title').textContent = `${m.pair} · ${intervalName(m.interval_secs)} · UTC · ${m.strategy}`;
    const assumptions = `${m.paper ? 'Paper trading' : 'Live trading'} · fee ${fractionPct(m.fee_rate)} per fill · sizing ${m.sizing} · start ${usd(m.initial_cash)} ${quoteCode}`;
    $('s-assumptions').textContent = assumptions;
    $('account-note').textContent = `${assumptions}. P&L figures are net of fees.`;
    $('perf-note').textContent =
      `${m.strategy} on ${m.pair} ${intervalName(m.interval_secs)} bars. ${assumptions}. Sharpe and Sortino are annualised for a 24/7 market at the bar interval, ` +
      'and shown only over 30 days of bars or 30 round trips. Buy and hold: all the starting cash in at the first close, one fee.';
    $('run-info').textContent = `run ${m.run_id} · ${m.strategy} · ${m.data || m.source}`;
  }

  function applySnapshot(s) {
    applyMeta(s.meta);
    // A snapshot comes on every (re)connect: the pairs may have changed with the process.
    loadPairs();
    const bars = s.bars.slice();
    if (s.forming && (bars.length === 0 || s.forming.t > bars[bars.length - 1].t)) bars.push(s.forming);
    candles.setData(bars.map(candle));
    volume.setData(bars.map(vol));
    lineSeries.forEach((series, i) => series.setData(bars.map((b) => linePoint(b, i))));
    equitySeries.setData(bars.map(eqPoint));
    const hold = bars.map(holdPoint);
    holdSeries.setData(hold);
    nt.holdPoints = hold.filter((p) => p.value !== undefined).length;
    equityPeak = null;
    drawdown.setData(bars.map(ddPoint));
    lastBarTime = bars.length ? bars[bars.length - 1].t : null;
    lastClosed = s.bars.length ? s.bars[s.bars.length - 1] : null;
    forming = s.forming && bars[bars.length - 1] === s.forming ? s.forming : null;
    $('forming-tag').hidden = !forming;
    nt.barCount = bars.length;

    // Fills: the table, the recent list and the markers are rebuilt from the snapshot.
    $('trades-body').replaceChildren();
    $('recent-fills').replaceChildren();
    fillsByBar.clear();
    markerList = [];
    for (const f of s.fills) addFill(f, false);
    markers.setMarkers(markerList);
    nt.markerCount = markerList.length;
    updateFillsEmpty();

    applyAccount(s.account, s.perf);
    applyStatus(s.status);
    // Signals come only as changes: until one does, the position tells the side the bot is on.
    const holding = /[1-9]/.test(String(s.account.position)) && !String(s.account.position).startsWith('-');
    setText($('signal'), holding ? 'long' : 'flat', holding ? 'pos' : '');
    showLegend(forming || lastClosed);
    showLatestEquity();

    nt.lastSeq = s.seq;
    nt.snapshots += 1;
    if (nt.snapshots === 1 && bars.length > 0) {
      // Recent bars at a readable width rather than the whole history squeezed in.
      const shown = Math.max(60, Math.min(bars.length, INITIAL_VISIBLE_BARS));
      priceChart.timeScale().setVisibleLogicalRange({ from: bars.length - shown, to: bars.length + 4 });
      equityChart.timeScale().fitContent();
      drawdownChart.timeScale().fitContent();
    }
    document.body.dataset.state = 'live';
  }

  // Appends (or replaces the same time): the only way the chart changes between snapshots.
  function applyBar(bar, closed) {
    if (lastBarTime !== null && bar.t < lastBarTime) return; // older than the chart: nothing to draw
    const appended = lastBarTime === null || bar.t > lastBarTime;
    candles.update(candle(bar));
    volume.update(vol(bar));
    lineSeries.forEach((series, i) => series.update(linePoint(bar, i)));
    equitySeries.update(eqPoint(bar));
    const hold = holdPoint(bar);
    holdSeries.update(hold);
    if (appended && hold.value !== undefined) nt.holdPoints += 1;
    drawdown.update(ddPoint(bar));
    lastBarTime = bar.t;
    if (appended) nt.barCount += 1;
    if (closed) {
      lastClosed = bar;
      forming = null;
    } else {
      forming = bar;
    }
    $('forming-tag').hidden = !forming;
  }

  function addFill(f, live) {
    const row = document.createElement('tr');
    row.dataset.orderId = String(f.order_id);
    row.className = f.side === 'buy' ? 'buy' : 'sell';
    const cells = [
      ['', 'time'],
      [f.side === 'buy' ? 'Buy' : 'Sell', 'side'],
      [btc(f.qty), 'num'],
      [price(f.price), 'num'],
      [usd(f.fee), 'num'],
      [usd(f.cash_after), 'num'],
      [btc(f.position_after), 'num'],
      [f.reason || '—', 'muted'],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      row.append(td);
    }
    // Date and clock apart, so a phone can stack them.
    const [day, clock] = utc(f.t).split(' ');
    const daySpan = document.createElement('span');
    daySpan.className = 'day';
    daySpan.textContent = `${day} `;
    const clockSpan = document.createElement('span');
    clockSpan.textContent = clock;
    row.cells[0].replaceChildren(daySpan, clockSpan);
    row.cells[4].title = `${f.fee} ${quoteCode}`;
    const body = $('trades-body');
    body.prepend(row); // newest first
    while (body.rows.length > TABLE_ROWS) body.deleteRow(-1);

    const li = document.createElement('li');
    li.className = f.side === 'buy' ? 'buy' : 'sell';
    const side = document.createElement('span');
    side.className = 'side';
    side.textContent = f.side === 'buy' ? 'BUY' : 'SELL';
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = `${btc(f.qty)} @ ${price(f.price)}`;
    const when = document.createElement('span');
    when.className = 'when';
    when.textContent = utc(f.t).slice(11, 16);
    li.title = `${utc(f.t)} UTC · ${f.side} ${f.qty} ${baseCode} at ${f.price} ${quoteCode} · fee ${f.fee} ${quoteCode}`;
    li.append(side, what, when);
    const recent = $('recent-fills');
    recent.prepend(li);
    while (recent.children.length > RECENT_FILLS) recent.lastElementChild.remove();

    const t = barTime(f.t);
    if (!fillsByBar.has(t)) fillsByBar.set(t, []);
    fillsByBar.get(t).push(f);
    markerList.push(fillMarker(f));
    if (live) {
      markers.setMarkers(markerList);
      nt.markerCount = markerList.length;
      updateFillsEmpty();
      row.classList.add('fresh');
      li.classList.add('fresh');
    }
  }

  function updateFillsEmpty() {
    const n = $('trades-body').rows.length;
    $('trades-empty').hidden = n > 0;
    $('recent-empty').hidden = n > 0;
    $('trades-note').textContent =
      n >= TABLE_ROWS ? `Showing the latest ${TABLE_ROWS} fills; every fill of the run is at /api/fills, a page at a time.` : '';
  }

  const ACCOUNT_FORMAT = {
    cash: (s) => [`${usd(s)} ${quoteCode}`, ''],
    position: (s) => [`${btc(s)} ${baseCode}`, ''],
    avg_entry: (s) => [s === null ? '—' : price(s), ''],
    last_price: (s) => [s === null ? '—' : price(s), ''],
    equity: (s) => [`${usd(s)} ${quoteCode}`, ''],
    realized_pnl: (s) => [signed(s, usd), tone(s)],
    unrealized_pnl: (s) => [signed(s, usd), tone(s)],
    fees_paid: (s) => [usd(s), ''],
    return_pct: (s) => [`${signed(s, (x) => fmtDec(x, 2, 2))}%`, tone(s)],
  };
  const accountFields = Array.from(document.querySelectorAll('#account [data-field]'));

  function applyAccount(a, perf) {
    for (const el of accountFields) {
      const name = el.dataset.field;
      const raw = a[name];
      const [text, t] = ACCOUNT_FORMAT[name](raw === undefined ? null : raw);
      setText(el, text, t);
      // The exact string received, for checks against /api/account (absent for null).
      if (raw === null || raw === undefined) el.removeAttribute('data-raw');
      else el.setAttribute('data-raw', String(raw));
    }
    $('account').dataset.ts = String(a.ts);
    showPrice(a.last_price);

    setText($('s-equity'), `${usd(a.equity)}`);
    setText($('s-return'), `${signed(a.return_pct, (x) => fmtDec(x, 2, 2))}%`, tone(a.return_pct));
    setText($('s-position'), `${btc(a.position)} ${baseCode}`);
    setText($('s-avg'), a.avg_entry === null ? '—' : price(a.avg_entry));
    setText($('s-upnl'), signed(a.unrealized_pnl, usd), tone(a.unrealized_pnl));
    setText($('s-rpnl'), signed(a.realized_pnl, usd), tone(a.realized_pnl));
    setText($('s-cash'), usd(a.cash));
    if (perf) applyPerf(perf);
  }

  function applyPerf(p) {
    setText($('p-return'), signedPctNum(p.return_pct), toneNum(p.return_pct));
    setText($('p-dd'), p.max_drawdown_pct ? `-${pctNum(p.max_drawdown_pct)}` : pctNum(p.max_drawdown_pct), p.max_drawdown_pct > 0 ? 'neg' : '');
    setText($('p-win'), pctNum(p.win_rate_pct));
    setText($('p-trades'), int(p.trades));
    setText($('p-rt'), int(p.round_trips));
    setText($('p-exposure'), pctNum(p.exposure_pct));
    // Sharpe and Sortino only over a span that carries them (the server says, and why not).
    const meaningful = p.ratios_meaningful !== false;
    const ratio = (v) => (!meaningful || v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(2));
    setText($('p-sharpe'), ratio(p.sharpe), meaningful ? toneNum(p.sharpe || 0) : '');
    setText($('p-sortino'), ratio(p.sortino), meaningful ? toneNum(p.sortino || 0) : '');
    const why = meaningful ? '' : `— (${p.ratios_reason || 'the span is too short'})`;
    $('p-sharpe').title = why;
    $('p-sortino').title = why;
    $('ratios-note').hidden = !why;
    $('ratios-note').textContent = why ? `Sharpe and Sortino: ${why}.` : '';
  }

  // The account moves with every bar, the status once a second: the header shows the newer.
  function showPrice(last) {
    if (last === null || last === undefined) return;
    const text = price(last);
    $('price').textContent = text;
    document.title = meta ? `${text} ${meta.pair} · nanotrader` : 'nanotrader';
  }

  function badge(el, text, kind) {
    el.textContent = text;
    el.className = `badge${kind ? ` badge-${kind}` : ''}`;
  }

  function applyStatus(s) {
    status = s;
    if (Number.isInteger(s.price_decimals) && s.price_decimals !== priceDp) {
      priceDp = s.price_decimals;
      applyPriceFormat();
    }
    showPrice(s.last_price);
    setText($('change'), signedPctNum(s.change_pct), toneNum(s.change_pct || 0));

    // Only an exchange's feed is live; a replay or a simulation says so, with its speed, and
    // shows the data's own time instead of a lag behind the wall clock.
    const liveFeed = s.mode === undefined || s.mode === 'live';
    const modeLabel = liveFeed ? `live · ${meta ? meta.source : 'feed'}` : [s.mode, s.speed].filter(Boolean).join(' ');
    badge($('source-badge'), modeLabel, liveFeed ? 'ok' : 'replay');
    const feedKind = { connected: 'ok', disconnected: 'bad', stale: 'warn', ended: 'muted' }[s.feed] || 'warn';
    $('feed-badge').hidden = !liveFeed;
    badge($('feed-badge'), `feed ${s.feed}`, feedKind);
    $('feed-badge').title = s.feed_reason ? `Market data feed: ${s.feed_reason}` : 'Market data feed';
    const dataTime = s.data_time === null || s.data_time === undefined ? '—' : utc(s.data_time);
    if (liveFeed) {
      badge($('lag-badge'), `lag ${ms(s.feed_lag_ms)}`, s.feed_lag_ms > 5000 ? 'warn' : '');
      $('lag-badge').title = "Feed lag: time since the exchange's last message";
    } else {
      badge($('lag-badge'), `data ${dataTime} UTC`, '');
      $('lag-badge').title = `The data's own time (its last bar): a ${s.mode} has no lag behind the wall clock`;
    }
    const paused = s.trading === 'paused';
    // A live broker's rail (venue.halted) or the protections (halted, paper too).
    const halted = !!(s.halted || (s.venue && s.venue.halted));
    if (halted) badge($('trading-badge'), 'trading halted', 'bad');
    else badge($('trading-badge'), paused ? 'trading paused' : 'trading active', paused ? 'warn' : 'ok');
    setText($('control-state'), paused ? 'paused' : halted ? 'halted' : s.trading);
    $('control-state').classList.toggle('paused', paused || halted);

    const live = s.run === 'running';
    $('btn-pause').disabled = !live || paused;
    // Resume also lifts a live broker's risk halt.
    $('btn-resume').disabled = !live || !(paused || halted);
    $('btn-flatten').disabled = !live;
    applyVenue(s.venue || null, live);
    applyHalt(s.halted || (s.venue && s.venue.halted) || null);

    if (liveFeed) setText($('h-feed'), s.feed, { connected: 'pos', disconnected: 'neg', stale: 'neg' }[s.feed] || '');
    else setText($('h-feed'), `${modeLabel}${s.feed === 'ended' ? ' · ended' : ''}`, '');
    setText($('h-run'), s.run, s.run === 'failed' ? 'neg' : '');
    setText($('h-eps'), s.events_per_sec === null ? '—' : s.events_per_sec.toLocaleString('en-US', { maximumFractionDigits: 1 }));
    setText($('h-bars'), int(s.bars));
    setText($('h-fills'), int(s.fills));
    setText($('h-reconnects'), int(s.reconnects), s.reconnects > 0 ? 'neg' : '');
    setText($('h-gaps'), int(s.gaps), s.gaps > 0 ? 'neg' : '');
    setText($('h-backfilled'), int(s.backfilled_trades));
    setText($('h-store-lag'), int(s.store_lag_steps), s.store_lag_steps > 100 ? 'neg' : '');
    setText($('h-store'), s.store || '—', s.store === 'failing' ? 'neg' : '');
    $('h-store').title = s.store_error || '';
    setText($('h-feed-lag'), liveFeed ? ms(s.feed_lag_ms) : `— (${s.mode})`);
    setText($('h-data-time'), dataTime);
    setText($('h-clients'), int(s.clients));
    setText($('h-skipped'), int(s.skipped_events || 0), s.skipped_events > 0 ? 'neg' : '');
    const feedNote = liveFeed
      ? s.feed_reason
        ? `Feed: ${s.feed_reason}.`
        : `Feed ${s.feed}; run ${s.run}.`
      : `A ${modeLabel} of ${meta ? meta.data : 'recorded data'}, not a live feed: its data time is ${dataTime} UTC; run ${s.run}.`;
    $('health-note').textContent = [feedNote, lastGapText].join(' ');
    updateBanner();
  }

  // ---- A live broker's side at the exchange: balances, latest orders, a risk halt. Paper has
  // none, and then none of it shows.
  let venueDrawn; // the venue last drawn, as JSON (the status repeats it every second)
  // Kraken's asset names (XXBT, ZUSD, XETH) as people say them.
  const ASSET_NAMES = { XXBT: 'BTC', XBT: 'BTC', XXDG: 'DOGE', XDG: 'DOGE' };
  const assetName = (a) => ASSET_NAMES[a] || (/^[XZ][A-Z]{3}$/.test(a) ? a.slice(1) : a);
  // Cash to the cent, coins to 8 places (trailing zeros dropped): the exact string is the title.
  const FIAT = /^(USD|EUR|GBP|CAD|JPY|CHF|AUD|USDT|USDC|DAI)$/;
  const balance = (asset, amount) => (FIAT.test(assetName(asset)) ? fmtDec(amount, 2, 2) : fmtDec(amount, 0, 8));
  // Client ids are UUIDs: their first group tells them apart, the whole is in the title.
  const shortId = (id) => (id.length > 12 ? `${id.slice(0, 8)}…` : id);
  const ORDER_STATE_TONE = { filled: 'pos', rejected: 'neg', canceled: 'neg', cancelled: 'neg', expired: 'neg', unknown: 'neg' };

  // The halt banner: why new entries are halted (a live rail or a protection), with a Resume.
  function applyHalt(reason) {
    $('halt-banner').hidden = !reason;
    $('halt-text').textContent = reason ? `Trading halted: ${reason}` : '';
  }

  function applyVenue(v, running) {
    const drawn = v ? JSON.stringify(v) : null;
    $('btn-halt-resume').disabled = !running;
    if (drawn === venueDrawn) return;
    venueDrawn = drawn;
    $('venue-card').hidden = !v;
    $('orders-tab').hidden = !v;
    if (!v) {
      const active = document.querySelector('.tab.active');
      if (active && active.dataset.tab === 'orders') showTab('summary');
      return;
    }
    setText($('venue-broker'), v.broker);
    // The stop rule in use: placed at the exchange (--stops exchange) or watched by the bot.
    $('venue-stops').hidden = !v.stops;
    $('venue-stops').textContent = v.stops ? `Stops: ${v.stops}` : '';
    $('venue-note').textContent = v.live
      ? 'Real orders with real money. Balances as the exchange last reported them.'
      : 'Validation only: the exchange checks each order and places none. Balances as it last reported them.';

    const list = $('venue-balances');
    list.replaceChildren();
    const assets = Object.keys(v.balances || {});
    for (const asset of assets) {
      const amount = v.balances[asset];
      const dt = document.createElement('dt');
      dt.textContent = assetName(asset);
      dt.title = asset;
      const dd = document.createElement('dd');
      dd.textContent = balance(asset, amount);
      dd.title = `${amount} ${asset}`;
      dd.dataset.asset = asset;
      dd.dataset.raw = amount; // the exact string received
      list.append(dt, dd);
    }
    if (!assets.length) {
      const dt = document.createElement('dt');
      dt.textContent = 'No balances reported yet.';
      list.append(dt);
    }

    const body = $('orders-body');
    body.replaceChildren();
    for (const o of v.orders || []) {
      const row = document.createElement('tr');
      row.dataset.clOrdId = o.cl_ord_id;
      row.className = o.side === 'buy' ? 'buy' : 'sell';
      const cells = [
        [shortId(o.cl_ord_id), 'id', o.cl_ord_id],
        [o.txid || '—', 'id', o.txid || 'not known yet'],
        [utc(o.t), '', ''],
        [o.side === 'buy' ? 'Buy' : 'Sell', 'side', ''],
        [o.order_type, '', ''],
        [btc(o.volume), 'num', o.volume],
        [btc(o.filled), 'num', o.filled],
        [o.limit_price === null || o.limit_price === undefined ? '—' : price(o.limit_price), 'num', o.limit_price || ''],
        [o.state, `state ${ORDER_STATE_TONE[o.state] || ''}`, ''],
        [o.detail || '—', 'muted', o.detail || ''],
      ];
      for (const [text, cls, title] of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        if (title) td.title = title;
        row.append(td);
      }
      body.append(row); // newest first, as sent
    }
    $('orders-empty').hidden = body.rows.length > 0;
    $('orders-note').textContent = `The run's latest orders at ${v.broker}, newest first, as the exchange last reported them.`;
  }

  function applyDelta(d) {
    for (const e of d.events) {
      switch (e.k) {
        case 'bar':
          applyBar(e.bar, e.closed);
          break;
        case 'fill':
          addFill(e.fill, true);
          break;
        case 'account':
          applyAccount(e.account, e.perf);
          break;
        case 'status':
          applyStatus(e.status);
          break;
        case 'signal':
          setText($('signal'), e.signal === 1 ? 'long' : 'flat', e.signal === 1 ? 'pos' : '');
          break;
        case 'gap':
          lastGapText = `Last gap: ${e.missing} bars missing from ${utc(e.from)} to ${utc(e.to)} UTC (left empty, not drawn as flat bars).`;
          break;
        default:
          break; // newer servers may add events: ignore what we do not know
      }
    }
    if (typeof d.sent_ms === 'number') latencyMs = Date.now() - d.sent_ms;
    if (!hovering) showLegend(forming || lastClosed);
    if (!hoveringEquity) showLatestEquity();
    if (nt.barCount > MAX_CHART_BARS) resync();
  }

  // ---- The WebSocket: reconnect with back-off; every (re)connection starts with a snapshot.
  const conn = { sock: null, state: 'connecting', attempt: 0, retryAt: 0, timer: null, lastMessage: 0, authProblem: false, everOpen: false };

  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws${pairQuery}`;
  }

  function connect() {
    clearTimeout(conn.timer);
    conn.state = conn.everOpen ? 'reconnecting' : 'connecting';
    updateConnection();
    let sock;
    try {
      sock = new WebSocket(wsUrl(), token ? ['nanotrader.v1', `bearer.${token}`] : ['nanotrader.v1']);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    conn.sock = sock;
    sock.onopen = () => {
      if (conn.sock !== sock) return;
      conn.state = 'open';
      conn.everOpen = true;
      conn.lastMessage = Date.now();
      conn.authProblem = false;
      updateConnection();
    };
    sock.onmessage = (ev) => {
      if (conn.sock !== sock) return;
      conn.lastMessage = Date.now();
      nt.frames += 1;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (_) {
        return; // not ours
      }
      if (frame.type === 'snapshot') {
        applySnapshot(frame);
        conn.attempt = 0;
      } else if (frame.type === 'delta') {
        if (nt.lastSeq === null) return; // before the snapshot: cannot happen, but be safe
        if (frame.seq <= nt.lastSeq) return; // already in the snapshot
        if (frame.seq !== nt.lastSeq + 1) {
          resync(); // a frame went missing: only a fresh snapshot puts the page right
          return;
        }
        nt.lastSeq = frame.seq;
        applyDelta(frame);
      }
      updateConnection();
    };
    sock.onclose = () => {
      if (conn.sock !== sock) return;
      conn.sock = null;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** conn.attempt) * (0.8 + Math.random() * 0.4);
    conn.attempt += 1;
    conn.state = 'reconnecting';
    conn.retryAt = Date.now() + delay;
    updateConnection();
    clearTimeout(conn.timer);
    conn.timer = setTimeout(connect, delay);
    // A refused WebSocket tells the page nothing: ask the API whether the token is the reason.
    if (conn.attempt >= 2) checkAuth();
  }

  function resync() {
    const sock = conn.sock;
    conn.sock = null;
    if (sock) sock.close(4000, 'resync');
    connect();
  }

  async function checkAuth() {
    try {
      const res = await fetch(`/api/status${pairQuery}`, { headers: authHeaders(), cache: 'no-store' });
      conn.authProblem = res.status === 401;
    } catch (_) {
      conn.authProblem = false; // the server is down, not refusing
    }
    updateBanner();
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra);
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  function updateConnection() {
    const kinds = { open: 'ok', connecting: 'muted', reconnecting: 'bad' };
    // The page's link to nanotrader, not the market: "live" is for an exchange feed only.
    badge($('ws-badge'), conn.state === 'open' ? 'streaming' : conn.state, kinds[conn.state]);
    updateBanner();
  }

  function updateBanner() {
    const banner = $('banner');
    let text = '';
    let kind = 'bad';
    const now = Date.now();
    if (conn.authProblem) {
      text = 'Access refused: this dashboard needs its access token (--web-token). Add #token=YOUR_TOKEN to the address and press Enter.';
    } else if (conn.state !== 'open' && conn.everOpen) {
      const secs = Math.max(0, Math.ceil((conn.retryAt - now) / 1000));
      const ended = status && status.run !== 'running' ? ' (the run had ended; the server may have stopped)' : '';
      text = `Disconnected from nanotrader${ended}. Reconnecting${secs > 0 ? ` in ${secs} s` : '…'} (attempt ${conn.attempt}); the figures below are frozen.`;
    } else if (conn.state !== 'open' && conn.attempt > 0) {
      const secs = Math.max(0, Math.ceil((conn.retryAt - now) / 1000));
      text = `Cannot reach nanotrader. Retrying${secs > 0 ? ` in ${secs} s` : '…'} (attempt ${conn.attempt}).`;
    } else if (status && status.store === 'failing') {
      text = `Store writes failing: ${status.store_error || 'unknown reason'}. nanotrader keeps following the market and retries; new fills appear once stored.`;
    } else if (status && status.feed === 'disconnected') {
      text = `Market feed disconnected${status.feed_reason ? `: ${status.feed_reason}` : ''}. nanotrader is reconnecting; prices may be stale.`;
    } else if (status && status.feed === 'stale') {
      kind = 'warn';
      text = `Market feed stale${status.feed_reason ? `: ${status.feed_reason}` : ''}. Prices may be out of date.`;
    } else if (status && status.run === 'failed') {
      text = `The run failed${status.feed_reason ? `: ${status.feed_reason}` : ''}. Showing its last state.`;
    } else if (status && status.run !== 'running') {
      kind = 'info';
      text = `The run is ${status.run}: no more market data. Showing its final state.`;
    } else if (conn.state === 'open' && nt.snapshots > 0 && now - conn.lastMessage > SILENT_WARN_MS) {
      kind = 'warn';
      text = `No update from nanotrader for ${Math.round((now - conn.lastMessage) / 1000)} s.`;
    }
    banner.hidden = !text;
    banner.className = `banner banner-${kind}`;
    if (banner.firstElementChild.textContent !== text) banner.firstElementChild.textContent = text;
    document.body.classList.toggle('offline', conn.state !== 'open' && conn.everOpen);
  }

  // Ages and countdowns move on their own; a silent open socket is replaced.
  setInterval(() => {
    const age = conn.lastMessage ? Date.now() - conn.lastMessage : null;
    $('h-age').textContent = age === null ? '—' : `${ms(age)} ago`;
    $('h-frames').textContent = int(nt.frames);
    $('h-resyncs').textContent = int(Math.max(0, nt.snapshots - 1));
    $('h-latency').textContent = ms(latencyMs);
    if (conn.state === 'open' && status && status.run === 'running' && age > SILENT_RECONNECT_MS) resync();
    updateBanner();
  }, 500);

  // ---- Controls.
  function setResult(kind, text) {
    const el = $('control-result');
    el.textContent = text;
    el.className = `control-result ${kind}`;
  }

  async function control(action) {
    setResult('pending', `${action}…`);
    try {
      const res = await fetch(`/api/control/${action}${pairQuery}`, {
        method: 'POST',
        headers: authHeaders({ 'X-Nanotrader-Control': '1', 'Content-Type': 'application/json' }),
        body: '{}',
        cache: 'no-store',
      });
      const text = await res.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch (_) {
        /* plain text answer */
      }
      if (!res.ok) throw new Error((body && body.error) || text || `HTTP ${res.status}`);
      setResult('ok', (body && body.message) || `${action}: done`);
    } catch (e) {
      setResult('error', `${action} failed: ${e.message}`);
    }
  }

  $('btn-pause').addEventListener('click', () => control('pause'));
  $('btn-resume').addEventListener('click', () => control('resume'));
  // The halt banner's own Resume: the same control (it lifts the halt and resumes a pause).
  $('btn-halt-resume').addEventListener('click', () => control('resume'));
  // Flatten sells everything: a second click within a few seconds confirms it.
  let flattenArmed = null;
  $('btn-flatten').addEventListener('click', () => {
    const btn = $('btn-flatten');
    if (flattenArmed) {
      clearTimeout(flattenArmed);
      flattenArmed = null;
      btn.textContent = 'Flatten';
      btn.classList.remove('armed');
      control('flatten');
      return;
    }
    btn.textContent = 'Confirm flatten';
    btn.classList.add('armed');
    flattenArmed = setTimeout(() => {
      flattenArmed = null;
      btn.textContent = 'Flatten';
      btn.classList.remove('armed');
    }, 4000);
  });

  // A token pasted into the address bar later (a fragment change does not reload the page).
  window.addEventListener('hashchange', () => {
    if (!takeTokenFromFragment()) return;
    conn.authProblem = false;
    conn.attempt = 0;
    resync();
  });

  // ---- The pair picker: shown when this process trades several pairs (never on the fleet
  // dashboard, whose address names a run). Picking one loads its board: `?pair=` in the
  // address, so a reload or a shared link shows the same pair.
  async function loadPairs() {
    if (fleetRun) return;
    let pairs = [];
    try {
      const res = await fetch('/api/pairs', { headers: authHeaders(), cache: 'no-store' });
      if (res.ok) pairs = (await res.json()).pairs || [];
    } catch (_) {
      return; // the server is down: the connection banner says so
    }
    const picker = $('pair-picker');
    picker.replaceChildren(
      ...pairs.map((p) => {
        const option = document.createElement('option');
        option.value = p.pair;
        option.textContent = p.pair;
        return option;
      }),
    );
    if (meta) picker.value = meta.pair;
    const several = pairs.length > 1;
    picker.hidden = !several;
    $('pair').hidden = several;
    nt.pairs = pairs.map((p) => p.pair);
  }
  $('pair-picker').addEventListener('change', (e) => {
    const params = new URLSearchParams(location.search);
    params.set('pair', e.target.value);
    location.search = `?${params}`;
  });

  connect();
})();
