//! stylize engines: everything that knows about style models, tensors and frames.
//!
//! No GStreamer types appear in this API, so the element, the daemon and the benchmarks all
//! drive the same code: [`Stylizer`] = a [`backend::Backend`] running a contract-checked
//! [`model::ModelInfo`], fed by [`frame`] conversion and conditioned by a [`style`] selection.

pub mod backend;
pub mod embedding;
pub mod error;
pub mod files;
pub mod frame;
pub mod frame_path;
pub mod graph;
pub mod image_io;
pub mod library;
pub mod limits;
pub mod model;
mod par;
pub mod predictor;
pub mod resolver;
pub mod runtime;
pub mod session;
pub mod size;
pub mod style;
pub mod stylizer;
pub mod temporal;
pub mod tensor;
pub mod timings;

pub use error::{Error, ErrorClass, Result};
pub use resolver::{BackgroundResolver, ResolvedStyle, StyleChoice, StyleRequest, StyleResolver};
pub use session::{Session, SessionConfig};
pub use size::Size;
pub use stylizer::{InferenceSize, Stylizer, Timings};
