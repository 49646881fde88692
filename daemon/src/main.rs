//! `stylize`: the command line around the stylize engine and GStreamer element.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod control;
mod ctl;
mod exit;
mod file;
mod generate;
mod join;
mod latency;
mod options;
mod plot;
mod quality;
mod stats;
mod styles;
mod tune;
mod webcam;

#[derive(Parser)]
#[command(
    name = "stylize",
    version,
    about = "Real-time neural style transfer for video"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Model and style options shared by every subcommand that stylizes.
#[derive(Args, Clone, Debug)]
pub struct StyleArgs {
    /// ONNX style model (per-style, multi-style CIN or arbitrary-style; see docs/models.md).
    /// Default: the fast 26-style student (multistyle26-fast.onnx, docs/distill.md) when
    /// present, else the 26-style teacher (`--model assets/models/multistyle26.onnx`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Style name, style-NN alias or index of a multi-style model.
    #[arg(long)]
    pub style: Option<String>,
    /// Blend of styles, e.g. "starry-swirls:0.7,mosaic:0.3" (normalised; overrides --style).
    #[arg(long)]
    pub style_weights: Option<String>,
    /// Any PNG/JPEG to take the style from (arbitrary-style models; overrides --style).
    #[arg(long)]
    pub style_image: Option<PathBuf>,
    /// Style strength 0 to 1 (arbitrary models: toward the frame's own style; others:
    /// blend with the original).
    #[arg(long, default_value_t = 1.0, value_parser = options::parse_unit)]
    pub style_strength: f64,
    /// Style predictor for arbitrary-style models (default: arbitrary-predict.onnx next to
    /// the model).
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Style library folder (default: $STYLIZE_LIBRARY or ~/.local/share/stylize/styles).
    #[arg(long)]
    pub library: Option<PathBuf>,
    /// CPU threads for inference, frame conversion and smoothing, 0 (one per core) to 256.
    #[arg(long, default_value_t = 0, value_parser = options::parse_threads)]
    pub threads: u32,
    /// Inference backend: auto (TensorRT, then CUDA, then CPU, by what loads), cpu, cuda,
    /// tensorrt. GPU backends need a `--features tensorrt` build and scripts/setup-gpu.
    #[arg(long, default_value = "auto")]
    pub backend: stylize_engines::backend::BackendKind,
}

impl StyleArgs {
    pub fn model_path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(stylize_engines::session::default_model_path)
    }

    /// The session these options describe, with the stream's smoothing and inference size:
    /// the same constructor and defaults as the element's.
    pub fn session_config(
        &self,
        stability: f64,
        inference: stylize_engines::InferenceSize,
    ) -> stylize_engines::SessionConfig {
        stylize_engines::SessionConfig {
            model: self.model_path(),
            predictor: self.predictor.clone(),
            library: self.library.clone(),
            threads: self.threads as usize,
            backend: self.backend,
            strength: self.style_strength,
            stability,
            inference,
        }
    }

    /// Open the session, saying on stderr what the user should know (a broken library).
    pub fn open_session(
        &self,
        stability: f64,
        inference: stylize_engines::InferenceSize,
    ) -> anyhow::Result<stylize_engines::Session> {
        let session = stylize_engines::Session::open(&self.session_config(stability, inference))?;
        eprintln!("stylize: backend {}", session.stylizer.backend_summary());
        for warning in &session.warnings {
            eprintln!("stylize: warning: {warning}");
        }
        Ok(session)
    }

    pub fn request(&self) -> stylize_engines::StyleRequest {
        stylize_engines::StyleRequest {
            style: self.style.clone(),
            blend: self.style_weights.clone(),
            image: self.style_image.clone(),
        }
    }
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Stylize video files: every frame, timestamps and other streams kept; MP4, MOV, MKV
    /// or WebM by the output's extension.
    File(file::FileArgs),
    /// Join the segments of a `stylize file --segment K/N` job into one file, without
    /// re-encoding.
    Join(join::JoinArgs),
    /// Measure per-frame latency of the engine, the element pipeline and ONNX Runtime in
    /// Python on the same model and input; writes JSON. `bench latency`: per-stage latency
    /// of the webcam pipeline and the element, as JSON and PNG.
    Bench(latency::BenchCommand),
    /// Virtual webcam: camera → stylize → v4l2loopback, live, controlled with `stylize ctl`.
    Webcam(webcam::WebcamArgs),
    /// Control a running `stylize webcam` (style, blend, pause, resume, stats, quit, ...).
    Ctl(ctl::CtlArgs),
    /// Manage the style library: named styles from images, embeddings, CIN styles, prompts.
    Styles(styles::StylesArgs),
    /// Generate images and videos offline: StyleGAN2/3 or DALL·E-style text-to-image.
    Generate(generate::GenerateArgs),
    /// Tune an arbitrary-style embedding toward a text prompt with CLIP; saves it in the
    /// style library.
    Tune(tune::TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Webcam(_)) {
        restore_default_sigpipe();
    }
    let result = match cli.command {
        Command::File(args) => file::run(&args),
        Command::Join(args) => join::run(&args),
        Command::Bench(args) => latency::run(&args),
        Command::Webcam(args) => webcam::run(&args),
        Command::Ctl(args) => ctl::run(&args),
        Command::Styles(args) => styles::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Tune(args) => tune::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Stopped by a signal after keeping what was done (already said).
        Err(err) if err.is::<file::Interrupted>() => ExitCode::from(
            err.downcast_ref::<file::Interrupted>()
                .map_or(130, |i| i.code),
        ),
        Err(err) => {
            eprintln!("stylize: error: {err:#}");
            ExitCode::from(exit::code(&err))
        }
    }
}

/// Let a closed stdout end the command quietly, as it does for `ls` or `cat`: `stylize styles
/// list | head -1` must not panic in `println!` ("failed printing to stdout: Broken pipe").
/// Rust starts programs with SIGPIPE ignored; the default action ends the process without a
/// message once the reader has gone. Not for `webcam`, a server whose control clients may hang
/// up before their reply: there a closed socket must stay an error on that connection only.
fn restore_default_sigpipe() {
    // SAFETY: signal(2) with a valid signal number and SIG_DFL, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Initialise GStreamer and register the statically linked `stylize` element, so the CLI
/// works without GST_PLUGIN_PATH.
pub fn init_gstreamer() -> anyhow::Result<()> {
    gst::init()?;
    gststylize::plugin_register_static()?;
    Ok(())
}
