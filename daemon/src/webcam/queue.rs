//! Bounded hand-over between stages.
//!
//! Live mode must never queue up latency: when the next stage is busy and the queue is full,
//! the oldest pending frame is thrown away (and counted) so the freshest one waits instead.
//! Offline mode (files, benchmarks without `--live`) blocks instead and loses nothing.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, SendError, Sender, TrySendError};

/// What a full queue does with a new item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the oldest queued item (live video).
    DropOldest,
    /// Wait for room (every frame matters).
    Block,
}

/// The sending half of a bounded stage queue.
pub struct StageSender<T> {
    tx: Sender<T>,
    /// Kept only to pull the oldest item out when the queue is full (drop-oldest mode only,
    /// so that in blocking mode a gone consumer disconnects the channel).
    drain: Option<Receiver<T>>,
    drops: Arc<AtomicU64>,
    /// Cleared when the receiving stage drops its end: `drain` alone keeps the channel
    /// connected, so disconnection cannot tell us.
    consumer_alive: Arc<AtomicBool>,
}

/// The receiving half; dropping it makes further sends fail.
pub struct StageReceiver<T> {
    rx: Receiver<T>,
    alive: Arc<AtomicBool>,
}

impl<T> Deref for StageReceiver<T> {
    type Target = Receiver<T>;
    fn deref(&self) -> &Receiver<T> {
        &self.rx
    }
}

impl<T> Drop for StageReceiver<T> {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
    }
}

/// A bounded queue of `capacity` items; `drops` counts items discarded by [`Overflow::DropOldest`].
pub fn stage_queue<T>(
    capacity: usize,
    overflow: Overflow,
    drops: Arc<AtomicU64>,
) -> (StageSender<T>, StageReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let alive = Arc::new(AtomicBool::new(true));
    let sender = StageSender {
        tx,
        drain: (overflow == Overflow::DropOldest).then(|| rx.clone()),
        drops,
        consumer_alive: alive.clone(),
    };
    (sender, StageReceiver { rx, alive })
}

impl<T> StageSender<T> {
    /// Hand an item on. Errors only when the receiving stage has gone.
    pub fn send(&self, mut item: T) -> Result<(), SendError<T>> {
        let Some(drain) = &self.drain else {
            return self.tx.send(item);
        };
        loop {
            if !self.consumer_alive.load(Ordering::Acquire) {
                return Err(SendError(item));
            }
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => {
                    item = v;
                    // The consumer may take the oldest item first; then there is room and the
                    // next try succeeds without a drop.
                    if drain.try_recv().is_ok() {
                        self.drops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let drops = Arc::new(AtomicU64::new(0));
        let (tx, rx) = stage_queue(2, Overflow::DropOldest, drops.clone());
        for i in 0..10 {
            tx.send(i).unwrap();
            assert!(tx.len() <= 2);
        }
        assert_eq!(drops.load(Ordering::Relaxed), 8);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![8, 9]);
    }

    #[test]
    fn block_mode_loses_nothing() {
        let drops = Arc::new(AtomicU64::new(0));
        let (tx, rx) = stage_queue(1, Overflow::Block, drops.clone());
        let consumer = std::thread::spawn(move || rx.iter().collect::<Vec<u32>>());
        for i in 0..100 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(consumer.join().unwrap(), (0..100).collect::<Vec<_>>());
        assert_eq!(drops.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn send_fails_when_the_consumer_is_gone() {
        for overflow in [Overflow::DropOldest, Overflow::Block] {
            let (tx, rx) = stage_queue::<u8>(1, overflow, Arc::default());
            tx.send(1).unwrap();
            drop(rx);
            assert!(tx.send(2).is_err(), "{overflow:?}");
        }
    }
}
