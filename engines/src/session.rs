//! One way to open a stylizing session: the model, its style predictor, the style library,
//! the backend and the per-frame settings, with one set of defaults.
//!
//! The element, file mode (through the element), the virtual webcam and the benchmarks all
//! open their stylizer here, so they do the same work per frame: the same smoothing, the
//! same strength, the same predictor beside the model.

use std::path::{Path, PathBuf};

use crate::backend::{BackendKind, BackendOptions};
use crate::embedding::{self, EmbeddingCache};
use crate::error::Result;
use crate::library::{self, Library};
use crate::model::Family;
use crate::predictor::StylePredictor;
use crate::resolver::StyleResolver;
use crate::stylizer::{InferenceSize, Stylizer};

/// Full style.
pub const DEFAULT_STRENGTH: f64 = 1.0;
/// Inference at the frame's own size.
pub const DEFAULT_SCALE: f64 = 1.0;
/// Re-exported here so every default of a session is in one place.
pub use crate::temporal::DEFAULT_STABILITY;
/// The style predictor looked for next to an arbitrary-style model when none is named.
pub const DEFAULT_PREDICTOR_NAME: &str = "arbitrary-predict.onnx";

/// The teacher model `scripts/setup` fetches, and its distilled student (models/ in the
/// repository), which a CPU user gets by default when present: it carries the same 26
/// styles at a fraction of the cost.
pub const TEACHER_MODEL: &str = "multistyle26.onnx";
pub const FAST_MODEL: &str = "multistyle26-fast.onnx";

/// The model used when none is given: the fast student in the assets when present, else
/// the teacher.
pub fn default_model_path() -> PathBuf {
    let models = crate::runtime::assets_dir().join("models");
    let fast = models.join(FAST_MODEL);
    if fast.exists() {
        fast
    } else {
        models.join(TEACHER_MODEL)
    }
}

/// The predictor path for a model: the one named, else [`DEFAULT_PREDICTOR_NAME`] beside it.
pub fn predictor_path(model: &Path, explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(|| model.with_file_name(DEFAULT_PREDICTOR_NAME))
}

/// Everything that decides how frames are stylized.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub model: PathBuf,
    /// `None`: [`DEFAULT_PREDICTOR_NAME`] beside the model, if it exists.
    pub predictor: Option<PathBuf>,
    /// `None`: [`library::default_dir`].
    pub library: Option<PathBuf>,
    /// Inference threads; 0 lets ONNX Runtime use one per core.
    pub threads: usize,
    pub backend: BackendKind,
    /// 0..=1; see [`Stylizer::set_strength`].
    pub strength: f64,
    /// 0 (off) ..= 1; see [`crate::temporal`].
    pub stability: f64,
    pub inference: InferenceSize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            model: default_model_path(),
            predictor: None,
            library: None,
            threads: 0,
            backend: BackendKind::Auto,
            strength: DEFAULT_STRENGTH,
            stability: DEFAULT_STABILITY,
            inference: InferenceSize {
                width: 0,
                height: 0,
                scale: DEFAULT_SCALE,
            },
        }
    }
}

impl SessionConfig {
    pub fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            threads: self.threads,
            kind: self.backend,
            ..BackendOptions::default()
        }
    }

    pub fn library_dir(&self) -> PathBuf {
        self.library.clone().unwrap_or_else(library::default_dir)
    }

    pub fn predictor_path(&self) -> PathBuf {
        predictor_path(&self.model, self.predictor.as_deref())
    }
}

/// A loaded session: the stylizer (with its predictor, strength and smoothing set) and a
/// resolver for style requests, plus warnings worth showing the user once.
pub struct Session {
    pub stylizer: Stylizer,
    pub resolver: StyleResolver,
    /// E.g. a style library that could not be read (the model's own styles still work).
    pub warnings: Vec<String>,
}

impl Session {
    pub fn open(config: &SessionConfig) -> Result<Self> {
        let options = config.backend_options();
        let mut stylizer = Stylizer::load(&config.model, &options)?;
        stylizer.set_stability(config.stability);
        // Two predictor instances: the stylizer runs one on frames (strength below 1), the
        // resolver one on style images, possibly on another thread at the same time.
        let mut predictor = None;
        if stylizer.info().family == Family::Arbitrary {
            let path = config.predictor_path();
            // A missing default predictor only matters once a style image or a strength
            // below 1 needs it, and then the error says so.
            if config.predictor.is_some() || path.exists() {
                stylizer.attach_predictor(StylePredictor::load(&path, config.threads)?)?;
                predictor = Some(StylePredictor::load(&path, config.threads)?);
            }
        }
        stylizer.set_strength(config.strength as f32)?;
        // A corrupt library must not take the model's own styles with it.
        let (library, broken) = Library::open_or_empty(&config.library_dir());
        let warnings = broken
            .map(|e| format!("{e}; using the model's own styles only"))
            .into_iter()
            .collect();
        let resolver = StyleResolver::new(
            stylizer.info().clone(),
            Some(library),
            EmbeddingCache::new(embedding::default_cache_dir()),
            predictor,
        );
        Ok(Self {
            stylizer,
            resolver,
            warnings,
        })
    }
}
