// nanotrader fleet dashboard: the runs list of `nanotrader serve`, live over one WebSocket
// (/ws/runs sends the whole list now and again whenever a run changes). Plain JS, no build step;
// every value is set with textContent (the server's CSP allows no inline script).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;

  // The token, as the board page takes it: from the fragment, kept for this tab only.
  const TOKEN_KEY = 'nanotrader.token';
  let token = null;
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has('token')) {
    token = fragment.get('token').trim() || null;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      // sessionStorage can be disabled: the token then lasts until a reload.
    }
    history.replaceState(null, '', location.pathname + location.search);
  } else {
    try {
      token = sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      token = null;
    }
  }

  // What the browser test reads.
  const nt = { lists: 0, runs: [] };
  window.__ntRuns = nt;

  function money(text) {
    const n = Number(text);
    if (!Number.isFinite(n)) return String(text);
    return n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function cell(row, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function render(runs) {
    nt.lists += 1;
    nt.runs = runs;
    const body = $('runs-body');
    body.replaceChildren();
    for (const r of runs) {
      const tr = document.createElement('tr');
      tr.dataset.run = String(r.id);
      const id = cell(tr, '');
      const link = document.createElement('a');
      link.href = `/runs/${r.id}`;
      link.textContent = `#${r.id}`;
      id.appendChild(link);
      cell(tr, r.strategy);
      cell(tr, r.pair);
      cell(tr, r.broker);
      cell(tr, r.data ? `${r.source} · ${r.data}` : r.source);
      cell(tr, r.state, r.state === 'live' ? 'pos' : r.state === 'failed' ? 'neg' : '');
      const eq = cell(tr, money(r.equity));
      eq.dataset.raw = r.equity;
      const ret = Number(r.return_pct);
      const rc = cell(tr, `${ret >= 0 ? '+' : ''}${ret.toFixed(2)} %`, ret > 0 ? 'pos' : ret < 0 ? 'neg' : '');
      rc.dataset.raw = r.return_pct;
      cell(tr, String(r.fills));
      cell(tr, String(r.bars));
      cell(tr, r.last_bar == null ? '—' : new Date(r.last_bar * 1000).toISOString().slice(0, 16).replace('T', ' '));
      body.appendChild(tr);
    }
    $('runs-empty').hidden = runs.length > 0;
    const live = runs.filter((r) => r.live).length;
    $('count-badge').textContent = `${runs.length} runs · ${live} live`;
    document.body.dataset.state = 'ready';
  }

  function banner(text) {
    $('banner').hidden = !text;
    $('banner-text').textContent = text || '';
  }

  let backoff = BACKOFF_MIN_MS;
  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const protocols = token ? ['nanotrader.v1', `bearer.${token}`] : ['nanotrader.v1'];
    const sock = new WebSocket(`${scheme}//${location.host}/ws/runs`, protocols);
    sock.onopen = () => {
      backoff = BACKOFF_MIN_MS;
      $('ws-badge').textContent = 'live';
      $('ws-badge').className = 'badge badge-ok';
      banner(null);
    };
    sock.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'runs') render(message.runs);
    };
    sock.onclose = () => {
      $('ws-badge').textContent = 'reconnecting';
      $('ws-badge').className = 'badge badge-warn';
      explainRefusal();
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    };
  }

  // A refused WebSocket tells the page nothing: ask the API whether the token is the reason.
  async function explainRefusal() {
    try {
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const res = await fetch('/api/runs', { headers, cache: 'no-store' });
      if (res.status === 401) {
        banner('Access refused: this dashboard needs its access token (--web-token). Add #token=YOUR_TOKEN to the address and press Enter.');
      }
    } catch (_) {
      banner('nanotrader serve is not answering; trying again.');
    }
  }

  window.addEventListener('hashchange', () => location.reload());
  connect();
})();
