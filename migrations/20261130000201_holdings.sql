-- Holdings (SPEC §3; docs/pnl.md#holdings): one row per (client, account, symbol) across every trade
-- date, derived from the summary rows — a view, so exactly once, and rebuilt by a backfill, whenever
-- the rows are. The same definitions as tradeflow-core's `holdings` module (the oracle's).

-- notional ÷ qty rounded to 8 places half-even from the exact quotient (`div`/`mod` are exact on
-- numeric; `round()` would round half away from zero). Null when qty is not positive.
CREATE FUNCTION tradeflow_average(notional numeric, qty numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN qty <= 0 OR notional < 0 THEN NULL
                ELSE (q + CASE WHEN 2 * r > qty OR (2 * r = qty AND mod(q, 2) = 1) THEN 1 ELSE 0 END) * 0.00000001
           END
    FROM (SELECT div(notional * 100000000, qty) AS q, mod(notional * 100000000, qty) AS r) AS x
$$;

-- The holdings of the current rows: sums over every date, averages, cost, realized P&L, and the
-- latest of the rows' marks with the mark-to-market figures.
CREATE VIEW holdings AS
WITH sums AS (
    SELECT client_id, account_id, symbol, min(trade_date) AS first_trade_date, max(trade_date) AS last_trade_date,
           sum(trade_count)::bigint AS trade_count, sum(buy_qty) AS buy_qty, sum(sell_qty) AS sell_qty,
           sum(buy_notional) AS buy_notional, sum(sell_notional) AS sell_notional,
           (array_agg(mark_price ORDER BY mark_at DESC NULLS LAST))[1] AS mark_price, max(mark_at) AS mark_at
    FROM summary_current
    GROUP BY client_id, account_id, symbol
), averaged AS (
    SELECT s.*, s.buy_qty - s.sell_qty AS position,
           tradeflow_average(s.buy_notional, s.buy_qty) AS avg_buy_price,
           tradeflow_average(s.sell_notional, s.sell_qty) AS avg_sell_price
    FROM sums s
), priced AS (
    SELECT a.*,
           CASE WHEN a.position > 0 THEN a.avg_buy_price WHEN a.position < 0 THEN a.avg_sell_price END AS avg_cost,
           CASE WHEN least(a.buy_qty, a.sell_qty) = 0 THEN 0
                ELSE least(a.buy_qty, a.sell_qty) * (a.avg_sell_price - a.avg_buy_price) END AS realized_pnl
    FROM averaged a
)
SELECT client_id, account_id, symbol, first_trade_date, last_trade_date, trade_count, buy_qty, sell_qty,
       position, buy_notional, sell_notional, avg_buy_price, avg_sell_price, avg_cost,
       position * avg_cost AS cost_basis, realized_pnl, mark_price, mark_at,
       position * mark_price AS market_value,
       sell_notional - buy_notional + position * mark_price - realized_pnl AS unrealized_pnl,
       sell_notional - buy_notional + position * mark_price AS total_pnl
FROM priced;

-- The holdings as they stood at time T: the same, over each row's latest version at or before T.
CREATE FUNCTION holdings_as_of(t timestamptz)
RETURNS TABLE (client_id text, account_id text, symbol text, first_trade_date date, last_trade_date date,
               trade_count bigint, buy_qty numeric, sell_qty numeric, "position" numeric,
               buy_notional numeric, sell_notional numeric, avg_buy_price numeric, avg_sell_price numeric,
               avg_cost numeric, cost_basis numeric, realized_pnl numeric, mark_price numeric,
               mark_at timestamptz, market_value numeric, unrealized_pnl numeric, total_pnl numeric)
LANGUAGE sql STABLE AS $$
    WITH sums AS (
        SELECT r.client_id, r.account_id, r.symbol, min(r.trade_date) AS first_trade_date,
               max(r.trade_date) AS last_trade_date, sum(r.trade_count)::bigint AS trade_count,
               sum(r.buy_qty) AS buy_qty, sum(r.sell_qty) AS sell_qty, sum(r.buy_notional) AS buy_notional,
               sum(r.sell_notional) AS sell_notional,
               (array_agg(r.mark_price ORDER BY r.mark_at DESC NULLS LAST))[1] AS mark_price, max(r.mark_at) AS mark_at
        FROM summary_as_of(t) r
        GROUP BY r.client_id, r.account_id, r.symbol
    ), averaged AS (
        SELECT s.*, s.buy_qty - s.sell_qty AS pos,
               tradeflow_average(s.buy_notional, s.buy_qty) AS avg_buy,
               tradeflow_average(s.sell_notional, s.sell_qty) AS avg_sell
        FROM sums s
    ), priced AS (
        SELECT a.*,
               CASE WHEN a.pos > 0 THEN a.avg_buy WHEN a.pos < 0 THEN a.avg_sell END AS cost,
               CASE WHEN least(a.buy_qty, a.sell_qty) = 0 THEN 0
                    ELSE least(a.buy_qty, a.sell_qty) * (a.avg_sell - a.avg_buy) END AS realized
        FROM averaged a
    )
    SELECT p.client_id, p.account_id, p.symbol, p.first_trade_date, p.last_trade_date, p.trade_count,
           p.buy_qty, p.sell_qty, p.pos, p.buy_notional, p.sell_notional, p.avg_buy, p.avg_sell, p.cost,
           p.pos * p.cost, p.realized, p.mark_price, p.mark_at, p.pos * p.mark_price,
           p.sell_notional - p.buy_notional + p.pos * p.mark_price - p.realized,
           p.sell_notional - p.buy_notional + p.pos * p.mark_price
    FROM priced p
$$;

GRANT SELECT ON holdings TO tradeflow_reader;
GRANT EXECUTE ON FUNCTION holdings_as_of(timestamptz), tradeflow_average(numeric, numeric) TO tradeflow_reader;
