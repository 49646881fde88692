//! Generators on the models scripts/make_generator_models.py builds (real interfaces, random
//! fixed weights): latent math against NumPy + ONNX Runtime in Python, KV-cache decoding
//! against full recomputation, batch independence, contract errors.

#[path = "../../engines/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use stylize_engines::tensor::Tensor;
use stylize_generate::dalle::Dalle;
use stylize_generate::sampling::Sampling;
use stylize_generate::stylegan::{self, LatentOptions, Space, StyleGan};

fn stylegan_paths() -> Option<(PathBuf, PathBuf)> {
    Some((
        common::asset("generators/stylegan/mapping.onnx")?,
        common::asset("generators/stylegan/synthesis.onnx")?,
    ))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Images and ws from scripts/generator_reference.py (NumPy RandomState + onnxruntime).
fn reference(
    mapping: &Path,
    synthesis: &Path,
    seeds: &[u32],
    psi: f32,
    extra: &[&str],
) -> Option<(Vec<f32>, Vec<f32>)> {
    let python = common::python()?;
    let out = std::env::temp_dir().join(format!(
        "stylize-genref-{}-{}.bin",
        std::process::id(),
        seeds.len() + extra.len()
    ));
    let seeds: Vec<String> = seeds.iter().map(u32::to_string).collect();
    let status = Command::new(python)
        .arg(common::script("generator_reference.py"))
        .arg(mapping)
        .arg(synthesis)
        .arg(seeds.join(","))
        .arg(psi.to_string())
        .arg(&out)
        .args(extra)
        .status()
        .expect("run python reference");
    assert!(status.success(), "python reference failed");
    let ws_path = PathBuf::from(format!("{}.ws", out.display()));
    let result = (read_f32(&out), read_f32(&ws_path));
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&ws_path);
    Some(result)
}

fn flat(images: &[Tensor]) -> Vec<f32> {
    images.iter().flat_map(|t| t.data.iter().copied()).collect()
}

#[test]
fn truncated_images_match_numpy_and_onnxruntime() {
    let Some((mapping, synthesis)) = stylegan_paths() else {
        return;
    };
    let mut g = StyleGan::load(&mapping, &synthesis, 1).unwrap();
    assert_eq!((g.z_dim, g.num_ws, g.w_dim, g.c_dim), (512, 8, 512, None));
    let seeds = [0u32, 1, 42];
    let opts = LatentOptions {
        psi: 0.7,
        ..Default::default()
    };
    let zs: Vec<Vec<f32>> = seeds.iter().map(|&s| g.z(s)).collect();
    let ws = g.ws(&zs, &opts).unwrap();
    let images = g.synthesize(&ws).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0].shape(), [1, 3, 32, 32]);
    let Some((ref_img, ref_ws)) = reference(&mapping, &synthesis, &seeds, 0.7, &[]) else {
        return;
    };
    let d = max_abs_diff(&ws.concat(), &ref_ws);
    assert!(d < 1e-5, "ws differ from NumPy/ORT by {d}");
    let d = max_abs_diff(&flat(&images), &ref_img);
    assert!(d < 1e-4, "images differ from NumPy/ORT by {d}");

    // The truncation really moved w: ψ = 0 gives w_avg on every layer.
    let collapsed = g
        .ws(
            &zs[..1],
            &LatentOptions {
                psi: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(collapsed[0], g.w_avg.repeat(g.num_ws));
    assert!(max_abs_diff(&ws[0], &collapsed[0]) > 0.1);
}

#[test]
fn mixing_takes_the_listed_layers_from_the_mix_seed() {
    let Some((mapping, synthesis)) = stylegan_paths() else {
        return;
    };
    let mut g = StyleGan::load(&mapping, &synthesis, 1).unwrap();
    let opts = LatentOptions::default();
    let (z3, z9) = (g.z(3), g.z(9));
    let ws = g.ws(&[z3, z9], &opts).unwrap();
    let layers = stylegan::parse_layers("0-2,5", g.num_ws).unwrap();
    let mut mixed = ws[0].clone();
    stylegan::mix(&mut mixed, &ws[1], &layers, g.w_dim);
    let row = |w: &[f32], l: usize| w[l * 512..(l + 1) * 512].to_vec();
    for layer in 0..g.num_ws {
        let from = if layers.contains(&layer) {
            &ws[1]
        } else {
            &ws[0]
        };
        assert_eq!(row(&mixed, layer), row(from, layer), "layer {layer}");
    }
    let images = g
        .synthesize(&[ws[0].clone(), ws[1].clone(), mixed])
        .unwrap();
    // The mix looks like neither parent: coarse layers changed the whole image.
    assert!(max_abs_diff(&images[2].data, &images[0].data) > 0.05);
    assert!(max_abs_diff(&images[2].data, &images[1].data) > 0.05);
    let Some((ref_img, _)) = reference(&mapping, &synthesis, &[3], 1.0, &["--mix", "9", "0,1,2,5"])
    else {
        return;
    };
    let d = max_abs_diff(&images[2].data, &ref_img);
    assert!(d < 1e-4, "mixed image differs from the reference by {d}");
}

#[test]
fn interpolation_endpoints_equal_the_seeds_images() {
    let Some((mapping, synthesis)) = stylegan_paths() else {
        return;
    };
    let mut g = StyleGan::load(&mapping, &synthesis, 1).unwrap();
    let opts = LatentOptions {
        psi: 0.8,
        ..Default::default()
    };
    let (za, zb) = (g.z(5), g.z(6));
    let ends = g.ws(&[za, zb], &opts).unwrap();
    let end_images = g.synthesize(&ends).unwrap();
    for space in [Space::Z, Space::W] {
        let ws = g.interpolation(5, 6, 7, space, &opts).unwrap();
        assert_eq!(ws.len(), 7);
        assert_eq!(ws[0], ends[0], "{space:?}: first frame is seed 5's w");
        assert_eq!(ws[6], ends[1], "{space:?}: last frame is seed 6's w");
        let frames = g.synthesize(&ws).unwrap();
        assert!(max_abs_diff(&frames[0].data, &end_images[0].data) < 1e-5);
        assert!(max_abs_diff(&frames[6].data, &end_images[1].data) < 1e-5);
        // Consecutive frames are closer than the endpoints: it is a path, not a jump.
        let step = max_abs_diff(&frames[3].data, &frames[4].data);
        let whole = max_abs_diff(&frames[0].data, &frames[6].data);
        assert!(step < whole, "{space:?}: step {step} vs whole {whole}");
    }
}

#[test]
fn conditional_mapping_with_w_avg_in_metadata() {
    let (Some(mapping), Some((_, synthesis))) = (
        common::asset("generators/stylegan/mapping_cond.onnx"),
        stylegan_paths(),
    ) else {
        return;
    };
    let mut g = StyleGan::load(&mapping, &synthesis, 1).unwrap();
    assert_eq!(g.c_dim, Some(4));
    let z = vec![g.z(1)];
    let err = g.map(&z, None).unwrap_err().to_string();
    assert!(err.contains("class-conditional with 4 classes"), "{err}");
    assert!(g.map(&z, Some(4)).is_err());
    let a = g.map(&z, Some(0)).unwrap();
    let b = g.map(&z, Some(2)).unwrap();
    assert!(max_abs_diff(&a[0], &b[0]) > 0.01, "the class changes w");
    let opts = LatentOptions {
        psi: 0.5,
        cutoff: None,
        class: Some(2),
    };
    let ws = g.ws(&z, &opts).unwrap();
    let Some((_, ref_ws)) = reference(&mapping, &synthesis, &[1], 0.5, &["--cls", "2"]) else {
        return;
    };
    assert!(max_abs_diff(&ws[0], &ref_ws) < 1e-5);
}

#[test]
fn contract_breaking_models_get_clear_errors() {
    let Some((mapping, synthesis)) = stylegan_paths() else {
        return;
    };
    // Swapped graphs: each breaks the other's contract.
    let err = StyleGan::load(&synthesis, &mapping, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("input `ws`"), "{err}");
    assert!(err.contains("tensors [z]"), "{err}");
    let Some(dalle) = common::asset("generators/dalle") else {
        return;
    };
    let err = StyleGan::load(&dalle.join("vqgan.onnx"), &synthesis, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("input `z`"), "{err}");
    let err = StyleGan::load(Path::new("/nonexistent/m.onnx"), &synthesis, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/m.onnx does not exist"), "{err}");

    // A folder whose transformer is a StyleGAN graph: no DALL·E metadata, no cache inputs.
    let dir = std::env::temp_dir().join(format!("stylize-badalle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&synthesis, dir.join("transformer.onnx")).unwrap();
    std::fs::copy(dalle.join("vqgan.onnx"), dir.join("vqgan.onnx")).unwrap();
    let err = Dalle::load(&dir, 1).err().unwrap().to_string();
    assert!(err.contains("metadata `dalle.text_vocab`"), "{err}");
    let err = Dalle::load(&dir.join("missing"), 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn dalle() -> Option<Dalle> {
    let dir = common::asset("generators/dalle")?;
    Some(Dalle::load(&dir, 1).unwrap())
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    let Some(mut d) = dalle() else {
        return;
    };
    let prompt = d.tokenize("a red fox").unwrap();
    assert_eq!(prompt.len(), d.config.text_len);
    let opts = Sampling {
        top_k: 8,
        temperature: 1.0,
    };
    let seeds = [1u32, 2, 3];
    let sampled = d.sample(&prompt, &seeds, &opts, true, || {}).unwrap();
    for (row, tokens) in sampled.tokens.iter().enumerate() {
        assert_eq!(tokens.len(), d.config.image_tokens);
        let full = d.logits_without_cache(&prompt, tokens).unwrap();
        assert_eq!(full.len(), tokens.len());
        for (step, (cached, full)) in sampled.logits[row].iter().zip(&full).enumerate() {
            let diff = max_abs_diff(cached, full);
            assert!(
                diff < 1e-4,
                "sample {row} step {step}: cached vs full {diff}"
            );
        }
        // The step really used earlier tokens: change one, and later logits change.
        let mut other = tokens.clone();
        other[0] = (other[0] + 1) % d.config.image_vocab as u32;
        let changed = d.logits_without_cache(&prompt, &other).unwrap();
        assert!(max_abs_diff(&changed[5], &full[5]) > 1e-3);
    }
}

#[test]
fn samples_depend_on_their_seed_not_on_the_batch() {
    let Some(mut d) = dalle() else {
        return;
    };
    let prompt = d.tokenize("sunset, hills").unwrap();
    let opts = Sampling {
        top_k: 16,
        temperature: 1.0,
    };
    let batch = d
        .sample(&prompt, &[10, 11, 12], &opts, false, || {})
        .unwrap();
    for (i, seed) in [10u32, 11, 12].into_iter().enumerate() {
        let alone = d.sample(&prompt, &[seed], &opts, false, || {}).unwrap();
        assert_eq!(alone.tokens[0], batch.tokens[i], "seed {seed}");
    }
    assert_ne!(batch.tokens[0], batch.tokens[1], "different seeds differ");
    let other = d.tokenize("a blue car").unwrap();
    let other = d.sample(&other, &[10], &opts, false, || {}).unwrap();
    assert_ne!(other.tokens[0], batch.tokens[0], "the prompt matters");

    let images = d.decode(&batch.tokens).unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0].shape(), [1, 3, 32, 32]);
    assert!(images[0].data.iter().all(|v| (-1.0..=1.0).contains(v)));

    let long = "x".repeat(d.config.text_len);
    let err = d.tokenize(&long).unwrap_err().to_string();
    assert!(err.contains("at most 14"), "{err}");
}

/// A standard decoder export (Optimum `text-generation-with-past`: attention_mask,
/// position_ids, KV cache), a BPE tokenizer.json and a diffusers VQModel decoder, reduced-size
/// with random weights (scripts/make_dalle_checkpoints.py): prompt ids, greedy image tokens,
/// their logits and the decoded image equal PyTorch's.
#[test]
fn optimum_decoder_with_bpe_tokenizer_matches_pytorch() {
    if common::python().is_none() {
        return; // no ONNX Runtime library
    }
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/checkpoints/dalle"
    ));
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
    let mut d = Dalle::load(&dir, 1).unwrap();
    assert!(d.config.attention_mask && d.config.position_ids);
    let greedy = Sampling {
        top_k: 1,
        temperature: 1.0,
    };
    for sample in reference["samples"].as_array().unwrap() {
        let prompt = sample["prompt"].as_str().unwrap();
        let ints = |v: &serde_json::Value| -> Vec<i64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        };
        let ids = d.tokenize(prompt).unwrap();
        assert_eq!(
            ids,
            ints(&sample["input_ids"]),
            "{prompt}: tokenizer.json ids"
        );
        let want: Vec<u32> = ints(&sample["image_tokens"])
            .iter()
            .map(|&t| t as u32)
            .collect();
        // Two samples in one batch: the cache, mask and positions are per row.
        let got = d.sample(&ids, &[3, 4], &greedy, true, || {}).unwrap();
        for row in 0..2 {
            assert_eq!(got.tokens[row], want, "{prompt}: greedy tokens, row {row}");
            for (step, (ours, theirs)) in got.logits[row]
                .iter()
                .zip(sample["logits"].as_array().unwrap())
                .enumerate()
            {
                let theirs: Vec<f32> = theirs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect();
                let diff = max_abs_diff(ours, &theirs);
                assert!(diff < 1e-4, "{prompt}: step {step} logits differ by {diff}");
            }
        }
        let image = d.decode(&[want]).unwrap().remove(0);
        let rgb = stylize_generate::output::to_rgb(&image.data, image.height, image.width);
        let want_rgb: Vec<u8> = sample["image"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter())
            .flat_map(|px| px.as_array().unwrap().iter())
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(rgb.data.len(), want_rgb.len());
        let max = rgb
            .data
            .iter()
            .zip(&want_rgb)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(
            max <= Some(1),
            "{prompt}: decoded image differs by {max:?} levels"
        );
    }
    let err = d.tokenize(&"tiles ".repeat(20)).unwrap_err().to_string();
    assert!(err.contains("tokens; this model takes at most 16"), "{err}");
}
