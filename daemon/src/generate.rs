//! `stylize generate stylegan|dalle`: batch offline generation into PNGs, grids and MP4s.
//!
//! The engine does the model work (`stylize_engines::generate`); this module plans outputs,
//! skips finished ones (resumable: every file is written as NAME.part and renamed), batches,
//! shows progress and optionally stylizes each result.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use gst::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use stylize_engines::backend::BackendOptions;
use stylize_engines::frame::RgbImage;
use stylize_engines::tensor::Tensor;
use stylize_engines::{style, Stylizer};
use stylize_generate::dalle::Dalle;
use stylize_generate::output;
use stylize_generate::sampling::Sampling;
use stylize_generate::stylegan::{self, LatentOptions, Space, StyleGan};

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// StyleGAN2/3 images, style mixing and interpolation videos (docs/generation.md).
    Stylegan(StyleganArgs),
    /// DALL·E-style text-to-image: transformer with a KV cache + VQ decoder.
    Dalle(DalleArgs),
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub command: GenerateCommand,
}

/// Options every generator shares.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Images per model call.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Generate at most this many new images, then stop (a rerun continues).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stylize every result with this style (name, style-NN, or a blend "a:0.7,b:0.3").
    #[arg(long)]
    pub stylize: Option<String>,
    /// Style model for --stylize (default: the 26-style model from scripts/setup).
    #[arg(long)]
    pub style_model: Option<PathBuf>,
    /// CPU inference threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SpaceArg {
    /// Spherical interpolation of the latents z, then mapping.
    Z,
    /// Linear interpolation of the mapped, truncated w.
    W,
}

#[derive(Args, Debug)]
pub struct StyleganArgs {
    /// Mapping network ONNX (z [B,z_dim] → w).
    #[arg(long)]
    pub mapping: PathBuf,
    /// Synthesis network ONNX (ws [B,num_ws,w_dim] → img [B,3,H,W]).
    #[arg(long)]
    pub synthesis: PathBuf,
    /// Seeds, e.g. 0-63 or 1,5,9-12; seed N gives upstream's seed N.
    #[arg(long, default_value = "0-7")]
    pub seeds: String,
    /// Truncation ψ: w = w_avg + ψ (w − w_avg).
    #[arg(long, default_value_t = 1.0, value_parser = crate::options::parse_finite_f32)]
    pub truncation: f32,
    /// Truncate only layers below this index.
    #[arg(long)]
    pub truncation_cutoff: Option<usize>,
    /// Class index for a class-conditional mapping.
    #[arg(long)]
    pub class: Option<usize>,
    /// Style mixing: one image per (seed, mix seed), --mix-layers taken from the mix seed.
    #[arg(long)]
    pub mix_seeds: Option<String>,
    /// Layers taken from the mix seed, e.g. 0-6 (coarse) or 8-13 (fine).
    #[arg(long, default_value = "0-6")]
    pub mix_layers: String,
    /// Interpolation video between two seeds, "A,B" (writes --out as MP4).
    #[arg(long)]
    pub interp: Option<String>,
    /// Frames of the interpolation video, endpoints included.
    #[arg(long, default_value_t = 60)]
    pub frames: usize,
    /// Interpolation space.
    #[arg(long, value_enum, default_value_t = SpaceArg::Z)]
    pub space: SpaceArg,
    /// Frame rate of the interpolation video.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Output folder for images (seed0042.png ...), or the MP4 file with --interp.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also (or only) write all images as one grid PNG.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug)]
pub struct DalleArgs {
    /// The text prompt.
    #[arg(long)]
    pub prompt: String,
    /// Folder with transformer.onnx and vqgan.onnx.
    #[arg(long)]
    pub model: PathBuf,
    /// Number of images; sample i uses seed --seed + i.
    #[arg(long, default_value_t = 8)]
    pub samples: u32,
    /// Seed of the first sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Sample only from the k most likely image tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Softmax temperature (0: greedy).
    #[arg(long, default_value_t = 1.0, value_parser = crate::options::parse_non_negative_f32)]
    pub temperature: f32,
    /// Output folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also (or only) write all images as one grid PNG.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(args: &GenerateArgs) -> Result<()> {
    match &args.command {
        GenerateCommand::Stylegan(a) => run_stylegan(a),
        GenerateCommand::Dalle(a) => run_dalle(a),
    }
}

/// `--stylize` applied to each generated image, at the image's own size.
struct Restyle {
    stylizer: Stylizer,
    weights: Vec<f32>,
}

impl Restyle {
    fn new(common: &CommonArgs) -> Result<Option<Self>> {
        let Some(spec) = &common.stylize else {
            return Ok(None);
        };
        let model = common.style_model.clone().unwrap_or_else(|| {
            stylize_engines::runtime::assets_dir().join("models/multistyle26.onnx")
        });
        let stylizer = Stylizer::load(&model, &BackendOptions::with_threads(common.threads))?;
        let blend = spec.contains([':', ',']);
        let weights = if blend {
            style::resolve(stylizer.info(), None, Some(spec))?
        } else {
            style::resolve(stylizer.info(), Some(spec), None)?
        };
        Ok(Some(Self { stylizer, weights }))
    }

    fn apply(restyle: &mut Option<Self>, img: RgbImage) -> Result<RgbImage> {
        match restyle {
            None => Ok(img),
            Some(r) => {
                let size = (img.width, img.height);
                Ok(r.stylizer.stylize_image(&img, size, &r.weights)?.0)
            }
        }
    }
}

fn progress(quiet: bool, len: usize, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {what} {{msg}} (eta {{eta}})"
        ))
        .expect("valid template"),
    );
    bar
}

/// One output image: its file (if written to a folder) and what makes it.
struct Job<T> {
    path: Option<PathBuf>,
    spec: T,
}

/// Which jobs still need generating; the rest are finished files from an earlier run.
fn pending<T>(jobs: &[Job<T>]) -> Vec<usize> {
    (0..jobs.len())
        .filter(|&i| jobs[i].path.as_ref().is_none_or(|p| !p.exists()))
        .collect()
}

/// Shared driver: skip finished outputs, generate the rest in batches, write, grid.
fn run_jobs<T>(
    jobs: &[Job<T>],
    out_dir: Option<&Path>,
    grid: Option<(&Path, usize)>,
    common: &CommonArgs,
    what: &str,
    mut generate: impl FnMut(&[&T], &ProgressBar) -> Result<Vec<Tensor>>,
) -> Result<()> {
    if common.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if out_dir.is_none() && grid.is_none() {
        bail!("nothing to write: give --out DIR and/or --grid FILE");
    }
    if let Some((g, _)) = grid {
        if out_dir.is_none() && g.exists() {
            eprintln!("{} exists: nothing to do", g.display());
            return Ok(());
        }
    }
    if let Some(dir) = out_dir {
        let stale = output::remove_partials(dir)?;
        if stale > 0 {
            eprintln!("removed {stale} unfinished file(s) of an interrupted run");
        }
    }
    let todo = pending(jobs);
    let skipped = jobs.len() - todo.len();
    let limit = common.limit.unwrap_or(usize::MAX).min(todo.len());
    let mut restyle = Restyle::new(common)?;
    let bar = progress(common.quiet, limit, what);
    let mut images: Vec<Option<RgbImage>> = vec![None; jobs.len()];
    for chunk in todo[..limit].chunks(common.batch) {
        let specs: Vec<&T> = chunk.iter().map(|&i| &jobs[i].spec).collect();
        let tensors = generate(&specs, &bar)?;
        for (&i, t) in chunk.iter().zip(tensors) {
            let img = output::to_rgb(&t.data, t.height, t.width);
            let img = Restyle::apply(&mut restyle, img)?;
            if let Some(path) = &jobs[i].path {
                output::write_png(path, &img)?;
            }
            images[i] = Some(img);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "generated {limit} {what}, skipped {skipped} finished, {} left",
        todo.len() - limit
    );
    if limit < todo.len() {
        return Ok(()); // stopped by --limit: the grid waits for the complete set
    }
    if let Some((grid_path, cols)) = grid {
        let tiles = images
            .into_iter()
            .zip(jobs)
            .map(|(img, job)| match (img, &job.path) {
                (Some(img), _) => Ok(img),
                (None, Some(path)) => Ok(output::read_png(path)?),
                (None, None) => Err(anyhow!("grid tile missing")),
            })
            .collect::<Result<Vec<_>>>()?;
        output::write_png(grid_path, &output::grid(&tiles, cols)?)?;
        println!("{}", grid_path.display());
    }
    if let Some(dir) = out_dir {
        println!("{}", dir.display());
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct SeedSpec {
    seed: u32,
    mix: Option<u32>,
}

fn run_stylegan(a: &StyleganArgs) -> Result<()> {
    let mut g = StyleGan::load(&a.mapping, &a.synthesis, a.common.threads)?;
    if let Some(cutoff) = a.truncation_cutoff {
        if cutoff > g.num_ws {
            bail!(
                "--truncation-cutoff {cutoff} exceeds the {} layers",
                g.num_ws
            );
        }
    }
    let latent = LatentOptions {
        psi: a.truncation,
        cutoff: a.truncation_cutoff,
        class: a.class,
    };
    if let Some(pair) = &a.interp {
        return interpolation_video(&mut g, a, pair, &latent);
    }
    let seeds = stylize_generate::parse_ranges(&a.seeds)?;
    let mixing = match &a.mix_seeds {
        Some(spec) => Some((
            stylize_generate::parse_ranges(spec)?,
            stylegan::parse_layers(&a.mix_layers, g.num_ws)?,
        )),
        None => None,
    };
    let mut jobs = Vec::new();
    for &seed in &seeds {
        let mixes: Vec<Option<u32>> = match &mixing {
            Some((m, _)) => m.iter().map(|&m| Some(m)).collect(),
            None => vec![None],
        };
        for mix in mixes {
            let name = match mix {
                Some(m) => format!("seed{seed:04}-mix{m:04}.png"),
                None => format!("seed{seed:04}.png"),
            };
            jobs.push(Job {
                path: a.out.as_ref().map(|d| d.join(name)),
                spec: SeedSpec { seed, mix },
            });
        }
    }
    // Mixing grids follow upstream's figure: a row per seed, a column per mix seed.
    let cols = match &mixing {
        Some((m, _)) => m.len(),
        None => output::grid_columns(jobs.len()),
    };
    run_jobs(
        &jobs,
        a.out.as_deref(),
        a.grid.as_deref().map(|p| (p, cols)),
        &a.common,
        "images",
        |specs, _| {
            let zs: Vec<Vec<f32>> = specs.iter().map(|s| g.z(s.seed)).collect();
            let mut ws = g.ws(&zs, &latent)?;
            if let Some((_, layers)) = &mixing {
                let zm: Vec<Vec<f32>> = specs.iter().map(|s| g.z(s.mix.unwrap_or(0))).collect();
                let wm = g.ws(&zm, &latent)?;
                for (w, m) in ws.iter_mut().zip(&wm) {
                    stylegan::mix(w, m, layers, g.w_dim);
                }
            }
            Ok(g.synthesize(&ws)?)
        },
    )?;
    batch_note(&g, a.common.batch);
    Ok(())
}

/// Say when the graphs ran fewer images per call than `--batch` asked for (an export with
/// its batch traced in): the images are the same, the speed is not.
fn batch_note(g: &StyleGan, batch: usize) {
    for (what, limit) in g.batch_limits() {
        if limit < batch {
            eprintln!(
                "note: {what} runs at batch {limit} only (exported with that batch traced in; \
                 docs/generation.md has a dynamic-batch export): --batch {batch} ran in calls \
                 of {limit}"
            );
        }
    }
}

fn interpolation_video(
    g: &mut StyleGan,
    a: &StyleganArgs,
    pair: &str,
    latent: &LatentOptions,
) -> Result<()> {
    let seeds = stylize_generate::parse_ranges(pair)?;
    let &[from, to] = seeds.as_slice() else {
        bail!("--interp takes two seeds \"A,B\", got `{pair}`");
    };
    let out = a.out.as_ref().context("--interp needs --out clip.mp4")?;
    if a.frames < 2 {
        bail!("--frames must be at least 2");
    }
    if a.fps == 0 {
        bail!("--fps must be at least 1");
    }
    if out.exists() {
        eprintln!("{} exists: nothing to do", out.display());
        println!("{}", out.display());
        return Ok(());
    }
    let space = match a.space {
        SpaceArg::Z => Space::Z,
        SpaceArg::W => Space::W,
    };
    let ws = g.interpolation(from, to, a.frames, space, latent)?;
    let mut restyle = Restyle::new(&a.common)?;
    let bar = progress(a.common.quiet, a.frames, "frames");
    let mut frames = Vec::with_capacity(a.frames);
    for chunk in ws.chunks(a.common.batch.max(1)) {
        for t in g.synthesize(chunk)? {
            let img = output::to_rgb(&t.data, t.height, t.width);
            frames.push(Restyle::apply(&mut restyle, img)?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    output::write_atomic(out, |part| {
        encode_mp4(&frames, a.fps, part)
            .map_err(|e| stylize_engines::Error::Generate(format!("{e:#}")))
    })?;
    batch_note(g, a.common.batch);
    eprintln!("wrote {} frames", frames.len());
    println!("{}", out.display());
    Ok(())
}

/// RGB frames → H.264 MP4 through appsrc ! videoconvert ! x264enc ! mp4mux ! filesink.
fn encode_mp4(frames: &[RgbImage], fps: u32, path: &Path) -> Result<()> {
    gst::init()?;
    let first = frames.first().context("no frames to encode")?;
    let (w, h) = (first.width as u32, first.height as u32);
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time ! videoconvert ! x264enc pass=quant quantizer=18 \
         speed-preset=faster bframes=0 ! h264parse ! mp4mux ! filesink name=sink",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow!("not a pipeline"))?;
    let sink = pipeline.by_name("sink").context("filesink")?;
    sink.set_property("location", path.to_string_lossy().as_ref());
    let src = pipeline
        .by_name("src")
        .context("appsrc")?
        .downcast::<gst_app::AppSrc>()
        .map_err(|_| anyhow!("not an appsrc"))?;
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, w, h)
        .fps(gst::Fraction::new(fps as i32, 1))
        .build()?;
    src.set_caps(Some(&info.to_caps()?));
    pipeline.set_state(gst::State::Playing)?;
    // Frame i starts at i/fps exactly (not i times a rounded duration), as the muxer stores it.
    let at = |i: usize| gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / u64::from(fps));
    for (i, img) in frames.iter().enumerate() {
        // Rows of a GStreamer RGB frame are padded to 4 bytes.
        let stride = info.stride()[0] as usize;
        let mut data = vec![0u8; info.size()];
        for y in 0..img.height {
            let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
            data[y * stride..y * stride + row.len()].copy_from_slice(row);
        }
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().expect("new buffer");
            b.set_pts(at(i));
            b.set_duration(at(i + 1) - at(i));
        }
        src.push_buffer(buffer)
            .map_err(|e| anyhow!("encoding frame {i}: {e:?}"))?;
    }
    src.end_of_stream()
        .map_err(|e| anyhow!("end of stream: {e:?}"))?;
    let bus = pipeline.bus().context("bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(60)) else {
            break Err(anyhow!("the encoder did not finish within 60 s"));
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(anyhow!("encoding failed: {}", e.error())),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result
}

/// File-name stem for a prompt: readable start plus a hash of everything that changes the
/// images (prompt and sampling), so different requests never share a file.
fn prompt_stem(prompt: &str, sampling: &Sampling) -> String {
    let slug: String = prompt
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    let slug: String = slug.chars().take(40).collect();
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let key = format!(
        "{prompt}\u{0}{}\u{0}{}",
        sampling.top_k, sampling.temperature
    );
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{slug}-{:08x}", hash as u32)
}

fn run_dalle(a: &DalleArgs) -> Result<()> {
    if !(a.temperature >= 0.0 && a.temperature.is_finite()) {
        bail!("--temperature must be a non-negative number");
    }
    let mut d = Dalle::load(&a.model, a.common.threads)?;
    if a.top_k > d.config.image_vocab {
        bail!(
            "--top-k {} exceeds the {} image tokens of this model",
            a.top_k,
            d.config.image_vocab
        );
    }
    let prompt = d.tokenize(&a.prompt)?;
    let sampling = Sampling {
        top_k: a.top_k,
        temperature: a.temperature,
    };
    let stem = prompt_stem(&a.prompt, &sampling);
    let last = a
        .seed
        .checked_add(a.samples.saturating_sub(1))
        .context("--seed + --samples overflows")?;
    let jobs: Vec<Job<u32>> = (a.seed..=last)
        .take(a.samples as usize)
        .map(|seed| Job {
            path: a
                .out
                .as_ref()
                .map(|d| d.join(format!("{stem}-{seed:04}.png"))),
            spec: seed,
        })
        .collect();
    let cols = output::grid_columns(jobs.len());
    let tokens_per_image = d.config.image_tokens as u64;
    run_jobs(
        &jobs,
        a.out.as_deref(),
        a.grid.as_deref().map(|p| (p, cols)),
        &a.common,
        "images",
        |seeds, bar| {
            let seeds: Vec<u32> = seeds.iter().map(|&&s| s).collect();
            let mut step = 0u64;
            let sampled = d.sample(&prompt, &seeds, &sampling, false, || {
                step += 1;
                bar.set_message(format!("token {step}/{tokens_per_image}"));
            })?;
            Ok(d.decode(&sampled.tokens)?)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_stems_are_readable_and_distinct() {
        let s = Sampling::default();
        let a = prompt_stem("A red Fox, at dawn!", &s);
        assert!(a.starts_with("a-red-fox-at-dawn-"), "{a}");
        assert_ne!(a, prompt_stem("a red fox at dawn", &s));
        let k = Sampling { top_k: 5, ..s };
        assert_ne!(a, prompt_stem("A red Fox, at dawn!", &k));
        assert_eq!(a, prompt_stem("A red Fox, at dawn!", &s));
    }

    #[test]
    fn pending_skips_existing_files() {
        let dir = std::env::temp_dir().join(format!("stylize-pending-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b"), b"x").unwrap();
        let jobs: Vec<Job<u32>> = ["a", "b", "c"]
            .iter()
            .map(|n| Job {
                path: Some(dir.join(n)),
                spec: 0,
            })
            .collect();
        assert_eq!(pending(&jobs), vec![0, 2]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
