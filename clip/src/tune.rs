//! Prompt tuning: find a style embedding E* whose stylization CLIP matches to a prompt,
//! E* = argmax_E mean_v cos(CLIP_image(v(NST(C, E))), CLIP_text(prompt)) over random views v.
//!
//! ONNX Runtime has no autodiff, so the optimiser sees forward passes only. We estimate the
//! gradient with antithetic Gaussian perturbations (OpenAI-ES / SPSA family):
//! g ≈ 1/(2nσ) Σ_i (f(E+σε_i) − f(E−σε_i)) ε_i, and step with Adam. Why this and not CMA-ES:
//! the 100-d embedding is smooth and the objective noisy (random views), where antithetic
//! pairs sharing the same views (common random numbers) cancel most of the view noise in each
//! difference, each step costs a fixed 2n+1 stylizations that batch through CLIP in one call,
//! and Adam's per-dimension scaling needs no covariance (CMA-ES would spend its first
//! ~100-d × few generations learning one). docs/prompts.md has the longer argument.

use super::encoder::{cosine, ClipEncoders};
use super::preprocess::{View, SIZE};
use super::rng::Rng;
use stylize_engines::error::{Error, Result};
use stylize_engines::frame::{self, RgbImage};
use stylize_engines::stylizer::Stylizer;
use stylize_engines::tensor::Tensor;

#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    pub steps: usize,
    pub seed: u64,
    /// Antithetic pairs per step (2·pairs + 1 stylizations a step, the +1 scores the mean).
    pub pairs: usize,
    /// Perturbation scale, in embedding units (predictor embeddings have std ≈ 1).
    pub sigma: f32,
    /// Adam step size, in embedding units.
    pub learning_rate: f32,
    /// Random views of each stylization per step.
    pub views: usize,
    /// Fixed views (from the seed) for the reported start and final scores.
    pub eval_views: usize,
    /// Short side of the content during tuning (pixels).
    pub content_size: usize,
}

impl Default for TuneOptions {
    fn default() -> Self {
        Self {
            steps: 40,
            seed: 0,
            pairs: 6,
            sigma: 0.5,
            learning_rate: 0.2,
            views: 4,
            eval_views: 8,
            content_size: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TuneResult {
    pub embedding: Vec<f32>,
    /// Score of the starting and the tuned embedding on the fixed evaluation views.
    pub start_score: f32,
    pub final_score: f32,
    /// Score of the mean embedding at each step, on that step's random views.
    pub history: Vec<f32>,
}

/// The tuning problem: one content image, one prompt, a style model and CLIP.
pub struct PromptObjective<'a> {
    stylizer: &'a mut Stylizer,
    clip: &'a mut ClipEncoders,
    content: Tensor,
    text: Vec<f32>,
    eval_views: Vec<View>,
}

/// The content scaled so its short side is `size`, as the model's input tensor.
fn content_tensor(stylizer: &Stylizer, img: &RgbImage, size: usize) -> Result<Tensor> {
    if img.width == 0 || img.height == 0 || size == 0 {
        return Err(Error::Clip("empty content image or size".into()));
    }
    let short = img.width.min(img.height) as f32;
    let w = ((img.width as f32 * size as f32 / short).round() as usize).max(1);
    let h = ((img.height as f32 * size as f32 / short).round() as usize).max(1);
    let small = frame::resize_rgb(&mut fast_image_resize::Resizer::new(), img, w, h)?;
    Ok(frame::image_to_tensor(
        &small,
        stylize_engines::Size::new(w, h),
        stylizer.info().input_range.scale(),
    ))
}

impl<'a> PromptObjective<'a> {
    pub fn new(
        stylizer: &'a mut Stylizer,
        clip: &'a mut ClipEncoders,
        content: &RgbImage,
        prompt: &str,
        options: &TuneOptions,
    ) -> Result<Self> {
        if stylizer.info().family != stylize_engines::model::Family::Arbitrary {
            return Err(Error::Clip(format!(
                "prompt tuning needs an arbitrary-style model; {} is not one",
                stylizer.info().path.display()
            )));
        }
        let text = clip.encode_text(prompt)?;
        let content = content_tensor(stylizer, content, options.content_size)?;
        let mut rng = Rng::new(options.seed ^ 0x5eed_e7a1);
        let eval_views = (0..options.eval_views.max(1))
            .map(|i| {
                if i == 0 {
                    View::centre(content.height, content.width)
                } else {
                    View::random(&mut rng, content.height, content.width)
                }
            })
            .collect();
        Ok(Self {
            stylizer,
            clip,
            content,
            text,
            eval_views,
        })
    }

    pub fn embedding_len(&self) -> usize {
        self.stylizer.info().conditioning_len
    }

    /// Mean CLIP score of each candidate over the same views: one stylization per candidate,
    /// one CLIP image batch for all of them.
    pub fn scores(&mut self, candidates: &[Vec<f32>], views: &[View]) -> Result<Vec<f32>> {
        let len = self.embedding_len();
        let per = 3 * SIZE * SIZE;
        let mut pixels = vec![0.0; candidates.len() * views.len() * per];
        let scale = self.stylizer.info().input_range.scale();
        for (i, e) in candidates.iter().enumerate() {
            if e.len() != len {
                return Err(Error::Clip(format!(
                    "embedding has {} values, the model takes {len}",
                    e.len()
                )));
            }
            let mut styled = self.stylizer.run_tensor(&self.content, e)?;
            if scale != 1.0 {
                styled.data.iter_mut().for_each(|v| *v /= scale);
            }
            styled.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
            for (j, view) in views.iter().enumerate() {
                let k = i * views.len() + j;
                view.render(&styled, &mut pixels[k * per..(k + 1) * per]);
            }
        }
        let n = candidates.len() * views.len();
        let embeds = self.clip.encode_pixels(&pixels, n)?;
        let d = embeds.len() / n;
        Ok(candidates
            .iter()
            .enumerate()
            .map(|(i, _)| {
                (0..views.len())
                    .map(|j| {
                        let k = i * views.len() + j;
                        cosine(&embeds[k * d..(k + 1) * d], &self.text)
                    })
                    .sum::<f32>()
                    / views.len() as f32
            })
            .collect())
    }

    /// Scores on the fixed evaluation views (start, final, baselines).
    pub fn evaluate(&mut self, candidates: &[Vec<f32>]) -> Result<Vec<f32>> {
        let views = self.eval_views.clone();
        self.scores(candidates, &views)
    }

    /// Run the optimiser from `init`; `progress(step, score)` after every step.
    pub fn tune(
        &mut self,
        init: &[f32],
        options: &TuneOptions,
        mut progress: impl FnMut(usize, f32),
    ) -> Result<TuneResult> {
        let len = self.embedding_len();
        if init.len() != len {
            return Err(Error::Clip(format!(
                "starting embedding has {} values, the model takes {len}",
                init.len()
            )));
        }
        if options.pairs == 0 || options.views == 0 || options.sigma <= 0.0 {
            return Err(Error::Clip(
                "tuning needs pairs ≥ 1, views ≥ 1, sigma > 0".into(),
            ));
        }
        let start_score = self.evaluate(&[init.to_vec()])?[0];
        let mut rng = Rng::new(options.seed);
        let mut e = init.to_vec();
        let (mut m, mut v) = (vec![0.0f32; len], vec![0.0f32; len]);
        let (b1, b2) = (0.9f32, 0.999f32);
        let mut history = Vec::with_capacity(options.steps);
        for step in 0..options.steps {
            let (h, w) = (self.content.height, self.content.width);
            let views: Vec<View> = (0..options.views)
                .map(|_| View::random(&mut rng, h, w))
                .collect();
            let noise: Vec<Vec<f32>> = (0..options.pairs)
                .map(|_| (0..len).map(|_| rng.normal()).collect())
                .collect();
            let mut candidates = vec![e.clone()];
            for eps in &noise {
                let plus = e.iter().zip(eps).map(|(x, n)| x + options.sigma * n);
                let minus = e.iter().zip(eps).map(|(x, n)| x - options.sigma * n);
                candidates.push(plus.collect());
                candidates.push(minus.collect());
            }
            let f = self.scores(&candidates, &views)?;
            history.push(f[0]);
            progress(step, f[0]);
            // Gradient ascent estimate from the antithetic differences.
            let mut g = vec![0.0f32; len];
            for (i, eps) in noise.iter().enumerate() {
                let diff = f[1 + 2 * i] - f[2 + 2 * i];
                for (gk, nk) in g.iter_mut().zip(eps) {
                    *gk += diff * nk;
                }
            }
            let k = 1.0 / (2.0 * options.pairs as f32 * options.sigma);
            let t = (step + 1) as i32;
            for d in 0..len {
                let gd = g[d] * k;
                m[d] = b1 * m[d] + (1.0 - b1) * gd;
                v[d] = b2 * v[d] + (1.0 - b2) * gd * gd;
                let mh = m[d] / (1.0 - b1.powi(t));
                let vh = v[d] / (1.0 - b2.powi(t));
                e[d] += options.learning_rate * mh / (vh.sqrt() + 1e-8);
            }
        }
        let final_score = self.evaluate(std::slice::from_ref(&e))?[0];
        Ok(TuneResult {
            embedding: e,
            start_score,
            final_score,
            history,
        })
    }
}
