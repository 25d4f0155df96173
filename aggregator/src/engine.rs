//! The consumer loop: a `BaseConsumer` in a thread of its own, so the rebalance callback can load
//! a partition's state (and its start offset) from Postgres before the partition is assigned, and
//! snapshot a partition before it is let go.
//!
//! A partition a backfill takes while it is assigned here (its snapshot comes back
//! [`SnapshotOutcome::Rebuilt`]) is paused, loaded again once the backfill has written it, sought
//! to the stored offset and resumed: the rebuilt rows are where consumption carries on.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message as _, Offset};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tradeflow_core::kafka::close_off_runtime;
use tradeflow_core::record::TradeRecord;
use tradeflow_core::summary::SummaryKey;

use crate::changelog::SummaryChange;
use crate::marks::{self, Marks};
use crate::metrics::Metrics;
use crate::offset_check::{self, OffsetMismatch};
use crate::refused::{Reason, Refusal, RefusedSink};
use crate::state::{Applied, PartitionState, SnapshotJob};
use crate::store::{DataError, SnapshotOutcome, Store, StoreError};

/// A background snapshot: each job with its outcome.
pub type SnapshotTask = JoinHandle<Vec<(SnapshotJob, Result<SnapshotOutcome, StoreError>)>>;

/// Most records applied between changelog flushes.
const BATCH: usize = 5000;
/// Longest a single snapshot transaction may take before it counts as failed.
const SNAPSHOT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Engine {
    pub store: Store,
    pub handle: Handle,
    pub owned: Mutex<HashMap<i32, PartitionState>>,
    pub marks: Marks,
    pub metrics: Arc<Metrics>,
    /// Where refused records and rows are set aside (`trades.refused`).
    pub refused: RefusedSink,
    pub trades_topic: String,
    pub shutdown: CancellationToken,
    /// The background snapshot still being committed, if any (one at a time).
    pub in_flight: Mutex<Option<SnapshotTask>>,
    /// Assigned partitions a backfill holds: paused, loaded again when it has written them.
    pub reload: Mutex<Vec<i32>>,
    /// Partitions just loaded, whose rows the consuming loop publishes once: a previous owner that
    /// died or was fenced with changes still queued for `summaries` lost them, and a row that never
    /// changes again (a closed trade date) would stay missing on every dashboard.
    pub republish: Mutex<Vec<i32>>,
    /// Assigned partitions not consumed because their stored offset does not belong to the log
    /// ([`offset_check`]): paused until it does (`tradeflow rebase-offsets`).
    pub mismatched: Mutex<HashMap<i32, OffsetMismatch>>,
    /// A client of its own for `ListOffsets` (watermarks) — not the consumer, whose rebalance
    /// callback asks them.
    pub offsets_client: offset_check::LogOffsets,
    /// `--shutdown-secs`: the whole graceful stop's time, from the signal.
    pub stop_budget: Duration,
    /// When the stop must be done by: set when the cancelled token is first seen
    /// ([`Self::stop_deadline`]; `run` in lib.rs sees it at the signal).
    pub stop_by: OnceLock<Instant>,
    /// The final snapshot is taken: the revocation while the consumer closes writes nothing again.
    pub stopped: AtomicBool,
}

/// What loading a partition came to.
enum Loaded {
    State(Box<PartitionState>),
    /// A backfill holds it: load it again later.
    Rebuilding,
    ShuttingDown,
}

impl Engine {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, PartitionState>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Once a stop is asked for: when it must be done by (`--shutdown-secs` after it was first
    /// seen). `None` while running.
    pub fn stop_deadline(&self) -> Option<Instant> {
        self.shutdown.is_cancelled().then(|| *self.stop_by.get_or_init(|| Instant::now() + self.stop_budget))
    }

    /// What is left of the stop's time (all of it before a stop is asked for).
    pub fn stop_left(&self) -> Duration {
        self.stop_deadline().map_or(self.stop_budget, |d| d.saturating_duration_since(Instant::now()))
    }

    /// Loads a partition, retrying while Postgres is unreachable.
    fn load(&self, partition: i32) -> Loaded {
        let mut backoff = Duration::from_millis(100);
        let started = Instant::now();
        loop {
            match self.handle.block_on(self.store.load(partition)) {
                Ok(s) => {
                    self.metrics.partition_loaded(s.rows.len(), started.elapsed());
                    return Loaded::State(Box::new(s));
                }
                Err(StoreError::Rebuilding(_)) => return Loaded::Rebuilding,
                Err(e) => {
                    tracing::error!(partition, error = %e, "cannot load partition state; retrying");
                    if self.shutdown.is_cancelled() {
                        return Loaded::ShuttingDown;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One bounded snapshot attempt (a pool waiting on a vanished server must not hang anything).
    /// It first waits until the refusals queued so far are on `trades.refused` (a snapshot never
    /// moves a partition past a refused record that is not set aside). Rows Postgres refuses (a
    /// data error: [`DataError`]) are found, set aside and quarantined ([`Self::quarantine`]), and
    /// the rest is committed in the same attempt. Counts failures for `/readyz`.
    async fn commit(&self, job: &mut SnapshotJob) -> Result<SnapshotOutcome, StoreError> {
        let started = Instant::now();
        let outcome = match self.refused.delivered(SNAPSHOT_ATTEMPT_TIMEOUT).await {
            Ok(()) => self.attempt(job).await,
            Err(e) => Err(e.into()),
        };
        let outcome = match outcome {
            Err(e) if DataError::of_store(&e).is_some() && !job.rows.is_empty() => match self.quarantine(job).await {
                Ok(true) => self.attempt(job).await,
                Ok(false) => Err(e),
                Err(probe) => Err(probe),
            },
            other => other,
        };
        match &outcome {
            Ok(SnapshotOutcome::Committed { rows }) => {
                let n = self.metrics.snapshots.fetch_add(1, Relaxed) + 1;
                crash_point(n);
                self.metrics.snapshot_failures_consecutive.store(0, Relaxed);
                self.metrics.snapshot_rows.fetch_add(*rows as u64, Relaxed);
                self.metrics.snapshot_micros.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
                tracing::debug!(partition = job.partition, rows, next_offset = job.next_offset, "snapshot");
            }
            Ok(_) => {}
            Err(e) => self.metrics.snapshot_failed(&format!("partition {}: {e}", job.partition)),
        }
        outcome
    }

    async fn attempt(&self, job: &SnapshotJob) -> Result<SnapshotOutcome, StoreError> {
        tokio::time::timeout(SNAPSHOT_ATTEMPT_TIMEOUT, self.store.snapshot(job))
            .await
            .unwrap_or(Err(StoreError::Timeout(SNAPSHOT_ATTEMPT_TIMEOUT)))
    }

    /// The snapshot of `job` failed with a data error: finds the rows Postgres refuses, sets each
    /// aside on `trades.refused` (its key, its image as a `summaries` change, the SQLSTATE and
    /// message), waits until they are delivered, and moves them from the job's rows to its
    /// quarantined keys. `false` when no row is refused alone (the error was elsewhere).
    async fn quarantine(&self, job: &mut SnapshotJob) -> Result<bool, StoreError> {
        let refused = tokio::time::timeout(SNAPSHOT_ATTEMPT_TIMEOUT, self.store.refused_rows(job))
            .await
            .unwrap_or(Err(StoreError::Timeout(SNAPSHOT_ATTEMPT_TIMEOUT)))?;
        if refused.is_empty() {
            return Ok(false);
        }
        for (i, error) in &refused {
            let r = &job.rows[*i];
            let image = SummaryChange::new(&r.key, &r.position, r.mark.as_ref(), job.partition, r.offset)
                .with_generation(job.generation)
                .to_json();
            self.refused.send(&Refusal {
                reason: Reason::PostgresRefused,
                detail: format!("Postgres refused the row: {} (SQLSTATE {})", error.message, error.sqlstate),
                partition: job.partition,
                offset: r.offset,
                trade_id: None,
                row_key: Some(r.key.kafka_key()),
                sqlstate: Some(error.sqlstate.clone()),
                value: &image,
            });
        }
        self.refused.delivered(SNAPSHOT_ATTEMPT_TIMEOUT).await?;
        for (i, _) in refused.iter().rev() {
            let r = job.rows.remove(*i);
            job.quarantined.push((r.key, r.offset));
        }
        Ok(true)
    }

    /// Takes a snapshot job from every partition in `partitions` (all owned when `None`) with
    /// something to write.
    fn take_jobs(&self, partitions: Option<&[i32]>) -> Vec<SnapshotJob> {
        let marks = marks::snapshot(&self.marks);
        let mut owned = self.lock();
        let ids: Vec<i32> = match partitions {
            Some(p) => p.to_vec(),
            None => owned.keys().copied().collect(),
        };
        let mut jobs = Vec::new();
        for p in ids {
            if let Some(state) = owned.get_mut(&p).filter(|s| s.snapshot_due()) {
                jobs.push(state.take_snapshot(&marks));
            }
        }
        jobs
    }

    /// Applies a job's outcome to its partition — unless the partition changed hands meanwhile.
    /// `Err(None)`: the job was not attempted.
    fn settle(&self, job: SnapshotJob, outcome: Result<SnapshotOutcome, Option<StoreError>>) {
        let mut owned = self.lock();
        let p = job.partition;
        let state = owned.get_mut(&p).filter(|s| s.epoch == job.epoch);
        match (outcome, state) {
            (Ok(SnapshotOutcome::Committed { .. }), Some(state)) => {
                state.snapshot_committed(&job);
                state.quarantine(&job);
            }
            (Ok(SnapshotOutcome::Fenced), Some(_)) => {
                tracing::warn!(
                    partition = p,
                    epoch = job.epoch,
                    "another instance owns this partition now; dropping it"
                );
                self.metrics.fenced.fetch_add(1, Relaxed);
                owned.remove(&p);
            }
            (Ok(SnapshotOutcome::Rebuilt), Some(_)) => {
                tracing::info!(
                    partition = p,
                    "a backfill is rebuilding this partition; loading it again when it is done"
                );
                owned.remove(&p);
                self.reload.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            }
            (Err(e), Some(state)) => {
                // Nothing was committed: the job's rows are written by the next snapshot.
                if let Some(e) = e {
                    tracing::error!(partition = p, error = %e, "snapshot failed; retried with the next one");
                }
                state.snapshot_failed(job);
            }
            (_, None) => {}
        }
        self.metrics.partitions_owned.store(owned.len() as u64, Relaxed);
    }

    /// Starts a snapshot of every owned partition with changes, committed by a task off the
    /// consumer thread (consumption and the changelog go on meanwhile) — unless the previous one
    /// is still running. Its outcome is applied by [`Self::reap`].
    pub fn snapshot_in_background(self: &Arc<Self>) {
        let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return;
        }
        let jobs = self.take_jobs(None);
        if jobs.is_empty() {
            return;
        }
        let engine = self.clone();
        *slot = Some(self.handle.spawn(async move {
            let mut results = Vec::with_capacity(jobs.len());
            for mut job in jobs {
                let outcome = engine.commit(&mut job).await;
                results.push((job, outcome));
            }
            results
        }));
    }

    /// Applies the background snapshot's outcome once it has finished (`wait`: waits for it).
    pub fn reap(&self, wait: bool) {
        let task = {
            let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(task) if wait || task.is_finished() => slot.take(),
                _ => None,
            }
        };
        let Some(mut task) = task else { return };
        let joined = match self.stop_deadline() {
            None => self.handle.block_on(task),
            // Stopping: it gets what is left of the stop's time.
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.handle.block_on(tokio::time::timeout(left, &mut task)) {
                    Ok(joined) => joined,
                    Err(_) => {
                        task.abort();
                        tracing::warn!(
                            "the background snapshot did not finish within the stop's time (--shutdown-secs): abandoned (rolled back unless committed); its rows are written again if time is left"
                        );
                        self.lock().values_mut().for_each(PartitionState::mark_all_dirty);
                        return;
                    }
                }
            }
        };
        match joined {
            Ok(results) => {
                for (job, outcome) in results {
                    self.settle(job, outcome.map_err(Some));
                }
            }
            Err(e) => {
                // Outcome unknown: everything is written again by the next snapshot.
                tracing::error!(error = %e, "snapshot task failed");
                self.lock().values_mut().for_each(PartitionState::mark_all_dirty);
            }
        }
    }

    /// Snapshots `partitions` (all owned when `None`) now, on the calling thread, after the
    /// background snapshot (if any) has finished. A fenced partition is dropped. Failed attempts
    /// are retried (with backoff); during a stop only until its deadline (`--shutdown-secs`):
    /// whatever is not snapshotted by then is consumed again by the next owner. Returns whether
    /// every partition with changes was written (or turned out to be another owner's).
    pub fn snapshot(&self, partitions: Option<&[i32]>) -> bool {
        self.reap(true);
        let mut jobs = self.take_jobs(partitions).into_iter();
        while let Some(mut job) = jobs.next() {
            let mut backoff = Duration::from_millis(100);
            let outcome = loop {
                match self.commit_now(&mut job) {
                    Err(e) => {
                        let pause = match self.stop_deadline() {
                            None => backoff,
                            Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                                left if left.is_zero() => break Err(e),
                                left => backoff.min(left),
                            },
                        };
                        tracing::error!(partition = job.partition, error = %e, "snapshot failed; retrying");
                        std::thread::sleep(pause);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                    outcome => break outcome,
                }
            };
            if let Err(e) = &outcome {
                let (partition, error) = (job.partition, e.to_string());
                self.settle(job, outcome.map_err(Some));
                let not_attempted: Vec<i32> = jobs
                    .map(|job| {
                        let p = job.partition;
                        self.settle(job, Err(None));
                        p
                    })
                    .collect();
                tracing::warn!(
                    partition,
                    error,
                    ?not_attempted,
                    "shutting down without a final snapshot of every partition: the next owner consumes the rest again"
                );
                return false;
            }
            self.settle(job, outcome.map_err(Some));
        }
        true
    }

    /// One [`Self::commit`] on the calling thread; during a stop, within what is left of its time
    /// (a commit cut short rolls back).
    fn commit_now(&self, job: &mut SnapshotJob) -> Result<SnapshotOutcome, StoreError> {
        let Some(deadline) = self.stop_deadline() else { return self.handle.block_on(self.commit(job)) };
        let out_of_time = StoreError::OutOfTime(self.stop_budget);
        match deadline.saturating_duration_since(Instant::now()) {
            left if left.is_zero() => Err(out_of_time),
            left => self.handle.block_on(tokio::time::timeout(left, self.commit(job))).unwrap_or(Err(out_of_time)),
        }
    }
}

pub struct EngineContext(pub Arc<Engine>);

impl ClientContext for EngineContext {}

impl ConsumerContext for EngineContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let engine = &self.0;
        let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut held = Vec::new();
                let mut mismatched = Vec::new();
                for &p in &partitions {
                    let state = match engine.load(p) {
                        Loaded::State(state) => *state,
                        Loaded::Rebuilding => {
                            held.push(p);
                            continue;
                        }
                        Loaded::ShuttingDown => continue,
                    };
                    if let Err(why) = engine.offsets_belong(p, state.next_offset) {
                        engine.refuse_offsets(p, why);
                        mismatched.push(p);
                        let _ = tpl.set_partition_offset(&engine.trades_topic, p, Offset::Offset(state.next_offset));
                        continue;
                    }
                    engine.republish.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                    tracing::info!(
                        partition = p,
                        next_offset = state.next_offset,
                        epoch = state.epoch,
                        rows = state.rows.len(),
                        "assigned"
                    );
                    // The first fetch starts at the stored offset: a rebalance costs O(state), not
                    // O(topic). (A stored offset the log no longer holds resets to the earliest.)
                    let _ = tpl.set_partition_offset(&engine.trades_topic, p, Offset::Offset(state.next_offset));
                    engine.lock().insert(p, state);
                }
                if let Err(e) = consumer.assign(tpl) {
                    tracing::error!(error = %e, "assign failed");
                }
                if !mismatched.is_empty() {
                    pause(consumer, &engine.trades_topic, &mismatched, true);
                }
                if !held.is_empty() {
                    tracing::info!(partitions = ?held, "assigned while a backfill rebuilds them: paused until it is done");
                    pause(consumer, &engine.trades_topic, &held, true);
                    engine.reload.lock().unwrap_or_else(|e| e.into_inner()).extend(held);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Once the final snapshot is taken (the consumer closing at shutdown), nothing is
                // written again: it had the stop's time, and said what it could not write.
                let snapshotted = (!engine.stopped.load(Relaxed)).then(|| engine.snapshot(Some(&partitions)));
                let mut owned = engine.lock();
                for p in &partitions {
                    owned.remove(p);
                }
                drop(owned);
                engine.reload.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| !partitions.contains(p));
                for p in &partitions {
                    engine.offsets_accepted(*p);
                }
                match snapshotted {
                    Some(true) => tracing::info!(?partitions, "revoked (snapshotted first)"),
                    Some(false) => tracing::warn!(
                        ?partitions,
                        "revoked without a snapshot of every partition: the next owner consumes the rest again"
                    ),
                    None => tracing::info!(?partitions, "revoked at shutdown, after the final snapshot"),
                }
                if let Err(e) = consumer.unassign() {
                    tracing::error!(error = %e, "unassign failed");
                }
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
        engine.metrics.partitions_owned.store(engine.lock().len() as u64, Relaxed);
    }
}

/// Consumes until shutdown: apply, publish the changed rows, snapshot on the interval (in the
/// background: a snapshot's transactions never pause consumption). `Err`: the consumer hit a fatal
/// error (another running instance took this one's `group.instance.id`) and the loop stopped, after
/// the final snapshot (fenced for every partition a new owner has loaded).
pub fn run(
    engine: Arc<Engine>,
    consumer: BaseConsumer<EngineContext>,
    changelog: BaseProducer,
    summaries_topic: String,
    interval: Duration,
) -> Result<(), String> {
    let mut fatal = None;
    // Row changes left unpublished because a stop met a full changelog queue (logged once, below).
    let mut unpublished_at_stop = 0u64;
    let mut last_snapshot = Instant::now();
    let mut last_lag = Instant::now();
    let mut last_reload = Instant::now();
    // The Kafka timestamp (ms) of the last record consumed per partition: the lag in seconds.
    let mut last_consumed_ms: HashMap<i32, i64> = HashMap::new();
    // Rows to publish: their partition, and whether a trade changed them (else: republished by a
    // new owner, counted apart and not in the aggregation-time histogram).
    let mut changed: HashMap<SummaryKey, (i32, bool)> = HashMap::new();
    while !engine.shutdown.is_cancelled() {
        let mut n = 0;
        let mut batch_read_at = Instant::now();
        while n < BATCH {
            let timeout = if n == 0 { Duration::from_millis(20) } else { Duration::ZERO };
            let Some(result) = consumer.poll(timeout) else { break };
            let m = match result {
                Ok(m) => m,
                Err(e) => {
                    if let Some((code, reason)) = consumer.client().fatal_error() {
                        tracing::error!(?code, reason, "fatal consumer error; stopping");
                        fatal = Some(format!("{reason} ({code:?})"));
                        engine.shutdown.cancel();
                    } else {
                        tracing::warn!(error = %e, "consume error");
                    }
                    break;
                }
            };
            n += 1;
            if n == 1 {
                batch_read_at = Instant::now();
            }
            if let Some(ts) = m.timestamp().to_millis() {
                engine.metrics.record_age.observe_age_ms(ts);
                last_consumed_ms.insert(m.partition(), ts);
            }
            let (p, offset) = (m.partition(), m.offset());
            let mut owned = engine.lock();
            let Some(state) = owned.get_mut(&p) else { continue };
            if offset < state.next_offset {
                continue;
            }
            let record = match m.payload().map(TradeRecord::from_json) {
                Some(Ok(r)) => r,
                other => {
                    let why = crate::refusal::undecodable_detail(other.as_ref().and_then(|r| r.as_ref().err()));
                    state.next_offset = offset + 1;
                    drop(owned);
                    engine.metrics.malformed.fetch_add(1, Relaxed);
                    engine.refused.send(&Refusal {
                        reason: Reason::Undecodable,
                        detail: why,
                        partition: p,
                        offset,
                        trade_id: None,
                        row_key: None,
                        sqlstate: None,
                        value: m.payload().unwrap_or_default(),
                    });
                    continue;
                }
            };
            engine.metrics.records.fetch_add(1, Relaxed);
            match state.apply_as(offset, &record, crate::redrive::is_redrive(&m)) {
                Applied::Row(key) => {
                    changed.insert(key, (p, true));
                }
                Applied::Duplicate => {
                    engine.metrics.duplicates.fetch_add(1, Relaxed);
                }
                Applied::Rejected(why) => {
                    drop(owned);
                    engine.metrics.rejected.fetch_add(1, Relaxed);
                    let key = SummaryKey::of(&record.id.client, &record.trade);
                    engine.refused.send(&Refusal {
                        reason: Reason::Unappliable,
                        detail: why,
                        partition: p,
                        offset,
                        trade_id: Some(record.id.to_string()),
                        row_key: Some(key.kafka_key()),
                        sqlstate: None,
                        value: m.payload().unwrap_or_default(),
                    });
                }
            }
        }
        let republish = std::mem::take(&mut *engine.republish.lock().unwrap_or_else(|e| e.into_inner()));
        if !republish.is_empty() {
            let owned = engine.lock();
            for p in republish {
                for key in owned.get(&p).map(|s| s.rows.keys()).into_iter().flatten() {
                    changed.entry(key.clone()).or_insert((p, false));
                }
            }
        }
        if !changed.is_empty() {
            let marks = marks::snapshot(&engine.marks);
            let owned = engine.lock();
            for (key, (p, traded)) in changed.drain() {
                let Some(state) = owned.get(&p) else { continue };
                let Some(row) = state.rows.get(&key) else { continue };
                let change = SummaryChange::new(&key, &row.position, marks.get(key.symbol.as_str()), p, row.offset)
                    .with_generation(state.generation);
                let payload = change.to_json();
                let k = key.kafka_key();
                let mut record = BaseRecord::to(&summaries_topic).key(&k).payload(&payload);
                let queued = loop {
                    match changelog.send(record) {
                        Ok(()) => break true,
                        // A full queue (the broker slow or down) is waited out — except during a
                        // stop, which must reach its final snapshot within --shutdown-secs: the
                        // row is in that snapshot, and a partition's next owner publishes its rows.
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                            if engine.shutdown.is_cancelled() =>
                        {
                            unpublished_at_stop += 1;
                            break false;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            tracing::debug!("changelog queue full; polling");
                            changelog.poll(Duration::from_millis(10));
                        }
                        // A change the producer can never take (librdkafka's own limits): said, not
                        // retried forever; the row stays in the state and in the next snapshot.
                        Err((e, _)) => {
                            tracing::error!(error = %e, row = %k, "cannot queue a row change for {summaries_topic}");
                            break false;
                        }
                    }
                };
                if !queued {
                    continue;
                }
                if traded {
                    engine.metrics.apply_latency.observe(batch_read_at.elapsed()); // first: never fewer than changes
                    engine.metrics.changes_published.fetch_add(1, Relaxed);
                } else {
                    engine.metrics.rows_republished.fetch_add(1, Relaxed);
                }
            }
        }
        changelog.poll(Duration::ZERO);
        if last_lag.elapsed() >= Duration::from_secs(1) {
            // Cached watermarks from fetch responses: no broker round trip.
            let owned: Vec<(i32, i64)> = engine.lock().iter().map(|(p, s)| (*p, s.next_offset)).collect();
            last_consumed_ms.retain(|p, _| owned.iter().any(|(o, _)| o == p));
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let mut below = Vec::new();
            {
                let mut lag = engine.metrics.lag.lock().unwrap_or_else(|e| e.into_inner());
                let mut lag_seconds = engine.metrics.lag_seconds.lock().unwrap_or_else(|e| e.into_inner());
                lag.clear();
                lag_seconds.clear();
                for (p, next) in owned {
                    if let Some(high) = cached_high_watermark(&consumer, &engine.trades_topic, p) {
                        let behind = (high - next).max(0);
                        lag.insert(p, behind);
                        if let Some(s) = crate::metrics::lag_seconds(behind, last_consumed_ms.get(&p).copied(), now_ms)
                        {
                            lag_seconds.insert(p, s);
                        }
                        if high < next {
                            below.push(p);
                        }
                    }
                }
                // Not consumed for an offsets mismatch: the whole log is lag.
                for (p, why) in engine.mismatched.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    lag.insert(*p, why.log_len());
                }
            }
            // The log ends below what was applied: the topic was replaced under us?
            for p in below {
                engine.recheck_owned(&consumer, p);
            }
            engine.recheck_mismatched(&consumer);
            last_lag = Instant::now();
        }
        engine.reap(false);
        if last_reload.elapsed() >= Duration::from_millis(250) {
            engine.reload_rebuilt(&consumer);
            last_reload = Instant::now();
        }
        if last_snapshot.elapsed() >= interval {
            engine.check_ownership();
            engine.snapshot_in_background();
            last_snapshot = Instant::now();
        }
    }
    // Graceful stop within --shutdown-secs of the signal: the final snapshot first (Postgres: it
    // needs no broker), then the changelog and the refusals flushed and the group left with what is
    // left of that time — a broker that is down costs only that wait.
    if unpublished_at_stop > 0 {
        tracing::warn!(
            changes = unpublished_at_stop,
            "stopping with the summaries queue full: row changes not published (the rows are in the final snapshot; each partition's next owner publishes its rows again)"
        );
    }
    if engine.snapshot(None) {
        tracing::info!("final snapshot written");
    } else if fatal.is_none() {
        // Nothing is lost (each partition is consumed again from its stored offset at the next
        // start), but the stop was not the graceful one: say so in the exit status, as the
        // ingestor does when it cannot flush.
        fatal = Some(format!(
            "the final snapshot was not written within --shutdown-secs ({} s): the next start consumes its partitions again from their stored offsets",
            engine.stop_budget.as_secs()
        ));
    }
    engine.stopped.store(true, Relaxed);
    if let Err(e) = changelog.flush(engine.stop_left()) {
        tracing::warn!(
            error = %e,
            "row changes not delivered to summaries at shutdown (the rows are in Postgres; each partition's next owner publishes its rows again)"
        );
    }
    engine.refused.flush(engine.stop_left());
    // Leaving the group is the consumer's close, on a thread of its own, for what is left of the
    // time; past it the group coordinator expires this member after its session timeout.
    let closing = close_off_runtime(consumer, "trades consumer");
    if engine.handle.block_on(tokio::time::timeout(engine.stop_left(), closing)).is_err() {
        tracing::warn!(
            "the consumer did not leave the group within the stop's time (--shutdown-secs): its session times out instead"
        );
    }
    tracing::info!("aggregator consumer stopped");
    fatal.map_or(Ok(()), Err)
}

impl Engine {
    /// Compares the epochs of the owned partitions with Postgres (one query per snapshot interval),
    /// so an owner with nothing to snapshot also learns at once that a backfill took a partition
    /// (a newer generation: loaded again when written) or that another instance did (dropped).
    fn check_ownership(&self) {
        if self.lock().is_empty() {
            return;
        }
        let stored = match self.handle.block_on(self.store.epochs()) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the partitions' epochs; the next snapshot checks them");
                return;
            }
        };
        let mut owned = self.lock();
        let lost: Vec<(i32, bool)> = owned
            .iter()
            .filter_map(|(p, s)| {
                let &(epoch, generation) = stored.get(p)?;
                (epoch != s.epoch).then_some((*p, generation > s.generation))
            })
            .collect();
        for (p, rebuilt) in lost {
            owned.remove(&p);
            if rebuilt {
                tracing::info!(
                    partition = p,
                    "a backfill is rebuilding this partition; loading it again when it is done"
                );
                self.reload.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            } else {
                tracing::warn!(partition = p, "another instance owns this partition now; dropping it");
                self.metrics.fenced.fetch_add(1, Relaxed);
            }
        }
        self.metrics.partitions_owned.store(owned.len() as u64, Relaxed);
    }

    /// Loads again the partitions a backfill held, once it has written them: the consumer is
    /// paused on them meanwhile, then sought to the stored offset and resumed.
    fn reload_rebuilt(&self, consumer: &BaseConsumer<EngineContext>) {
        let waiting: Vec<i32> = std::mem::take(&mut *self.reload.lock().unwrap_or_else(|e| e.into_inner()));
        if waiting.is_empty() {
            return;
        }
        let assigned: Vec<i32> =
            consumer.assignment().map(|a| a.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default();
        let mut still = Vec::new();
        for p in waiting.into_iter().filter(|p| assigned.contains(p)) {
            pause(consumer, &self.trades_topic, &[p], true);
            match self.handle.block_on(self.store.load(p)) {
                Ok(state) => {
                    let next = state.next_offset;
                    tracing::info!(
                        partition = p,
                        next_offset = next,
                        generation = state.generation,
                        "loaded the rebuilt partition"
                    );
                    self.lock().insert(p, state);
                    self.metrics.rebuilt.fetch_add(1, Relaxed);
                    if let Err(e) = consumer.seek(&self.trades_topic, p, Offset::Offset(next), Duration::from_secs(10))
                    {
                        tracing::warn!(partition = p, error = %e, "seek to the rebuilt offset failed; retrying");
                        self.lock().remove(&p);
                        still.push(p);
                        continue;
                    }
                    pause(consumer, &self.trades_topic, &[p], false);
                }
                Err(StoreError::Rebuilding(_)) => still.push(p),
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "cannot load the rebuilt partition yet; retrying");
                    still.push(p);
                }
            }
        }
        self.reload.lock().unwrap_or_else(|e| e.into_inner()).extend(still);
        self.metrics.partitions_owned.store(self.lock().len() as u64, Relaxed);
    }
}

/// Offsets and the log ([`offset_check`]).
impl Engine {
    /// Checks a stored next offset against `partition`'s log on the broker. A log whose offsets
    /// cannot be read passes (logged): consumption's own errors say more.
    fn offsets_belong(&self, partition: i32, stored: i64) -> Result<(), OffsetMismatch> {
        match self.offsets_client.get(&self.trades_topic, partition) {
            Ok((low, high)) => offset_check::check(stored, low, high),
            Err(e) => {
                tracing::warn!(partition, error = %e, "cannot read the log's offsets to check the stored offset");
                Ok(())
            }
        }
    }

    /// Records a mismatch: logged, counted, shown by `/readyz`; the caller pauses the partition.
    fn refuse_offsets(&self, partition: i32, why: OffsetMismatch) {
        tracing::error!(partition, reason = %why, "stored offset does not belong to the log: partition not consumed");
        self.metrics.offsets_mismatch.lock().unwrap_or_else(|e| e.into_inner()).insert(partition, why.to_string());
        self.mismatched.lock().unwrap_or_else(|e| e.into_inner()).insert(partition, why);
    }

    fn offsets_accepted(&self, partition: i32) {
        self.metrics.offsets_mismatch.lock().unwrap_or_else(|e| e.into_inner()).remove(&partition);
        self.mismatched.lock().unwrap_or_else(|e| e.into_inner()).remove(&partition);
    }

    /// An owned partition whose cached high watermark is below its next offset: asks the broker,
    /// and on a mismatch snapshots what was applied, lets the state go and pauses the partition.
    fn recheck_owned(&self, consumer: &BaseConsumer<EngineContext>, partition: i32) {
        let Some(next) = self.lock().get(&partition).map(|s| s.next_offset) else { return };
        if let Err(why) = self.offsets_belong(partition, next) {
            pause(consumer, &self.trades_topic, &[partition], true);
            self.snapshot(Some(&[partition]));
            self.lock().remove(&partition);
            self.refuse_offsets(partition, why);
            self.metrics.partitions_owned.store(self.lock().len() as u64, Relaxed);
        }
    }

    /// Mismatched partitions whose stored offset belongs to the log again (rebased): loaded (a
    /// new epoch), sought to the stored offset and resumed.
    fn recheck_mismatched(&self, consumer: &BaseConsumer<EngineContext>) {
        let waiting: Vec<i32> = self.mismatched.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect();
        for p in waiting {
            // Read first, take ownership (a new epoch) only once it passes.
            match self.handle.block_on(self.store.stored_offset(p)) {
                Ok(stored) => {
                    if let Err(why) = self.offsets_belong(p, stored.unwrap_or(0)) {
                        self.mismatched.lock().unwrap_or_else(|e| e.into_inner()).insert(p, why);
                        continue;
                    }
                }
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "cannot read the stored offset; retrying");
                    continue;
                }
            }
            let state = match self.handle.block_on(self.store.load(p)) {
                Ok(state) => state,
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "cannot load the mismatched partition; retrying");
                    continue;
                }
            };
            if let Err(why) = self.offsets_belong(p, state.next_offset) {
                self.mismatched.lock().unwrap_or_else(|e| e.into_inner()).insert(p, why);
                continue;
            }
            let next = state.next_offset;
            tracing::info!(partition = p, next_offset = next, "the stored offset belongs to the log now: consuming");
            self.lock().insert(p, state);
            if let Err(e) = consumer.seek(&self.trades_topic, p, Offset::Offset(next), Duration::from_secs(10)) {
                tracing::warn!(partition = p, error = %e, "seek to the rebased offset failed; retrying");
                self.lock().remove(&p);
                continue;
            }
            self.offsets_accepted(p);
            self.republish.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            pause(consumer, &self.trades_topic, &[p], false);
        }
        self.metrics.partitions_owned.store(self.lock().len() as u64, Relaxed);
    }
}

/// Pauses (or resumes) fetching `partitions` of `topic`.
fn pause<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str, partitions: &[i32], paused: bool) {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let result = if paused { consumer.pause(&tpl) } else { consumer.resume(&tpl) };
    if let Err(e) = result {
        tracing::warn!(?partitions, paused, error = %e, "pause/resume failed");
    }
}

/// The high watermark librdkafka learned from its last fetch of `partition` (no broker request on
/// the consumer thread).
fn cached_high_watermark(consumer: &BaseConsumer<EngineContext>, topic: &str, partition: i32) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid while `consumer` lives; the call only reads librdkafka's
    // cached state and writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}

/// Fault injection for tests: `TRADEFLOW_CRASH_AFTER_SNAPSHOTS=N` aborts the process right after
/// the N-th snapshot commit, before anything else happens (no flush, no changelog, no cleanup).
fn crash_point(snapshots: u64) {
    static AT: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("TRADEFLOW_CRASH_AFTER_SNAPSHOTS").ok().and_then(|v| v.parse().ok()));
    if *at == Some(snapshots) {
        eprintln!("TRADEFLOW_CRASH_AFTER_SNAPSHOTS={snapshots}: aborting right after the commit");
        std::process::abort();
    }
}
