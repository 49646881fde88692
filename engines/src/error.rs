use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the engine reports. Messages name the file, tensor or value at fault, because
/// they end up verbatim in GStreamer error messages and CLI output.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(
        "ONNX Runtime library could not be loaded from {path}: {reason} \
         (run scripts/setup, or point ORT_DYLIB_PATH at libonnxruntime.so)"
    )]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model file {path} does not exist")]
    ModelMissing { path: PathBuf },
    #[error("model {path} could not be loaded: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error(
        "model {path} breaks the stylize contract: {tensor}: expected {expected}, found {actual}"
    )]
    Contract {
        path: PathBuf,
        tensor: String,
        expected: String,
        actual: String,
    },
    #[error("unknown style `{name}`: {available}")]
    UnknownStyle { name: String, available: String },
    #[error("invalid style name `{name}`: {reason}")]
    BadStyleName { name: String, reason: String },
    #[error("invalid style blend `{spec}`: {reason}")]
    BadBlend { spec: String, reason: String },
    /// A setting (property, option) outside what it accepts.
    #[error("invalid {setting}: {reason}")]
    BadSetting { setting: String, reason: String },
    /// What the user asked for needs an arbitrary-style model's style predictor, and there
    /// is none.
    #[error(
        "{needed} needs the style predictor model, and {} has none (set the predictor, or \
         put arbitrary-predict.onnx beside it)",
        model.display()
    )]
    PredictorMissing { needed: String, model: PathBuf },
    #[error("cannot read image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("embedding file {path} is corrupt: {reason}")]
    CorruptEmbedding { path: PathBuf, reason: String },
    #[error("style library {path}: {reason}")]
    Library { path: PathBuf, reason: String },
    #[error("{0}")]
    Backend(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("invalid frame: {0}")]
    Frame(String),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{0}")]
    Generate(String),
    /// A user-controlled size past its documented limit ([`crate::limits`]).
    #[error("{0}")]
    Limit(String),
    /// CLIP tokenizer, encoders and prompt tuning.
    #[error("{0}")]
    Clip(String),
}

/// What kind of failure an error is: the one mapping from the engine's errors to GStreamer
/// error domains (the element) and exit codes (the CLI) goes through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A file the user named does not exist.
    NotFound,
    /// A file exists but cannot be used: unreadable, corrupt, or a model that breaks the
    /// contract.
    BadFile,
    /// A value the user gave is not accepted: style name, blend, strength, a size past its
    /// limit.
    BadSetting,
    /// A library or device the engine needs cannot be loaded (ONNX Runtime, GPU runtime).
    Runtime,
    /// Frames that cannot be stylized (format, size the model does not take).
    BadFrame,
    /// Failure while working: inference, writing, generation.
    Failed,
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::ModelMissing { .. } => ErrorClass::NotFound,
            Error::Image { path, .. } if std::fs::symlink_metadata(path).is_err() => {
                ErrorClass::NotFound
            }
            Error::ModelLoad { .. }
            | Error::Contract { .. }
            | Error::Image { .. }
            | Error::CorruptEmbedding { .. }
            | Error::Library { .. } => ErrorClass::BadFile,
            Error::UnknownStyle { .. }
            | Error::BadStyleName { .. }
            | Error::BadBlend { .. }
            | Error::BadSetting { .. }
            | Error::PredictorMissing { .. }
            | Error::Limit(_) => ErrorClass::BadSetting,
            Error::RuntimeLoad { .. } | Error::Backend(_) => ErrorClass::Runtime,
            Error::Frame(_) => ErrorClass::BadFrame,
            Error::Inference(_) | Error::Io { .. } | Error::Generate(_) | Error::Clip(_) => {
                ErrorClass::Failed
            }
        }
    }
}

/// The text of a caught panic's payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
