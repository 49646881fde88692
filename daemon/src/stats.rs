//! Latency summaries for benchmark output.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub samples: usize,
    pub mean: f64,
    pub p50: f64,
    /// Distribution-free 95 % interval of the median (order statistics; the sample range
    /// when there are too few samples for one).
    pub p50_ci95: [f64; 2],
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The ranks n/2 ± 1.96·√n/2 (normal approximation to the binomial): a 95 % interval for
/// the median whatever the distribution.
fn median_interval(sorted: &[f64]) -> [f64; 2] {
    let n = sorted.len() as f64;
    let half = 1.96 * n.sqrt() / 2.0;
    let lo = ((n / 2.0 - half).floor() as usize).clamp(1, sorted.len());
    let hi = ((n / 2.0 + half).ceil() as usize + 1).clamp(1, sorted.len());
    [sorted[lo - 1], sorted[hi - 1]]
}

/// The ratio of two medians `a / b` and a conservative 95 % interval for it, from the two
/// medians' intervals (low of a over high of b, high of a over low of b).
pub fn ratio_interval(a: &Summary, b: &Summary) -> (f64, [f64; 2]) {
    (
        a.p50 / b.p50,
        [a.p50_ci95[0] / b.p50_ci95[1], a.p50_ci95[1] / b.p50_ci95[0]],
    )
}

/// The median over iterations of `a[i] / b[i]`, the two timed in the same iteration, and its
/// distribution-free 95 % interval. Pairs are matched from the last iteration back, so a path
/// that skipped its first timed iteration still pairs with the others. Noise that lasts longer
/// than an iteration (another tenant of a virtual machine) slows both and cancels here, where
/// it widens and shifts a ratio of two separate medians.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Option<(f64, [f64; 2])> {
    let ratios: Vec<f64> = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .map(|(x, y)| x / y)
        .collect();
    summarize(&ratios).map(|s| (s.p50, s.p50_ci95))
}

pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        samples: sorted.len(),
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        p50: percentile(&sorted, 50.0),
        p50_ci95: median_interval(&sorted),
        p95: percentile(&sorted, 95.0),
        p99: percentile(&sorted, 99.0),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    })
}

/// Write a report atomically: a reader (or a crash) never sees half a file, and an existing
/// report is replaced only by a complete one.
pub fn write_report(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .map_or("report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    stylize_engines::files::write_atomic(path, &tmp, text.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = summarize(&samples).unwrap();
        assert_eq!((s.p50, s.p95, s.p99), (50.0, 95.0, 99.0));
        assert_eq!((s.min, s.max, s.mean), (1.0, 100.0, 50.5));
        // 100 samples: ranks 40 and 61 bound the median.
        assert_eq!(s.p50_ci95, [40.0, 61.0]);
        let (r, [lo, hi]) = ratio_interval(&s, &s);
        assert_eq!(r, 1.0);
        assert!(lo < 1.0 && hi > 1.0);
        let one = summarize(&[7.0]).unwrap();
        assert_eq!(one.p50_ci95, [7.0, 7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert!(summarize(&[]).is_none());
    }

    /// A slow phase that hits both paths of an iteration cancels in the paired ratio; the
    /// ratio of medians sees it when it hits the two paths' samples unevenly.
    #[test]
    fn paired_ratios_cancel_shared_noise() {
        let noise: Vec<f64> = (0..60).map(|i| [1.0, 1.3, 0.8, 1.6][i % 4]).collect();
        let net: Vec<f64> = noise.iter().map(|n| 100.0 * n).collect();
        let element: Vec<f64> = noise.iter().map(|n| 103.0 * n).collect();
        let (r, [lo, hi]) = paired_ratio(&element, &net).unwrap();
        assert!((r - 1.03).abs() < 1e-12 && (lo - 1.03).abs() < 1e-12 && (hi - 1.03).abs() < 1e-12);
        // The same iterations, one path with a sample fewer at the start: pairs from the end.
        let (r, _) = paired_ratio(&element[1..], &net).unwrap();
        assert!((r - 1.03).abs() < 1e-12);
        assert!(paired_ratio(&[], &net).is_none());
    }
}
