-- Re-driven lines (docs/mapping.md#re-driving-dead-letters): the identities of dead letters that
-- `tradeflow dlq redrive` published to `trades` and an aggregator applied. A re-driven line's
-- identity is usually below its file's dedupe mark (`file_progress`: later lines of the file were
-- applied first), so the mark cannot tell a first re-drive from a second one: this set can. Written
-- in the same snapshot transaction as the rows, marks and offset; loaded with the partition
-- (bounded by the number of lines ever re-driven, not by the number of trades).
CREATE TABLE redriven_lines (
    client_id        text        NOT NULL,
    file_date        date        NOT NULL,
    generation       integer     NOT NULL,
    line_offset      bigint      NOT NULL,
    source_partition integer     NOT NULL,
    applied_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, file_date, generation, line_offset)
);

CREATE INDEX redriven_lines_by_partition ON redriven_lines (source_partition);

GRANT SELECT ON redriven_lines TO tradeflow_reader;
