//! Which lines of a file the broker has acknowledged. Lines are registered in file order; acks may
//! arrive in any order (trades and dead letters go to different topics); the acknowledged offset
//! only moves past a line once it and every line before it are acknowledged.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct State {
    /// Sequence number of `entries[0]`.
    base: u64,
    /// (end offset of the line, CRC-32 of the file up to it, acknowledged?) in registration order.
    entries: VecDeque<(u64, u32, bool)>,
    acked_offset: u64,
    /// CRC-32 of the file's bytes before `acked_offset`.
    acked_crc: u32,
    failure: Option<String>,
}

#[derive(Debug, Default)]
pub struct AckWindow {
    state: Mutex<State>,
    /// Woken whenever the acknowledged offset moves or a delivery fails.
    pub changed: Notify,
}

impl AckWindow {
    /// A window whose lines before `acked_offset` (whose bytes hash to `acked_crc`) are acknowledged.
    pub fn new(acked_offset: u64, acked_crc: u32) -> Self {
        Self { state: Mutex::new(State { acked_offset, acked_crc, ..State::default() }), changed: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the line ending at `end_offset`, the file's bytes up to it hashing to `crc`;
    /// returns its sequence number.
    pub fn register(&self, end_offset: u64, crc: u32) -> u64 {
        let mut s = self.lock();
        s.entries.push_back((end_offset, crc, false));
        s.base + s.entries.len() as u64 - 1
    }

    /// Takes back the line registered last, `seq`, which was never handed to the producer (its
    /// send was abandoned at shutdown): nothing will acknowledge it, and the drain must not wait.
    pub fn withdraw(&self, seq: u64) {
        let mut s = self.lock();
        let last = (s.base + s.entries.len() as u64).checked_sub(1);
        if !s.entries.is_empty() && last == Some(seq) {
            s.entries.pop_back();
        }
        drop(s);
        self.changed.notify_waiters();
    }

    pub fn ack(&self, seq: u64) {
        let mut s = self.lock();
        let Some(i) = seq.checked_sub(s.base) else { return };
        if let Some(entry) = s.entries.get_mut(i as usize) {
            entry.2 = true;
        }
        let mut moved = false;
        while let Some(&(end, crc, true)) = s.entries.front() {
            s.entries.pop_front();
            s.base += 1;
            s.acked_offset = end;
            s.acked_crc = crc;
            moved = true;
        }
        drop(s);
        if moved {
            self.changed.notify_waiters();
        }
    }

    pub fn fail(&self, reason: String) {
        self.lock().failure.get_or_insert(reason);
        self.changed.notify_waiters();
    }

    pub fn acked_offset(&self) -> u64 {
        self.lock().acked_offset
    }

    /// The acknowledged offset and the CRC-32 of the file's bytes before it.
    pub fn acked(&self) -> (u64, u32) {
        let s = self.lock();
        (s.acked_offset, s.acked_crc)
    }

    pub fn in_flight(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Waits until nothing is in flight (or a delivery failed).
    pub async fn drained(&self) -> Result<(), String> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(f) = self.failure() {
                return Err(f);
            }
            if self.in_flight() == 0 {
                return Ok(());
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawn_last_line_is_no_longer_in_flight() {
        let w = AckWindow::new(0, 0);
        let (a, b, c) = (w.register(10, 1), w.register(20, 2), w.register(30, 3));
        w.withdraw(b); // not the last: nothing happens
        assert_eq!(w.in_flight(), 3);
        w.withdraw(c);
        assert_eq!(w.in_flight(), 2);
        w.ack(a);
        w.ack(b);
        assert_eq!((w.in_flight(), w.acked()), (0, (20, 2)));
        w.withdraw(c); // already gone, and nothing registered: no underflow
        assert_eq!(w.in_flight(), 0);
        let fresh = AckWindow::new(0, 0);
        fresh.withdraw(0);
        assert_eq!(fresh.in_flight(), 0);
    }

    #[test]
    fn moves_only_over_contiguous_acks() {
        let w = AckWindow::new(100, 7);
        let a = w.register(110, 1);
        let b = w.register(120, 2);
        let c = w.register(130, 3);
        w.ack(b);
        assert_eq!(w.acked_offset(), 100);
        w.ack(a);
        assert_eq!(w.acked(), (120, 2));
        assert_eq!(w.in_flight(), 1);
        w.ack(c);
        assert_eq!(w.acked_offset(), 130);
        w.ack(c); // a duplicate ack is harmless
        assert_eq!(w.acked_offset(), 130);
        let d = w.register(140, 4);
        assert_eq!(d, 3);
        w.ack(d);
        assert_eq!((w.acked_offset(), w.in_flight()), (140, 0));
    }
}
