//! The log producer: one task per client, each tick writing every trade whose time has passed.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use tokio_util::sync::CancellationToken;
use tradeflow_core::ClientId;

use crate::ProducerError;
use crate::config::{PriceModel, ProducerArgs};
use crate::day_file::DayFileWriter;
use crate::generator::{Rate, SYMBOLS, TradeGenerator};
use crate::trade_prices::TradePrices;

/// What a run wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerReport {
    pub lines_per_client: BTreeMap<ClientId, u64>,
}

/// Runs until `--count`, the end of `--days`, or `shutdown`; flushes before returning.
pub async fn run(config: ProducerArgs, shutdown: CancellationToken) -> Result<ProducerReport, ProducerError> {
    if config.clients.is_empty() {
        return Err(ProducerError::Config("no clients given".into()));
    }
    let seed = config.seed.unwrap_or_else(rand::random);
    let now = now_local(&config);
    let start = config.start.unwrap_or(now);
    let end = config.days.map(|d| start.date().and_time(chrono::NaiveTime::MIN) + chrono::Duration::days(d.into()));
    tracing::info!(dir = %config.dir.display(), clients = config.clients.len(), seed, %start, ?end, "producer starting");
    let mut tasks = Vec::new();
    for client in config.clients.clone() {
        let config = config.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let lines = run_client(&config, client.clone(), seed, start, end, shutdown).await?;
            Ok::<_, ProducerError>((client, lines))
        }));
    }
    let mut report = ProducerReport::default();
    for task in tasks {
        let (client, lines) = task.await??;
        report.lines_per_client.insert(client, lines);
    }
    tracing::info!(?report, "producer stopped");
    Ok(report)
}

async fn run_client(
    config: &ProducerArgs,
    client: ClientId,
    seed: u64,
    start: NaiveDateTime,
    end: Option<NaiveDateTime>,
    shutdown: CancellationToken,
) -> Result<u64, ProducerError> {
    let rate = config.rate.map_or(Rate::Mock, Rate::Fixed);
    let prices = match config.prices {
        PriceModel::Walk => {
            let interval = chrono::Duration::milliseconds(config.price_interval_ms.try_into().unwrap_or(i64::MAX));
            TradePrices::walk(&SYMBOLS, config.price_seed.unwrap_or(seed), interval, start)
        }
        PriceModel::Uniform => TradePrices::Uniform,
    };
    let mut generator = TradeGenerator::new(&client, seed, rate, start).with_prices(prices);
    let mut writer = DayFileWriter::new(&config.dir, client, config.format, config.tz)?;
    let mut written: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(config.tick_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = now_local(config);
        let mut since_yield = 0u32;
        let mut done = false;
        while generator.peek_time() <= now {
            if config.count.is_some_and(|c| written >= c) || end.is_some_and(|e| generator.peek_time() >= e) {
                done = true;
                break;
            }
            writer.push(&generator.next_trade())?;
            written += 1;
            since_yield += 1;
            if since_yield == 10_000 {
                // A historical backlog: let other clients and the shutdown signal in.
                since_yield = 0;
                tokio::task::yield_now().await;
                if shutdown.is_cancelled() {
                    break;
                }
            }
        }
        if config.count.is_some_and(|c| written >= c) || end.is_some_and(|e| generator.peek_time() >= e) {
            done = true;
        }
        writer.flush()?;
        if done {
            break;
        }
    }
    writer.flush()?;
    Ok(written)
}

fn now_local(config: &ProducerArgs) -> NaiveDateTime {
    Utc::now().with_timezone(&config.tz).naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tradeflow_core::log_format::parse_line;

    #[tokio::test]
    async fn historical_run_is_reproducible_and_rolls_over() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let clients = vec![ClientId::parse("1").unwrap(), ClientId::parse("2").unwrap()];
        let mut config = ProducerArgs::new(a.path(), clients.clone());
        config.seed = Some(7);
        config.count = Some(3000);
        config.rate = Some(20);
        config.start = Some(crate::config::parse_start("2026-11-01T23:59:00").unwrap());
        let report = run(config.clone(), CancellationToken::new()).await.unwrap();
        assert!(report.lines_per_client.values().all(|&n| n == 3000));
        config.dir = b.path().to_owned();
        run(config, CancellationToken::new()).await.unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(a.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "tradeLog_client1.2026.11.01.log",
                "tradeLog_client1.2026.11.02.log",
                "tradeLog_client2.2026.11.01.log",
                "tradeLog_client2.2026.11.02.log"
            ]
        );
        let mut total = 0;
        for name in &names {
            let x = std::fs::read(a.path().join(name)).unwrap();
            assert_eq!(x, std::fs::read(b.path().join(name)).unwrap(), "{name} differs");
            assert_eq!(x.last(), Some(&b'\n'));
            for line in x.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let t = parse_line(line).unwrap();
                assert_eq!(t.activity_time.format("%Y.%m.%d").to_string(), name[name.len() - 14..name.len() - 4]);
                total += 1;
            }
        }
        assert_eq!(total, 6000);
    }

    #[tokio::test]
    async fn days_bound_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProducerArgs::new(dir.path(), vec![ClientId::parse("9").unwrap()]);
        config.seed = Some(1);
        config.rate = Some(1);
        config.days = Some(2);
        config.start = Some(crate::config::parse_start("2026-10-01T12:00:00").unwrap());
        let report = run(config, CancellationToken::new()).await.unwrap();
        // 12 h of day one + 24 h of day two at 1 trade/s.
        assert_eq!(report.lines_per_client.values().sum::<u64>(), 36 * 3600);
    }
}
