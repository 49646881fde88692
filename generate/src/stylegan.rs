//! StyleGAN2/3 generation from two exported graphs: mapping (z → w) and synthesis (ws → image).
//!
//! The latent math lives here, outside the graphs, so one export serves every use: truncation
//! toward `w_avg`, per-layer style mixing, slerp/lerp interpolation (docs/generation.md has
//! the export contract).

use std::path::Path;

use super::rng::RandomState;
use super::split_images;
use stylize_engines::error::{Error, Result};
use stylize_engines::graph::{Dim, Graph, Input};
use stylize_engines::tensor::Tensor;

pub const Z: &str = "z";
pub const C: &str = "c";
pub const W: &str = "w";
pub const W_AVG: &str = "w_avg";
pub const WS: &str = "ws";
pub const IMG: &str = "img";
pub const META_W_AVG: &str = "stylegan.w_avg";

/// Per-layer latents of one image: `num_ws` rows of `w_dim` values.
pub type Ws = Vec<f32>;

/// How a seed's latent becomes its per-layer `ws`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatentOptions {
    /// Truncation ψ: 1 keeps w, 0 collapses to `w_avg`.
    pub psi: f32,
    /// Truncate only layers below this index (StyleGAN2's `truncation_cutoff`); None: all.
    pub cutoff: Option<usize>,
    /// Class index for a conditional mapping.
    pub class: Option<usize>,
}

impl Default for LatentOptions {
    fn default() -> Self {
        Self {
            psi: 1.0,
            cutoff: None,
            class: None,
        }
    }
}

/// Interpolation space: spherical in z (before mapping) or linear in w (after).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Z,
    W,
}

/// w = w_avg + ψ (w − w_avg), per layer below `cutoff`.
pub fn truncate(ws: &mut [f32], w_avg: &[f32], psi: f32, cutoff: Option<usize>) {
    let w_dim = w_avg.len();
    let layers = ws.len() / w_dim;
    for layer in 0..cutoff.unwrap_or(layers).min(layers) {
        for (w, avg) in ws[layer * w_dim..(layer + 1) * w_dim].iter_mut().zip(w_avg) {
            *w = avg + psi * (*w - avg);
        }
    }
}

/// Copy the listed layers of `other` into `base` (style mixing).
pub fn mix(base: &mut [f32], other: &[f32], layers: &[usize], w_dim: usize) {
    for &layer in layers {
        let r = layer * w_dim..(layer + 1) * w_dim;
        base[r.clone()].copy_from_slice(&other[r]);
    }
}

/// (1−t)·a + t·b: exactly a at t = 0 and exactly b at t = 1.
pub fn lerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| (1.0 - t) * x + t * y)
        .collect()
}

/// Spherical interpolation (Shoemake), the usual path between Gaussian latents: it keeps
/// the norm near √d where lerp would pass through low-norm, atypical latents.
/// Exactly a at t = 0 and b at t = 1; lerp when a and b are (anti)parallel.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let norm = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let omega = (dot / (na * nb)).clamp(-1.0, 1.0).acos();
    let so = omega.sin();
    if so.abs() <= 1e-6 || so.is_nan() {
        return lerp(a, b, t);
    }
    let t = f64::from(t);
    let (ka, kb) = (((1.0 - t) * omega).sin() / so, (t * omega).sin() / so);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (ka * f64::from(x) + kb * f64::from(y)) as f32)
        .collect()
}

/// Layers given as `0-3,6` (inclusive ranges), each below `num_ws`.
pub fn parse_layers(spec: &str, num_ws: usize) -> Result<Vec<usize>> {
    let layers = super::parse_ranges(spec)?;
    if let Some(&bad) = layers.iter().find(|&&l| l as usize >= num_ws) {
        return Err(Error::Generate(format!(
            "layer {bad} in `{spec}` is out of range: this synthesis network has layers 0-{}",
            num_ws - 1
        )));
    }
    Ok(layers.into_iter().map(|l| l as usize).collect())
}

pub struct StyleGan {
    mapping: Graph,
    synthesis: Graph,
    pub z_dim: usize,
    /// Number of classes of a conditional mapping (input `c`).
    pub c_dim: Option<usize>,
    pub num_ws: usize,
    pub w_dim: usize,
    pub w_avg: Vec<f32>,
    /// The mapping returns [B,num_ws,w_dim] (StyleGAN3 export) rather than [B,w_dim].
    per_layer_w: bool,
}

fn fixed(dim: i64) -> Option<usize> {
    (dim > 0).then_some(dim as usize)
}

impl StyleGan {
    pub fn load(mapping: &Path, synthesis: &Path, threads: usize) -> Result<Self> {
        let mut synthesis = Graph::load(synthesis, threads)?;
        // Upstream's fused modulated convolution traces `groups = batch` as a constant: an
        // export made at batch 1 with dynamic axes declares any batch but runs only at 1.
        // A graph that declares a fixed batch is run in chunks of it (engines::graph).
        synthesis.retry_at_batch_one();
        let ws = synthesis.check_input(WS, "float32", &[Dim::Any, Dim::Any, Dim::Any])?;
        let (Some(num_ws), Some(w_dim)) = (fixed(ws[1]), fixed(ws[2])) else {
            return Err(synthesis.violation(
                &format!("input `{WS}`"),
                "shape [B,num_ws,w_dim] with num_ws and w_dim fixed",
                format!("{:?}", ws),
            ));
        };
        synthesis.check_output(IMG, "float32", &[Dim::Any, Dim::Is(3), Dim::Any, Dim::Any])?;
        if synthesis.inputs.len() != 1 {
            return Err(synthesis.violation(
                "inputs",
                format!("[{WS}] only (export with noise_mode='const')"),
                format!("{} inputs", synthesis.inputs.len()),
            ));
        }

        let mut mapping = Graph::load(mapping, threads)?;
        mapping.retry_at_batch_one();
        let z = mapping.check_input(Z, "float32", &[Dim::Any, Dim::Any])?;
        let z_dim = fixed(z[1]).ok_or_else(|| {
            mapping.violation(
                &format!("input `{Z}`"),
                "shape [B,z_dim] with z_dim fixed",
                format!("{z:?}"),
            )
        })?;
        let c_dim = if mapping.has_input(C) {
            let c = mapping.check_input(C, "float32", &[Dim::Any, Dim::Any])?;
            Some(fixed(c[1]).ok_or_else(|| {
                mapping.violation(
                    &format!("input `{C}`"),
                    "shape [B,c_dim] with c_dim fixed",
                    format!("{c:?}"),
                )
            })?)
        } else {
            None
        };
        let expected_inputs = 1 + usize::from(c_dim.is_some());
        if mapping.inputs.len() != expected_inputs {
            let names: Vec<&str> = mapping.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(mapping.violation(
                "inputs",
                format!("[{Z}] or [{Z}, {C}] (truncation is applied by stylize, not the graph)"),
                format!("tensors [{}]", names.join(", ")),
            ));
        }
        let per_layer_w = match mapping.check_output(W, "float32", &[Dim::Any, Dim::Is(w_dim)]) {
            Ok(_) => false,
            Err(_) => {
                mapping.check_output(W, "float32", &[Dim::Any, Dim::Is(num_ws), Dim::Is(w_dim)])?;
                true
            }
        };

        let w_avg = if mapping.has_output(W_AVG) {
            mapping.check_output(W_AVG, "float32", &[Dim::Is(w_dim)])?;
            // A constant output: any input gives it.
            let mut inputs = vec![(Z.to_string(), Input::F32(vec![1, z_dim], vec![0.0; z_dim]))];
            if let Some(c) = c_dim {
                inputs.push((C.to_string(), Input::F32(vec![1, c], vec![0.0; c])));
            }
            mapping.run(inputs, &[W_AVG])?.remove(0).data
        } else if let Some(text) = mapping.metadata.get(META_W_AVG) {
            let values: Vec<f32> = text
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    mapping.violation(
                        &format!("metadata `{META_W_AVG}`"),
                        format!("{w_dim} comma-separated numbers"),
                        e.to_string(),
                    )
                })?;
            values
        } else {
            return Err(mapping.violation(
                W_AVG,
                format!("an output `{W_AVG}` [{w_dim}] or metadata `{META_W_AVG}`"),
                "neither".into(),
            ));
        };
        if w_avg.len() != w_dim || w_avg.iter().any(|v| !v.is_finite()) {
            return Err(mapping.violation(
                W_AVG,
                format!("{w_dim} finite values"),
                format!("{} values", w_avg.len()),
            ));
        }

        Ok(Self {
            mapping,
            synthesis,
            z_dim,
            c_dim,
            num_ws,
            w_dim,
            w_avg,
            per_layer_w,
        })
    }

    /// The graphs that take fewer items per call than asked for, with their limit (known
    /// once a call has run; see `engines::graph`).
    pub fn batch_limits(&self) -> Vec<(String, usize)> {
        [&self.mapping, &self.synthesis]
            .iter()
            .filter_map(|g| g.max_batch().map(|n| (g.path.display().to_string(), n)))
            .collect()
    }

    /// A seed's latent, identical to `np.random.RandomState(seed).randn(1, z_dim)` upstream.
    pub fn z(&self, seed: u32) -> Vec<f32> {
        RandomState::randn_f32(seed, self.z_dim)
    }

    /// Map latents to per-layer ws (untruncated).
    pub fn map(&mut self, zs: &[Vec<f32>], class: Option<usize>) -> Result<Vec<Ws>> {
        let b = zs.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let mut inputs = vec![(Z.to_string(), Input::F32(vec![b, self.z_dim], zs.concat()))];
        match (self.c_dim, class) {
            (Some(c_dim), Some(class)) if class < c_dim => {
                let mut c = vec![0.0; b * c_dim];
                for row in 0..b {
                    c[row * c_dim + class] = 1.0;
                }
                inputs.push((C.to_string(), Input::F32(vec![b, c_dim], c)));
            }
            (Some(c_dim), _) => {
                return Err(Error::Generate(format!(
                    "{} is class-conditional with {c_dim} classes: pass --class 0..{}",
                    self.mapping.path.display(),
                    c_dim - 1
                )))
            }
            (None, Some(_)) => {
                return Err(Error::Generate(format!(
                    "{} is unconditional: it takes no --class",
                    self.mapping.path.display()
                )))
            }
            (None, None) => {}
        }
        let w = self.mapping.run(inputs, &[W])?.remove(0);
        let per_image = if self.per_layer_w {
            self.num_ws * self.w_dim
        } else {
            self.w_dim
        };
        if w.data.len() != b * per_image {
            return Err(Error::Inference(format!(
                "{}: output `{W}` has shape {:?}",
                self.mapping.path.display(),
                w.shape
            )));
        }
        Ok(w.data
            .chunks_exact(per_image)
            .map(|row| {
                if self.per_layer_w {
                    row.to_vec()
                } else {
                    row.repeat(self.num_ws)
                }
            })
            .collect())
    }

    /// Mapped and truncated ws for latents.
    pub fn ws(&mut self, zs: &[Vec<f32>], options: &LatentOptions) -> Result<Vec<Ws>> {
        let mut ws = self.map(zs, options.class)?;
        for w in &mut ws {
            truncate(w, &self.w_avg, options.psi, options.cutoff);
        }
        Ok(ws)
    }

    /// Images in [-1,1] for a batch of ws.
    pub fn synthesize(&mut self, ws: &[Ws]) -> Result<Vec<Tensor>> {
        let b = ws.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let input = Input::F32(vec![b, self.num_ws, self.w_dim], ws.concat());
        let img = self
            .synthesis
            .run(vec![(WS.to_string(), input)], &[IMG])?
            .remove(0);
        split_images(&self.synthesis.path, IMG, img, b)
    }

    /// The ws of an interpolation video's frames from seed `a` to seed `b`, endpoints included.
    pub fn interpolation(
        &mut self,
        a: u32,
        b: u32,
        frames: usize,
        space: Space,
        options: &LatentOptions,
    ) -> Result<Vec<Ws>> {
        let ts: Vec<f32> = (0..frames)
            .map(|i| {
                if frames == 1 {
                    0.0
                } else {
                    i as f32 / (frames - 1) as f32
                }
            })
            .collect();
        let (za, zb) = (self.z(a), self.z(b));
        match space {
            Space::Z => {
                let zs: Vec<Vec<f32>> = ts.iter().map(|&t| slerp(&za, &zb, t)).collect();
                let mut ws = Vec::with_capacity(frames);
                for chunk in zs.chunks(16) {
                    ws.extend(self.ws(chunk, options)?);
                }
                Ok(ws)
            }
            Space::W => {
                let ends = self.ws(&[za, zb], options)?;
                Ok(ts.iter().map(|&t| lerp(&ends[0], &ends[1], t)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_pulls_toward_the_average_by_psi() {
        let w_avg = vec![1.0, -2.0];
        let mut ws = vec![3.0, 2.0, 5.0, 0.0, -1.0, 4.0]; // 3 layers of w_dim 2
        truncate(&mut ws, &w_avg, 0.5, None);
        assert_eq!(ws, vec![2.0, 0.0, 3.0, -1.0, 0.0, 1.0]);
        let mut ws = vec![3.0, 2.0, 5.0, 0.0, -1.0, 4.0];
        truncate(&mut ws, &w_avg, 0.0, Some(2));
        assert_eq!(ws, vec![1.0, -2.0, 1.0, -2.0, -1.0, 4.0], "layer 2 kept");
        let mut ws = vec![3.0, 2.0];
        truncate(&mut ws, &w_avg, 1.0, None);
        assert_eq!(ws, vec![3.0, 2.0], "psi 1 is the identity");
    }

    #[test]
    fn mixing_copies_exactly_the_listed_layers() {
        let base: Vec<f32> = (0..8).map(|v| v as f32).collect(); // 4 layers of 2
        let other: Vec<f32> = (0..8).map(|v| 100.0 + v as f32).collect();
        let mut m = base.clone();
        mix(&mut m, &other, &[1, 3], 2);
        assert_eq!(m, vec![0.0, 1.0, 102.0, 103.0, 4.0, 5.0, 106.0, 107.0]);
    }

    #[test]
    fn interpolation_endpoints_are_exact_and_slerp_keeps_the_norm() {
        let a = RandomState::randn_f32(1, 512);
        let b = RandomState::randn_f32(2, 512);
        assert_eq!(slerp(&a, &b, 0.0), a);
        assert_eq!(slerp(&a, &b, 1.0), b);
        assert_eq!(lerp(&a, &b, 0.0), a);
        assert_eq!(lerp(&a, &b, 1.0), b);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let mid_s = slerp(&a, &b, 0.5);
        let mid_l = lerp(&a, &b, 0.5);
        let ends = (norm(&a) + norm(&b)) / 2.0;
        assert!((norm(&mid_s) - ends).abs() < 0.02 * ends);
        assert!(norm(&mid_l) < 0.8 * ends, "lerp cuts through the ball");
        assert_eq!(slerp(&a, &a, 0.3), lerp(&a, &a, 0.3), "parallel: lerp");
    }

    #[test]
    fn layer_specs_parse_and_are_range_checked() {
        assert_eq!(parse_layers("0-2,5", 8).unwrap(), vec![0, 1, 2, 5]);
        let err = parse_layers("4-8", 8).unwrap_err().to_string();
        assert!(err.contains("layers 0-7"), "{err}");
    }
}
