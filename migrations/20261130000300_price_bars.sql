-- Minute price bars (docs/sql.md#price-bars): OHLC and tick count per (symbol, UTC minute), folded
-- from `prices` by the aggregator's bar writer (tradeflow-core/src/bars.rs has the rule) and written
-- with the `prices` offsets they include in one transaction, so each tick counts once.
--
-- Partitioned by trade_date (the UTC date of the minute) like `summary_history`: one partition per
-- date, created on demand by `price_bars_partition(d)`, dropped whole by
-- `price_bars_drop_before(cutoff)` (`tradeflow history`, the aggregator's hourly upkeep).
-- Postgres needs the partition key in the primary key: (symbol, minute, trade_date) is unique
-- exactly when (symbol, minute) is, trade_date being a function of minute.

CREATE TABLE price_bars (
    symbol     text        NOT NULL,
    minute     timestamptz NOT NULL,
    trade_date date        NOT NULL,
    open       numeric     NOT NULL,
    high       numeric     NOT NULL,
    low        numeric     NOT NULL,
    close      numeric     NOT NULL,
    ticks      bigint      NOT NULL CHECK (ticks > 0),
    -- `at` of the open and close ticks: a later batch's tick dated earlier in the minute becomes the open.
    open_at    timestamptz NOT NULL,
    close_at   timestamptz NOT NULL,
    CHECK (minute = date_trunc('minute', minute) AND trade_date = (minute AT TIME ZONE 'UTC')::date),
    PRIMARY KEY (symbol, minute, trade_date)
) PARTITION BY RANGE (trade_date);

-- The next `prices` offset the bars include, per partition of the prices topic.
CREATE TABLE price_bar_offsets (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);

CREATE FUNCTION price_bars_partition(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    name text := 'price_bars_' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(quote_ident(name)) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF price_bars FOR VALUES FROM (%L) TO (%L)', name, d, d + 1);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END
$$;

-- Retention: drops every partition of `price_bars` whose dates all lie before `cutoff`; returns the dates dropped.
CREATE FUNCTION price_bars_drop_before(cutoff date) RETURNS SETOF date
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tradeflow.price_bars.retention'));
    FOR p IN
        SELECT c.oid::regclass AS rel,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::date AS lower_bound,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::date AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'price_bars'::regclass
        ORDER BY 2
    LOOP
        IF p.upper_bound IS NOT NULL AND p.upper_bound <= cutoff THEN
            EXECUTE format('DROP TABLE %s', p.rel);
            RETURN NEXT p.lower_bound;
        END IF;
    END LOOP;
END
$$;

GRANT SELECT ON price_bars, price_bar_offsets TO tradeflow_reader;
