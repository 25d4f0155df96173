// The holdings view (docs/page.md#holdings): the client's positions across trade dates — position,
// average cost, mark, market value, realized / unrealized / day / total P&L — grouped by account
// with a subtotal per account and an overall total; P&L coloured by sign. Fed by the websocket's
// `positions` view on a second socket (docs/protocol.md: one subscription per socket), so the rows
// feed keeps its sequence numbers and resume position while this tab is open or closed.
// Uses app.js's helpers (display, sumDecimals, sign, setCell); loaded after it.
"use strict";

const HOLDING_COLUMNS = [
  { key: "account_id", label: "Account", kind: "text" },
  { key: "symbol", label: "Symbol", kind: "text" },
  { key: "position", label: "Position", kind: "qty", total: true, signed: true },
  { key: "avg_cost", label: "Avg cost", kind: "price" },
  { key: "mark_price", label: "Mark", kind: "price" },
  { key: "market_value", label: "Market value", kind: "money", total: true, signed: true },
  { key: "realized_pnl", label: "Realized P&L", kind: "money", total: true, signed: true },
  { key: "unrealized_pnl", label: "Unrealized P&L", kind: "money", total: true, signed: true },
  { key: "day_pnl", label: "Day P&L", kind: "money", total: true, signed: true },
  { key: "total_pnl", label: "Total P&L", kind: "money", total: true, signed: true },
];
const HOLDINGS_PAINT_MS = 250;  // the holdings table repaints at most 4 times a second

const holdings = {
  rows: new Map(),   // "account|symbol" → holding
  ws: null, retry: null, backoff: BACKOFF_FIRST_MS, client: null, token: null,
  paintQueued: false, seq: null,
};
const holdingKey = (h) => `${h.account_id}|${h.symbol}`;

/// A column's sum over `items`; null (shown "—") when any member lacks the value: an unmarked
/// holding's P&L is unknown, not zero (docs/pnl.md), so a total over it is unknown too.
function holdingsSum(items, key) {
  if (!items.length || items.some((h) => h[key] === null || h[key] === undefined)) return null;
  return sumDecimals(items.map((h) => String(h[key])));
}
function holdingCell(td, column, value) {
  const shown = value === null || value === undefined ? "—" : display(column.kind, value);
  td.textContent = shown;
  td.title = value === null || value === undefined ? (column.key === "day_pnl" ? "no day P&L (no opening mark)" : "unknown: no mark") : String(value);
  if (column.signed) sign(td, value);
}
/// A holding's mark older than /api/config's stale_after_s: flagged like the Rows tab's (td.stale).
function holdingStale(h) {
  return !!(h && h.mark_at) && Date.now() - Date.parse(h.mark_at) > state.config.stale_after_s * 1000;
}
/// The holdings socket is down: the table greys like the rows (its figures may be out of date).
function holdingsOffline(offline) { $("#holdings-view").classList.toggle("offline", offline); }
function holdingsLine(cells, className) {
  const tr = document.createElement("tr");
  if (className) tr.className = className;
  for (const [column, value, text] of cells) {
    const td = document.createElement("td");
    td.dataset.key = column.key;
    if (column.kind === "text") { td.className = "text"; td.textContent = text ?? value ?? ""; }
    else holdingCell(td, column, value);
    tr.appendChild(td);
  }
  return tr;
}
function paintHoldings() {
  holdings.paintQueued = false;
  const body = $("#holdings tbody");
  const foot = $("#holdings tfoot");
  const byAccount = new Map();
  for (const h of [...holdings.rows.values()].sort((a, b) => holdingKey(a).localeCompare(holdingKey(b)))) {
    if (!byAccount.has(h.account_id)) byAccount.set(h.account_id, []);
    byAccount.get(h.account_id).push(h);
  }
  const lines = [];
  for (const [account, items] of byAccount) {
    for (const h of items) {
      const tr = holdingsLine(HOLDING_COLUMNS.map((c) => [c, h[c.key]]));
      tr.dataset.key = holdingKey(h);
      tr.querySelector('[data-key="mark_price"]').classList.toggle("stale", holdingStale(h));
      lines.push(tr);
    }
    const sub = holdingsLine(HOLDING_COLUMNS.map((c, i) => [c, c.total ? holdingsSum(items, c.key) : null, i === 0 ? account : i === 1 ? `total (${items.length})` : ""]), "subtotal");
    sub.dataset.key = `account:${account}`;
    lines.push(sub);
  }
  body.replaceChildren(...lines);
  const all = [...holdings.rows.values()];
  const total = holdingsLine(HOLDING_COLUMNS.map((c, i) => [c, c.total ? holdingsSum(all, c.key) : null, i === 0 ? "Total" : i === 1 ? `${all.length} holdings` : ""]));
  total.id = "holdings-total";
  foot.replaceChildren(total);
  $("#holdings-empty").hidden = all.length > 0;
}
/// Repaints only while the tab shows (a hidden table of 2,000 holdings rebuilt 4 times a second
/// was most of the page's work in the page benchmark); opening the tab paints at once.
function scheduleHoldings() {
  if (holdings.paintQueued || $("#holdings-view").hidden) return;
  holdings.paintQueued = true;
  setTimeout(() => requestAnimationFrame(paintHoldings), HOLDINGS_PAINT_MS);
}
function buildHoldingsHeader() {
  const head = $("#holdings thead tr");
  head.replaceChildren(...HOLDING_COLUMNS.map((c) => {
    const th = document.createElement("th");
    th.dataset.key = c.key;
    th.dataset.type = c.kind === "text" ? "text" : "num";
    th.textContent = c.label;
    return th;
  }));
}

function connectHoldings() {
  clearTimeout(holdings.retry);
  if (holdings.ws) { holdings.ws.onclose = null; holdings.ws.close(); }
  if (!holdings.client) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`, holdings.token ? ["tradeflow.v1", holdings.token] : ["tradeflow.v1"]);
  holdings.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", client: holdings.client, view: "positions" }));
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame.type !== "view" || frame.view !== "positions") return;
    if (frame.snapshot) holdings.rows = new Map();
    for (const h of frame.rows) holdings.rows.set(holdingKey(h), h);
    holdings.seq = frame.seq;
    holdings.backoff = BACKOFF_FIRST_MS;
    holdingsOffline(false);
    scheduleHoldings();
  };
  ws.onclose = () => {
    holdings.ws = null;
    holdingsOffline(true);
    if (!state.wanted && $("#badge").classList.contains("refused")) return; // the token was refused
    // A fresh subscription brings a complete snapshot: nothing to resume.
    holdings.retry = setTimeout(connectHoldings, holdings.backoff * (0.75 + Math.random() * 0.5));
    holdings.backoff = Math.min(holdings.backoff * 2, BACKOFF_MAX_MS);
  };
}

document.addEventListener("tradeflow:watch", (event) => {
  const { client, token } = event.detail;
  if (client !== holdings.client) { holdings.rows = new Map(); scheduleHoldings(); }
  holdings.client = client; holdings.token = token; holdings.backoff = BACKOFF_FIRST_MS;
  connectHoldings();
});
document.addEventListener("tradeflow:tab", (event) => { if (event.detail === "holdings") paintHoldings(); });
// Marks go stale with time alone: re-flag the drawn marks every second while the tab shows.
setInterval(() => {
  if ($("#holdings-view").hidden) return;
  for (const td of document.querySelectorAll('#holdings tbody td[data-key="mark_price"]')) {
    td.classList.toggle("stale", holdingStale(holdings.rows.get(td.parentElement.dataset.key)));
  }
}, 1000);
buildHoldingsHeader();
paintHoldings();
