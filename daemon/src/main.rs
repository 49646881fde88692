//! `stylize`: the command line around the stylize engine and GStreamer element.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench;
mod file;
mod quality;
mod stats;

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
    /// Default: the 26-style model fetched by scripts/setup.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Style name, style-NN alias or index of a multi-style model.
    #[arg(long)]
    pub style: Option<String>,
    /// Blend of styles, e.g. "starry-swirls:0.7,mosaic:0.3" (normalised; overrides --style).
    #[arg(long)]
    pub style_weights: Option<String>,
    /// CPU inference threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: u32,
}

impl StyleArgs {
    pub fn model_path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(|| {
            stylize_engines::runtime::assets_dir().join("models/multistyle26.onnx")
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Stylize a video file into an H.264 MP4, every frame, timestamps kept.
    File(file::FileArgs),
    /// Measure per-frame latency of the engine, the element pipeline and ONNX Runtime in
    /// Python on the same model and input; writes JSON.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::File(args) => file::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stylize: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Initialise GStreamer and register the statically linked `stylize` element, so the CLI
/// works without GST_PLUGIN_PATH.
pub fn init_gstreamer() -> anyhow::Result<()> {
    gst::init()?;
    gststylize::plugin_register_static()?;
    Ok(())
}
