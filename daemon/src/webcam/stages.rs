//! The three stage loops. Each returns when the stage before it is gone or a stop was
//! requested; a stage that fails requests a stop so the others follow.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::RecvTimeoutError;

use super::queue::{StageReceiver, StageSender};
use super::sink::Sink;
use super::source::{is_permanent, Read, Source};
use super::{Config, Frame, Processor, Shared};

/// How often a waiting stage looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Run a stage body; on error, stop the others.
fn stopping_on_error(shared: &Shared, body: impl FnOnce() -> Result<()>) -> Result<()> {
    let result = body();
    if result.is_err() {
        shared.request_stop();
    }
    result
}

/// Sleep up to `d`, waking early on stop. False if stopping.
fn sleep_unless_stopped(shared: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shared.stopping() {
            return false;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    !shared.stopping()
}

/// Doubling retry delay between camera reopen attempts.
struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new((first, max): (Duration, Duration)) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = self.first;
    }
}

pub(super) fn capture(
    config: &Config,
    shared: &Shared,
    mut source: Box<dyn Source>,
    tx: StageSender<Frame>,
) -> Result<()> {
    stopping_on_error(shared, || {
        let c = &shared.counters;
        let mut backoff = Backoff::new(config.backoff);
        let mut open = false;
        let mut faulted = false;
        let describe = source.describe();
        while !shared.stopping() {
            if !open {
                match source.open() {
                    Ok(()) => {
                        open = true;
                        shared.source_healthy.store(true, Ordering::Relaxed);
                    }
                    Err(err) => {
                        // Not live (a file, a benchmark): nothing to wait for; a permanent
                        // error (a misspelled pattern, not a video) would fail every retry.
                        if !config.live || is_permanent(&err) {
                            return Err(err);
                        }
                        let wait = backoff.next();
                        eprintln!(
                            "stylize webcam: {describe} unavailable: {err:#}; retrying in {:.1} s",
                            wait.as_secs_f64()
                        );
                        shared.source_healthy.store(false, Ordering::Relaxed);
                        if !sleep_unless_stopped(shared, wait) {
                            break;
                        }
                        continue;
                    }
                }
            }
            match source.read() {
                Ok(Read::Frame(mut frame)) => {
                    if faulted {
                        faulted = false;
                        c.source_recoveries.fetch_add(1, Ordering::Relaxed);
                        eprintln!("stylize webcam: {describe} is back");
                    }
                    backoff.reset();
                    frame.seq = c.captured.fetch_add(1, Ordering::Relaxed) + 1;
                    frame.handed_over = Instant::now();
                    if tx.send(frame).is_err() {
                        break;
                    }
                }
                Ok(Read::Idle) => {}
                Ok(Read::End) => break,
                Err(err) => {
                    if !config.live || is_permanent(&err) {
                        return Err(err);
                    }
                    c.source_faults.fetch_add(1, Ordering::Relaxed);
                    shared.source_healthy.store(false, Ordering::Relaxed);
                    faulted = true;
                    source.close();
                    open = false;
                    let wait = backoff.next();
                    eprintln!(
                        "stylize webcam: {describe} failed: {err:#}; output repeats the last \
                         frame, retrying in {:.1} s",
                        wait.as_secs_f64()
                    );
                    if !sleep_unless_stopped(shared, wait) {
                        break;
                    }
                }
            }
        }
        source.close();
        Ok(())
    })
}

pub(super) fn stylize(
    shared: &Shared,
    mut processor: Box<dyn Processor>,
    rx: StageReceiver<Frame>,
    tx: StageSender<Frame>,
) -> Result<()> {
    stopping_on_error(shared, || {
        let c = &shared.counters;
        loop {
            let mut frame = match rx.recv_timeout(POLL) {
                Ok(f) => f,
                Err(RecvTimeoutError::Timeout) if shared.stopping() => break,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            frame.times.queue_ms = ms(frame.handed_over.elapsed());
            if shared.paused.load(Ordering::Relaxed) {
                c.passed_through.fetch_add(1, Ordering::Relaxed);
            } else {
                let conditioning = shared.conditioning();
                let t = processor.process(&mut frame, &conditioning)?;
                frame.times.convert_in_ms = t.convert_in_ms;
                frame.times.infer_ms = t.infer_ms;
                frame.times.convert_out_ms = t.convert_out_ms;
                frame.times.temporal_ms = t.temporal_ms;
                c.stylized.fetch_add(1, Ordering::Relaxed);
            }
            frame.handed_over = Instant::now();
            if tx.send(frame).is_err() {
                break;
            }
        }
        Ok(())
    })
}

pub(super) fn output(
    config: &Config,
    shared: &Shared,
    mut sink: Box<dyn Sink>,
    rx: StageReceiver<Frame>,
) -> Result<()> {
    let result = stopping_on_error(shared, || {
        let c = &shared.counters;
        let started = Instant::now();
        let mut last_pts: Option<Duration> = None;
        // Strictly increasing output timestamps from one clock, whatever the input did.
        let mut next_pts = || {
            let mut pts = started.elapsed();
            if let Some(prev) = last_pts {
                pts = pts.max(prev + Duration::from_micros(1));
            }
            last_pts = Some(pts);
            pts
        };
        let keepalive = config.live.then(|| config.spec.frame_interval());
        let mut last: Option<Arc<Frame>> = None;
        let mut last_write = Instant::now();
        loop {
            let wait = match keepalive {
                Some(k) => k.saturating_sub(last_write.elapsed()).min(POLL),
                None => POLL,
            };
            match rx.recv_timeout(wait) {
                Ok(mut frame) => {
                    let out_start = frame.handed_over;
                    let pts = next_pts();
                    sink.write(&frame, pts, false)?;
                    frame.times.written_at_s = pts.as_secs_f64();
                    last_write = Instant::now();
                    frame.times.output_ms = ms(out_start.elapsed());
                    frame.times.end_to_end_ms = ms(frame.captured.elapsed());
                    c.written.fetch_add(1, Ordering::Relaxed);
                    shared.record(frame.times);
                    last = Some(Arc::new(frame));
                }
                Err(RecvTimeoutError::Timeout) => {
                    if shared.stopping() {
                        break;
                    }
                    let Some(k) = keepalive else { continue };
                    if last_write.elapsed() < k {
                        continue;
                    }
                    // Nothing new for a frame interval (slow model, camera fault): re-send
                    // the last good frame so consumers never see the stream stall.
                    let frame = last
                        .get_or_insert_with(|| Arc::new(Frame::black(config.spec)))
                        .clone();
                    sink.write(&frame, next_pts(), true)?;
                    last_write = Instant::now();
                    c.repeated.fetch_add(1, Ordering::Relaxed);
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    });
    sink.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new((Duration::from_millis(100), Duration::from_millis(500)));
        let got: Vec<u128> = (0..5).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }
}
