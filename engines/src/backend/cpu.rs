//! ONNX Runtime on the CPU through `ort`, with `libonnxruntime.so` loaded at run time.

use std::collections::HashMap;
use std::path::Path;

use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::{Backend, BackendOptions};
use crate::error::{Error, Result};
use crate::model::{self, ModelInfo, TensorSpec};
use crate::runtime;
use crate::tensor::Tensor;

pub struct OrtCpu {
    session: Session,
    info: ModelInfo,
}

fn element_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float32 => "float32".into(),
        TensorElementType::Float16 => "float16".into(),
        TensorElementType::Float64 => "float64".into(),
        TensorElementType::Uint8 => "uint8".into(),
        TensorElementType::Int8 => "int8".into(),
        TensorElementType::Int64 => "int64".into(),
        TensorElementType::Int32 => "int32".into(),
        other => other.to_string(),
    }
}

fn spec(name: &str, dtype: &ValueType) -> TensorSpec {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => TensorSpec {
            name: name.to_string(),
            element_type: element_name(*ty),
            dims: shape.iter().copied().collect(),
        },
        other => TensorSpec {
            name: name.to_string(),
            element_type: other.to_string(),
            dims: Vec::new(),
        },
    }
}

/// A CPU session for any ONNX file, with load errors naming the file. Shared with the
/// graphs outside the style-model contract (`graph::Graph`, the CLIP encoders).
pub(crate) fn session(path: &Path, threads: usize) -> Result<Session> {
    open_session(path, |builder| {
        // No spinning: between runs ONNX Runtime's idle workers would busy-wait on the cores
        // that the rest of a video pipeline (decoder, encoder, the temporal filter, a second
        // session) needs; on two cores that doubled every interleaved path's time in
        // `stylize bench` (docs/performance.md).
        let builder = builder
            .with_inter_threads(1)?
            .with_intra_op_spinning(false)?;
        Ok(if threads > 0 {
            builder.with_intra_threads(threads)?
        } else {
            builder
        })
    })
}

/// A missing model file is reported as such, before anything tries to read it.
pub(crate) fn ensure_model_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        // A directory (or a device) exists: saying it does not would send the user looking
        // in the wrong place.
        Ok(meta) => Err(Error::ModelLoad {
            path: path.to_path_buf(),
            reason: if meta.is_dir() {
                "it is a directory, not an ONNX model file".into()
            } else {
                "it is not a regular file".into()
            },
        }),
        Err(_) => Err(Error::ModelMissing {
            path: path.to_path_buf(),
        }),
    }
}

/// Open an ONNX file as a session, fully optimised, with `configure` adding what differs per
/// backend (threads, execution providers); every load error names the file.
pub(crate) fn open_session(
    path: &Path,
    configure: impl FnOnce(SessionBuilder) -> ort::Result<SessionBuilder>,
) -> Result<Session> {
    ensure_model_file(path)?;
    let env = runtime::environment()?;
    let load_err = |e: ort::Error| Error::ModelLoad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let builder = Session::builder(env)
        .map_err(load_err)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| load_err(e.into()))?;
    configure(builder)
        .map_err(load_err)?
        .commit_from_file(path)
        .map_err(load_err)
}

/// A session's inputs, outputs and custom metadata, as the contract checks see them.
pub type GraphDescription = (Vec<TensorSpec>, Vec<TensorSpec>, HashMap<String, String>);

pub(crate) fn describe(path: &Path, session: &Session) -> Result<GraphDescription> {
    let load_err = |e: ort::Error| Error::ModelLoad {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let inputs: Vec<TensorSpec> = session
        .inputs()
        .iter()
        .map(|o| spec(o.name(), o.dtype()))
        .collect();
    let outputs: Vec<TensorSpec> = session
        .outputs()
        .iter()
        .map(|o| spec(o.name(), o.dtype()))
        .collect();
    let metadata = {
        let meta = session.metadata().map_err(load_err)?;
        let keys = meta.custom_keys().map_err(load_err)?;
        keys.into_iter()
            .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
            .collect::<HashMap<_, _>>()
    };
    Ok((inputs, outputs, metadata))
}

impl OrtCpu {
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self> {
        let session = session(path, options.threads)?;
        let (inputs, outputs, metadata) = describe(path, &session)?;
        let info = model::check_contract(path, &inputs, &outputs, &metadata)?;
        Ok(Self { session, info })
    }

    /// Wrap a session that already passed the contract check (GPU sessions reuse `run`).
    #[cfg_attr(not(feature = "tensorrt"), allow(dead_code))]
    pub(crate) fn from_session(session: Session, info: ModelInfo) -> Self {
        Self { session, info }
    }

    /// The session and the model, for GPU sessions that run with I/O binding.
    #[cfg_attr(not(feature = "tensorrt"), allow(dead_code))]
    pub(crate) fn parts(&mut self) -> (&mut Session, &ModelInfo) {
        (&mut self.session, &self.info)
    }
}

impl Backend for OrtCpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn run(&mut self, content: &Tensor, conditioning: &[f32]) -> Result<Tensor> {
        let mut out = Tensor::zeros(3, 0, 0);
        self.run_into(content, conditioning, &mut out)?;
        Ok(out)
    }

    /// The input is handed to ONNX Runtime as a view of the caller's tensor and the output
    /// read from ONNX Runtime's arena straight into the caller's tensor: no other copies.
    fn run_into(&mut self, content: &Tensor, conditioning: &[f32], out: &mut Tensor) -> Result<()> {
        let fail = |e: ort::Error| Error::Inference(e.to_string());
        let image =
            TensorRef::from_array_view((content.shape(), content.data.as_slice())).map_err(fail)?;
        let outputs = match self.info.family.conditioning_input() {
            None => self
                .session
                .run(ort::inputs![model::CONTENT => image])
                .map_err(fail)?,
            Some(name) => {
                if conditioning.len() != self.info.conditioning_len {
                    return Err(Error::Inference(format!(
                        "`{name}` needs {} values, got {}",
                        self.info.conditioning_len,
                        conditioning.len()
                    )));
                }
                let shape: Vec<usize> = if name == model::STYLE_WEIGHTS {
                    vec![conditioning.len()]
                } else {
                    vec![1, conditioning.len()]
                };
                let cond = TensorRef::from_array_view((shape, conditioning)).map_err(fail)?;
                self.session
                    .run(ort::inputs![model::CONTENT => image, name => cond])
                    .map_err(fail)?
            }
        };
        let (shape, data) = outputs[model::STYLIZED]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        match **shape {
            [1, 3, h, w] if h > 0 && w > 0 => {
                out.reshape(3, h as usize, w as usize);
                out.data.copy_from_slice(data);
                Ok(())
            }
            ref other => Err(Error::Inference(format!(
                "output `{}` has shape {other:?}, expected [1,3,H,W]",
                model::STYLIZED
            ))),
        }
    }
}
