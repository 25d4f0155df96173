-- History made for as-of queries at scale (docs/sql.md#history-layout).
--
-- `summary_history` becomes partitioned by trade_date (one partition per date, created on demand by
-- `summary_history_partition(d)`, dropped whole by `summary_history_drop_before(cutoff)`), and
-- `summary_keys` lists every key that has history. "As of t" is then one index probe per key (the
-- key's latest version at or before t) instead of a sort over every version of every key.
-- Upgrades in place: the existing history is copied into the new layout in this transaction.

ALTER TABLE summary_history RENAME TO summary_history_v1;
ALTER INDEX summary_history_pkey RENAME TO summary_history_v1_pkey;
ALTER INDEX summary_history_by_time RENAME TO summary_history_v1_by_time;
ALTER INDEX summary_history_by_client RENAME TO summary_history_v1_by_client;

-- Every version of every row, appended at each snapshot that changed it; one partition per trade date.
-- The primary key is also the as-of index: (key, snapshot_at) read backwards from t.
CREATE TABLE summary_history (LIKE summary_current INCLUDING DEFAULTS) PARTITION BY RANGE (trade_date);
ALTER TABLE summary_history ADD PRIMARY KEY (trade_date, client_id, account_id, symbol, snapshot_at);

-- Every (trade_date, client, account, symbol) that has history: the keys an as-of query probes.
CREATE TABLE summary_keys (
    trade_date date NOT NULL,
    client_id  text NOT NULL,
    account_id text NOT NULL,
    symbol     text NOT NULL,
    PRIMARY KEY (trade_date, client_id, account_id, symbol)
);

-- Creates the partition of `summary_history` for trade date `d` unless it exists; returns its name.
-- Safe to race: a concurrent creator's table is taken as ours.
CREATE FUNCTION summary_history_partition(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'summary_history_' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(name)) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF summary_history FOR VALUES FROM (%L) TO (%L)', name, d, d + 1);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END
$$;

-- Retention: drops every partition of `summary_history` whose dates all lie before `cutoff`, and
-- those dates' keys; returns the dates dropped. `summary_current` is untouched.
CREATE FUNCTION summary_history_drop_before(cutoff date) RETURNS SETOF date
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tradeflow.summary_history.retention'));
    FOR p IN
        SELECT c.oid::regclass AS rel,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::date AS lower_bound,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::date AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'summary_history'::regclass
        ORDER BY 2
    LOOP
        IF p.upper_bound IS NOT NULL AND p.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', p.rel);
            RETURN NEXT p.lower_bound;
        END IF;
    END LOOP;
    DELETE FROM summary_keys WHERE trade_date < cutoff;
END
$$;

SELECT summary_history_partition(d) FROM (SELECT DISTINCT trade_date FROM summary_history_v1) AS dates(d);
INSERT INTO summary_history SELECT * FROM summary_history_v1;
INSERT INTO summary_keys SELECT DISTINCT trade_date, client_id, account_id, symbol FROM summary_history_v1;
DROP TABLE summary_history_v1;

-- The rows as they stood at time T: each key's latest version snapshotted at or before T.
-- One SELECT, so Postgres inlines it: `WHERE trade_date = …` / `client_id = …` narrow the keys
-- probed, and each probe reads one partition's index backwards from T.
CREATE OR REPLACE FUNCTION summary_as_of(t timestamptz)
RETURNS TABLE (trade_date date, client_id text, account_id text, symbol text, trade_count bigint,
               buy_qty bigint, sell_qty bigint, net_qty bigint, buy_notional numeric,
               sell_notional numeric, avg_buy_price numeric, avg_sell_price numeric,
               last_price numeric, first_trade_at timestamp, last_trade_at timestamp,
               mark_price numeric, mark_at timestamptz, snapshot_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT k.trade_date, k.client_id, k.account_id, k.symbol, h.trade_count, h.buy_qty, h.sell_qty,
           h.buy_qty - h.sell_qty, h.buy_notional, h.sell_notional, h.avg_buy_price,
           h.avg_sell_price, h.last_price, h.first_trade_at, h.last_trade_at, h.mark_price,
           h.mark_at, h.snapshot_at
    FROM summary_keys k
    CROSS JOIN LATERAL (
        SELECT * FROM summary_history v
        WHERE v.trade_date = k.trade_date AND v.client_id = k.client_id AND v.account_id = k.account_id
          AND v.symbol = k.symbol AND v.snapshot_at <= t
        ORDER BY v.snapshot_at DESC
        LIMIT 1
    ) h
$$;

-- One client's rows on one trade date sampled every `step` (what a trader plots): at each point
-- from the day's first snapshot (aligned down to `step`) past its last, each row as it stood then.
CREATE FUNCTION summary_series(p_client text, p_date date, p_step interval)
RETURNS TABLE (at timestamptz, account_id text, symbol text, trade_count bigint, net_qty bigint,
               buy_notional numeric, sell_notional numeric, last_price numeric, mark_price numeric)
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
           h.sell_notional, h.last_price, h.mark_price
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

GRANT SELECT ON summary_history, summary_keys TO tradeflow_reader;
GRANT EXECUTE ON FUNCTION summary_as_of(timestamptz), summary_series(text, date, interval) TO tradeflow_reader;
