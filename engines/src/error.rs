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

/// The text of a caught panic's payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
