// The charts tab (docs/page.md#charts), drawn with the vendored TradingView Lightweight Charts
// (vendor/NOTICE): the client's intraday P&L and position for today (UTC) from `GET /api/series`
// (Postgres summary_series, one point a minute) with live points appended from the rows feed, and a
// minute candle chart of a chosen symbol from `GET /api/bars` and the websocket's `bars` view.
// Chart coordinates are floats (a picture); the tables and tooltips keep the exact decimals.
// Uses app.js's `state` and `$`; loaded after it.
"use strict";

const SERIES_STEP_SECS = 60;
const LIVE_POINT_MS = 1000;   // live points at most once a second

const charts = {
  pnl: null, pnlLine: null, positionLine: null, restPoints: 0, livePoints: 0,
  candles: null, candleSeries: null, barsWs: null, barsSymbol: null, barsRetry: null, barCount: 0,
  liveTimer: null, loadedFor: null,
};
window.tradeflowCharts = charts; // the browser test and the page benchmark read the counters

function chartOptions() {
  return {
    autoSize: true,
    layout: { background: { color: "#161c23" }, textColor: "#d7dde5", attributionLogo: true },
    grid: { vertLines: { color: "#243040" }, horzLines: { color: "#243040" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { visible: true }, leftPriceScale: { visible: true },
  };
}
function authHeaders() { return state.token ? { Authorization: `Bearer ${state.token}` } : {}; }
const unix = (iso) => Math.floor(Date.parse(iso) / 1000);
function chartNote(id, text) { $(id).textContent = text || ""; }

function ensureCharts() {
  if (charts.pnl) return;
  charts.pnl = LightweightCharts.createChart($("#pnl-chart"), chartOptions());
  charts.pnlLine = charts.pnl.addLineSeries({ color: "#2fbf71", lineWidth: 2, priceScaleId: "right", title: "P&L" });
  charts.positionLine = charts.pnl.addLineSeries({ color: "#4aa3ff", lineWidth: 1, priceScaleId: "left", lineType: 1, title: "position", priceFormat: { type: "price", precision: 0, minMove: 1 } });
  charts.candles = LightweightCharts.createChart($("#candle-chart"), chartOptions());
  charts.candleSeries = charts.candles.addCandlestickSeries({ upColor: "#2fbf71", downColor: "#e5534b", borderVisible: false, wickUpColor: "#2fbf71", wickDownColor: "#e5534b" });
}

/// Today's P&L and position from the snapshot tables, then live points from the rows feed.
async function loadSeries() {
  if (!state.client || !charts.pnl) return;
  const client = state.client;
  charts.loadedFor = client;
  charts.seriesDate = new Date().toISOString().slice(0, 10); // the UTC day the chart is of
  try {
    const response = await fetch(`api/series?client=${encodeURIComponent(client)}&step_secs=${SERIES_STEP_SECS}`, { headers: authHeaders() });
    if (!response.ok) { chartNote("#pnl-note", `series: ${response.status} ${(await response.text()).trim()}`); return; }
    const answer = await response.json();
    if (client !== state.client) return;
    // A step whose P&L is unknown (a row without a mark) is a gap in the line, not a zero.
    charts.pnlLine.setData(answer.points.map((p) => (p.total_pnl === null ? { time: unix(p.at) } : { time: unix(p.at), value: Number(p.total_pnl) })));
    charts.positionLine.setData(answer.points.map((p) => ({ time: unix(p.at), value: Number(p.net_qty) })));
    charts.restPoints = answer.points.length;
    charts.livePoints = 0;
    chartNote("#pnl-note", `${answer.points.length} points from the snapshot tables (${answer.trade_date}, every ${answer.step_secs} s) + live`);
    charts.pnl.timeScale().fitContent();
  } catch (e) {
    chartNote("#pnl-note", `series: ${e}`);
  }
}

/// The live point: today's rows summed as the page holds them now, at the current step.
function livePoint() {
  charts.liveTimer = null;
  if (!charts.pnlLine || charts.loadedFor !== state.client || state.history) return;
  const today = new Date().toISOString().slice(0, 10);
  // Midnight UTC passed: a new day's chart (yesterday's points are not today's), and its candles.
  if (charts.seriesDate && charts.seriesDate !== today) {
    loadSeries();
    if (charts.barsSymbol) loadBars(charts.barsSymbol);
    return;
  }
  const rows = [...state.rows.values()].filter((r) => r.trade_date === today);
  if (!rows.length) return;
  const time = Math.floor(Date.now() / 1000 / SERIES_STEP_SECS) * SERIES_STEP_SECS;
  const last = charts.positionLine.data().at(-1);
  if (last && last.time > time) return; // the snapshot tables are ahead of this clock
  const pnlKnown = rows.every((r) => r.total_pnl !== null && r.total_pnl !== undefined);
  charts.pnlLine.update(pnlKnown ? { time, value: Number(sumDecimals(rows.map((r) => r.total_pnl))) } : { time });
  charts.positionLine.update({ time, value: Number(sumDecimals(rows.map((r) => String(r.net_qty)))) });
  if (!last || last.time < time) charts.livePoints += 1; // else the step's point was replaced
}
document.addEventListener("tradeflow:rows", () => {
  if (!charts.liveTimer) charts.liveTimer = setTimeout(livePoint, LIVE_POINT_MS);
});

// ---- minute candles of one symbol: REST for the day, the `bars` view for live changes ----
function candle(b) {
  return { time: unix(b.minute), open: Number(b.open), high: Number(b.high), low: Number(b.low), close: Number(b.close) };
}
async function loadBars(symbol) {
  clearTimeout(charts.barsRetry);
  if (charts.barsWs) { charts.barsWs.onclose = null; charts.barsWs.close(); charts.barsWs = null; }
  charts.barsSymbol = symbol;
  charts.barCount = 0;
  charts.candleSeries.setData([]);
  if (!symbol || !state.client) { chartNote("#candle-note", "Choose a symbol."); return; }
  try {
    const response = await fetch(`api/bars?symbol=${encodeURIComponent(symbol)}`, { headers: authHeaders() });
    if (!response.ok) { chartNote("#candle-note", `bars: ${response.status} ${(await response.text()).trim()}`); return; }
    const answer = await response.json();
    if (symbol !== charts.barsSymbol) return;
    charts.candleSeries.setData(answer.bars.map(candle));
    charts.barCount = answer.bars.length;
    chartNote("#candle-note", `${symbol}: ${answer.bars.length} minute bars today (UTC) + live`);
    charts.candles.timeScale().fitContent();
  } catch (e) {
    chartNote("#candle-note", `bars: ${e}`);
    return;
  }
  subscribeBars(symbol);
}
function subscribeBars(symbol) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`, state.token ? ["tradeflow.v1", state.token] : ["tradeflow.v1"]);
  charts.barsWs = ws;
  ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", client: state.client, view: "bars", symbol }));
  ws.onmessage = (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    if (frame.type === "error") { chartNote("#candle-note", `bars: ${frame.code}: ${frame.message}`); return; }
    if (frame.type !== "bars" || frame.symbol !== symbol) return;
    if (frame.snapshot) { charts.candleSeries.setData(frame.bars.map(candle)); charts.barCount = frame.bars.length; return; }
    const last = charts.candleSeries.data().at(-1);
    for (const b of frame.bars) {
      const c = candle(b);
      if (last && c.time < last.time) continue; // an older minute: the next snapshot carries it
      if (!last || c.time > last.time) charts.barCount += 1;
      charts.candleSeries.update(c);
    }
  };
  ws.onclose = () => {
    if (charts.barsWs !== ws) return;
    charts.barsWs = null;
    charts.barsRetry = setTimeout(() => { if (charts.barsSymbol === symbol) subscribeBars(symbol); }, 2000);
  };
}

function refreshSymbols() {
  const list = $("#chart-symbols");
  const symbols = [...new Set([...state.rows.values()].map((r) => r.symbol))].sort();
  if ([...list.options].map((o) => o.value).join() === symbols.join()) return;
  list.replaceChildren(...symbols.map((s) => new Option(s, s)));
}

/// Opening the charts tab (or watching another client with it open) draws them.
function showCharts() {
  ensureCharts();
  refreshSymbols();
  if (charts.loadedFor !== state.client) {
    loadSeries();
    const symbol = $("#chart-symbol").value.trim().toUpperCase();
    if (symbol) loadBars(symbol);
  }
}
document.addEventListener("tradeflow:watch", () => { charts.loadedFor = null; if (!$("#charts-view").hidden) showCharts(); });
document.addEventListener("tradeflow:tab", (event) => { if (event.detail === "charts") showCharts(); });
$("#chart-symbol").addEventListener("change", () => loadBars($("#chart-symbol").value.trim().toUpperCase()));
