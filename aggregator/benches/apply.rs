//! The replay's per-record work without Kafka: applying decoded trade records to one partition's
//! state (row, fill bar, dedupe mark, dirty sets), and decoding + applying them (what a backfill
//! reader does with each record librdkafka hands it). `cargo bench -p tradeflow-aggregator --bench
//! apply` prints records/s on one core; `scripts/bench-replay.sh` is the end-to-end figure.

use std::hint::black_box;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tradeflow_aggregator::state::PartitionState;
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::{ClientId, Trade};

const CLIENTS: usize = 8;

/// `n` records of [`Trade::samples`] from 8 clients' files (each file's offsets increasing).
fn records(n: usize) -> Vec<TradeRecord> {
    let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid");
    Trade::samples(n)
        .into_iter()
        .enumerate()
        .map(|(i, trade)| {
            let client = ClientId::parse(&format!("client_{}", i % CLIENTS)).expect("valid");
            let id = TradeId { client, date: day, generation: 0, offset: (i / CLIENTS) as u64 * 180 };
            TradeRecord { id, trade }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let records = records(10_000);
    let json: Vec<Vec<u8>> = records.iter().map(TradeRecord::to_json).collect();
    let mut group = c.benchmark_group("replay");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("apply records/s", |b| {
        b.iter_batched(
            PartitionState::default,
            |mut state| {
                for (offset, r) in records.iter().enumerate() {
                    black_box(state.apply(offset as i64, black_box(r)));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("decode and apply records/s", |b| {
        b.iter_batched(
            PartitionState::default,
            |mut state| {
                for (offset, bytes) in json.iter().enumerate() {
                    if let Ok(r) = TradeRecord::from_json(black_box(bytes)) {
                        black_box(state.apply(offset as i64, &r));
                    }
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
