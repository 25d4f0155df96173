//! The replay's per-record work without Kafka: applying decoded trade records to one partition's
//! state (row, fill bar, dedupe mark, dirty sets), and decoding + applying them (what a backfill
//! reader does with each record librdkafka hands it). `cargo bench -p tradeflow-aggregator --bench
//! apply` prints records/s on one core; `scripts/bench-replay.sh` is the end-to-end figure.

use std::hint::black_box;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rust_decimal::Decimal;
use tradeflow_aggregator::state::PartitionState;
use tradeflow_core::record::{TradeId, TradeRecord};
use tradeflow_core::{ClientId, Side, Trade};

const SYMBOLS: [&str; 5] = ["BANKNIFTY", "AAPL", "AMZN", "FB", "GOOG"];
const ACCOUNTS: [&str; 3] = ["CQ01", "CQ02", "CQ03"];
const CLIENTS: u64 = 8;

/// `n` records as the benchmarks' producer writes them: 8 clients' files, 3 accounts, 5 symbols,
/// 15 fills a second, each file's offsets increasing.
fn records(n: usize) -> Vec<TradeRecord> {
    let day = NaiveDate::from_ymd_opt(2026, 11, 22).expect("valid");
    let start = day.and_hms_opt(9, 30, 0).expect("valid");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let time = start + chrono::Duration::nanoseconds(i as i64 * 66_666_667 + (next() % 1000) as i64);
            let symbol = SYMBOLS[(next() % 5) as usize];
            let side = if next() % 2 == 0 { Side::Buy } else { Side::Sell };
            let price = Decimal::new((next() % 100_000) as i64, 2);
            let quantity = (next() % 100) as i64;
            let trade = Trade::from_template(time, symbol, side, price, quantity, ACCOUNTS[(next() % 3) as usize]);
            let client = ClientId::parse(&format!("client_{}", i as u64 % CLIENTS)).expect("valid");
            let id = TradeId { client, date: day, generation: 0, offset: (i as u64 / CLIENTS) * 180 };
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
