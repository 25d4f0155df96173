-- Day P&L on holdings (docs/pnl.md#day-pl; tradeflow-core/src/day_pnl.rs is the same rule in Rust,
-- the oracle's): what each holding made on day D against the day-open mark.
--   day_open_mark(S, D) = close of S's latest minute bar before D's start, else open of D's first bar.
--   day_pnl = open_pos × (mark − day_open_mark) + D's sell_notional − D's buy_notional + D's net_qty × mark
-- (open_pos: the position from the rows dated before D). Null without a mark, or without a
-- day-open mark while open_pos ≠ 0. The view takes D = today (UTC), holdings_as_of(t) the UTC date of t.

CREATE FUNCTION day_open_mark(s text, d date) RETURNS numeric
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(
        (SELECT b.close FROM price_bars b
         WHERE b.symbol = s AND b.minute < (d::timestamp AT TIME ZONE 'UTC') AND b.trade_date < d
         ORDER BY b.minute DESC LIMIT 1),
        (SELECT b.open FROM price_bars b WHERE b.symbol = s AND b.trade_date = d ORDER BY b.minute LIMIT 1))
$$;

-- The day P&L of a holding from its day parts (exact numeric arithmetic).
CREATE FUNCTION tradeflow_day_pnl(open_position numeric, day_buy_notional numeric, day_sell_notional numeric,
                                  day_net_qty numeric, mark numeric, open_mark numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN mark IS NULL THEN NULL
                WHEN open_position <> 0 AND open_mark IS NULL THEN NULL
                ELSE CASE WHEN open_position = 0 THEN 0 ELSE open_position * (mark - open_mark) END
                     + day_sell_notional - day_buy_notional + day_net_qty * mark
           END
$$;

CREATE OR REPLACE VIEW holdings AS
WITH d AS (
    SELECT (now() AT TIME ZONE 'UTC')::date AS day
), sums AS (
    SELECT client_id, account_id, symbol, min(trade_date) AS first_trade_date, max(trade_date) AS last_trade_date,
           sum(trade_count)::bigint AS trade_count, sum(buy_qty) AS buy_qty, sum(sell_qty) AS sell_qty,
           sum(buy_notional) AS buy_notional, sum(sell_notional) AS sell_notional,
           (array_agg(mark_price ORDER BY mark_at DESC NULLS LAST))[1] AS mark_price, max(mark_at) AS mark_at,
           coalesce(sum(buy_qty - sell_qty) FILTER (WHERE trade_date < d.day), 0) AS open_position,
           coalesce(sum(buy_notional) FILTER (WHERE trade_date = d.day), 0) AS day_buy_notional,
           coalesce(sum(sell_notional) FILTER (WHERE trade_date = d.day), 0) AS day_sell_notional,
           coalesce(sum(buy_qty - sell_qty) FILTER (WHERE trade_date = d.day), 0) AS day_net_qty,
           d.day
    FROM summary_current, d
    GROUP BY client_id, account_id, symbol, d.day
), averaged AS (
    SELECT s.*, s.buy_qty - s.sell_qty AS position,
           tradeflow_average(s.buy_notional, s.buy_qty) AS avg_buy_price,
           tradeflow_average(s.sell_notional, s.sell_qty) AS avg_sell_price,
           day_open_mark(s.symbol, s.day) AS day_open_mark
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
       sell_notional - buy_notional + position * mark_price AS total_pnl,
       day, open_position, day_open_mark,
       tradeflow_day_pnl(open_position, day_buy_notional, day_sell_notional, day_net_qty, mark_price, day_open_mark)
           AS day_pnl
FROM priced;

DROP FUNCTION holdings_as_of(timestamptz);
CREATE FUNCTION holdings_as_of(t timestamptz)
RETURNS TABLE (client_id text, account_id text, symbol text, first_trade_date date, last_trade_date date,
               trade_count bigint, buy_qty numeric, sell_qty numeric, "position" numeric,
               buy_notional numeric, sell_notional numeric, avg_buy_price numeric, avg_sell_price numeric,
               avg_cost numeric, cost_basis numeric, realized_pnl numeric, mark_price numeric,
               mark_at timestamptz, market_value numeric, unrealized_pnl numeric, total_pnl numeric,
               day date, open_position numeric, day_open_mark numeric, day_pnl numeric)
LANGUAGE sql STABLE AS $$
    WITH sums AS (
        SELECT r.client_id, r.account_id, r.symbol, min(r.trade_date) AS first_trade_date,
               max(r.trade_date) AS last_trade_date, sum(r.trade_count)::bigint AS trade_count,
               sum(r.buy_qty) AS buy_qty, sum(r.sell_qty) AS sell_qty, sum(r.buy_notional) AS buy_notional,
               sum(r.sell_notional) AS sell_notional,
               (array_agg(r.mark_price ORDER BY r.mark_at DESC NULLS LAST))[1] AS mark_price, max(r.mark_at) AS mark_at,
               coalesce(sum(r.buy_qty - r.sell_qty) FILTER (WHERE r.trade_date < (t AT TIME ZONE 'UTC')::date), 0) AS open_pos,
               coalesce(sum(r.buy_notional) FILTER (WHERE r.trade_date = (t AT TIME ZONE 'UTC')::date), 0) AS day_bn,
               coalesce(sum(r.sell_notional) FILTER (WHERE r.trade_date = (t AT TIME ZONE 'UTC')::date), 0) AS day_sn,
               coalesce(sum(r.buy_qty - r.sell_qty) FILTER (WHERE r.trade_date = (t AT TIME ZONE 'UTC')::date), 0) AS day_net
        FROM summary_as_of(t) r
        GROUP BY r.client_id, r.account_id, r.symbol
    ), averaged AS (
        SELECT s.*, s.buy_qty - s.sell_qty AS pos,
               tradeflow_average(s.buy_notional, s.buy_qty) AS avg_buy,
               tradeflow_average(s.sell_notional, s.sell_qty) AS avg_sell,
               day_open_mark(s.symbol, (t AT TIME ZONE 'UTC')::date) AS open_mark
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
           p.sell_notional - p.buy_notional + p.pos * p.mark_price,
           (t AT TIME ZONE 'UTC')::date, p.open_pos, p.open_mark,
           tradeflow_day_pnl(p.open_pos, p.day_bn, p.day_sn, p.day_net, p.mark_price, p.open_mark)
    FROM priced p
$$;

GRANT SELECT ON holdings TO tradeflow_reader;
GRANT EXECUTE ON FUNCTION holdings_as_of(timestamptz), day_open_mark(text, date),
    tradeflow_day_pnl(numeric, numeric, numeric, numeric, numeric, numeric) TO tradeflow_reader;
