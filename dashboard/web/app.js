// tradeflow dashboard page: plain JavaScript, no build step.
// Speaks the websocket protocol of the README: subscribe → snapshot (seq) → deltas (seq ↑);
// on reconnect it resumes with {epoch, since: last seq} and gets the missed deltas or a snapshot.
"use strict";

const $ = (sel) => document.querySelector(sel);
const COLUMNS = [...document.querySelectorAll("#rows thead th")].map((th) => ({ key: th.dataset.key, type: th.dataset.type }));
const TOTALS = ["trade_count", "buy_qty", "sell_qty", "net_qty", "buy_notional", "sell_notional", "market_value", "realized_pnl", "unrealized_pnl", "total_pnl"];
const SIGNED = new Set(["net_qty", "market_value", "realized_pnl", "unrealized_pnl", "total_pnl"]);
const MONEY = new Set(["buy_notional", "sell_notional", "market_value", "realized_pnl", "unrealized_pnl", "total_pnl"]);

const state = {
  config: { auth: true, stale_after_s: 60 },
  client: null, token: null,
  rows: new Map(),          // key → row
  epoch: null, seq: null,   // resume position
  ws: null, backoff: 500, retryTimer: null,
  lastMessageAt: 0, lastUpdateAt: null,
  sort: { key: "symbol", dir: 1 },
  wanted: false,
};

const rowKey = (r) => `${r.trade_date}|${r.account_id}|${r.symbol}`;

// ---- formatting (decimals arrive as exact strings; never round-trip them through floats) ----
function groupDigits(s) {
  if (s === null || s === undefined) return "";
  s = String(s);
  const neg = s.startsWith("-");
  const [int, frac] = (neg ? s.slice(1) : s).split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-" : "") + grouped + (frac !== undefined ? "." + frac : "");
}
function money(s) {
  if (s === null || s === undefined || s === "") return "";
  const [int, frac = ""] = String(s).split(".");
  return groupDigits(int + "." + (frac + "00").slice(0, Math.max(2, frac.replace(/0+$/, "").length)));
}
function cell(row, key) {
  const v = row[key];
  switch (key) {
    case "trade_date": case "account_id": case "symbol": return v;
    case "last_trade_at": return v ? v.replace("T", " ").slice(11, 23) : "";
    default: return MONEY.has(key) ? money(v) : groupDigits(v);
  }
}
function isStale(row) {
  if (!row.mark_at) return false;
  return Date.now() - Date.parse(row.mark_at) > state.config.stale_after_s * 1000;
}

// ---- table ----
function visibleRows() {
  const account = $("#f-account").value;
  const symbol = $("#f-symbol").value.trim().toUpperCase();
  const rows = [...state.rows.values()].filter((r) => (!account || r.account_id === account) && (!symbol || r.symbol.toUpperCase().includes(symbol)));
  const { key, dir } = state.sort;
  const col = COLUMNS.find((c) => c.key === key);
  rows.sort((a, b) => {
    let x = a[key], y = b[key];
    if (col && col.type === "num") { x = x === null ? -Infinity : Number(x); y = y === null ? -Infinity : Number(y); }
    return (x < y ? -1 : x > y ? 1 : 0) * dir || rowKey(a).localeCompare(rowKey(b));
  });
  return rows;
}

function renderRow(tr, row, previous) {
  if (!tr.children.length) {
    for (const c of COLUMNS) {
      const td = document.createElement("td");
      td.dataset.key = c.key;
      if (c.type === "text") td.className = "text";
      tr.appendChild(td);
    }
  }
  for (const td of tr.children) {
    const key = td.dataset.key;
    const text = cell(row, key);
    if (td.textContent !== text) {
      td.textContent = text;
      if (previous) {
        const before = Number(previous[key]), after = Number(row[key]);
        const cls = Number.isFinite(before) && Number.isFinite(after) && before !== after ? (after > before ? "flash-up" : "flash-down") : "flash";
        td.classList.remove("flash", "flash-up", "flash-down");
        void td.offsetWidth; // restart the animation
        td.classList.add(cls);
      }
    }
    if (SIGNED.has(key)) {
      td.classList.toggle("pos", Number(row[key]) > 0);
      td.classList.toggle("neg", Number(row[key]) < 0);
    }
  }
  tr.querySelector('[data-key="mark_price"]').classList.toggle("stale", isStale(row));
}

function render(changed = new Map()) {
  const tbody = $("#rows tbody");
  const rows = visibleRows();
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  const fragment = [];
  for (const row of rows) {
    const key = rowKey(row);
    let tr = existing.get(key);
    if (!tr) { tr = document.createElement("tr"); tr.dataset.key = key; renderRow(tr, row, null); }
    else if (changed.has(key)) renderRow(tr, row, changed.get(key));
    existing.delete(key);
    fragment.push(tr);
  }
  for (const tr of existing.values()) tr.remove();
  fragment.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
  // totals over the visible rows (decimal strings summed as scaled integers: exact)
  for (const key of TOTALS) {
    const td = document.querySelector(`[data-total="${key}"]`);
    td.textContent = MONEY.has(key) ? money(sumDecimals(rows.map((r) => r[key]))) : groupDigits(sumDecimals(rows.map((r) => r[key])));
    if (SIGNED.has(key)) { td.classList.toggle("pos", td.textContent !== "" && !td.textContent.startsWith("-") && td.textContent !== "0"); td.classList.toggle("neg", td.textContent.startsWith("-")); }
  }
  $("#row-count").textContent = `${rows.length} of ${state.rows.size} rows`;
  $("#empty").hidden = state.rows.size > 0;
  $("#empty").textContent = state.client ? `No rows for client ${state.client} yet.` : "Enter a client id to watch its positions.";
  refreshAccounts();
}

function sumDecimals(values) {
  let scale = 0;
  const parts = values.filter((v) => v !== null && v !== undefined).map((v) => { const s = String(v); const f = (s.split(".")[1] || "").length; scale = Math.max(scale, f); return s; });
  if (!parts.length) return "";
  let total = 0n;
  for (const s of parts) {
    const neg = s.startsWith("-");
    const [i, f = ""] = (neg ? s.slice(1) : s).split(".");
    const n = BigInt(i + f.padEnd(scale, "0"));
    total += neg ? -n : n;
  }
  const neg = total < 0n;
  let digits = (neg ? -total : total).toString().padStart(scale + 1, "0");
  const out = scale ? digits.slice(0, -scale) + "." + digits.slice(-scale) : digits;
  return (neg ? "-" : "") + out;
}

function refreshAccounts() {
  const select = $("#f-account");
  const accounts = [...new Set([...state.rows.values()].map((r) => r.account_id))].sort();
  const have = [...select.options].slice(1).map((o) => o.value);
  if (accounts.join() === have.join()) return;
  const current = select.value;
  select.length = 1;
  for (const a of accounts) select.add(new Option(a, a));
  select.value = accounts.includes(current) ? current : "";
}

// ---- connection ----
function setBadge(kind, text) {
  const badge = $("#badge");
  badge.className = `badge ${kind}`;
  badge.textContent = text || kind;
}
function showError(text) {
  $("#error").hidden = !text;
  $("#error").textContent = text || "";
}
function touched() {
  state.lastUpdateAt = new Date();
  $("#last-update").textContent = `last update ${state.lastUpdateAt.toLocaleTimeString()}`;
}

function connect() {
  clearTimeout(state.retryTimer);
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const proto = location.protocol === "https:" ? "wss" : "ws";
  // The token travels as a subprotocol (a header), not in the URL: it stays out of access logs.
  const protocols = state.token ? ["tradeflow.v1", state.token] : ["tradeflow.v1"];
  const ws = new WebSocket(`${proto}://${location.host}/ws`, protocols);
  state.ws = ws;
  setBadge("reconnecting", state.seq === null ? "connecting" : "reconnecting");
  ws.onopen = () => {
    const request = { op: "subscribe", client: state.client };
    if (state.epoch !== null && state.seq !== null) { request.epoch = state.epoch; request.since = state.seq; }
    ws.send(JSON.stringify(request));
  };
  ws.onmessage = (event) => {
    state.lastMessageAt = Date.now();
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    handle(frame);
  };
  ws.onclose = (event) => {
    state.ws = null;
    if (!state.wanted) return;
    // A refused handshake (bad token / origin) closes before opening: don't hammer the server.
    const delay = state.backoff * (0.75 + Math.random() * 0.5);
    state.backoff = Math.min(state.backoff * 2, 15000);
    setBadge("reconnecting", `reconnecting in ${Math.round(delay / 1000)}s`);
    state.retryTimer = setTimeout(connect, delay);
  };
}

function handle(frame) {
  switch (frame.type) {
    case "hello":
      break;
    case "snapshot": {
      state.rows = new Map(frame.rows.map((r) => [rowKey(r), r]));
      state.epoch = frame.epoch; state.seq = frame.seq;
      state.backoff = 500;
      $("#rows tbody").textContent = "";
      setBadge("live"); showError(""); touched(); render();
      break;
    }
    case "resumed":
      state.epoch = frame.epoch; state.seq = frame.since;
      state.backoff = 500;
      setBadge("live"); showError("");
      break;
    case "delta": {
      const changed = new Map();
      for (const r of frame.rows) { const k = rowKey(r); changed.set(k, state.rows.get(k) || null); state.rows.set(k, r); }
      state.seq = frame.seq;
      touched(); render(changed);
      break;
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

// Heartbeat: ping every 10 s; no frame for 30 s while open → "stale"; stale marks re-evaluated every second.
setInterval(() => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify({ op: "ping" }));
}, 10000);
setInterval(() => {
  if (state.ws && state.ws.readyState === WebSocket.OPEN && state.lastMessageAt && Date.now() - state.lastMessageAt > 30000) setBadge("stale");
  for (const tr of $("#rows tbody").children) {
    const row = state.rows.get(tr.dataset.key);
    if (row) tr.querySelector('[data-key="mark_price"]').classList.toggle("stale", isStale(row));
  }
}, 1000);

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
  if (switching) { state.rows = new Map(); state.epoch = null; state.seq = null; $("#rows tbody").textContent = ""; render(); }
  state.wanted = true; state.backoff = 500;
  showError("");
  connect();
});
$("#f-account").addEventListener("change", () => render());
$("#f-symbol").addEventListener("input", () => render());
for (const th of document.querySelectorAll("#rows thead th")) {
  th.addEventListener("click", () => {
    const key = th.dataset.key;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
    for (const other of document.querySelectorAll("#rows thead th")) other.classList.remove("sorted-asc", "sorted-desc");
    th.classList.add(state.sort.dir > 0 ? "sorted-asc" : "sorted-desc");
    render();
  });
}

fetch("api/config").then((r) => r.json()).then((config) => {
  state.config = config;
  $("#auth-banner").hidden = config.auth;
  $("#token-label").hidden = !config.auth;
}).catch(() => {});

// #client=7[&token=…] (dev.sh prints such links) or the last session's entries fill the form;
// a link with a token connects at once.
(() => {
  const saved = JSON.parse(sessionStorage.getItem("tradeflow") || "null");
  const hash = new URLSearchParams(location.hash.slice(1));
  const client = hash.get("client") || (saved && saved.client);
  const token = hash.get("token") || (saved && saved.client === client ? saved.token : null);
  if (client) $("#client").value = client;
  if (token) $("#token").value = token;
  if (hash.get("client") && hash.get("token")) $("#login").requestSubmit();
})();
