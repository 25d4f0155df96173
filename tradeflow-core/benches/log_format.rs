//! Parse and render throughput on realistic lines (the producer's template and distribution).
//! `cargo bench -p tradeflow-core --bench log_format` prints lines/s and MB/s per core, and the
//! trade record's JSON decode (hand-written and serde_json) in records/s.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tradeflow_core::log_format::{parse_line, parse_line_ref, render_line_into};
use tradeflow_core::mapping::Mapping;
use tradeflow_core::record::{TradeId, TradeRecord, write_record_json};
use tradeflow_core::{ClientId, Side, Trade};

fn bench(c: &mut Criterion) {
    let trades = Trade::samples(10_000);
    let mut buf = Vec::new();
    let lines: Vec<Vec<u8>> = trades
        .iter()
        .map(|t| {
            buf.clear();
            render_line_into(t, &mut buf);
            buf[..buf.len() - 1].to_vec()
        })
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();

    let mut group = c.benchmark_group("log_format");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("parse lines/s", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(parse_line(black_box(l)));
            }
        })
    });
    group.bench_function("render lines/s", |b| {
        b.iter(|| {
            buf.clear();
            for t in &trades {
                render_line_into(black_box(t), &mut buf);
            }
            black_box(&buf);
        })
    });
    // A trade record's JSON as it travels on `trades`, read back: the replay path's per-record cost.
    let records: Vec<Vec<u8>> = trades
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let id = TradeId {
                client: ClientId::parse("client_7").expect("valid"),
                date: t.activity_time.date(),
                generation: 0,
                offset: i as u64 * 290,
            };
            TradeRecord { id, trade: t.clone() }.to_json()
        })
        .collect();
    // The ingestor's per-line work: a line to its record's JSON (borrowing the line's text).
    let id = TradeId {
        client: ClientId::parse("client_7").expect("valid"),
        date: trades[0].activity_time.date(),
        generation: 0,
        offset: 0,
    };
    let mut rec = Vec::with_capacity(1024);
    group.bench_function("line to record lines/s", |b| {
        b.iter(|| {
            for l in &lines {
                rec.clear();
                let t = parse_line_ref(black_box(l)).expect("rendered lines parse");
                write_record_json(&id, &t, &mut rec);
                black_box(&rec);
            }
        })
    });
    group.bench_function("line to record via an owned Trade lines/s", |b| {
        b.iter(|| {
            for l in &lines {
                rec.clear();
                let trade = parse_line(black_box(l)).expect("rendered lines parse");
                TradeRecord { id: id.clone(), trade }.write_json(&mut rec);
                black_box(&rec);
            }
        })
    });
    // The same through a mapping: the built-in one (must cost what the line above costs: it is the
    // same parser behind one match), and a CSV export read by the interpreter (target ≥ 1 M lines/s).
    let builtin = Mapping::builtin();
    group.bench_function("line to record, built-in mapping lines/s", |b| {
        b.iter(|| {
            for l in &lines {
                rec.clear();
                let parsed = builtin.sources[0].parse_line(black_box(l), false).expect("rendered lines parse");
                let t = parsed.trade().expect("a trade");
                write_record_json(&id, &t, &mut rec);
                black_box(&rec);
            }
        })
    });
    let csv_mapping =
        Mapping::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mappings/csv.toml"))
            .expect("the example mapping");
    let csv_lines: Vec<Vec<u8>> = trades
        .iter()
        .map(|t| {
            let side = if t.side == Side::Buy { "BUY" } else { "SELL" };
            let time = t.activity_time.format("%Y-%m-%dT%H:%M:%S%.9f");
            format!(
                "{time},{},{},{side},{},{},{}",
                t.account_id,
                t.symbol,
                t.quantity,
                t.price,
                t.order_no.unwrap_or(0)
            )
            .into_bytes()
        })
        .collect();
    group.bench_function("line to record, CSV mapping lines/s", |b| {
        b.iter(|| {
            for l in &csv_lines {
                rec.clear();
                let parsed = csv_mapping.sources[0].parse_line(black_box(l), false).expect("rendered rows parse");
                let t = parsed.trade().expect("a trade");
                write_record_json(&id, &t, &mut rec);
                black_box(&rec);
            }
        })
    });
    // The ingest path's per-line cost after parsing: the record's JSON.
    let with_ids: Vec<TradeRecord> = records.iter().map(|r| TradeRecord::from_json(r).expect("round trip")).collect();
    let mut out = Vec::with_capacity(1024);
    group.bench_function("record encode records/s", |b| {
        b.iter(|| {
            for r in &with_ids {
                out.clear();
                black_box(r).write_json(&mut out);
                black_box(&out);
            }
        })
    });
    group.bench_function("record decode records/s", |b| {
        b.iter(|| {
            for r in &records {
                let _ = black_box(TradeRecord::from_json(black_box(r)));
            }
        })
    });
    group.bench_function("record decode by serde_json records/s", |b| {
        b.iter(|| {
            for r in &records {
                let _ = black_box(serde_json::from_slice::<TradeRecord>(black_box(r)));
            }
        })
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("parse bytes/s", |b| {
        b.iter(|| {
            for l in &lines {
                let _ = black_box(parse_line(black_box(l)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
