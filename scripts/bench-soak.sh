#!/usr/bin/env bash
# Soak: one stack at 10 k trades/s (10 clients, 10 subscribers) for MINUTES (default 10), printing
# p50 / p99 / max and frames/s per minute, then the whole run, the per-hop quantiles and each
# process's CPU. Everything (broker, Postgres, services, load) on this machine.
#
# Before the measured minutes, a warm-up of 60 s at the same rate (not reported): the broker's JVM
# compiles its hot paths (the first minute of a cold JVM measured 28.8 ms p99 against ~18 after).
#
#   scripts/bench-soak.sh [MINUTES]     BENCH_RATE=N changes the rate; BENCH_WARMUP="SECONDS RATE"
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-10}"
case "$MINUTES" in -h|--help) sed -n '2,9p' "$0"; exit 0 ;; esac
rate="${BENCH_RATE:-10000}"
# bench-latency.sh's machinery with one load, windows of a minute.
# After it, the ingestor's backfill of the same files (its CPU per line against the live one's).
export BENCH_BACKFILL_COST="${BENCH_BACKFILL_COST:-1}"
export BENCH_WARMUP="${BENCH_WARMUP:-60 $rate}" BENCH_WINDOW=60 BENCH_LOADS=custom BENCH_CUSTOM="--label soak --rate $rate --clients 10 --subscribers 10"
exec bash scripts/bench-latency.sh "$((MINUTES * 60))"
