-- P&L on every row (SPEC §3; definitions and worked example: docs/pnl.md).
--
-- realized_pnl = min(buy_qty, sell_qty) × (avg_sell_price − avg_buy_price), 0 when nothing is
-- matched: a trading field, computed by the aggregator with the oracle's code and stored; it is
-- exact given the stored averages (rounded to 8 places, half-even), so the SQL below computes the
-- very same value for the rows written before this column existed.
-- total_pnl = sell_notional − buy_notional + net_qty × mark_price, unrealized_pnl = total − realized:
-- mark-dependent, derived where the mark is (the views and functions), null without a mark.

ALTER TABLE summary_current ADD COLUMN realized_pnl numeric;
-- summary_history is partitioned: the column reaches every partition.
ALTER TABLE summary_history ADD COLUMN realized_pnl numeric;

UPDATE summary_current SET realized_pnl =
    CASE WHEN least(buy_qty, sell_qty) = 0 THEN 0
         ELSE least(buy_qty, sell_qty) * (avg_sell_price - avg_buy_price) END;
UPDATE summary_history SET realized_pnl =
    CASE WHEN least(buy_qty, sell_qty) = 0 THEN 0
         ELSE least(buy_qty, sell_qty) * (avg_sell_price - avg_buy_price) END;

-- The rows as users read them: the derived fields, now with P&L.
DROP VIEW summary_rows;
CREATE VIEW summary_rows AS
SELECT trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty,
       buy_qty - sell_qty AS net_qty, buy_notional, sell_notional, avg_buy_price, avg_sell_price,
       last_price, first_trade_at, last_trade_at, mark_price, mark_at,
       (buy_qty - sell_qty) * mark_price AS market_value,
       CASE WHEN mark_at IS NULL THEN NULL ELSE mark_at < now() - interval '60 seconds' END AS mark_stale,
       snapshot_at,
       realized_pnl,
       sell_notional - buy_notional + (buy_qty - sell_qty) * mark_price - realized_pnl AS unrealized_pnl,
       sell_notional - buy_notional + (buy_qty - sell_qty) * mark_price AS total_pnl
FROM summary_current;

-- As of T, with P&L (the return type changes: dropped and created again, grants too).
DROP FUNCTION summary_as_of(timestamptz);
CREATE FUNCTION summary_as_of(t timestamptz)
RETURNS TABLE (trade_date date, client_id text, account_id text, symbol text, trade_count bigint,
               buy_qty bigint, sell_qty bigint, net_qty bigint, buy_notional numeric,
               sell_notional numeric, avg_buy_price numeric, avg_sell_price numeric,
               last_price numeric, first_trade_at timestamp, last_trade_at timestamp,
               mark_price numeric, mark_at timestamptz, snapshot_at timestamptz,
               realized_pnl numeric, unrealized_pnl numeric, total_pnl numeric)
LANGUAGE sql STABLE AS $$
    SELECT k.trade_date, k.client_id, k.account_id, k.symbol, h.trade_count, h.buy_qty, h.sell_qty,
           h.buy_qty - h.sell_qty, h.buy_notional, h.sell_notional, h.avg_buy_price,
           h.avg_sell_price, h.last_price, h.first_trade_at, h.last_trade_at, h.mark_price,
           h.mark_at, h.snapshot_at, h.realized_pnl,
           h.sell_notional - h.buy_notional + (h.buy_qty - h.sell_qty) * h.mark_price - h.realized_pnl,
           h.sell_notional - h.buy_notional + (h.buy_qty - h.sell_qty) * h.mark_price
    FROM summary_keys k
    CROSS JOIN LATERAL (
        SELECT * FROM summary_history v
        WHERE v.trade_date = k.trade_date AND v.client_id = k.client_id AND v.account_id = k.account_id
          AND v.symbol = k.symbol AND v.snapshot_at <= t
        ORDER BY v.snapshot_at DESC
        LIMIT 1
    ) h
$$;

DROP FUNCTION summary_series(text, date, interval);
CREATE FUNCTION summary_series(p_client text, p_date date, p_step interval)
RETURNS TABLE (at timestamptz, account_id text, symbol text, trade_count bigint, net_qty bigint,
               buy_notional numeric, sell_notional numeric, last_price numeric, mark_price numeric,
               realized_pnl numeric, total_pnl numeric)
LANGUAGE sql STABLE AS $$
    WITH keys AS (
        SELECT k.* FROM summary_keys k WHERE k.trade_date = p_date AND k.client_id = p_client
    ), span AS (
        SELECT min(f.snapshot_at) AS first_at, max(l.snapshot_at) AS last_at
        FROM keys k
        CROSS JOIN LATERAL (
            SELECT v.snapshot_at FROM summary_history v
            WHERE (v.trade_date, v.client_id, v.account_id, v.symbol) = (k.trade_date, k.client_id, k.account_id, k.symbol)
            ORDER BY v.snapshot_at LIMIT 1) f
        CROSS JOIN LATERAL (
            SELECT v.snapshot_at FROM summary_history v
            WHERE (v.trade_date, v.client_id, v.account_id, v.symbol) = (k.trade_date, k.client_id, k.account_id, k.symbol)
            ORDER BY v.snapshot_at DESC LIMIT 1) l
    )
    SELECT s.at, k.account_id, k.symbol, h.trade_count, h.buy_qty - h.sell_qty, h.buy_notional,
           h.sell_notional, h.last_price, h.mark_price, h.realized_pnl,
           h.sell_notional - h.buy_notional + (h.buy_qty - h.sell_qty) * h.mark_price
    FROM span
    CROSS JOIN LATERAL generate_series(date_bin(p_step, span.first_at, timestamptz '2000-01-01'),
                                       span.last_at + p_step, p_step) AS s(at)
    CROSS JOIN keys k
    CROSS JOIN LATERAL (
        SELECT * FROM summary_history v
        WHERE (v.trade_date, v.client_id, v.account_id, v.symbol) = (k.trade_date, k.client_id, k.account_id, k.symbol)
          AND v.snapshot_at <= s.at
        ORDER BY v.snapshot_at DESC
        LIMIT 1
    ) h
    ORDER BY s.at, k.account_id, k.symbol
$$;

GRANT SELECT ON summary_rows TO tradeflow_reader;
GRANT EXECUTE ON FUNCTION summary_as_of(timestamptz), summary_series(text, date, interval) TO tradeflow_reader;
