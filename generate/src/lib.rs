//! Offline generation: StyleGAN2/3 (mapping + synthesis graphs) and DALL·E-style text-to-image
//! (transformer with a KV cache + VQ decoder), with the latent and sampling logic in Rust so
//! any export meeting docs/generation.md runs unchanged.
//!
//! The daemon's `stylize generate` drives these; outputs are written by [`output`], whose
//! write-then-rename rule is what makes reruns resumable.

use std::path::Path;

use stylize_engines::error::{Error, Result};
use stylize_engines::tensor::Tensor;

pub mod dalle;

pub mod output;
pub mod prompt;
pub mod rng;
pub mod sampling;
pub mod stylegan;

/// Non-negative integers given as `0-63` or `1,5,9-12` (inclusive ranges), in order, no
/// duplicates (a duplicate would be generated twice into the same file).
pub fn parse_ranges(spec: &str) -> Result<Vec<u32>> {
    let bad = |reason: String| Error::Generate(format!("invalid list `{spec}`: {reason}"));
    let num = |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("`{}` is not a non-negative integer", s.trim())))
    };
    let mut out = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("empty entry".into()));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad(format!("range {a}-{b} runs backwards")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|v| !seen.insert(**v)) {
        return Err(bad(format!("{dup} appears twice")));
    }
    Ok(out)
}

/// Split a [B,3,H,W] float output into B images, checking the shape.
pub(crate) fn split_images(
    path: &Path,
    name: &str,
    out: stylize_engines::graph::Output,
    batch: usize,
) -> Result<Vec<Tensor>> {
    match out.shape.as_slice() {
        &[b, 3, h, w] if b == batch && h > 0 && w > 0 => Ok(out
            .data
            .chunks_exact(3 * h * w)
            .map(|chw| Tensor {
                channels: 3,
                height: h,
                width: w,
                data: chw.to_vec(),
            })
            .collect()),
        other => Err(Error::Inference(format!(
            "{}: output `{name}` has shape {other:?}, expected [{batch},3,H,W]",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_in_order_with_clear_errors() {
        assert_eq!(parse_ranges("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_ranges("7, 1,3-4").unwrap(), vec![7, 1, 3, 4]);
        for (spec, reason) in [
            ("3-1", "backwards"),
            ("1,,2", "empty entry"),
            ("a", "not a non-negative integer"),
            ("-2", "not a non-negative integer"),
            ("1-3,2", "2 appears twice"),
        ] {
            let err = parse_ranges(spec).unwrap_err().to_string();
            assert!(err.contains(reason), "{spec}: {err}");
        }
    }
}
