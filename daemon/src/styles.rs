//! `stylize styles list|add|remove|show`: manage the style library.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use stylize_engines::backend::BackendOptions;
use stylize_engines::embedding::{self, EmbeddingCache};
use stylize_engines::library::{Library, StyleKind};
use stylize_engines::model::Family;
use stylize_engines::predictor::StylePredictor;
use stylize_engines::Stylizer;

#[derive(Args, Debug)]
pub struct StylesArgs {
    /// Library folder (default: $STYLIZE_LIBRARY or ~/.local/share/stylize/styles).
    #[arg(long, global = true)]
    pub library: Option<PathBuf>,
    #[command(subcommand)]
    pub command: StylesCommand,
}

#[derive(Subcommand, Debug)]
pub enum StylesCommand {
    /// List the library's styles.
    List,
    /// Show one style (kind, source, embedding summary).
    Show { name: String },
    /// Add a style from an image (through the style predictor), an embedding file, a CIN
    /// style of a multi-style model, or a text prompt (tuned later by `stylize tune`).
    Add(AddArgs),
    /// Remove a style (and its embedding file).
    Remove { name: String },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
pub struct AddArgs {
    pub name: String,
    /// Style image (PNG/JPEG): its predictor embedding becomes the style.
    #[arg(long, group = "source")]
    pub image: Option<PathBuf>,
    /// An existing embedding file (`.emb`).
    #[arg(long, group = "source")]
    pub embedding: Option<PathBuf>,
    /// A style of a multi-style (CIN) model, by name, style-NN or index.
    #[arg(long, group = "source")]
    pub cin: Option<String>,
    /// A text prompt.
    #[arg(long, group = "source")]
    pub prompt: Option<String>,
    /// Style predictor for --image (default: the setup's arbitrary-predict.onnx).
    #[arg(long)]
    pub predictor: Option<PathBuf>,
    /// Multi-style model a --cin style is checked against (default: the setup's
    /// multistyle26.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Replace an existing style of the same name.
    #[arg(long)]
    pub replace: bool,
}

pub fn run(args: &StylesArgs) -> Result<()> {
    let dir = args
        .library
        .clone()
        .unwrap_or_else(stylize_engines::library::default_dir);
    let mut library = Library::open(&dir)?;
    match &args.command {
        StylesCommand::List => {
            if library.entries().is_empty() {
                eprintln!("the style library {} is empty", dir.display());
            }
            for entry in library.entries() {
                println!("{}\t{}", entry.name, describe(&entry.kind));
            }
        }
        StylesCommand::Show { name } => {
            let entry = library.get(name).ok_or_else(|| library.unknown(name))?;
            println!("name: {}", entry.name);
            println!("kind: {}", describe(&entry.kind));
            if let Some(source) = &entry.source {
                println!("source: {source}");
            }
            if !matches!(entry.kind, StyleKind::Cin { .. })
                && !matches!(entry.kind, StyleKind::Prompt { file: None, .. })
            {
                let e = library.embedding(entry)?;
                let norm = e.iter().map(|v| v * v).sum::<f32>().sqrt();
                println!("embedding: {} values, L2 norm {norm:.4}", e.len());
            }
        }
        StylesCommand::Remove { name } => {
            let entry = library.remove(name)?;
            eprintln!("removed {}", entry.name);
        }
        StylesCommand::Add(add) => {
            // Before any model or image is loaded for it.
            stylize_engines::library::check_name(&add.name)?;
            let (kind, source, values) = if let Some(image) = &add.image {
                let path = add.predictor.clone().unwrap_or_else(|| {
                    stylize_engines::runtime::assets_dir()
                        .join("models")
                        .join(stylize_engines::session::DEFAULT_PREDICTOR_NAME)
                });
                let mut predictor = StylePredictor::load(&path, 0)?;
                let cache = EmbeddingCache::new(embedding::default_cache_dir());
                let (values, _) = cache.embed(&mut predictor, image)?;
                let kind = StyleKind::Embedding {
                    file: String::new(),
                };
                let source = std::path::absolute(image).unwrap_or_else(|_| image.clone());
                (kind, Some(source.display().to_string()), Some(values))
            } else if let Some(file) = &add.embedding {
                let values =
                    embedding::read(file).with_context(|| format!("reading {}", file.display()))?;
                let kind = StyleKind::Embedding {
                    file: String::new(),
                };
                (kind, Some(file.display().to_string()), Some(values))
            } else if let Some(style) = &add.cin {
                check_cin_style(add, style)?;
                (
                    StyleKind::Cin {
                        style: style.clone(),
                    },
                    None,
                    None,
                )
            } else if let Some(prompt) = &add.prompt {
                if prompt.trim().is_empty() {
                    bail!("the prompt is empty");
                }
                let kind = StyleKind::Prompt {
                    prompt: prompt.clone(),
                    file: None,
                };
                (kind, None, None)
            } else {
                bail!("give one of --image, --embedding, --cin or --prompt");
            };
            let entry = library.add(&add.name, kind, source, values.as_deref(), add.replace)?;
            eprintln!("added {} ({})", entry.name, describe(&entry.kind));
        }
    }
    Ok(())
}

/// A `--cin` style must name a style of the multi-style model it will be used with, so a typo
/// is caught when it is added, not when a stream starts.
fn check_cin_style(add: &AddArgs, style: &str) -> Result<()> {
    let model = add
        .model
        .clone()
        .unwrap_or_else(|| stylize_engines::runtime::assets_dir().join("models/multistyle26.onnx"));
    let stylizer = Stylizer::load(&model, &BackendOptions::with_threads(1))
        .with_context(|| format!("checking --cin {style} against {}", model.display()))?;
    let info = stylizer.info();
    if info.family != Family::Cin {
        bail!(
            "--cin needs a multi-style (CIN) model to check the style against; {} is {} \
             (pass --model)",
            model.display(),
            info.family
        );
    }
    stylize_engines::style::style_index(info, style)?;
    Ok(())
}

fn describe(kind: &StyleKind) -> String {
    match kind {
        StyleKind::Cin { style } => format!("cin style {style}"),
        StyleKind::Embedding { file } => format!("embedding {file}"),
        StyleKind::Prompt { prompt, file: None } => format!("prompt \"{prompt}\" (not tuned)"),
        StyleKind::Prompt {
            prompt,
            file: Some(f),
        } => format!("prompt \"{prompt}\" (tuned: {f})"),
    }
}
