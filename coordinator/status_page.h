// The HTML page the StatusServer serves at "/": one self-contained document (no external
// scripts, styles, fonts or images) that polls api/summary every 2 s and api/jobs for the
// failed jobs, and draws counts, progress, stages, failure classes and running jobs.
// Every string from the API reaches the page through textContent or an attribute value,
// never as markup. Immutable; safe to read from any thread.
#pragma once

namespace atp {

// Element ids count-<state> and the body's data-state ("live" after the first successful
// update, "error" when the API cannot be read) are what tests/system/status_page_check.sh
// reads; a script error is recorded in the body's data-js-error attribute.
inline constexpr char kStatusPageHtml[] = R"ATP_PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>atp</title>
<link rel="icon" href="data:,">
<style>
:root {
  --bg: #f5f6f8; --card: #ffffff; --text: #1c2230; --muted: #677083; --line: #e2e5ea;
  --done: #2f9e5f; --running: #2f6fde; --failed: #d64545; --pending: #a3aab6; --blocked: #d9951c;
  --warn-bg: #fdeeee; --warn-text: #8a1c1c; --warn-line: #f2c4c4;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #13161b; --card: #1b1f26; --text: #e4e7eb; --muted: #97a0ad; --line: #2b313b;
    --pending: #5e6675; --warn-bg: #3a1d1f; --warn-text: #f4b4b4; --warn-line: #5c2a2d;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
header {
  display: flex; flex-wrap: wrap; align-items: baseline; gap: 6px 18px;
  padding: 14px 24px; background: var(--card); border-bottom: 1px solid var(--line);
}
h1 { margin: 0; font-size: 20px; font-weight: 650; }
h1 .app { color: var(--muted); font-weight: 500; }
h2 { margin: 0 0 10px; font-size: 15px; font-weight: 620; }
h2 .note { color: var(--muted); font-weight: 400; font-size: 13px; margin-left: 6px; }
main { max-width: 1280px; padding: 16px 24px 32px; }
section {
  background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 14px 16px; margin-bottom: 16px; overflow-x: auto;
}
.meta { color: var(--muted); }
.paper { color: var(--muted); font-size: 12px; }
p.note { color: var(--muted); margin: 0 0 8px; }
h2 select { margin-left: 8px; font: inherit; font-weight: 400; font-size: 13px; }
.grid { display: grid; grid-template-columns: 2fr 1fr; gap: 0 16px; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
.counts { display: grid; grid-template-columns: repeat(5, minmax(90px, 1fr)); gap: 12px; }
.count { border-left: 4px solid var(--line); padding: 2px 10px; }
.count .n { font-size: 28px; font-weight: 650; font-variant-numeric: tabular-nums; }
.count .label { color: var(--muted); font-size: 11px; letter-spacing: .06em; text-transform: uppercase; }
.count.done { border-color: var(--done); } .count.running { border-color: var(--running); }
.count.failed { border-color: var(--failed); } .count.pending { border-color: var(--pending); }
.count.blocked { border-color: var(--blocked); }
.bar { display: flex; height: 14px; margin: 16px 0 8px; border-radius: 7px; overflow: hidden; background: var(--line); }
.bar span { display: block; height: 100%; }
.s-done { background: var(--done); } .s-running { background: var(--running); }
.s-failed { background: var(--failed); } .s-pending { background: var(--pending); }
.s-blocked { background: var(--blocked); }
.facts { display: flex; flex-wrap: wrap; gap: 4px 22px; color: var(--muted); }
.facts b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-size: 12px; font-weight: 600; white-space: nowrap; }
tr:last-child td { border-bottom: none; }
.num { text-align: right; }
.zero { color: var(--muted); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.mini { display: inline-block; width: 120px; height: 8px; margin-right: 8px; vertical-align: middle;
        border-radius: 4px; overflow: hidden; background: var(--line); }
.mini span { display: block; height: 100%; background: var(--running); }
.mini.stage span { background: var(--done); }
.error-text { max-width: 520px; white-space: pre-wrap; word-break: break-word; }
.tag { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
       background: var(--warn-bg); color: var(--warn-text); border: 1px solid var(--warn-line); }
.empty { color: var(--muted); font-style: italic; }
.banner { margin-bottom: 16px; padding: 9px 12px; border-radius: 6px;
          background: var(--warn-bg); color: var(--warn-text); border: 1px solid var(--warn-line); }
</style>
</head>
<body data-state="loading">
<header>
  <h1><span class="app">atp — </span><span id="sweep-name">loading…</span></h1>
  <span class="meta" id="run-info"></span>
  <span class="meta" id="updated"></span>
</header>
<main>
  <div class="banner" id="banner" hidden></div>
  <section>
    <h2>Progress <span class="note" id="progress-note"></span></h2>
    <div class="counts">
      <div class="count done"><div class="n" id="count-done">–</div><div class="label">done</div></div>
      <div class="count running"><div class="n" id="count-running">–</div><div class="label">running</div></div>
      <div class="count failed"><div class="n" id="count-failed">–</div><div class="label">failed</div></div>
      <div class="count pending"><div class="n" id="count-pending">–</div><div class="label">pending</div></div>
      <div class="count blocked"><div class="n" id="count-blocked">–</div><div class="label">blocked</div></div>
    </div>
    <div class="bar" id="bar"></div>
    <div class="facts" id="facts"></div>
  </section>
  <div class="grid">
    <section><h2>Stages</h2><div id="stages"><p class="empty">No data yet.</p></div></section>
    <section><h2>Failure classes</h2><div id="failures"><p class="empty">No data yet.</p></div></section>
  </div>
  <section><h2>Running jobs <span class="note" id="running-note"></span></h2>
    <div id="running"><p class="empty">No data yet.</p></div></section>
  <section><h2>Failed jobs <span class="note" id="failed-note"></span></h2>
    <div id="failed-jobs"><p class="empty">No data yet.</p></div></section>
  <section><h2>Results
      <select id="table-select" aria-label="table">
        <option value="base2novel">Table 1: base-to-novel</option>
        <option value="cross-dataset">Table 2: cross-dataset</option>
        <option value="domain-generalization">Table 4: domain generalisation</option>
        <option value="attribute-search">searched attributes</option>
        <option value="soft-token-length">Figure 5: soft-token length</option>
        <option value="class-token-position">Table 5: class-token position</option>
        <option value="attribute-order">Table 7: attribute order</option>
        <option value="attribute-source">Table 8: manual vs searched attributes</option>
      </select>
      <span class="note" id="results-note"></span></h2>
    <div id="results"><p class="empty">No data yet.</p></div></section>
</main>
<script>
'use strict';
// Recorded where a headless check can read it: an error here means the page is broken.
window.addEventListener('error', (e) => {
  document.body.setAttribute('data-js-error', String(e.message));
});
window.addEventListener('unhandledrejection', (e) => {
  document.body.setAttribute('data-js-error', String(e.reason));
});

const STATES = ['done', 'running', 'failed', 'pending', 'blocked'];
const BAR_ORDER = ['done', 'failed', 'running', 'blocked', 'pending'];
const POLL_MS = 2000;
const FAILED_REFRESH_MS = 10000;
const TABLE_REFRESH_MS = 10000;  // the failed list also changes when retries replace jobs
const FAILED_LIMIT = 25;
const RATE_WINDOW_MS = 10 * 60 * 1000;
// The page's own query (e.g. ?sweep=3) is passed on to the API, so a link can pin a sweep.
const pageQuery = new URLSearchParams(location.search);

const $ = (id) => document.getElementById(id);

// Builds an element; strings become text nodes, so API data can never become markup.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// Relative, so the page also works behind a proxy that serves it under a path prefix.
function apiUrl(path, extra) {
  const q = new URLSearchParams(pageQuery);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, String(v));
  const s = q.toString();
  return 'api/' + path + (s ? '?' + s : '');
}

function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }
function isNum(v) { return typeof v === 'number' && isFinite(v); }
function text(v) { return v === undefined || v === null || v === '' ? '—' : String(v); }

function fmtDuration(s) {
  if (!isNum(s) || s < 0) return '—';
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return d + 'd ' + h + 'h';
  if (h) return h + 'h ' + m + 'm';
  if (m) return m + 'm ' + sec + 's';
  return sec + 's';
}

// Times arrive as Unix seconds (or ms), ISO strings, or SQLite's "YYYY-MM-DD HH:MM:SS" (UTC).
function toDate(v) {
  if (isNum(v)) return new Date(v < 1e12 ? v * 1000 : v);
  if (typeof v === 'string' && v) {
    const sqlite = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$/.test(v);
    const t = Date.parse(sqlite ? v.replace(' ', 'T') + 'Z' : v);
    return isNaN(t) ? null : new Date(t);
  }
  return null;
}
function fmtTime(v) { const d = toDate(v); return d ? d.toLocaleString() : text(v); }
function ago(v) {
  const d = toDate(v);
  return d ? fmtDuration(Math.max(0, (Date.now() - d.getTime()) / 1000)) : '—';
}
function shortKey(k) { const s = text(k); return s.length > 12 ? s.slice(0, 12) + '…' : s; }
function pct(part, whole) { return whole > 0 ? (100 * part) / whole : 0; }
function fmtPct(p) { return (p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + '%'; }

function miniBar(fraction, cls) {
  const fill = el('span');
  fill.style.width = Math.max(0, Math.min(100, 100 * fraction)) + '%';
  return el('span', {class: 'mini' + (cls ? ' ' + cls : '')}, fill);
}

// columns: [header, cell(row) -> node|string, {num: bool}]
function table(columns, rows) {
  const head = el('tr', null, ...columns.map(([h, , o]) => el('th', o && o.num ? {class: 'num'} : null, h)));
  const body = rows.map((r) => el('tr', null, ...columns.map(([, f, o]) => {
    const v = f(r);
    return el('td', o && o.num ? {class: 'num'} : null, v);
  })));
  return el('table', null, el('thead', null, head), el('tbody', null, ...body));
}

function countCell(v) {
  const n = num(v);
  return el('span', n === 0 ? {class: 'zero'} : null, n);
}

function setBanner(message) {
  const b = $('banner');
  b.hidden = !message;
  b.textContent = message || '';
}

// Done counts seen by this page, for a rate when the server does not send one.
const doneHistory = [];
function observedRatePerHour(done) {
  const now = Date.now();
  doneHistory.push([now, done]);
  while (doneHistory.length > 2 && now - doneHistory[0][0] > RATE_WINDOW_MS) doneHistory.shift();
  const [t0, d0] = doneHistory[0];
  if (now - t0 < 20000 || done < d0) return null;
  return ((done - d0) * 3600000) / (now - t0);
}

function renderSummary(s) {
  const sweep = s.sweep || {};
  const name = sweep.name === undefined || sweep.name === null ? 'sweep ' + text(sweep.id) : String(sweep.name);
  document.title = 'atp — ' + name;
  $('sweep-name').textContent = name;

  const run = s.run || {};
  const runBits = [];
  if (run.epoch !== undefined && run.epoch !== null) runBits.push('run ' + run.epoch);
  if (run.status) runBits.push(String(run.status));
  if (run.started_at) runBits.push('started ' + fmtTime(run.started_at));
  if (run.ended_at) runBits.push('ended ' + fmtTime(run.ended_at));
  else if (toDate(run.heartbeat_at)) runBits.push('heartbeat ' + ago(run.heartbeat_at) + ' ago');
  if (Array.isArray(run.hosts) && run.hosts.length) runBits.push('hosts: ' + run.hosts.map(text).join(', '));
  else if (run.hosts !== undefined && run.hosts !== null && !Array.isArray(run.hosts)) runBits.push('hosts: ' + text(run.hosts));
  $('run-info').textContent = runBits.join(' · ');

  const counts = s.counts || {};
  let total = 0;
  for (const st of STATES) {
    $('count-' + st).textContent = String(num(counts[st]));
    total += num(counts[st]);
  }
  const finished = num(counts.done) + num(counts.failed);
  $('progress-note').textContent = total
    ? finished + ' of ' + total + ' jobs finished (' + fmtPct(pct(finished, total)) + ')'
    : 'no jobs';
  const bar = $('bar');
  bar.replaceChildren(...BAR_ORDER.filter((st) => num(counts[st]) > 0).map((st) => {
    const seg = el('span', {class: 's-' + st, title: st + ': ' + num(counts[st])});
    seg.style.width = pct(num(counts[st]), total) + '%';
    return seg;
  }));

  const facts = [];
  const fact = (label, value) => facts.push(el('span', null, label + ' ', el('b', null, value)));
  const serverRate = isNum(s.jobs_per_hour) ? s.jobs_per_hour : null;
  const rate = serverRate !== null ? serverRate : observedRatePerHour(num(counts.done));
  if (rate !== null) fact(serverRate !== null ? 'rate' : 'rate (seen here)', rate.toFixed(rate < 10 ? 1 : 0) + ' jobs/h');
  if (isNum(s.eta_s)) fact('ETA', fmtDuration(s.eta_s));
  if (isNum(s.eta_s) && !run.ended_at) fact('expected done', new Date(Date.now() + s.eta_s * 1000).toLocaleString());
  $('facts').replaceChildren(...facts);

  const stages = Array.isArray(s.stages) ? s.stages : [];
  $('stages').replaceChildren(stages.length ? table([
    ['Stage', (r) => text(r.stage)],
    ...STATES.map((st) => [st[0].toUpperCase() + st.slice(1), (r) => countCell(r[st]), {num: true}]),
    ['Progress', (r) => {
      const t = STATES.reduce((a, st) => a + num(r[st]), 0);
      return el('span', null, miniBar(t ? num(r.done) / t : 0, 'stage'), fmtPct(pct(num(r.done), t)));
    }],
  ], stages) : el('p', {class: 'empty'}, 'No stages.'));

  const failures = Array.isArray(s.failures) ? s.failures : [];
  $('failures').replaceChildren(failures.length ? table([
    ['Class', (r) => el('span', {class: 'tag'}, text(r.class))],
    ['Jobs', (r) => num(r.count), {num: true}],
  ], failures) : el('p', {class: 'empty'}, 'No failures.'));

  const running = Array.isArray(s.running) ? s.running : [];
  $('running-note').textContent = running.length ? '(' + running.length + ')' : '';
  $('running').replaceChildren(running.length ? table([
    ['Job', (r) => el('span', {class: 'mono', title: text(r.key)}, shortKey(r.key))],
    ['Stage', (r) => text(r.stage)],
    ['Method', (r) => text(r.method)],
    ['Host', (r) => text(r.host)],
    ['Ranks', (r) => text(r.ranks), {num: true}],
    ['Progress', (r) => {
      if (!isNum(r.total) || r.total <= 0) return isNum(r.step) ? 'step ' + r.step : '—';
      const f = num(r.step) / r.total;
      return el('span', null, miniBar(f), num(r.step) + ' / ' + r.total + ' (' + fmtPct(100 * Math.min(1, f)) + ')');
    }],
    ['Running for', (r) => ago(r.started_at), {num: true}],
  ], running) : el('p', {class: 'empty'}, 'Nothing is running.'));
}

function renderFailed(result) {
  const jobs = Array.isArray(result.jobs) ? result.jobs : [];
  const total = isNum(result.total) ? result.total : jobs.length;
  $('failed-note').textContent = total > jobs.length ? '(showing ' + jobs.length + ' of ' + total + ')'
                                                     : (total ? '(' + total + ')' : '');
  $('failed-jobs').replaceChildren(jobs.length ? table([
    ['Job', (r) => el('span', {class: 'mono', title: text(r.key)}, shortKey(r.key))],
    ['Stage', (r) => text(r.stage)],
    ['Method', (r) => text(r.method)],
    ['Dataset', (r) => text(r.dataset)],
    ['Seed', (r) => text(r.seed), {num: true}],
    ['Attempts', (r) => text(r.attempts), {num: true}],
    ['Class', (r) => r.failure_class ? el('span', {class: 'tag'}, String(r.failure_class)) : '—'],
    ['Error', (r) => {
      const full = text(r.error);
      return el('div', {class: 'error-text', title: full}, full.length > 300 ? full.slice(0, 300) + '…' : full);
    }],
    ['Duration', (r) => fmtDuration(r.duration_s), {num: true}],
    ['Host', (r) => text(r.host)],
  ], jobs) : el('p', {class: 'empty'}, 'No failed jobs.'));
}

async function getJson(url) {
  const response = await fetch(url, {cache: 'no-store'});
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const m = body && body.error && body.error.message;
    throw new Error(m ? String(m) : 'HTTP ' + response.status);
  }
  if (body === null || typeof body !== 'object') throw new Error('the answer to ' + url + ' is not JSON');
  return body;
}

// A cell of a paper table: our mean with its seed count, and the published figure.
function resultCell(c) {
  if (!c) return '—';
  if (c.text !== undefined && c.text !== null) return text(c.text);
  if (!isNum(c.value)) return '—';
  const ours = c.value.toFixed(2) + ' (' + num(c.seeds) + ')';
  if (!isNum(c.paper)) return ours;
  const diff = isNum(c.diff) ? (c.diff >= 0 ? '+' : '') + c.diff.toFixed(2) : '';
  return el('span', {title: 'ours minus the paper: ' + diff}, ours,
            el('span', {class: 'paper'}, ' paper ' + c.paper.toFixed(2)));
}

function hasResult(row) {
  return Array.isArray(row.cells) &&
         row.cells.some((c) => c && (isNum(c.value) || (c.text !== undefined && c.text !== null && c.text !== '')));
}

function renderResults(t) {
  const labels = Array.isArray(t.label_columns) ? t.label_columns : [];
  const values = Array.isArray(t.value_columns) ? t.value_columns : [];
  const all = Array.isArray(t.rows) ? t.rows : [];
  const rows = all.filter(hasResult);  // rows without any result would bury the ones that have
  $('results-note').textContent = rows.length < all.length
      ? '(' + (all.length - rows.length) + ' of ' + all.length + ' rows have no results yet; (n) = seeds)' : '(n) = seeds';
  if (!rows.length) {
    $('results').replaceChildren(el('p', {class: 'empty'}, 'No results for this table yet.'));
    return;
  }
  const columns = labels.map((h, i) => [String(h), (r) => text((r.labels || [])[i])])
      .concat(values.map((h, i) => [String(h), (r) => resultCell((r.cells || [])[i]), {num: true}]));
  $('results').replaceChildren(el('p', {class: 'note'}, text(t.title)), table(columns, rows));
}

let tableName = 'base2novel';
let lastTableFetch = 0;

// Tables are read on their own clock and their errors stay in their section, so a table
// that cannot be built never hides the sweep's progress.
async function refreshResults() {
  lastTableFetch = Date.now();
  try {
    renderResults(await getJson(apiUrl('tables', {table: tableName})));
  } catch (e) {
    $('results').replaceChildren(el('p', {class: 'empty'}, 'Cannot build this table: ' +
                                      (e && e.message ? e.message : String(e))));
  }
}

$('table-select').addEventListener('change', (event) => {
  tableName = event.target.value;
  refreshResults();
});

let lastFailedCount = -1;
let lastFailedFetch = 0;

async function tick() {
  try {
    const summary = await getJson(apiUrl('summary'));
    renderSummary(summary);
    const failed = num((summary.counts || {}).failed);
    if (failed !== lastFailedCount || Date.now() - lastFailedFetch > FAILED_REFRESH_MS) {
      lastFailedFetch = Date.now();
      renderFailed(await getJson(apiUrl('jobs', {state: 'failed', limit: FAILED_LIMIT})));
      lastFailedCount = failed;
    }
    if (Date.now() - lastTableFetch > TABLE_REFRESH_MS) await refreshResults();
    setBanner(null);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    document.body.setAttribute('data-state', 'live');
  } catch (e) {
    setBanner('Cannot read the sweep: ' + (e && e.message ? e.message : String(e)) +
              '. Retrying every ' + POLL_MS / 1000 + ' s; what is shown is from the last update.');
    if (document.body.getAttribute('data-state') === 'loading') $('sweep-name').textContent = 'no data';
    document.body.setAttribute('data-state', 'error');
  } finally {
    setTimeout(tick, POLL_MS);
  }
}

tick();
</script>
</body>
</html>
)ATP_PAGE";

}  // namespace atp
