//! Row bands: the filter's per-pixel stages split over a few threads.
//!
//! The network runs on every core the user gave it, the filter after it on the same cores, so
//! the filter takes them too, on rayon's kept threads (a thread started per stage cost more
//! than some stages). Work is cut into bands of a fixed number of rows whatever the thread
//! count, and a band's result depends only on its rows: the output is the same bytes on one
//! thread or eight.

use std::ops::Range;

/// Rows per band: large enough that a band's start-up (a running sum's first window, a
/// thread's wake-up) is small against its work, small enough to balance two or more threads.
pub(crate) const BAND_ROWS: usize = 16;

/// Below this many items a stage runs on the calling thread: handing a share to another
/// thread (waking it when it sleeps) costs microseconds to tens of them, more than a small
/// image's whole stage.
const MIN_PARALLEL_ITEMS: usize = 1 << 14;

/// Run `f(rows, band)` for every band of `BAND_ROWS` rows of `out` (`row_len` items per row),
/// on up to `threads` threads; the calling thread takes a share. `rows` are the band's rows.
pub(super) fn for_bands<T: Send>(
    out: &mut [T],
    row_len: usize,
    threads: usize,
    f: impl Fn(Range<usize>, &mut [T]) + Sync,
) {
    if row_len == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / row_len;
    let bands = rows.div_ceil(BAND_ROWS);
    let run = |first_band: usize, part: &mut [T]| {
        for (i, band) in part.chunks_mut(BAND_ROWS * row_len).enumerate() {
            let y0 = (first_band + i) * BAND_ROWS;
            f(y0..y0 + band.len() / row_len, band);
        }
    };
    let threads = threads.clamp(1, bands);
    if threads == 1 || out.len() < MIN_PARALLEL_ITEMS {
        run(0, out);
        return;
    }
    // Contiguous runs of whole bands, one per thread.
    let per_thread = bands.div_ceil(threads);
    rayon::in_place_scope(|s| {
        let mut parts = out.chunks_mut(per_thread * BAND_ROWS * row_len).enumerate();
        let mine = parts.next();
        for (t, part) in parts {
            let run = &run;
            s.spawn(move |_| run(t * per_thread, part));
        }
        if let Some((_, part)) = mine {
            run(0, part);
        }
    });
}

/// [`for_bands`] over two images of the same height at once (`a_row` and `b_row` items per
/// row): `f(rows, band_a, band_b)`.
pub(super) fn for_bands2<A: Send, B: Send>(
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
    let bands = rows.div_ceil(BAND_ROWS);
    let run = |first_band: usize, pa: &mut [A], pb: &mut [B]| {
        let chunks = pa
            .chunks_mut(BAND_ROWS * a_row)
            .zip(pb.chunks_mut(BAND_ROWS * b_row));
        for (i, (ba, bb)) in chunks.enumerate() {
            let y0 = (first_band + i) * BAND_ROWS;
            f(y0..y0 + ba.len() / a_row, ba, bb);
        }
    };
    let threads = threads.clamp(1, bands);
    if threads == 1 || a.len() < MIN_PARALLEL_ITEMS {
        run(0, a, b);
        return;
    }
    let per_thread = bands.div_ceil(threads);
    let (ca, cb) = (
        per_thread * BAND_ROWS * a_row,
        per_thread * BAND_ROWS * b_row,
    );
    rayon::in_place_scope(|s| {
        let mut parts = a.chunks_mut(ca).zip(b.chunks_mut(cb)).enumerate();
        let mine = parts.next();
        for (t, (pa, pb)) in parts {
            let run = &run;
            s.spawn(move |_| run(t * per_thread, pa, pb));
        }
        if let Some((_, (pa, pb))) = mine {
            run(0, pa, pb);
        }
    });
}

/// Run `a` and `b` at the same time when `threads` allows, else one after the other.
pub(super) fn join<A: Send, B: Send>(
    threads: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads < 2 {
        return (a(), b());
    }
    let mut second = None;
    let first = rayon::in_place_scope(|s| {
        s.spawn(|_| second = Some(b()));
        a()
    });
    (first, second.expect("the scope ran the second closure"))
}

/// The threads the filter uses when the caller does not say: one per core, at most this many
/// (an inference-size image has too few bands to keep more busy).
pub(super) const MAX_THREADS: usize = 8;

pub(super) fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
}
