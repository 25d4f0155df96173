// tradeflow dashboard page: plain JavaScript, no build step (docs/page.md describes it).
// Speaks the websocket protocol of docs/protocol.md: subscribe → snapshot (seq) → deltas (seq ↑);
// on reconnect it resumes with {epoch, since: last seq} and gets the missed deltas or a snapshot.
// Frames only change `state`; the table is repainted at most PAINT_HZ times a second, on an
// animation frame, so a burst of deltas never freezes the page.
"use strict";

const $ = (sel) => document.querySelector(sel);

// Every column the page knows. kind: text | qty (integer) | price (2–4 decimals) | money (2 decimals)
// | time | age (computed: seconds since the row last changed). total: summed in subtotals and totals.
const COLUMNS = [
  { key: "trade_date", label: "Date", kind: "text" },
  { key: "account_id", label: "Account", kind: "text" },
  { key: "symbol", label: "Symbol", kind: "text" },
  { key: "trade_count", label: "Trades", kind: "qty", total: true },
  { key: "buy_qty", label: "Buy qty", kind: "qty", total: true },
  { key: "sell_qty", label: "Sell qty", kind: "qty", total: true },
  { key: "net_qty", label: "Net qty", kind: "qty", total: true, signed: true },
  { key: "buy_notional", label: "Buy notional", kind: "money", total: true },
  { key: "sell_notional", label: "Sell notional", kind: "money", total: true },
  { key: "avg_buy_price", label: "Avg buy", kind: "price" },
  { key: "avg_sell_price", label: "Avg sell", kind: "price" },
  { key: "last_price", label: "Last", kind: "price" },
  { key: "mark_price", label: "Mark", kind: "price" },
  { key: "market_value", label: "Market value", kind: "money", total: true, signed: true },
  { key: "realized_pnl", label: "Realized P&L", kind: "money", total: true, signed: true },
  { key: "unrealized_pnl", label: "Unrealized P&L", kind: "money", total: true, signed: true },
  { key: "total_pnl", label: "P&L", kind: "money", total: true, signed: true },
  { key: "last_trade_at", label: "Last trade", kind: "time" },
  { key: "age", label: "Age", kind: "age" },
];
const BY_KEY = new Map(COLUMNS.map((c) => [c.key, c]));
const LAYOUT_KEY = "tradeflow.layout.v1";
const PAINT_HZ = 16;          // repaint ceiling (frames per second)
const FLASH_MS = 1200;        // a changed cell flashes this long (flashCell)
// Reconnects: 0.5 s doubling to 4 s, each ±25 % (so never above 5 s); the badge counts down.
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 4000;
const DEFAULT_LAYOUT = { order: COLUMNS.map((c) => c.key), hidden: [], sort: { key: "symbol", dir: 1 }, groupBy: "", compact: false };

const state = {
  config: { auth: true, stale_after_s: 60 },
  client: null, token: null,
  rows: new Map(),          // key → row (live)
  changedAt: new Map(),     // key → { at: ms, prev: row | null }: the row's last change, for ages and late flashes
  pending: new Map(),       // key → the row before this paint's first change (null: a new row)
  dirty: new Set(),         // keys changed since the view (currentView) was last brought up to date
  epoch: null, seq: null,   // resume position
  ws: null, backoff: BACKOFF_FIRST_MS, retryTimer: null, retryAt: 0, connected: false,
  feedDown: null,           // { since: Date } while the dashboard says its upstream Kafka feed is down
  feedTold: false,          // this socket has sent a `feed` frame (one comes before a snapshot while down)
  lastMessageAt: 0,
  layout: loadLayout(),
  expanded: new Set(),      // open groups ("account_id:ACC1")
  cursor: null,             // the selected tbody row's data-key
  history: null,            // { at: Date, rows: Map } while the board shows a past moment
  paintQueued: false, lastPaint: 0, fullPaint: true,
  rowsChanged: false,       // deltas applied since the last repaint (status line, charts)
  wanted: false,
};

const rowKey = (r) => `${r.trade_date}|${r.account_id}|${r.symbol}`;

// ---- layout (saved per browser in localStorage) ----
function loadLayout() {
  try {
    const saved = JSON.parse(localStorage.getItem(LAYOUT_KEY) || "null");
    if (!saved) return structuredClone(DEFAULT_LAYOUT);
    // Columns added since the layout was saved go at the end; unknown ones are dropped.
    const order = saved.order.filter((k) => BY_KEY.has(k));
    for (const c of COLUMNS) if (!order.includes(c.key)) order.push(c.key);
    return { ...structuredClone(DEFAULT_LAYOUT), ...saved, order, hidden: saved.hidden.filter((k) => BY_KEY.has(k)) };
  } catch {
    return structuredClone(DEFAULT_LAYOUT);
  }
}
function saveLayout() { localStorage.setItem(LAYOUT_KEY, JSON.stringify(state.layout)); }
const visibleColumns = () => state.layout.order.filter((k) => !state.layout.hidden.includes(k)).map((k) => BY_KEY.get(k));

// ---- exact decimals (they arrive as strings; never round-trip them through floats) ----
function parseDecimal(s) {
  s = String(s);
  const neg = s.startsWith("-");
  const [int, frac = ""] = (neg ? s.slice(1) : s).split(".");
  return { neg, digits: BigInt(int + frac), scale: frac.length };
}
function formatScaled(n, scale) {
  const neg = n < 0n;
  const digits = (neg ? -n : n).toString().padStart(scale + 1, "0");
  const out = scale ? digits.slice(0, -scale) + "." + digits.slice(-scale) : digits;
  return (neg && /[1-9]/.test(out) ? "-" : "") + out;
}
/// Rounds half away from zero to `places` decimals (display only; titles and exports keep the exact value).
function roundDecimal(s, places) {
  const { neg, digits, scale } = parseDecimal(s);
  if (scale <= places) return formatScaled(neg ? -digits : digits, scale);
  const unit = 10n ** BigInt(scale - places);
  let q = digits / unit;
  if ((digits % unit) * 2n >= unit) q += 1n;
  return formatScaled(neg ? -q : q, places);
}
function sumDecimals(values) {
  const parts = values.filter((v) => v !== null && v !== undefined && v !== "").map(parseDecimal);
  if (!parts.length) return "";
  const scale = Math.max(...parts.map((p) => p.scale));
  let total = 0n;
  for (const p of parts) { const n = p.digits * 10n ** BigInt(scale - p.scale); total += p.neg ? -n : n; }
  return formatScaled(total, scale);
}
function groupDigits(s) {
  const neg = s.startsWith("-");
  const [int, frac] = (neg ? s.slice(1) : s).split(".");
  return (neg ? "-" : "") + int.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (frac !== undefined ? "." + frac : "");
}
/// What a trader reads: prices 2–4 decimals, money 2, quantities grouped.
function display(kind, v) {
  if (v === null || v === undefined || v === "") return "";
  switch (kind) {
    case "money": { const [i, f = ""] = roundDecimal(v, 2).split("."); return groupDigits(`${i}.${f.padEnd(2, "0")}`); }
    case "price": { const [i, f = ""] = roundDecimal(v, 4).split("."); return groupDigits(`${i}.${f.replace(/0+$/, "").padEnd(2, "0")}`); }
    case "qty": return groupDigits(String(v));
    case "time": return String(v).replace("T", " ").slice(11, 23);
    default: return String(v);
  }
}
function ageText(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86400)}d`;
}
/// When the row last changed: the page's receipt time for deltas; for snapshot rows, the last trade
/// (read as UTC, SPEC §1's default zone) or the mark, whichever is later.
function changedAtOf(row) {
  const seen = state.changedAt.get(rowKey(row));
  if (seen) return seen.at;
  const trade = Date.parse(String(row.last_trade_at) + "Z");
  const mark = row.mark_at ? Date.parse(row.mark_at) : NaN;
  return Math.min(Date.now(), Math.max(Number.isFinite(trade) ? trade : 0, Number.isFinite(mark) ? mark : 0));
}
function isStale(row) {
  if (!row.mark_at) return false;
  const now = state.history ? state.history.at.getTime() : Date.now();
  return now - Date.parse(row.mark_at) > state.config.stale_after_s * 1000;
}

// ---- the view: filtered, sorted, optionally grouped rows (what the table and the export show) ----
// Kept between repaints (`view`): a repaint applies only the rows changed since the last one
// (`state.dirty`): each is taken out of the sorted list (binary search) and put back in place, and
// its old values are taken off the exact totals and its new ones added. The view is rebuilt from
// all rows only when the source (live / a snapshot / a moment of history), a filter, the sort or the
// grouping changes, when over half the rows changed at once, or while sorting by age (every age moves).
function sourceRows() { return state.history ? state.history.rows : state.rows; }
/// An exact running sum of decimal strings: `value()` equals `sumDecimals` of the values added
/// (and not taken off again) — the same digits, at the largest scale among them — or null while
/// any added value is unknown (null: a P&L or market value without a mark): `nulls` counts those.
class DecimalSum {
  constructor() { this.total = 0n; this.scale = 0; this.scales = new Map(); this.count = 0; this.nulls = 0; }
  add(v, by) { // by: 1 adds v, -1 takes it off
    if (v === null || v === undefined || v === "") { this.nulls += by; return; }
    const p = parseDecimal(v);
    if (p.scale > this.scale) { this.total *= 10n ** BigInt(p.scale - this.scale); this.scale = p.scale; }
    const n = p.digits * 10n ** BigInt(this.scale - p.scale);
    this.total += by > 0 ? (p.neg ? -n : n) : (p.neg ? n : -n);
    const left = (this.scales.get(p.scale) || 0) + by;
    if (left) this.scales.set(p.scale, left); else this.scales.delete(p.scale);
    this.count += by;
  }
  value() {
    if (this.nulls) return null;
    if (!this.count) return "";
    const scale = Math.max(...this.scales.keys());
    return formatScaled(this.total / 10n ** BigInt(this.scale - scale), scale); // exact: every part has scale ≤ `scale`
  }
}
const TOTAL_COLUMNS = COLUMNS.filter((c) => c.total);
function newSums() { return Object.fromEntries(TOTAL_COLUMNS.map((c) => [c.key, new DecimalSum()])); }
function sumValues(s) { return Object.fromEntries(TOTAL_COLUMNS.map((c) => [c.key, s[c.key].value()])); }
function sumNulls(s) { return Object.fromEntries(TOTAL_COLUMNS.map((c) => [c.key, s[c.key].nulls])); }
/// A total or subtotal cell: "—" when some row of it has no value (the sum is unknown, not partial).
function setTotal(td, c, value, nulls) {
  if (value === null) {
    setCell(td, "—", null, null);
    td.title = `unknown: ${nulls} row${nulls === 1 ? "" : "s"} without a mark`;
  } else setCell(td, display(c.kind, value), value, null);
  fit(c.key, td.textContent);
  if (c.signed) sign(td, value);
}
let view = null;
function entryCompare(dir) {
  return (a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0) * dir || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}
/// The sorted list's entry for `row`, or null when a filter hides it. Values that don't compare as a
/// total order (NaN, a text column's null) mark the view inexact: it is then re-sorted whole each
/// time, as the page always did.
function entryOf(v, row) {
  if ((v.account && row.account_id !== v.account) || (v.symbol && !row.symbol.toUpperCase().includes(v.symbol))) return null;
  const value = v.key === "age" ? -changedAtOf(row) : v.numeric ? (row[v.key] === null ? -Infinity : Number(row[v.key])) : row[v.key];
  if (v.numeric ? Number.isNaN(value) : typeof value !== "string") v.exact = false;
  return { value, key: rowKey(row), row };
}
function count(v, row, by) {
  for (const c of TOTAL_COLUMNS) v.totals[c.key].add(row[c.key], by);
  if (!v.by) return;
  const name = row[v.by];
  let g = v.groups.get(name);
  if (!g) { g = { count: 0, sums: newSums() }; v.groups.set(name, g); }
  g.count += by;
  for (const c of TOTAL_COLUMNS) g.sums[c.key].add(row[c.key], by);
  if (!g.count) v.groups.delete(name);
}
function buildView(params) {
  const col = BY_KEY.get(params.key);
  const v = { ...params, numeric: !!col && ["qty", "price", "money"].includes(col.kind), exact: true, list: [], entries: new Map(), totals: newSums(), groups: new Map(), accounts: new Set(), accountsChanged: true };
  for (const row of params.source.values()) {
    v.accounts.add(row.account_id);
    const e = entryOf(v, row);
    if (!e) continue;
    v.list.push(e); v.entries.set(e.key, e); count(v, row, 1);
  }
  v.list.sort(entryCompare(v.dir));
  state.dirty.clear();
  return v;
}
function lowerBound(list, e, cmp) {
  let lo = 0, hi = list.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (cmp(list[mid], e) < 0) lo = mid + 1; else hi = mid; }
  return lo;
}
/// The rows changed since the view was last brought up to date, applied one by one.
function applyChanges(v) {
  const cmp = entryCompare(v.dir);
  for (const k of state.dirty) {
    const row = v.source.get(k);
    if (row && !v.accounts.has(row.account_id)) { v.accounts.add(row.account_id); v.accountsChanged = true; }
    const old = v.entries.get(k);
    if (old) {
      let i = lowerBound(v.list, old, cmp);
      if (v.list[i] !== old) i = v.list.indexOf(old);
      v.list.splice(i, 1); v.entries.delete(k); count(v, old.row, -1);
    }
    const e = row && entryOf(v, row);
    if (!e) continue;
    v.list.splice(lowerBound(v.list, e, cmp), 0, e); v.entries.set(k, e); count(v, row, 1);
  }
  state.dirty.clear();
}
function currentView() {
  const params = {
    source: sourceRows(),
    account: $("#f-account").value,
    symbol: $("#f-symbol").value.trim().toUpperCase(),
    key: state.layout.sort.key, dir: state.layout.sort.dir,
    by: state.layout.groupBy,
  };
  const v = view;
  const same = v && v.exact && v.key !== "age" && Object.keys(params).every((p) => v[p] === params[p]);
  if (!same || (v.source === state.rows && state.dirty.size * 2 > v.source.size)) {
    const accounts = v && v.source === params.source ? v.accounts : null;
    view = buildView(params);
    if (accounts && accounts.size === view.accounts.size) view.accountsChanged = v.accountsChanged; // rows are never removed from a source
    return view;
  }
  if (v.source === state.rows && state.dirty.size) {
    applyChanges(v);
    if (!v.exact) view = buildView(params);
  }
  return view;
}
const rowItem = (e) => ({ kind: "row", key: e.key, row: e.row });
/// Items in display order: { kind: "row", key, row } or { kind: "group", key, label, count, open, sums };
/// as `{ length, range(from, to) }` so a repaint builds only the items it draws.
function viewItems(v) {
  const by = v.by;
  if (!by) return { length: v.list.length, range: (from, to) => v.list.slice(from, to).map(rowItem) };
  const names = [...v.groups.keys()].sort();
  const open = new Map(names.filter((name) => state.expanded.has(`group:${by}:${name}`)).map((name) => [name, []]));
  if (open.size) for (const e of v.list) { const members = open.get(e.row[by]); if (members) members.push(e); }
  const items = [];
  for (const name of names) {
    const g = v.groups.get(name);
    const key = `group:${by}:${name}`;
    items.push({ kind: "group", key, label: name, count: g.count, open: open.has(name), sums: sumValues(g.sums), nulls: sumNulls(g.sums) });
    if (open.has(name)) for (const e of open.get(name)) items.push(rowItem(e));
  }
  return { length: items.length, range: (from, to) => items.slice(from, to) };
}

// ---- painting ----
function schedulePaint(full = false) {
  state.fullPaint ||= full;
  if (state.paintQueued) return;
  state.paintQueued = true;
  const wait = Math.max(0, state.lastPaint + 1000 / PAINT_HZ - performance.now());
  setTimeout(() => requestAnimationFrame(paint), wait);
}

function buildHeader() {
  const head = $("#rows thead tr");
  head.textContent = "";
  widthsDirty = true;
  for (const c of visibleColumns()) {
    const th = document.createElement("th");
    th.dataset.key = c.key;
    th.dataset.type = c.kind === "text" || c.kind === "time" ? "text" : "num";
    th.textContent = c.label;
    if (state.layout.sort.key === c.key) th.classList.add(state.layout.sort.dir > 0 ? "sorted-asc" : "sorted-desc");
    th.addEventListener("click", () => {
      const dir = state.layout.sort.key === c.key ? -state.layout.sort.dir : 1;
      state.layout.sort = { key: c.key, dir };
      saveLayout(); buildHeader(); schedulePaint();
    });
    head.appendChild(th);
  }
  const foot = $("#totals");
  foot.textContent = "";
  visibleColumns().forEach((c, i) => {
    const td = document.createElement("td");
    if (i === 0) { td.textContent = "Total"; td.className = "text"; }
    if (c.total) td.dataset.total = c.key;
    foot.appendChild(td);
  });
}

// Column widths: the table layout is fixed (widths from the header, see app.css), so each header
// gets a width that fits the widest text its column has shown (at least a minimum per kind): numbers
// are never cut. Widths only grow (until the columns change); the table scrolls sideways in its box.
const MIN_CHARS = { text: 8, qty: 7, price: 8, money: 12, time: 12, age: 4 };
const colChars = new Map();   // column key → the longest text drawn in it
let widthsDirty = true;
function fit(key, text) {
  const n = text.length + (key === "mark_price" ? 6 : 0); // room for the " stale" tag
  if (n > (colChars.get(key) || 0)) { colChars.set(key, n); widthsDirty = true; }
}
function applyWidths() {
  if (!widthsDirty) return;
  widthsDirty = false;
  for (const th of $("#rows thead tr").children) {
    const c = BY_KEY.get(th.dataset.key);
    const chars = Math.max(MIN_CHARS[c.kind] || 8, c.label.length + 2, colChars.get(c.key) || 0);
    th.style.width = `${Math.ceil(chars * 7.8) + 24}px`;
  }
}
function setCell(td, text, exact, flash) {
  if (td.dataset.key) fit(td.dataset.key, text);
  if (td.textContent === text) return;
  td.textContent = text;
  td.title = exact === null || exact === undefined ? "" : String(exact);
  if (flash) flashCell(td, flash);
}
// A flash lights the cell for FLASH_MS: the colour class (`flash-up`, …) says what changed and
// stays as the cell's mark; `lit` shows it and is taken off again by one sweep for all the cells
// lit before then (`unlight`). Two style changes per flash: a Web Animation of the background ran on
// the main thread and restyled every flashing cell on every frame (the page benchmark's trace: style
// 16 % of the main thread's wall time, 2 % lit by class — docs/benchmarks.md#the-page); the
// CSS-class restart before it read `offsetWidth` per cell, a forced layout each time.
const lit = new Map();        // td → when it was lit (insertion order: oldest first)
let unlightTimer = null;
function flashCell(td, flash) {
  td.classList.remove("flash", "flash-up", "flash-down");
  td.classList.add(flash, "lit");
  lit.delete(td); lit.set(td, performance.now());
  if (!unlightTimer) unlightTimer = setTimeout(unlight, FLASH_MS);
}
function unlight() {
  unlightTimer = null;
  const now = performance.now();
  for (const [td, at] of lit) {
    if (now - at < FLASH_MS) { unlightTimer = setTimeout(unlight, Math.max(50, FLASH_MS - (now - at))); return; }
    td.classList.remove("lit");
    lit.delete(td);
  }
}
function flashClass(before, after) {
  const b = Number(before), a = Number(after);
  return Number.isFinite(b) && Number.isFinite(a) && b !== a && before !== null ? (a > b ? "flash-up" : "flash-down") : "flash";
}
function sign(td, v) {
  td.classList.toggle("pos", v !== null && v !== undefined && v !== "" && Number(v) > 0);
  td.classList.toggle("neg", v !== null && v !== undefined && v !== "" && Number(v) < 0);
}

function ensureCells(tr, columns) {
  if (tr.children.length === columns.length) return;
  tr.textContent = "";
  for (const c of columns) {
    const td = document.createElement("td");
    td.dataset.key = c.key;
    if (c.kind === "text" || c.kind === "time") td.className = "text";
    tr.appendChild(td);
  }
}

/// `prev`: the row's version before the change being shown (undefined: no flash; null: a new row).
function paintRow(tr, row, prev, columns) {
  ensureCells(tr, columns);
  for (const td of tr.children) {
    const c = BY_KEY.get(td.dataset.key);
    if (c.kind === "age") { td.textContent = state.history ? "" : ageText(Date.now() - changedAtOf(row)); continue; }
    const flash = prev === undefined ? null : prev === null ? "flash" : flashClass(prev[c.key], row[c.key]);
    setCell(td, display(c.kind, row[c.key]), row[c.key], flash);
    if (c.signed) sign(td, row[c.key]);
    if (c.key === "mark_price") td.classList.toggle("stale", isStale(row));
  }
}
function paintGroup(tr, item, columns) {
  ensureCells(tr, columns);
  tr.setAttribute("aria-expanded", String(item.open));
  [...tr.children].forEach((td, i) => {
    const c = BY_KEY.get(td.dataset.key);
    if (i === 0) { setCell(td, `${item.open ? "▾" : "▸"} ${item.label} (${item.count})`, null, null); td.classList.add("text"); return; }
    if (c.total) { setTotal(td, c, item.sums[c.key], item.nulls[c.key]); return; }
    if (c.key === state.layout.groupBy) { setCell(td, item.label, item.label, null); return; }
    setCell(td, "", null, null);
  });
}

// ---- windowing: a long view puts only the items on screen (and a margin) in the table; two spacer
// rows stand for the rest, so the scroll bar is the whole view's. A layout of a 2,000-row table took
// ~110 ms on this machine, per repaint (docs/benchmarks.md#the-page); of ~100 rows, a few ms.
const WINDOW_FROM = 300;      // views up to this many items are drawn whole
const WINDOW_MARGIN = 30;     // items drawn above and below the screen
let rowHeight = 0;            // measured from a drawn row, once
function onScreen(items, tbody, span) {
  if (items.length <= WINDOW_FROM) return items.range(0, items.length);
  if (!rowHeight) { const tr = tbody.querySelector("tr:not(.spacer)"); rowHeight = (tr && tr.offsetHeight) || 27; }
  const top = tbody.getBoundingClientRect().top; // the first item's top, relative to the viewport
  const first = Math.max(0, Math.min(items.length, Math.floor(-top / rowHeight) - WINDOW_MARGIN));
  const last = Math.min(items.length, Math.max(first, Math.floor(-top / rowHeight)) + Math.ceil(innerHeight / rowHeight) + WINDOW_MARGIN);
  return [
    { kind: "spacer", key: "spacer:top", height: first * rowHeight, span },
    ...items.range(first, last),
    { kind: "spacer", key: "spacer:bottom", height: (items.length - last) * rowHeight, span },
  ];
}
function paintSpacer(tr, item, span) {
  if (!tr.firstChild) tr.appendChild(document.createElement("td"));
  tr.firstChild.colSpan = span;
  tr.firstChild.style.height = `${item.height}px`;
  tr.firstChild.style.padding = "0";
  tr.firstChild.style.border = "0";
  tr.hidden = item.height === 0;
}
addEventListener("scroll", () => schedulePaint(), { passive: true });

function paint() {
  state.paintQueued = false;
  state.lastPaint = performance.now();
  const tbody = $("#rows tbody");
  const columns = visibleColumns();
  if (state.fullPaint) { tbody.textContent = ""; state.fullPaint = false; }
  const v = currentView();
  const items = onScreen(viewItems(v), tbody, columns.length);
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  const order = [];
  const toPaint = [];
  for (const item of items) {
    let tr = existing.get(item.key);
    const fresh = !tr;
    if (fresh) { tr = document.createElement("tr"); tr.dataset.key = item.key; if (item.kind !== "row") tr.className = item.kind; }
    existing.delete(item.key);
    order.push(tr);
    toPaint.push([tr, item, fresh]);
  }
  for (const tr of existing.values()) tr.remove();
  // Reorder first, then paint (a moved row keeps its flash).
  order.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
  const now = Date.now();
  for (const [tr, item, fresh] of toPaint) {
    if (item.kind === "spacer") { paintSpacer(tr, item, columns.length); continue; }
    tr.classList.toggle("selected", tr.dataset.key === state.cursor);
    if (item.kind === "group") { paintGroup(tr, item, columns); continue; }
    let prev;
    if (!state.history) {
      if (state.pending.has(item.key)) prev = state.pending.get(item.key);
      else if (fresh) {
        // A row that changed while filtered out or collapsed flashes when it comes into view.
        const recent = state.changedAt.get(item.key);
        if (recent && now - recent.at < FLASH_MS) prev = recent.prev;
      }
    }
    if (fresh) {
      paintRow(tr, item.row, undefined, columns); // fill the cells, then flash what changed
      if (prev !== undefined) flashFresh(tr, item.row, prev);
    } else if (prev !== undefined) paintRow(tr, item.row, prev, columns);
  }
  state.pending.clear();
  if (state.rowsChanged) {
    state.rowsChanged = false;
    touched();
    $("#seq").textContent = `seq ${state.seq}`;
    document.dispatchEvent(new Event("tradeflow:rows"));
  }
  for (const c of columns) {
    const td = document.querySelector(`#totals [data-total="${c.key}"]`);
    if (!td) continue;
    setTotal(td, c, v.totals[c.key].value(), v.totals[c.key].nulls);
  }
  $("#row-count").textContent = `${v.list.length} of ${sourceRows().size} rows`;
  $("#empty").hidden = sourceRows().size > 0;
  $("#empty").textContent = state.client ? `No rows for client ${state.client} yet.` : "Enter a client id to watch its positions.";
  if (v.accountsChanged) { v.accountsChanged = false; refreshAccounts(v.accounts); }
  applyWidths();
}
function flashFresh(tr, row, prev) {
  for (const td of tr.children) {
    const c = BY_KEY.get(td.dataset.key);
    if (c.kind === "age") continue;
    if (prev === null || String(prev[c.key]) !== String(row[c.key])) {
      flashCell(td, prev === null ? "flash" : flashClass(prev[c.key], row[c.key]));
    }
  }
}

/// `accounts`: every account among the view's source rows (only called when a new one appeared).
function refreshAccounts(accounts) {
  const select = $("#f-account");
  accounts = [...accounts].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (accounts.join() === have.join()) return;
  const current = select.value;
  select.length = 1;
  for (const a of accounts) select.add(new Option(a, a));
  select.value = accounts.includes(current) ? current : "";
}

// ---- column chooser ----
function buildChooser() {
  const list = $("#column-list");
  list.textContent = "";
  state.layout.order.forEach((key, i) => {
    const c = BY_KEY.get(key);
    const li = document.createElement("li");
    li.dataset.col = key;
    const box = document.createElement("input");
    box.type = "checkbox"; box.checked = !state.layout.hidden.includes(key); box.id = `col-${key}`;
    box.addEventListener("change", () => {
      state.layout.hidden = box.checked ? state.layout.hidden.filter((k) => k !== key) : [...state.layout.hidden, key];
      layoutChanged();
    });
    const label = document.createElement("label");
    label.htmlFor = box.id; label.textContent = c.label;
    const up = button("↑", `move ${c.label} left`, () => move(i, -1), i === 0);
    const down = button("↓", `move ${c.label} right`, () => move(i, 1), i === state.layout.order.length - 1);
    up.className = "up"; down.className = "down";
    li.append(box, label, up, down);
    list.appendChild(li);
  });
}
function button(text, title, onclick, disabled) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text; b.title = title; b.disabled = disabled;
  b.addEventListener("click", onclick);
  return b;
}
function move(i, by) {
  const order = state.layout.order;
  [order[i], order[i + by]] = [order[i + by], order[i]];
  layoutChanged();
}
function layoutChanged() {
  saveLayout(); buildChooser(); buildHeader(); applyCompact(); schedulePaint(true);
}
function applyCompact() {
  document.body.classList.toggle("compact", state.layout.compact);
  $("#compact").setAttribute("aria-pressed", String(state.layout.compact));
}

// ---- export: CSV of exactly the view (filters, grouping, open groups; exact values) ----
function csvField(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
function exportCsv() {
  const columns = visibleColumns();
  const v = currentView();
  const lines = [["line", ...columns.map((c) => c.label)]];
  const now = Date.now();
  const items = viewItems(v);
  for (const item of items.range(0, items.length)) {
    if (item.kind === "group") lines.push(["subtotal", ...columns.map((c, i) => (c.total ? item.sums[c.key] : c.key === state.layout.groupBy || i === 0 ? item.label : ""))]);
    else lines.push(["row", ...columns.map((c) => (c.kind === "age" ? (state.history ? "" : Math.floor((now - changedAtOf(item.row)) / 1000)) : item.row[c.key]))]);
  }
  const total = sumValues(v.totals);
  lines.push(["total", ...columns.map((c, i) => (c.total ? total[c.key] : i === 0 ? "Total" : ""))]);
  const at = state.history ? `as-of-${state.history.at.toISOString()}` : `live-${new Date().toISOString()}`;
  // Name parts from user input are sanitised and capped (a 300-character filter made the download fail).
  const part = (s) => String(s).replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 40);
  const parts = [`tradeflow_client-${part(state.client || "none")}`, at.replace(/[:.]/g, "-")];
  if ($("#f-account").value) parts.push(`account-${part($("#f-account").value)}`);
  if ($("#f-symbol").value.trim()) parts.push(`symbol-${part($("#f-symbol").value.trim().toUpperCase())}`);
  if (state.layout.groupBy) parts.push(`by-${state.layout.groupBy.replace("_id", "")}`);
  // A UTF-8 byte order mark first: Excel reads the file as UTF-8 (non-ASCII names were garbled).
  return { name: parts.join("_") + ".csv", text: "\uFEFF" + lines.map((l) => l.map(csvField).join(",")).join("\r\n") + "\r\n" };
}

// ---- time travel: the board as of a moment of the chosen trade date (REST as_of) ----
/// The chosen moment, or null when the date is empty or not a date (the picker was cleared).
function sliderMoment() {
  const date = $("#as-of-date").value;
  const secs = Number($("#as-of-slider").value);
  const t = new Date(`${date}T00:00:00Z`).getTime() + secs * 1000;
  return /^\d{4}-\d{2}-\d{2}$/.test(date) && Number.isFinite(t) ? new Date(t) : null;
}
let travelTimer = null;
function travel() {
  const at = sliderMoment();
  if (!at) { goLive(); return; } // a cleared or invalid date: back to the live board
  $("#as-of-label").textContent = at.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  clearTimeout(travelTimer);
  travelTimer = setTimeout(async () => {
    if (!state.client) return;
    if (at.getTime() >= Date.now()) { goLive(); return; }
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    try {
      const response = await fetch(`api/summary?client=${encodeURIComponent(state.client)}&as_of=${encodeURIComponent(at.toISOString())}`, { headers });
      if (!response.ok) { showError(`history: ${response.status} ${(await response.text()).trim()}`, "history"); return; }
      const answer = await response.json();
      clearError("history");
      if (sliderMoment()?.getTime() !== at.getTime()) return; // the slider moved on
      state.history = { at, rows: new Map(answer.rows.map((r) => [rowKey(r), r])) };
      document.body.classList.add("history");
      $("#history-banner").hidden = $("#rows-view").hidden; // the banner is the Rows tab's (Holdings stays live)
      $("#history-at").textContent = at.toISOString().replace("T", " ").slice(0, 19) + " UTC";
      schedulePaint(true);
    } catch (e) {
      showError(`history: ${e}`, "history");
    }
  }, 150);
}
function goLive() {
  clearTimeout(travelTimer);
  clearError("history");
  state.history = null;
  document.body.classList.remove("history");
  $("#history-banner").hidden = true;
  resetSlider();
  schedulePaint(true);
}
function resetSlider() {
  const now = new Date();
  $("#as-of-date").value = now.toISOString().slice(0, 10);
  $("#as-of-slider").value = String(now.getUTCHours() * 3600 + now.getUTCMinutes() * 60 + now.getUTCSeconds());
  $("#as-of-label").textContent = "live";
}

// ---- connection ----
function setBadge(kind, text) {
  const badge = $("#badge");
  badge.className = `badge ${kind}`;
  badge.textContent = text || kind;
}
function setConnected(connected) {
  state.connected = connected;
  document.body.classList.toggle("offline", !connected && state.wanted);
}
/// The socket delivers: "live" — unless the dashboard said its upstream feed is down, then the
/// board is stale (badge red, rows greyed) until it says the feed is up again (docs/page.md#liveness).
function showLive() {
  if (state.feedDown) setBadge("stale", `stale · feed down since ${state.feedDown.since.toLocaleTimeString()}`);
  else setBadge("live");
  document.body.classList.toggle("feed-down", !!state.feedDown);
}
/// A `feed` frame (docs/protocol.md#feed-health).
function feedFrame(frame) {
  state.feedTold = true;
  const since = frame.state === "down" ? new Date(frame.since) : null;
  state.feedDown = since && !Number.isNaN(since.getTime()) ? { since } : frame.state === "down" ? { since: new Date() } : null;
  document.body.classList.toggle("feed-down", !!state.feedDown);
  if (state.connected) showLive();
}
/// While waiting to reconnect: the badge counts down each second; "retry now" reconnects at once.
function showRetry() {
  if (!state.retryAt) return;
  const left = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
  setBadge("offline", `disconnected · retry in ${left}s`);
}
/// `from` names the request the error is about ("history", …): its next success clears it (clearError).
let errorFrom = null;
function showError(text, from = null) {
  errorFrom = text ? from : null;
  $("#error").hidden = !text;
  $("#error").textContent = text || "";
}
function clearError(from) { if (errorFrom === from) showError(""); }
function touched() {
  $("#last-update").textContent = `last update ${new Date().toLocaleTimeString()}`;
}

function connect() {
  clearTimeout(state.retryTimer);
  state.retryAt = 0;
  state.feedTold = false;
  $("#retry-now").hidden = true;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const proto = location.protocol === "https:" ? "wss" : "ws";
  // The token travels as a subprotocol (a header), not in the URL: it stays out of access logs.
  const protocols = state.token ? ["tradeflow.v1", state.token] : ["tradeflow.v1"];
  const ws = new WebSocket(`${proto}://${location.host}/ws`, protocols);
  state.ws = ws;
  if (state.seq === null) setBadge("reconnecting", "connecting");
  let opened = false;
  ws.onopen = () => {
    opened = true;
    const request = { op: "subscribe", client: state.client };
    if (state.epoch !== null && state.seq !== null) { request.epoch = state.epoch; request.since = state.seq; }
    ws.send(JSON.stringify(request));
  };
  ws.onmessage = (event) => {
    state.lastMessageAt = Date.now();
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    // Frames again after a stale spell: live (a snapshot or resume says so by itself).
    if (!state.connected && state.seq !== null && (frame.type === "delta" || frame.type === "pong")) { setConnected(true); showLive(); }
    handle(frame);
  };
  ws.onclose = () => {
    state.ws = null;
    if (!state.wanted) return;
    setConnected(false);
    // A refused handshake (bad token / origin) closes before opening: don't hammer the server.
    if (!opened && state.token) checkRefusal();
    const delay = state.backoff * (0.75 + Math.random() * 0.5);
    state.backoff = Math.min(state.backoff * 2, BACKOFF_MAX_MS);
    state.retryAt = Date.now() + delay;
    showRetry();
    $("#retry-now").hidden = false;
    state.retryTimer = setTimeout(connect, delay);
  };
}

/// The socket closed before opening: ask REST with the same token why. A 401/403 is a refusal of the
/// token (bad, forged, expired): show the server's text, stop retrying and forget the token.
async function checkRefusal() {
  const token = state.token;
  try {
    const r = await fetch(`api/summary?client=${encodeURIComponent(state.client)}`, { headers: { Authorization: `Bearer ${token}` } });
    if ((r.status !== 401 && r.status !== 403) || token !== state.token) return;
    const text = (await r.text()).trim();
    state.wanted = false; clearTimeout(state.retryTimer); state.retryAt = 0; $("#retry-now").hidden = true;
    setBadge("refused");
    showError(`refused: ${r.status} ${text}`);
    sessionStorage.setItem("tradeflow", JSON.stringify({ client: state.client, token: null }));
  } catch { /* the dashboard is down: keep retrying */ }
}

function handle(frame) {
  switch (frame.type) {
    case "hello":
      break;
    case "snapshot": {
      state.rows = new Map(frame.rows.map((r) => [rowKey(r), r]));
      state.changedAt.clear(); state.pending.clear();
      state.epoch = frame.epoch; state.seq = frame.seq;
      state.backoff = BACKOFF_FIRST_MS;
      if (!state.feedTold) state.feedDown = null; // while down, a `feed` frame came first on this socket
      setConnected(true); showLive(); showError(""); touched(); schedulePaint(true);
      document.dispatchEvent(new Event("tradeflow:rows"));
      break;
    }
    case "resumed":
      state.epoch = frame.epoch; state.seq = frame.since;
      state.backoff = BACKOFF_FIRST_MS;
      if (!state.feedTold) state.feedDown = null; // as for a snapshot
      setConnected(true); showLive(); showError("");
      break;
    case "feed":
      feedFrame(frame);
      break;
    case "delta": {
      const now = Date.now();
      for (const r of frame.rows) {
        const k = rowKey(r);
        const prev = state.rows.get(k) || null;
        if (!state.pending.has(k)) state.pending.set(k, prev);
        state.dirty.add(k);
        state.changedAt.set(k, { at: now, prev });
        state.rows.set(k, r);
      }
      state.seq = frame.seq;
      // The status line and the charts' "rows changed" follow on the repaint (≤ PAINT_HZ a
      // second), not on each of the ~100 frames a second: every DOM write here made a frame of
      // its own need style and layout (docs/benchmarks.md#the-page).
      state.rowsChanged = true;
      schedulePaint();
      return;
    }
    case "pong":
      break;
    case "error":
      showError(`${frame.code}: ${frame.message}`);
      if (frame.code === "forbidden") { state.wanted = false; setBadge("refused"); if (state.ws) state.ws.close(); }
      break;
  }
  $("#seq").textContent = state.seq === null ? "" : `seq ${state.seq}`;
}

// Heartbeat: ping every 10 s; no frame for 30 s while open → "stale" (red, rows greyed);
// ages and stale marks re-evaluated every second.
setInterval(() => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ op: "ping" }));
}, 10000);
setInterval(() => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN && state.lastMessageAt && Date.now() - state.lastMessageAt > 30000) {
    setBadge("stale"); setConnected(false);
  }
  if (!state.ws) showRetry();
  if (state.history || $("#rows-view").hidden) return;
  // Only the rows drawn (a long view draws those on screen: windowing above).
  for (const tr of $("#rows tbody").children) {
    const row = state.rows.get(tr.dataset.key);
    if (!row) continue;
    const age = tr.querySelector('[data-key="age"]');
    if (age) age.textContent = ageText(Date.now() - changedAtOf(row));
    const mark = tr.querySelector('[data-key="mark_price"]');
    if (mark) mark.classList.toggle("stale", isStale(row));
  }
}, 1000);

// ---- keyboard: ↑/↓ move the selection, →/Enter open a group, ← closes it (or goes to its group) ----
function select(tr) {
  if (!tr || tr.classList.contains("spacer")) return;
  for (const other of document.querySelectorAll("#rows tbody tr.selected")) other.classList.remove("selected");
  tr.classList.add("selected");
  state.cursor = tr.dataset.key;
  tr.scrollIntoView({ block: "nearest" });
}
function toggleGroup(key, open) {
  if (open) state.expanded.add(key); else state.expanded.delete(key);
  schedulePaint();
}
document.addEventListener("keydown", (event) => {
  if (event.target instanceof Element && event.target.closest("input, select, textarea, details")) return;
  const current = state.cursor && document.querySelector(`#rows tbody tr[data-key="${CSS.escape(state.cursor)}"]`);
  const groupOf = (tr) => { let g = tr; while (g && !g.classList.contains("group")) g = g.previousElementSibling; return g; };
  switch (event.key) {
    case "ArrowDown": select(current ? current.nextElementSibling : $("#rows tbody tr:not(.spacer)")); break;
    case "ArrowUp": select(current ? current.previousElementSibling : [...document.querySelectorAll("#rows tbody tr:not(.spacer)")].at(-1)); break;
    case "ArrowRight": case "Enter": if (current && current.classList.contains("group")) toggleGroup(current.dataset.key, true); else return; break;
    case "ArrowLeft":
      if (!current) return;
      if (current.classList.contains("group")) toggleGroup(current.dataset.key, false);
      else if (state.layout.groupBy) select(groupOf(current));
      break;
    default: return;
  }
  event.preventDefault();
});
$("#rows tbody").addEventListener("click", (event) => {
  const tr = event.target.closest("tr");
  if (!tr || tr.classList.contains("spacer")) return;
  select(tr);
  if (tr.classList.contains("group")) toggleGroup(tr.dataset.key, !state.expanded.has(tr.dataset.key));
});

// ---- controls ----
$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  const client = $("#client").value.trim();
  if (!client) return;
  const switching = client !== state.client;
  state.client = client;
  state.token = $("#token").value.trim() || null;
  sessionStorage.setItem("tradeflow", JSON.stringify({ client, token: state.token }));
  history.replaceState(null, "", `#client=${encodeURIComponent(client)}`);
  if (switching) { state.rows = new Map(); state.changedAt.clear(); state.epoch = null; state.seq = null; goLive(); }
  state.wanted = true; state.backoff = BACKOFF_FIRST_MS;
  showError("");
  connect();
  // holdings.js and charts.js follow the watched client on their own sockets.
  document.dispatchEvent(new CustomEvent("tradeflow:watch", { detail: { client, token: state.token } }));
});
// Tabs: the rows (this file), holdings (holdings.js), charts (charts.js).
function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
  for (const view of ["rows", "holdings", "charts"]) $(`#${view}-view`).hidden = view !== name;
  $("#history-banner").hidden = !state.history || name !== "rows"; // time travel is the Rows tab's only
  document.dispatchEvent(new CustomEvent("tradeflow:tab", { detail: name }));
}
for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
$("#f-account").addEventListener("change", () => schedulePaint());
$("#f-symbol").addEventListener("input", () => schedulePaint());
$("#group-by").addEventListener("change", () => { state.layout.groupBy = $("#group-by").value; layoutChanged(); });
$("#compact").addEventListener("click", () => { state.layout.compact = !state.layout.compact; layoutChanged(); });
$("#columns-reset").addEventListener("click", () => { state.layout = structuredClone(DEFAULT_LAYOUT); $("#group-by").value = ""; layoutChanged(); });
$("#export").addEventListener("click", (event) => {
  const link = event.currentTarget;
  const { name, text } = exportCsv();
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href); // one export's blob alive at a time
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  link.download = name;
  // the default action downloads the link's (new) target
});
$("#as-of-slider").addEventListener("input", travel);
$("#as-of-date").addEventListener("change", travel);
$("#live").addEventListener("click", goLive);
$("#retry-now").addEventListener("click", () => { if (state.wanted && !state.ws) { state.backoff = BACKOFF_FIRST_MS; connect(); } });
$("#live-back").addEventListener("click", goLive);

fetch("api/config").then((r) => r.json()).then((config) => {
  state.config = config;
  $("#auth-banner").hidden = config.auth;
  $("#token-label").hidden = !config.auth;
}).catch(() => {});

$("#group-by").value = state.layout.groupBy;
resetSlider();
buildChooser(); buildHeader(); applyCompact(); schedulePaint(true);

// #client=7[&token=…] (dev.sh prints such links) or this tab's last entries fill the form; with a
// client and a token known (a link, or a reload) the page connects at once — after holdings.js and
// charts.js have loaded (DOMContentLoaded), so they hear the first `tradeflow:watch`.
document.addEventListener("DOMContentLoaded", () => {
  const saved = JSON.parse(sessionStorage.getItem("tradeflow") || "null");
  const hash = new URLSearchParams(location.hash.slice(1));
  const client = hash.get("client") || (saved && saved.client);
  const token = hash.get("token") || (saved && saved.client === client ? saved.token : null);
  if (client) $("#client").value = client;
  if (token) $("#token").value = token;
  if (client && token) $("#login").requestSubmit();
});
