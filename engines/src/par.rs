//! Row bands: the per-pixel work around the network (the frame's resizes and conversions, the
//! temporal filter's stages) split over a few threads.
//!
//! The network runs on every core the user gave it, the work before and after it on the same
//! cores, so that work takes them too, on rayon's kept threads (a thread started per stage
//! cost more than some stages). Work is cut into bands of a fixed number of rows whatever the thread
//! count, and a band's result depends only on its rows: the output is the same bytes on one
//! thread or eight.
//!
//! Bands are claimed, not assigned: the calling thread starts on them at once and a helper
//! takes the next unclaimed band whenever it is free. A helper that wakes late (a sleeping
//! thread takes microseconds to tens of them, more on a busy virtual machine) finds less or
//! nothing left instead of holding up the stage, and the threads finish together however
//! uneven the bands are. The caller waits only for bands a helper has started.

use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Rows per band: large enough that a band's start-up (a running sum's first window, a
/// thread's wake-up) is small against its work, small enough to balance two or more threads.
pub(crate) const BAND_ROWS: usize = 16;

/// Below this many items a stage runs on the calling thread: handing a share to another
/// thread (waking it when it sleeps) costs microseconds to tens of them, more than a small
/// image's whole stage.
const MIN_PARALLEL_ITEMS: usize = 1 << 14;

/// The threads for a stage over `items` values: one below [`MIN_PARALLEL_ITEMS`].
pub(crate) fn threads_for(items: usize, threads: usize) -> usize {
    if items < MIN_PARALLEL_ITEMS {
        1
    } else {
        threads
    }
}

/// What the calling thread and its helpers share while they claim the tasks of one stage.
struct Claims {
    /// The next task to claim; at or past `tasks` nothing is left.
    next: AtomicUsize,
    /// Tasks finished (or given up by a panic).
    done: AtomicUsize,
    tasks: usize,
    panicked: AtomicBool,
    /// Runs task i. Only dereferenced by a thread that claimed a task below `tasks`; the
    /// caller does not return before every claimed task is done, so it is still alive then.
    run: *const (dyn Fn(usize) + Sync),
}

// SAFETY: `run` points to a `Sync` closure, called only while the caller keeps it alive (see
// the field); the other fields are atomics.
unsafe impl Send for Claims {}
// SAFETY: as above.
unsafe impl Sync for Claims {}

impl Claims {
    /// Claim and run tasks until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= self.tasks {
                return;
            }
            // SAFETY: task i was claimed (i < tasks), so the caller is still waiting and the
            // closure alive.
            let run = unsafe { &*self.run };
            if catch_unwind(AssertUnwindSafe(|| run(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// Run `run(i)` for every i below `tasks`, on the calling thread and up to `threads − 1`
/// helpers from rayon's pool; returns when all are done. A panic in a task is raised here.
fn run_claimed(tasks: usize, threads: usize, run: &(dyn Fn(usize) + Sync)) {
    let helpers = threads.min(tasks).saturating_sub(1);
    if helpers == 0 {
        (0..tasks).for_each(run);
        return;
    }
    // SAFETY: only the lifetime is erased. The pointer is dereferenced only for a claimed
    // task, and this function does not return before every claimed task is done (below).
    let run: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(run) };
    let claims = Arc::new(Claims {
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        tasks,
        panicked: AtomicBool::new(false),
        run,
    });
    for _ in 0..helpers {
        let claims = Arc::clone(&claims);
        rayon::spawn(move || claims.work());
    }
    claims.work();
    // Every task is claimed now; wait for those a helper is still running (at most one band
    // each), spinning: they end within microseconds.
    let mut spins = 0u32;
    while claims.done.load(Ordering::Acquire) < tasks {
        if spins < 1 << 12 {
            std::hint::spin_loop();
            spins += 1;
        } else {
            std::thread::yield_now();
        }
    }
    if claims.panicked.load(Ordering::Relaxed) {
        resume_unwind(Box::new("a band of a parallel stage panicked"));
    }
}

/// Run `f(rows, band)` for every band of `BAND_ROWS` rows of `out` (`row_len` items per row),
/// on up to `threads` threads; the calling thread takes a share. `rows` are the band's rows.
pub(crate) fn for_bands<T: Send>(
    out: &mut [T],
    row_len: usize,
    threads: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    for_bands_of(BAND_ROWS, out, row_len, threads, f);
}

/// [`for_bands`] with bands of `band_rows` rows, for work whose per-band start-up is larger.
pub(crate) fn for_bands_of<T: Send>(
    band_rows: usize,
    out: &mut [T],
    row_len: usize,
    threads: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    if row_len == 0 || out.is_empty() || band_rows == 0 {
        return;
    }
    let threads = threads_for(out.len(), threads);
    // Each band behind its own lock: exactly one thread claims it, so the lock is never
    // contended; it only hands the `&mut` over safely.
    let bands: Vec<Mutex<&mut [T]>> = out
        .chunks_mut(band_rows * row_len)
        .map(Mutex::new)
        .collect();
    run_claimed(bands.len(), threads, &|i| {
        let mut band = bands[i].lock().unwrap_or_else(|e| e.into_inner());
        let y0 = i * band_rows;
        let rows = y0..y0 + band.len() / row_len;
        f(rows, &mut band);
    });
}

/// [`for_bands`] over two images of the same height at once (`a_row` and `b_row` items per
/// row): `f(rows, band_a, band_b)`.
pub(crate) fn for_bands2<A: Send, B: Send>(
    a: &mut [A],
    a_row: usize,
    b: &mut [B],
    b_row: usize,
    threads: usize,
    f: impl Fn(Range<usize>, &mut [A], &mut [B]) + Sync,
) {
    if a_row == 0 || b_row == 0 || a.is_empty() {
        return;
    }
    let rows = a.len() / a_row;
    assert_eq!(rows, b.len() / b_row, "bands of two images of one height");
    let threads = threads_for(a.len(), threads);
    let bands: Vec<Mutex<(&mut [A], &mut [B])>> = a
        .chunks_mut(BAND_ROWS * a_row)
        .zip(b.chunks_mut(BAND_ROWS * b_row))
        .map(Mutex::new)
        .collect();
    run_claimed(bands.len(), threads, &|i| {
        let mut band = bands[i].lock().unwrap_or_else(|e| e.into_inner());
        let (ba, bb) = &mut *band;
        let y0 = i * BAND_ROWS;
        f(y0..y0 + ba.len() / a_row, ba, bb);
    });
}

/// Run `f(i, part)` for every part, each taken by exactly one thread, on up to `threads`
/// threads: for work whose bands are not rows of one slice (the rows of three planes).
pub(crate) fn for_parts<T: Send>(parts: Vec<T>, threads: usize, f: impl Fn(usize, T) + Sync) {
    let parts: Vec<Mutex<Option<T>>> = parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    run_claimed(parts.len(), threads, &|i| {
        let part = parts[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(part) = part {
            f(i, part);
        }
    });
}

/// Run `a` and `b` at the same time when `threads` allows, else one after the other.
pub(crate) fn join<A: Send, B: Send>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads < 2 {
        return (a(), b());
    }
    let (a, b) = (Mutex::new(Some(a)), Mutex::new(Some(b)));
    let (ra, rb) = (Mutex::new(None), Mutex::new(None));
    run_claimed(2, 2, &|i| {
        // Each closure is taken by the one thread that claimed it.
        if i == 0 {
            let a = a.lock().unwrap_or_else(|e| e.into_inner()).take();
            *ra.lock().unwrap_or_else(|e| e.into_inner()) = a.map(|a| a());
        } else {
            let b = b.lock().unwrap_or_else(|e| e.into_inner()).take();
            *rb.lock().unwrap_or_else(|e| e.into_inner()) = b.map(|b| b());
        }
    });
    (taken(ra), taken(rb))
}

/// What a claimed closure left in its slot.
fn taken<R>(slot: Mutex<Option<R>>) -> R {
    slot.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .expect("both closures ran")
}

/// The threads the filter uses when the caller does not say: one per core, at most this many
/// (an inference-size image has too few bands to keep more busy).
pub(crate) const MAX_THREADS: usize = 8;

pub(crate) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_band_runs_once_whatever_the_threads() {
        for threads in [1, 2, 3, 8] {
            let mut out = vec![0u32; 1000 * 40];
            for_bands(&mut out, 1000, threads, |rows, band| {
                for (y, row) in rows.zip(band.chunks_exact_mut(1000)) {
                    for v in row.iter_mut() {
                        *v += y as u32 + 1;
                    }
                }
            });
            for (y, row) in out.chunks_exact(1000).enumerate() {
                assert!(
                    row.iter().all(|&v| v == y as u32 + 1),
                    "{threads} threads, row {y}"
                );
            }
        }
    }

    #[test]
    fn a_panicking_band_panics_the_caller() {
        let mut out = vec![0u8; 1 << 16];
        let caught = catch_unwind(AssertUnwindSafe(|| {
            for_bands(&mut out, 1 << 10, 4, |rows, _| {
                assert!(rows.start != 32, "band at row 32");
            })
        }));
        assert!(caught.is_err());
    }

    #[test]
    fn every_part_runs_once_whatever_the_threads() {
        for threads in [1, 2, 5] {
            let mut out = [0u32; 37];
            let parts: Vec<(usize, &mut u32)> = out.iter_mut().enumerate().collect();
            for_parts(parts, threads, |i, (j, v)| {
                assert_eq!(i, j);
                *v += i as u32 + 1;
            });
            assert!(out.iter().enumerate().all(|(i, &v)| v == i as u32 + 1));
        }
    }

    #[test]
    fn join_runs_both_and_returns_in_order() {
        for threads in [1, 2, 4] {
            let (a, b) = join(threads, || 1 + 1, || "b".to_string());
            assert_eq!((a, b.as_str()), (2, "b"));
        }
    }
}
