// nanotrader backtest report: draws the page from the JSON in #report-data. Plain JS, no build
// step, no network: the chart library is inlined before this script. Every value is set with
// textContent; nothing from the data is parsed as HTML. Each section draws on its own, so a
// problem in one (reported on the console and at the top of the page) leaves the others intact.
'use strict';

(() => {
  const LC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);

  const COLORS = {
    up: '#26a69a',
    down: '#ef5350',
    hold: '#5b86ff',
    lines: ['#f0b90b', '#5b86ff', '#e040fb', '#00bcd4'],
    grid: '#1c2030',
    border: '#2a2e39',
    text: '#b2b5be',
    bg: '#131722',
  };
  // Heatmap colours from worst to best (red, amber, yellow, green, teal).
  const SCALE = [
    [0, [239, 83, 80]],
    [0.25, [240, 138, 93]],
    [0.5, [227, 197, 103]],
    [0.75, [124, 192, 138]],
    [1, [38, 166, 154]],
  ];
  // The heatmap writes values into its cells up to this many columns.
  const HEATMAP_TEXT_COLUMNS = 24;

  // What the browser test reads.
  const state = {
    ready: false,
    errors: [],
    timings: {}, // milliseconds per section
    candles: 0,
    lines: 0,
    markers: 0,
    equityPoints: 0,
    buyHoldPoints: 0,
    drawdownPoints: 0,
    summaryRows: 0,
    assumptions: 0,
    heatmapCells: 0,
    heatmapEmptyCells: 0,
    topRows: 0,
    gridRows: 0,
    wfFolds: 0,
    wfPoints: 0,
    wfWarnings: 0,
    fillRows: 0,
  };
  window.__report = state;
  // The charts by name, for the browser test (and a curious reader's console).
  const charts = {};
  window.__reportCharts = charts;

  function report(section, error) {
    const message = `${section}: ${error && error.message ? error.message : error}`;
    state.errors.push(message);
    console.error(`report: ${message}`, error);
    const box = $('load-error');
    box.hidden = false;
    box.textContent = `Part of this report could not be drawn (${state.errors.join('; ')}).`;
  }

  function section(name, draw) {
    const started = performance.now();
    try {
      draw();
    } catch (e) {
      report(name, e);
    }
    state.timings[name] = Math.round(performance.now() - started);
  }

  // ---- Formatting
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fixed = (v, dp) => (isNum(v) ? v.toLocaleString('en-US', { minimumFractionDigits: dp, maximumFractionDigits: dp }) : '—');
  const signed = (v, dp) => (isNum(v) ? `${v > 0 ? '+' : ''}${fixed(v, dp)}` : '—');
  const count = (n) => Number(n || 0).toLocaleString('en-US');
  const pad = (n) => String(n).padStart(2, '0');
  function utc(t, seconds) {
    const d = new Date(t * 1000);
    if (Number.isNaN(d.getTime())) return { day: '', time: String(t), text: String(t) };
    const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
    const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? `:${pad(d.getUTCSeconds())}` : ''}`;
    return { day, time, text: `${day} ${time}` };
  }
  function duration(secs) {
    if (!isNum(secs) || secs <= 0) return '?';
    for (const [unit, size] of [['w', 604800], ['d', 86400], ['h', 3600], ['m', 60]]) {
      if (secs % size === 0) return `${secs / size}${unit}`;
    }
    return `${secs}s`;
  }
  // Prices at the pair's tick when the report gives it; else enough decimals for the smallest.
  function priceFormat(values) {
    const tick = (data.price || {}).price_decimals;
    if (Number.isInteger(tick) && tick >= 0 && tick <= 8) return { type: 'price', precision: tick, minMove: 10 ** -tick };
    let smallest = Infinity;
    for (const v of values) if (v > 0 && v < smallest) smallest = v;
    let precision = 2;
    if (smallest < 1) precision = Math.min(8, Math.ceil(-Math.log10(smallest)) + 4);
    else if (smallest < 100) precision = 4;
    return { type: 'price', precision, minMove: 10 ** -precision };
  }
  function setText(el, text, cls) {
    el.textContent = text;
    el.classList.toggle('pos', cls === 'pos');
    el.classList.toggle('neg', cls === 'neg');
  }
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // "+1.2%" green, "-1.2%" red; "-" and text stay plain.
  const signClass = (text) => (/^\+\d/.test(text) ? 'pos' : /^[-−]\d/.test(text) ? 'neg' : '');

  // Chart points in ascending, unique time order (the library refuses anything else), without
  // invalid entries. `map` returns null to drop an item.
  function series(items, map) {
    const out = [];
    let sorted = true;
    for (const item of items || []) {
      const p = item && isNum(item.time) ? map(item) : null;
      if (!p) continue;
      if (out.length && p.time <= out[out.length - 1].time) sorted = false;
      out.push(p);
    }
    if (sorted) return out;
    out.sort((a, b) => a.time - b.time);
    const unique = [];
    for (const p of out) {
      if (unique.length && unique[unique.length - 1].time === p.time) unique[unique.length - 1] = p;
      else unique.push(p);
    }
    return unique;
  }
  // The value of the last point at or before t in points sorted by time (or null).
  function valueAt(points, t) {
    let lo = 0;
    let hi = points.length - 1;
    let found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (points[mid].time <= t) {
        found = points[mid].value;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }
  const point = (p) => (isNum(p.value) ? { time: p.time, value: p.value } : null);

  // Index of the last time <= t (or -1).
  function floorIndex(times, t) {
    let lo = 0;
    let hi = times.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] <= t) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  let data;
  try {
    data = JSON.parse($('report-data').textContent);
  } catch (e) {
    report('data', e);
    document.body.dataset.state = 'error';
    return;
  }
  const price = data.price || {};
  const barSeconds = isNum(price.bar_seconds) && price.bar_seconds > 0 ? price.bar_seconds : 60;

  // ---- Header, summary, assumptions
  section('header', () => {
    $('title').textContent = data.title || 'Backtest';
    $('generated-by').textContent = data.generated_by || '';
    $('footer-generated').textContent = data.generated_by || '';
    document.title = `${data.title || 'Backtest'} · nanotrader backtest`;
  });

  section('summary', () => {
    const body = $('summary-body');
    const rows = data.summary || [];
    for (const row of rows) {
      const tr = el('tr');
      const label = el('th', '', row.label || '');
      label.scope = 'row';
      const value = el('td', 'value', row.value || '');
      const cls = signClass(row.value || '');
      if (cls) value.classList.add(cls);
      tr.append(label, value, el('td', 'note', row.note || ''));
      body.append(tr);
    }
    state.summaryRows = rows.length;
    $('summary-empty').hidden = rows.length > 0;
    const list = $('assumptions');
    const assumptions = data.assumptions || [];
    for (const text of assumptions) list.append(el('li', '', text));
    state.assumptions = assumptions.length;
    $('assumptions-empty').hidden = assumptions.length > 0;
  });

  // ---- Charts
  const chartOptions = {
    autoSize: true,
    layout: {
      background: { type: 'solid', color: COLORS.bg },
      textColor: COLORS.text,
      fontSize: 11,
      fontFamily: '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Ubuntu, sans-serif',
      attributionLogo: true, // required by the library's licence
    },
    grid: { vertLines: { color: COLORS.grid }, horzLines: { color: COLORS.grid } },
    // One width for every chart's price scale, so their time axes line up.
    rightPriceScale: { borderColor: COLORS.border, minimumWidth: 84 },
    timeScale: {
      borderColor: COLORS.border,
      timeVisible: barSeconds < 86400,
      secondsVisible: barSeconds < 60,
      rightOffset: 0,
      // The whole run fits the width, however many candles.
      minBarSpacing: 0.001,
      fixLeftEdge: true,
      fixRightEdge: true,
    },
    crosshair: { mode: LC.CrosshairMode.Normal },
  };
  // Charts taking part in the shared time scale and crosshair: { chart, series, points, times }.
  const synced = [];
  const seconds = barSeconds < 60;

  // The whole run in view, once the charts know their width (autoSize measures after a frame).
  const toFit = [];
  function fitWhenSized(chart) {
    toFit.push(chart);
  }

  function showChart(name, hasData) {
    $(`${name}-chart`).hidden = !hasData;
    $(`${name}-empty`).hidden = hasData;
    return hasData;
  }

  section('price chart', () => {
    const candles = series(price.candles, (c) =>
      [c.open, c.high, c.low, c.close].every(isNum) ? { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close } : null,
    );
    const shownFills = (data.fills || []).length;
    $('price-info').textContent = `${count(candles.length)} candles of ${duration(barSeconds)} · ${count(price.source_bars)} bars in the data · UTC`;
    if (!showChart('price', candles.length > 0)) return;
    const chart = LC.createChart($('price-chart'), chartOptions);
    charts.price = chart;
    const candleSeries = chart.addSeries(LC.CandlestickSeries, {
      upColor: COLORS.up,
      downColor: COLORS.down,
      borderUpColor: COLORS.up,
      borderDownColor: COLORS.down,
      wickUpColor: COLORS.up,
      wickDownColor: COLORS.down,
      priceFormat: priceFormat(candles.map((c) => c.low)),
    });
    candleSeries.setData(candles);
    state.candles = candles.length;

    const legend = $('lines-legend');
    const lineSeries = (price.lines || []).map((line, i) => {
      const color = COLORS.lines[i % COLORS.lines.length];
      const s = chart.addSeries(LC.LineSeries, {
        color,
        lineWidth: 2,
        title: line.name || '',
        priceLineVisible: false,
        lastValueVisible: false,
        crosshairMarkerVisible: false,
        priceFormat: priceFormat(candles.map((c) => c.low)),
      });
      const points = series(line.points, point);
      s.setData(points);
      const item = el('span', `legend-item line-${i % COLORS.lines.length}`);
      const value = el('b', '', '—');
      item.append(el('span', '', `${line.name || `line ${i + 1}`} `), value);
      legend.append(item);
      return { series: s, points, value };
    });
    state.lines = lineSeries.length;

    // Fill markers sit on the candle holding the fill's time.
    const times = candles.map((c) => c.time);
    const fillsByTime = new Map();
    const markers = [];
    for (const f of data.fills || []) {
      if (!f || !isNum(f.time)) continue;
      const i = Math.max(0, floorIndex(times, f.time));
      const t = times[i];
      const buy = f.side === 'buy';
      markers.push({
        time: t,
        position: buy ? 'belowBar' : 'aboveBar',
        shape: buy ? 'arrowUp' : 'arrowDown',
        color: buy ? COLORS.up : COLORS.down,
      });
      if (!fillsByTime.has(t)) fillsByTime.set(t, []);
      fillsByTime.get(t).push(f);
    }
    markers.sort((a, b) => a.time - b.time);
    LC.createSeriesMarkers(candleSeries, markers);
    state.markers = markers.length;

    const fmt = candleSeries.options().priceFormat.precision;
    function showLegend(index, lineValues) {
      const c = candles[index];
      $('lg-time').textContent = c ? utc(c.time, seconds).text : '';
      for (const [id, key] of [['lg-o', 'open'], ['lg-h', 'high'], ['lg-l', 'low'], ['lg-c', 'close']]) {
        $(id).textContent = c ? fixed(c[key], fmt) : '—';
      }
      setText($('lg-c'), c ? fixed(c.close, fmt) : '—', c ? (c.close >= c.open ? 'pos' : 'neg') : '');
      lineSeries.forEach((l, i) => {
        l.value.textContent = lineValues ? fixed(lineValues[i], fmt) : '—';
      });
      const fills = c ? fillsByTime.get(c.time) || [] : [];
      const text = fills.slice(0, 3).map((f) => `${f.side === 'buy' ? 'Buy' : 'Sell'} ${f.qty} @ ${f.price}`);
      if (fills.length > 3) text.push(`+${fills.length - 3} more`);
      $('fill-legend').textContent = text.join(' · ');
    }
    const lastLines = lineSeries.map((l) => (l.points.length ? l.points[l.points.length - 1].value : null));
    showLegend(candles.length - 1, lastLines);
    chart.subscribeCrosshairMove((param) => {
      if (!param || param.time === undefined) {
        showLegend(candles.length - 1, lastLines);
        return;
      }
      const index = floorIndex(times, param.time);
      const values = lineSeries.map((l) => {
        const p = param.seriesData.get(l.series);
        return p && p.value !== undefined ? p.value : null;
      });
      showLegend(index, values);
    });
    fitWhenSized(chart);
    const legendAt = (t) => {
      if (t === undefined) showLegend(candles.length - 1, lastLines);
      else showLegend(floorIndex(times, t), lineSeries.map((l) => valueAt(l.points, t)));
    };
    synced.push({ chart, legend: legendAt, series: candleSeries, times, values: candles.map((c) => c.close), container: $('price-chart') });
    if (shownFills === 0) $('fill-legend').textContent = 'no fills';
  });

  section('equity chart', () => {
    const equity = series(data.equity, point);
    const hold = series(data.buy_hold_equity, point);
    if (!showChart('equity', equity.length + hold.length > 0)) return;
    const chart = LC.createChart($('equity-chart'), chartOptions);
    charts.equity = chart;
    const usd = { type: 'price', precision: 2, minMove: 0.01 };
    const holdSeries = chart.addSeries(LC.LineSeries, {
      color: COLORS.hold,
      lineWidth: 1,
      priceLineVisible: false,
      lastValueVisible: true,
      crosshairMarkerVisible: true,
      priceFormat: usd,
    });
    holdSeries.setData(hold);
    // Green above the starting equity, red below.
    const base = equity.length ? equity[0].value : hold.length ? hold[0].value : 0;
    const equitySeries = chart.addSeries(LC.BaselineSeries, {
      baseValue: { type: 'price', price: base },
      topLineColor: COLORS.up,
      topFillColor1: 'rgba(38, 166, 154, 0.28)',
      topFillColor2: 'rgba(38, 166, 154, 0.04)',
      bottomLineColor: COLORS.down,
      bottomFillColor1: 'rgba(239, 83, 80, 0.04)',
      bottomFillColor2: 'rgba(239, 83, 80, 0.28)',
      lineWidth: 2,
      priceLineVisible: false,
      priceFormat: usd,
    });
    equitySeries.setData(equity);
    state.equityPoints = equity.length;
    state.buyHoldPoints = hold.length;
    const eqTimes = equity.map((p) => p.time);
    const holdTimes = hold.map((p) => p.time);
    const at = (points, times, t) => {
      const i = floorIndex(times, t);
      return i >= 0 ? points[i].value : null;
    };
    function showLegend(t) {
      const e = t === undefined ? (equity.length ? equity[equity.length - 1].value : null) : at(equity, eqTimes, t);
      const h = t === undefined ? (hold.length ? hold[hold.length - 1].value : null) : at(hold, holdTimes, t);
      setText($('lg-equity'), fixed(e, 2), isNum(e) ? (e >= base ? 'pos' : 'neg') : '');
      $('lg-hold').textContent = fixed(h, 2);
    }
    showLegend(undefined);
    chart.subscribeCrosshairMove((param) => showLegend(param && param.time !== undefined ? param.time : undefined));
    fitWhenSized(chart);
    const main = equity.length ? { points: equity, series: equitySeries } : { points: hold, series: holdSeries };
    synced.push({
      chart,
      legend: showLegend,
      series: main.series,
      times: main.points.map((p) => p.time),
      values: main.points.map((p) => p.value),
      container: $('equity-chart'),
    });
  });

  section('drawdown chart', () => {
    const drawdown = series(data.drawdown_pct, point);
    if (!showChart('drawdown', drawdown.length > 0)) return;
    const chart = LC.createChart($('drawdown-chart'), chartOptions);
    charts.drawdown = chart;
    const s = chart.addSeries(LC.BaselineSeries, {
      baseValue: { type: 'price', price: 0 },
      topLineColor: COLORS.down,
      bottomLineColor: COLORS.down,
      topFillColor1: 'rgba(0, 0, 0, 0)',
      topFillColor2: 'rgba(0, 0, 0, 0)',
      bottomFillColor1: 'rgba(239, 83, 80, 0.08)',
      bottomFillColor2: 'rgba(239, 83, 80, 0.4)',
      lineWidth: 1,
      priceLineVisible: false,
      priceFormat: { type: 'custom', minMove: 0.01, formatter: (v) => `${v.toFixed(2)}%` },
    });
    s.setData(drawdown);
    state.drawdownPoints = drawdown.length;
    let worst = drawdown[0];
    for (const p of drawdown) if (p.value < worst.value) worst = p;
    $('dd-info').textContent = `deepest ${fixed(worst.value, 2)}% at ${utc(worst.time, seconds).text}`;
    const times = drawdown.map((p) => p.time);
    const show = (t) => {
      const i = t === undefined ? drawdown.length - 1 : floorIndex(times, t);
      $('lg-dd').textContent = i >= 0 ? `${fixed(drawdown[i].value, 2)}%` : '—';
    };
    show(undefined);
    chart.subscribeCrosshairMove((param) => show(param && param.time !== undefined ? param.time : undefined));
    fitWhenSized(chart);
    synced.push({ chart, legend: show, series: s, times, values: drawdown.map((p) => p.value), container: $('drawdown-chart') });
  });

  // ---- One time scale and crosshair for all charts. Each chart has its own times; ranges are
  // mapped through time, so charts with different points still line up.
  section('chart sync', () => {
    if (synced.length < 2) return;
    const toTime = (times, x) => {
      const n = times.length;
      if (n === 1 || x <= 0) return times[0] + x * barSeconds;
      if (x >= n - 1) return times[n - 1] + (x - (n - 1)) * barSeconds;
      const i = Math.floor(x);
      return times[i] + (x - i) * (times[i + 1] - times[i]);
    };
    const toLogical = (times, t) => {
      const n = times.length;
      if (t <= times[0]) return (t - times[0]) / barSeconds;
      if (t >= times[n - 1]) return n - 1 + (t - times[n - 1]) / barSeconds;
      const i = floorIndex(times, t);
      return i + (t - times[i]) / (times[i + 1] - times[i]);
    };
    let syncing = false;
    for (const src of synced) {
      src.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
        if (!range || syncing) return;
        const from = toTime(src.times, range.from);
        const to = toTime(src.times, range.to);
        syncing = true;
        try {
          for (const dst of synced) {
            if (dst === src) continue;
            const want = { from: toLogical(dst.times, from), to: toLogical(dst.times, to) };
            const have = dst.chart.timeScale().getVisibleLogicalRange();
            if (have && Math.abs(have.from - want.from) < 1e-3 && Math.abs(have.to - want.to) < 1e-3) continue;
            dst.chart.timeScale().setVisibleLogicalRange(want);
          }
        } finally {
          syncing = false;
        }
      });
    }
    // The crosshair follows the chart under the pointer.
    let active = null;
    for (const src of synced) {
      src.container.addEventListener('pointerenter', () => {
        active = src;
      });
      src.container.addEventListener('pointerleave', () => {
        if (active !== src) return;
        active = null;
        for (const dst of synced) {
          if (dst === src) continue;
          dst.chart.clearCrosshairPosition();
          dst.legend(undefined);
        }
      });
      src.chart.subscribeCrosshairMove((param) => {
        if (active !== src) return;
        for (const dst of synced) {
          if (dst === src) continue;
          const i = param && param.time !== undefined ? floorIndex(dst.times, param.time) : -1;
          if (i < 0) dst.chart.clearCrosshairPosition();
          else dst.chart.setCrosshairPosition(dst.values[i], dst.times[i], dst.series);
          // The legends follow the shared time (the library does not report a crosshair it was given).
          dst.legend(i < 0 ? undefined : dst.times[i]);
        }
      });
    }
  });

  // ---- Sweep: heatmap over (short, long) and the best combinations.
  function colour(t) {
    const x = Math.min(1, Math.max(0, t));
    for (let i = 1; i < SCALE.length; i++) {
      const [t1, c1] = SCALE[i];
      const [t0, c0] = SCALE[i - 1];
      if (x <= t1) {
        const f = (x - t0) / (t1 - t0);
        return `rgb(${c0.map((v, k) => Math.round(v + (c1[k] - v) * f)).join(', ')})`;
      }
    }
    return `rgb(${SCALE[SCALE.length - 1][1].join(', ')})`;
  }
  function cellText(v) {
    const a = Math.abs(v);
    return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  const metricDigits = (v) => (isNum(v) ? (Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(3)) : '—');

  section('sweep', () => {
    const sweep = data.sweep;
    if (!sweep) return;
    $('sweep').hidden = false;
    const shorts = sweep.shorts || [];
    const longs = sweep.longs || [];
    const rows = sweep.values || [];
    const label = sweep.metric_label || sweep.metric || 'metric';
    $('sweep-metric').textContent = `${label} · ${shorts.length} short × ${longs.length} long`;
    $('sweep-note').hidden = !sweep.note;
    $('sweep-note').textContent = sweep.note || '';
    const finite = [];
    for (const row of rows) for (const v of row || []) if (isNum(v)) finite.push(v);
    const lowerIsBetter = /drawdown/i.test(sweep.metric || '');
    const min = finite.length ? Math.min(...finite) : 0;
    const max = finite.length ? Math.max(...finite) : 0;
    // Across zero, zero sits in the middle of the scale (yellow); otherwise min..max spans it.
    const diverging = !lowerIsBetter && min < 0 && max > 0;
    const position = (v) => {
      let t;
      if (diverging) t = v >= 0 ? 0.5 + 0.5 * (v / max) : 0.5 - 0.5 * (v / min);
      else t = max > min ? (v - min) / (max - min) : 0.5;
      return lowerIsBetter ? 1 - t : t;
    };

    const grid = $('heatmap');
    const hasCells = shorts.length > 0 && longs.length > 0;
    $('heatmap-empty').hidden = hasCells;
    $('heatmap-legend').hidden = !hasCells || finite.length === 0;
    $('heatmap-readout').hidden = !hasCells;
    if (hasCells) {
      const text = longs.length <= HEATMAP_TEXT_COLUMNS;
      grid.style.gridTemplateColumns = `auto repeat(${longs.length}, minmax(${text ? 38 : 22}px, 1fr))`;
      const best = (sweep.top || [])[0];
      const frag = document.createDocumentFragment();
      frag.append(el('div', 'hm-corner', 'short \\ long'));
      // Large sweeps: every k-th axis label, and lower rows.
      const colEvery = Math.ceil(longs.length / 30);
      const rowEvery = Math.ceil(shorts.length / 30);
      if (shorts.length > 30) grid.classList.add('dense');
      longs.forEach((l, j) => frag.append(el('div', 'hm-col', j % colEvery === 0 ? String(l) : '')));
      let cells = 0;
      let empty = 0;
      shorts.forEach((s, i) => {
        frag.append(el('div', 'hm-row', i % rowEvery === 0 ? String(s) : ''));
        longs.forEach((l, j) => {
          const v = rows[i] ? rows[i][j] : null;
          const cell = el('div', 'hm-cell');
          cell.setAttribute('role', 'gridcell');
          cell.dataset.short = String(s);
          cell.dataset.long = String(l);
          if (isNum(v)) {
            cell.dataset.value = String(v);
            cell.style.background = colour(position(v));
            if (text) cell.textContent = cellText(v);
            cell.title = `short ${s} · long ${l} · ${label} ${metricDigits(v)}`;
          } else {
            cell.classList.add('none');
            cell.title = `short ${s} · long ${l} · no value${s >= l ? ' (short ≥ long)' : ''}`;
            empty += 1;
          }
          if (best && best.short === s && best.long === l) cell.classList.add('best');
          cell.setAttribute('aria-label', cell.title);
          frag.append(cell);
          cells += 1;
        });
      });
      grid.append(frag);
      state.heatmapCells = cells;
      state.heatmapEmptyCells = empty;
      const readout = $('heatmap-readout');
      const idle = best
        ? `Best: short ${best.short} · long ${best.long} (outlined). Hover a cell for its value.`
        : 'Hover a cell for its value.';
      readout.textContent = idle;
      grid.addEventListener('mouseover', (e) => {
        const cell = e.target.closest('.hm-cell');
        if (!cell) return;
        readout.replaceChildren();
        const v = cell.dataset.value === undefined ? null : Number(cell.dataset.value);
        readout.append(
          'short ',
          el('b', '', cell.dataset.short),
          ' · long ',
          el('b', '', cell.dataset.long),
          ` · ${label} `,
          el('b', '', v === null ? 'no value' : metricDigits(v)),
        );
      });
      grid.addEventListener('mouseleave', () => {
        readout.textContent = idle;
      });
      if (finite.length) {
        const stops = [];
        for (let k = 0; k <= 10; k++) stops.push(`${colour(lowerIsBetter ? 1 - k / 10 : k / 10)} ${k * 10}%`);
        // Low values on the left, high on the right, coloured as in the cells.
        if (diverging) {
          $('hl-bar').style.background = `linear-gradient(90deg, ${stops.join(', ')})`;
          $('hl-min').textContent = `${metricDigits(min)}`;
          $('hl-max').textContent = `${metricDigits(max)}  (0 = yellow)`;
        } else {
          $('hl-bar').style.background = `linear-gradient(90deg, ${stops.join(', ')})`;
          $('hl-min').textContent = metricDigits(min);
          $('hl-max').textContent = `${metricDigits(max)}${lowerIsBetter ? '  (lower is better)' : ''}`;
        }
      }
    }

    const top = sweep.top || [];
    const body = $('top-body');
    const metric = sweep.metric || '';
    for (const th of document.querySelectorAll('#top-table th[data-metric]')) {
      th.classList.toggle('metric', th.dataset.metric === metric);
    }
    const metricColumn = ['return_pct', 'sharpe', 'sortino', 'max_drawdown_pct', null, 'win_rate_pct'];
    top.forEach((r, i) => {
      const tr = el('tr');
      const cells = [
        el('td', 'num muted', String(i + 1)),
        el('td', 'num', String(r.short)),
        el('td', 'num', String(r.long)),
      ];
      const values = [
        [signed(r.return_pct, 2), signClass(signed(r.return_pct, 2))],
        [fixed(r.sharpe, 2), ''],
        [fixed(r.sortino, 2), ''],
        [fixed(r.max_drawdown_pct, 2), ''],
        [count(r.trades), ''],
        [fixed(r.win_rate_pct, 2), ''],
      ];
      values.forEach(([text, cls], k) => {
        const td = el('td', 'num', text);
        if (cls) td.classList.add(cls);
        if (metricColumn[k] === metric) td.classList.add('metric');
        cells.push(td);
      });
      tr.append(...cells);
      body.append(tr);
    });
    state.topRows = top.length;
    $('top-empty').hidden = top.length > 0;
  });

  // ---- A --param grid: the best combinations, one column per parameter.
  section('grid', () => {
    const grid = data.grid;
    if (!grid) return;
    $('grid').hidden = false;
    $('grid-metric').textContent = `${grid.metric_label || grid.metric || ''} · ${count(grid.combinations)} combinations`;
    $('grid-note').hidden = !grid.note;
    $('grid-note').textContent = grid.note || '';
    const head = $('grid-head');
    const metric = grid.metric || '';
    const columns = [
      ['Return %', 'return_pct'],
      ['Sharpe', 'sharpe'],
      ['Sortino', 'sortino'],
      ['Max DD %', 'max_drawdown_pct'],
      ['Trades', null],
      ['Win rate %', 'win_rate_pct'],
    ];
    head.append(el('th', 'num', '#'));
    for (const name of grid.params || []) head.append(el('th', 'num', name));
    for (const [label, key] of columns) head.append(el('th', key === metric ? 'num metric' : 'num', label));
    const body = $('grid-body');
    (grid.top || []).forEach((r, i) => {
      const tr = el('tr');
      tr.append(el('td', 'num muted', String(i + 1)));
      for (const v of r.values || []) tr.append(el('td', 'num', String(v)));
      const values = [
        signed(r.return_pct, 2),
        fixed(r.sharpe, 2),
        fixed(r.sortino, 2),
        fixed(r.max_drawdown_pct, 2),
        count(r.trades),
        fixed(r.win_rate_pct, 2),
      ];
      values.forEach((text, k) => {
        const td = el('td', 'num', text);
        if (k === 0 && signClass(text)) td.classList.add(signClass(text));
        if (columns[k][1] === metric) td.classList.add('metric');
        tr.append(td);
      });
      body.append(tr);
    });
    state.gridRows = (grid.top || []).length;
  });

  // ---- Walk-forward: in sample against out of sample per fold, the stitched equity, the warning.
  section('walk-forward', () => {
    const wf = data.walk_forward;
    if (!wf) return;
    $('walk-forward').hidden = false;
    const label = wf.metric_label || wf.metric || 'metric';
    $('wf-metric').textContent = `ranked by ${label}`;
    $('wf-is-metric').textContent = `In sample ${label}`;
    $('wf-oos-metric').textContent = `Out of sample ${label}`;
    $('wf-scheme').textContent = wf.scheme || '';
    $('wf-rule').textContent = wf.rule || '';
    const warnings = wf.warnings || [];
    const box = $('wf-warning');
    box.hidden = warnings.length === 0;
    for (const w of warnings) box.append(el('p', '', `Warning: ${w}. The optimum may only fit the past.`));
    $('wf-agree').hidden = warnings.length > 0;
    state.wfWarnings = warnings.length;
    const body = $('wf-body');
    for (const f of wf.folds || []) {
      const tr = el('tr', f.disagrees ? 'disagrees' : '');
      const isRet = signed(f.in_sample_return_pct, 2);
      const oosRet = signed(f.out_of_sample_return_pct, 2);
      tr.append(
        el('td', 'num', String(f.fold)),
        el('td', '', f.in_sample || ''),
        el('td', '', f.out_of_sample || ''),
        el('td', '', f.chosen || ''),
        el('td', 'num metric', metricDigits(f.in_sample_metric)),
        el('td', 'num metric', metricDigits(f.out_of_sample_metric)),
        el('td', `num ${signClass(isRet)}`, isRet),
        el('td', `num ${signClass(oosRet)}`, oosRet),
        el('td', 'num', count(f.out_of_sample_trades)),
      );
      body.append(tr);
    }
    state.wfFolds = (wf.folds || []).length;
    const rows = $('wf-stitched');
    for (const row of wf.stitched || []) {
      const tr = el('tr');
      const th = el('th', '', row.label || '');
      th.scope = 'row';
      const value = el('td', 'value', row.value || '');
      const cls = signClass(row.value || '');
      if (cls) value.classList.add(cls);
      tr.append(th, value, el('td', 'note', row.note || ''));
      rows.append(tr);
    }
    const equity = series(wf.stitched_equity, point);
    $('wf-empty').hidden = equity.length > 0;
    $('wf-chart').hidden = equity.length === 0;
    if (!equity.length) return;
    const chart = LC.createChart($('wf-chart'), chartOptions);
    charts.walkForward = chart;
    const base = equity[0].value;
    const s = chart.addSeries(LC.BaselineSeries, {
      baseValue: { type: 'price', price: base },
      topLineColor: COLORS.up,
      topFillColor1: 'rgba(38, 166, 154, 0.28)',
      topFillColor2: 'rgba(38, 166, 154, 0.04)',
      bottomLineColor: COLORS.down,
      bottomFillColor1: 'rgba(239, 83, 80, 0.04)',
      bottomFillColor2: 'rgba(239, 83, 80, 0.28)',
      lineWidth: 2,
      priceLineVisible: false,
      priceFormat: { type: 'price', precision: 2, minMove: 0.01 },
    });
    s.setData(equity);
    const times = equity.map((p) => p.time);
    const markers = [];
    for (const t of wf.fold_starts || []) {
      const i = floorIndex(times, t);
      if (i >= 0) markers.push({ time: times[i], position: 'belowBar', color: COLORS.hold, shape: 'arrowUp', text: 'OOS' });
    }
    if (markers.length && LC.createSeriesMarkers) LC.createSeriesMarkers(s, markers);
    state.wfPoints = equity.length;
    const show = (t) => {
      const i = t === undefined ? equity.length - 1 : floorIndex(times, t);
      const v = i >= 0 ? equity[i].value : null;
      setText($('lg-wf'), fixed(v, 2), isNum(v) ? (v >= base ? 'pos' : 'neg') : '');
    };
    show(undefined);
    chart.subscribeCrosshairMove((param) => show(param && param.time !== undefined ? param.time : undefined));
    fitWhenSized(chart);
  });

  // ---- Fills table, in the order of the run.
  section('fills', () => {
    const fills = data.fills || [];
    const total = isNum(data.fills_total) ? data.fills_total : fills.length;
    $('fills-count').textContent =
      fills.length === total ? `${count(total)} in the run` : `${count(fills.length)} shown of ${count(total)} in the run`;
    const frag = document.createDocumentFragment();
    for (const f of fills) {
      const tr = el('tr', f.side === 'buy' ? 'buy' : f.side === 'sell' ? 'sell' : '');
      const when = isNum(f.time) ? utc(f.time, true) : { day: '', time: '—' };
      const time = el('td');
      time.append(el('span', 'day', `${when.day} `), when.time);
      tr.append(
        time,
        el('td', 'side', f.side || ''),
        el('td', 'num', f.qty || ''),
        el('td', 'num', f.price || ''),
        el('td', 'num', f.fee || ''),
        el('td', 'num', f.cash_after || ''),
        el('td', 'num', f.position_after || ''),
      );
      frag.append(tr);
    }
    $('fills-body').append(frag);
    state.fillRows = fills.length;
    $('fills-empty').hidden = fills.length > 0;
    $('fills-table').hidden = fills.length === 0;
  });

  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      section('fit charts', () => {
        for (const chart of toFit) chart.timeScale().fitContent();
      });
      state.timings.total = Math.round(performance.now());
      state.ready = true;
      document.body.dataset.state = state.errors.length ? 'error' : 'ready';
    }),
  );
})();
