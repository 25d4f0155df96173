-- Backfill while live (docs/operations.md#backfill-runbook): a backfill takes each partition it
-- rebuilds the way a new owner does — bumping its epoch, so the live owner's next snapshot is
-- fenced — and also bumps its rebuild `generation` (a rebuilt row supersedes every version of an
-- earlier generation on `summaries`) and holds it until `rebuild_until`, renewed while it runs.
-- Until then no aggregator loads the partition; once the rebuild is written (or the lease lapses,
-- if the backfill died) the live owner loads it again and carries on from the stored offset.
ALTER TABLE partition_offsets ADD COLUMN generation bigint NOT NULL DEFAULT 0;
ALTER TABLE partition_offsets ADD COLUMN rebuild_until timestamptz;
