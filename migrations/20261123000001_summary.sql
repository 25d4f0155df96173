-- tradeflow summary snapshot tables (SPEC §3). Written only by the aggregator, in one transaction
-- per partition snapshot: rows changed, the partition's next offset, and the dedupe marks.

-- The current summary rows: one per (trade_date, client_id, account_id, symbol).
CREATE TABLE summary_current (
    trade_date        date        NOT NULL,
    client_id         text        NOT NULL,
    account_id        text        NOT NULL,
    symbol            text        NOT NULL,
    trade_count       bigint      NOT NULL,
    buy_qty           bigint      NOT NULL,
    sell_qty          bigint      NOT NULL,
    buy_notional      numeric     NOT NULL,
    sell_notional     numeric     NOT NULL,
    avg_buy_price     numeric,
    avg_sell_price    numeric,
    last_price        numeric     NOT NULL,
    -- Activity times are the log's wall-clock (configured zone); *_ns keep the exact nanoseconds.
    first_trade_at    timestamp   NOT NULL,
    last_trade_at     timestamp   NOT NULL,
    first_trade_at_ns bigint      NOT NULL,
    last_trade_at_ns  bigint      NOT NULL,
    mark_price        numeric,
    mark_at           timestamptz,
    -- The `trades` partition that owns the row and the offset (exclusive) it reflects.
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL,
    snapshot_at       timestamptz NOT NULL,
    PRIMARY KEY (trade_date, client_id, account_id, symbol)
);
CREATE INDEX summary_current_by_client ON summary_current (client_id, trade_date);
CREATE INDEX summary_current_by_partition ON summary_current (source_partition);

-- Every version of every row, appended at each snapshot that changed it.
CREATE TABLE summary_history (LIKE summary_current INCLUDING DEFAULTS);
ALTER TABLE summary_history ADD PRIMARY KEY (trade_date, client_id, account_id, symbol, snapshot_at);
CREATE INDEX summary_history_by_time ON summary_history (snapshot_at);
CREATE INDEX summary_history_by_client ON summary_history (client_id, trade_date, snapshot_at);

-- Where each partition's state stands, with a fencing epoch bumped by every new owner.
CREATE TABLE partition_offsets (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    epoch       bigint      NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Dedupe: the highest line offset applied per log file generation (lines of a file arrive in
-- offset order; a re-sent line has an offset at or below it).
CREATE TABLE file_progress (
    client_id        text    NOT NULL,
    file_date        date    NOT NULL,
    generation       integer NOT NULL,
    max_offset       bigint  NOT NULL,
    source_partition integer NOT NULL,
    PRIMARY KEY (client_id, file_date, generation)
);
CREATE INDEX file_progress_by_partition ON file_progress (source_partition);

-- The rows as users read them, with the derived fields.
CREATE VIEW summary_rows AS
SELECT trade_date, client_id, account_id, symbol, trade_count, buy_qty, sell_qty,
       buy_qty - sell_qty AS net_qty, buy_notional, sell_notional, avg_buy_price, avg_sell_price,
       last_price, first_trade_at, last_trade_at, mark_price, mark_at,
       (buy_qty - sell_qty) * mark_price AS market_value,
       CASE WHEN mark_at IS NULL THEN NULL ELSE mark_at < now() - interval '60 seconds' END AS mark_stale,
       snapshot_at
FROM summary_current;

-- The rows as they stood at time T: each key's latest version snapshotted at or before T.
CREATE FUNCTION summary_as_of(t timestamptz)
RETURNS TABLE (trade_date date, client_id text, account_id text, symbol text, trade_count bigint,
               buy_qty bigint, sell_qty bigint, net_qty bigint, buy_notional numeric,
               sell_notional numeric, avg_buy_price numeric, avg_sell_price numeric,
               last_price numeric, first_trade_at timestamp, last_trade_at timestamp,
               mark_price numeric, mark_at timestamptz, snapshot_at timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (h.trade_date, h.client_id, h.account_id, h.symbol)
           h.trade_date, h.client_id, h.account_id, h.symbol, h.trade_count, h.buy_qty, h.sell_qty,
           h.buy_qty - h.sell_qty, h.buy_notional, h.sell_notional, h.avg_buy_price,
           h.avg_sell_price, h.last_price, h.first_trade_at, h.last_trade_at, h.mark_price,
           h.mark_at, h.snapshot_at
    FROM summary_history h
    WHERE h.snapshot_at <= t
    ORDER BY h.trade_date, h.client_id, h.account_id, h.symbol, h.snapshot_at DESC
$$;

-- The read-only role users query with.
-- (Roles are cluster-wide: another database's migration may create it at the same moment.)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tradeflow_reader') THEN
        CREATE ROLE tradeflow_reader LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;
GRANT SELECT ON summary_current, summary_history, summary_rows, partition_offsets, file_progress TO tradeflow_reader;
GRANT EXECUTE ON FUNCTION summary_as_of(timestamptz) TO tradeflow_reader;
