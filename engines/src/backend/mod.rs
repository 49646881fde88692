//! Inference backends. A backend owns a loaded model and runs it on one frame's tensor.

use std::path::Path;

use crate::error::Result;
use crate::model::ModelInfo;
use crate::tensor::Tensor;

pub mod cpu;

/// Options shared by every backend.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Intra-op threads; 0 lets the backend choose (ONNX Runtime: one per physical core).
    pub threads: usize,
}

pub trait Backend: Send {
    /// Short name for logs and benchmark output, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// The model this backend runs, as checked against the contract.
    fn info(&self) -> &ModelInfo;

    /// Run the model: `content` is [1,3,H,W] in the model's value range, `conditioning` the
    /// `style_weights` or `style_embedding` vector (empty for per-style models).
    fn run(&mut self, content: &Tensor, conditioning: &[f32]) -> Result<Tensor>;
}

/// Load a model on the default (CPU) backend.
pub fn load(path: &Path, options: &BackendOptions) -> Result<Box<dyn Backend>> {
    Ok(Box::new(cpu::OrtCpu::load(path, options)?))
}
