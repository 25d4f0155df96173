//! The price feed's delivery bookkeeping: ticks delivered and dropped, whether the feed is
//! currently dropping (logged once when it starts and once when it ends, not per tick), and
//! whether it has stalled — no tick delivered for longer than the feed may go without one.

use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

/// Counts a feed's delivery reports and tells when it has stalled.
#[derive(Debug)]
pub struct Deliveries {
    delivered: u64,
    dropped: u64,
    /// Dropped since the last delivery (0 while delivering).
    dropped_in_a_row: u64,
    /// The last delivery, or the feed's start.
    last_progress: Instant,
    max_stall: Duration,
}

/// What one delivery report changed, for the caller to log.
#[derive(Debug, PartialEq)]
pub enum Change {
    None,
    /// The first tick dropped after a delivery (or at the start).
    StartedDropping,
    /// A delivery after `dropped` ticks were dropped.
    Recovered {
        dropped: u64,
    },
}

impl Deliveries {
    pub fn new(now: Instant, max_stall: Duration) -> Self {
        Self { delivered: 0, dropped: 0, dropped_in_a_row: 0, last_progress: now, max_stall }
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A delivery report (or a tick that could not be queued: an error).
    pub fn record(&mut self, result: &Result<(), KafkaError>, now: Instant) -> Change {
        match result {
            Ok(()) => {
                self.delivered += 1;
                self.last_progress = now;
                let dropped = std::mem::take(&mut self.dropped_in_a_row);
                if dropped > 0 { Change::Recovered { dropped } } else { Change::None }
            }
            Err(_) => self.drop_ticks(1),
        }
    }

    /// `n` ticks given up without a report (left in flight at shutdown).
    pub fn drop_ticks(&mut self, n: u64) -> Change {
        self.dropped += n;
        self.dropped_in_a_row += n;
        if n > 0 && self.dropped_in_a_row == n { Change::StartedDropping } else { Change::None }
    }

    /// How long since the last delivery, once that is longer than the feed may stall.
    pub fn stalled(&self, now: Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last_progress);
        (since > self.max_stall).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn timed_out() -> Result<(), KafkaError> {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut))
    }

    #[test]
    fn drops_are_counted_and_reported_once_per_outage() {
        let t0 = Instant::now();
        let mut d = Deliveries::new(t0, Duration::from_secs(60));
        assert_eq!(d.record(&Ok(()), t0), Change::None);
        assert_eq!(d.record(&timed_out(), t0), Change::StartedDropping);
        assert_eq!(d.record(&timed_out(), t0), Change::None);
        assert_eq!(d.drop_ticks(3), Change::None);
        assert_eq!(d.record(&Ok(()), t0), Change::Recovered { dropped: 5 });
        assert_eq!(d.record(&Ok(()), t0), Change::None);
        assert_eq!((d.delivered(), d.dropped()), (3, 5));
        assert_eq!(d.drop_ticks(0), Change::None);
        assert_eq!(d.drop_ticks(2), Change::StartedDropping);
    }

    #[test]
    fn stalls_only_after_the_bound_without_a_delivery() {
        let t0 = Instant::now();
        let bound = Duration::from_secs(60);
        let mut d = Deliveries::new(t0, bound);
        assert_eq!(d.stalled(t0 + bound), None, "a fresh feed has the whole bound");
        assert_eq!(d.stalled(t0 + bound + Duration::from_secs(1)), Some(bound + Duration::from_secs(1)));
        // Failed reports are no progress: a feed that only drops stalls.
        d.record(&timed_out(), t0 + Duration::from_secs(30));
        assert!(d.stalled(t0 + Duration::from_secs(61)).is_some());
        // A delivery restarts the clock.
        d.record(&Ok(()), t0 + Duration::from_secs(61));
        assert_eq!(d.stalled(t0 + Duration::from_secs(121)), None);
        assert!(d.stalled(t0 + Duration::from_secs(122)).is_some());
    }
}
