//! Top-k / temperature sampling of one token from a logit row.

use super::rng::RandomState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Keep only the k most likely tokens (0: all of them).
    pub top_k: usize,
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            top_k: 0,
            temperature: 1.0,
        }
    }
}

/// Indices of the `k` largest logits, largest first (ties: lower index first, so the choice
/// does not depend on sort stability). NaN logits are never kept.
pub fn top_k_indices(logits: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).filter(|&i| !logits[i].is_nan()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let k = if k == 0 { idx.len() } else { k.min(idx.len()) };
    idx.truncate(k);
    idx
}

/// Draw one index from softmax(logits / T) restricted to the top k. Uses exactly one uniform
/// draw per call (none when greedy), so a sample's stream depends only on its own seed.
pub fn sample(logits: &[f32], options: &Sampling, rng: &mut RandomState) -> usize {
    let candidates = top_k_indices(logits, options.top_k);
    assert!(!candidates.is_empty(), "no finite logits to sample from");
    if options.temperature <= 0.0 || candidates.len() == 1 {
        return candidates[0];
    }
    let t = f64::from(options.temperature);
    let max = f64::from(logits[candidates[0]]);
    let weights: Vec<f64> = candidates
        .iter()
        .map(|&i| ((f64::from(logits[i]) - max) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.next_f64() * total;
    for (&i, w) in candidates.iter().zip(&weights) {
        if u < *w {
            return i;
        }
        u -= w;
    }
    // Rounding left u just past the last weight.
    *candidates.last().expect("non-empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_logits(rng: &mut RandomState, n: usize) -> Vec<f32> {
        (0..n).map(|_| 3.0 * rng.standard_normal() as f32).collect()
    }

    #[test]
    fn top_k_never_picks_outside_the_top_k() {
        let mut rng = RandomState::new(11);
        for k in [1, 2, 5, 17] {
            for _ in 0..200 {
                let logits = random_logits(&mut rng, 64);
                // The k-th largest value: anything picked must be at least this large.
                let mut sorted = logits.clone();
                sorted.sort_by(|a, b| b.total_cmp(a));
                let kth = sorted[k - 1];
                for temperature in [0.5, 1.0, 5.0] {
                    let opts = Sampling {
                        top_k: k,
                        temperature,
                    };
                    let i = sample(&logits, &opts, &mut rng);
                    assert!(logits[i] >= kth, "k={k}: picked {} < {kth}", logits[i]);
                }
            }
        }
    }

    #[test]
    fn top_k_reaches_every_one_of_the_k() {
        // Guards against an off-by-one that would quietly sample from k-1 tokens.
        let logits = [0.0f32, 5.0, 1.0, 4.9, 4.8, -2.0];
        let opts = Sampling {
            top_k: 3,
            temperature: 1.0,
        };
        let mut rng = RandomState::new(3);
        let mut seen = [0usize; 6];
        for _ in 0..3000 {
            seen[sample(&logits, &opts, &mut rng)] += 1;
        }
        assert_eq!(seen[0] + seen[2] + seen[5], 0, "{seen:?}");
        assert!(seen[1] > 0 && seen[3] > 0 && seen[4] > 0, "{seen:?}");
        // Frequencies follow the softmax over the kept three (e^0, e^-0.1, e^-0.2).
        let z: f64 = [0.0f64, -0.1, -0.2].iter().map(|v| v.exp()).sum();
        let expected = 3000.0 / z;
        assert!(
            (seen[1] as f64 - expected).abs() < 0.1 * expected,
            "{seen:?}"
        );
    }

    #[test]
    fn temperature_sharpens_and_zero_is_greedy() {
        let logits = [1.0f32, 2.0, 0.5];
        let mut rng = RandomState::new(5);
        let greedy = Sampling {
            top_k: 0,
            temperature: 0.0,
        };
        assert!((0..50).all(|_| sample(&logits, &greedy, &mut rng) == 1));
        let count = |t: f32, rng: &mut RandomState| {
            let o = Sampling {
                top_k: 0,
                temperature: t,
            };
            (0..2000).filter(|_| sample(&logits, &o, rng) == 1).count()
        };
        let cold = count(0.3, &mut rng);
        let hot = count(3.0, &mut rng);
        assert!(cold > 1800 && hot < 1200, "cold {cold}, hot {hot}");
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..40).map(|i| (i as f32 * 0.37).sin()).collect();
        let opts = Sampling {
            top_k: 10,
            temperature: 1.0,
        };
        let draw = |seed| {
            let mut rng = RandomState::new(seed);
            (0..30)
                .map(|_| sample(&logits, &opts, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }
}
