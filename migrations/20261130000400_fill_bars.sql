-- Fill bars (issue #24; docs/sql.md#fill-bars): per (trade_date, client, account, symbol, minute) the
-- fills of that UTC minute. Written by the aggregator in the same fenced snapshot transaction as the
-- summary row they belong to (so exactly once, as the rows), replaced with the rows by a backfill,
-- deleted with a quarantined row. One partition per trade date, as summary_history; retention drops
-- whole dates (`fill_bars_drop_before`, run by `tradeflow history` beside the history's).

CREATE TABLE fill_bars (
    trade_date       date        NOT NULL,
    client_id        text        NOT NULL,
    account_id       text        NOT NULL,
    symbol           text        NOT NULL,
    -- Start of the UTC minute of the fills' Activity Time.
    minute           timestamptz NOT NULL,
    trade_count      bigint      NOT NULL,
    buy_qty          bigint      NOT NULL,
    sell_qty         bigint      NOT NULL,
    buy_notional     numeric     NOT NULL,
    sell_notional    numeric     NOT NULL,
    -- The `trades` partition whose owner writes the bar (as summary_current.source_partition).
    source_partition integer     NOT NULL,
    PRIMARY KEY (trade_date, client_id, account_id, symbol, minute)
) PARTITION BY RANGE (trade_date);

-- Creates the partition of `fill_bars` for trade date `d` unless it exists; returns its name.
CREATE FUNCTION fill_bars_partition(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'fill_bars_' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(name)) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF fill_bars FOR VALUES FROM (%L) TO (%L)', name, d, d + 1);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END
$$;

-- Retention: drops every partition of `fill_bars` whose dates all lie before `cutoff`; returns the
-- dates dropped.
CREATE FUNCTION fill_bars_drop_before(cutoff date) RETURNS SETOF date
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tradeflow.fill_bars.retention'));
    FOR p IN
        SELECT c.oid::regclass AS rel,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::date AS lower_bound,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::date AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'fill_bars'::regclass
        ORDER BY 2
    LOOP
        IF p.upper_bound IS NOT NULL AND p.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', p.rel);
            RETURN NEXT p.lower_bound;
        END IF;
    END LOOP;
END
$$;

-- The partitions of the dates that already have rows.
SELECT fill_bars_partition(d) FROM (SELECT DISTINCT trade_date FROM summary_current) AS dates(d);

-- The bars with their VWAP: (buy + sell notional) ÷ (buy + sell qty), 8 places half-even, null
-- without quantity (tradeflow_average, migration 20261130000201).
CREATE VIEW fill_bar_rows AS
SELECT trade_date, client_id, account_id, symbol, minute, trade_count, buy_qty, sell_qty, buy_notional,
       sell_notional, tradeflow_average(buy_notional + sell_notional, buy_qty::numeric + sell_qty) AS vwap
FROM fill_bars;

GRANT SELECT ON fill_bars, fill_bar_rows TO tradeflow_reader;
