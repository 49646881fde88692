//! NVIDIA GPUs: ONNX Runtime's TensorRT (fp16, engine cache) and CUDA execution providers.
//!
//! Built only with the `tensorrt` cargo feature. Nothing NVIDIA is linked: ONNX Runtime loads
//! its provider libraries (and they load libcuda, libcudart, libnvinfer) at run time, and
//! `cudarc` loads libcuda and libnvrtc at run time for device-resident frames
//! ([`super::device`]) — it panics on a machine without them, so `is_culib_present()` is
//! checked before any other cudarc call.

use std::path::{Path, PathBuf};

use ort::ep::{ExecutionProvider, TensorRT, CUDA};

use super::cpu::{describe, ensure_model_file, open_session, OrtCpu};
use super::device::CudaFrames;
use super::engine_cache::{self, EngineKey};
use super::kernels::FramePlan;
use super::select::{Availability, BackendKind};
use super::{Backend, BackendOptions, DeviceFrames};
use crate::error::{Error, Result};
use crate::model::{self, ModelInfo};
use crate::runtime;
use crate::tensor::Tensor;
use crate::timings::Timings;

/// TensorRT version the provider wheels of scripts/setup-gpu carry (`tensorrt-cu13-libs`).
pub const TENSORRT_VERSION: &str = "10.16";

pub fn probe() -> Availability {
    let mut have = Availability {
        gpu_build: true,
        ..Availability::default()
    };
    // SAFETY: only dlopen()s libcuda to see whether it exists.
    have.cuda_driver = unsafe { cudarc::driver::sys::is_culib_present() };
    if !have.cuda_driver {
        have.missing
            .push("libcuda.so (the NVIDIA driver) was not found".into());
    }
    match runtime::environment() {
        Ok(_) => {
            have.cuda_ep = CUDA::is_available().unwrap_or(false);
            have.tensorrt_ep = TensorRT::is_available().unwrap_or(false);
            if !have.cuda_ep {
                have.missing.push(format!(
                    "{} has no CUDA execution provider (install onnxruntime-gpu with \
                     scripts/setup-gpu and point ORT_DYLIB_PATH at it)",
                    runtime::library_path().display()
                ));
            }
            if !have.tensorrt_ep {
                have.missing.push(format!(
                    "{} has no TensorRT execution provider",
                    runtime::library_path().display()
                ));
            }
        }
        Err(e) => have.missing.push(e.to_string()),
    }
    have
}

/// Name of GPU 0, for the engine cache key.
fn gpu_name() -> Result<String> {
    // SAFETY: only dlopen()s libcuda to see whether it exists; `CudaContext::new` panics
    // without it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::Backend(
            "libcuda.so (the NVIDIA driver) was not found".into(),
        ));
    }
    Ok(cudarc::driver::CudaContext::new(0)
        .ok()
        .and_then(|ctx| ctx.name().ok())
        .unwrap_or_else(|| "unknown-gpu".into()))
}

/// The engine cache folder of a model on this GPU (see [`engine_cache`]); not created here.
pub fn engine_dir(path: &Path, options: &BackendOptions) -> Result<PathBuf> {
    let hash = crate::files::sha256_file(path)?;
    let key = EngineKey {
        model_sha256: &hash,
        gpu_name: &gpu_name()?,
        tensorrt_version: TENSORRT_VERSION,
        precision: "fp16",
        shape_profile: "dynamic",
    };
    let root = options
        .engine_cache
        .clone()
        .unwrap_or_else(engine_cache::default_dir);
    Ok(root.join(key.folder_name()))
}

/// A model on the GPU: the same contract and run code as the CPU backend, on a session with
/// GPU execution providers registered (failing loudly if they cannot be).
pub struct OrtGpu {
    inner: OrtCpu,
    name: &'static str,
    device: DevicePath,
    /// Host↔device copies of the last host-path run.
    copies: u32,
}

/// Device-resident frames: started on first use; off when asked (`host_frames`) or when they
/// cannot start (no NVRTC, say), in which case frames take the host path with a warning.
enum DevicePath {
    Unstarted,
    Off,
    On(Box<CudaFrames>),
}

impl OrtGpu {
    pub fn load(path: &Path, options: &BackendOptions, kind: BackendKind) -> Result<Self> {
        // Before hashing the file for the engine cache key.
        ensure_model_file(path)?;
        let cuda = CUDA::default().build().error_on_failure();
        let providers = if kind == BackendKind::TensorRt {
            let dir = engine_dir(path, options)?;
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
            let trt = TensorRT::default()
                .with_fp16(true)
                .with_engine_cache(true)
                .with_engine_cache_path(dir.display())
                .with_timing_cache(true)
                .with_timing_cache_path(dir.display())
                .build()
                .error_on_failure();
            vec![trt, cuda]
        } else {
            vec![cuda]
        };
        let session = open_session(path, |builder| {
            Ok(builder.with_execution_providers(providers)?)
        })?;
        let (inputs, outputs, metadata) = describe(path, &session)?;
        let info = model::check_contract(path, &inputs, &outputs, &metadata)?;
        Ok(Self {
            inner: OrtCpu::from_session(session, info),
            name: if kind == BackendKind::TensorRt {
                "tensorrt"
            } else {
                "cuda"
            },
            device: if options.host_frames {
                DevicePath::Off
            } else {
                DevicePath::Unstarted
            },
            copies: 0,
        })
    }
}

impl Backend for OrtGpu {
    fn name(&self) -> &'static str {
        self.name
    }

    fn info(&self) -> &ModelInfo {
        self.inner.info()
    }

    fn run(&mut self, content: &Tensor, conditioning: &[f32]) -> Result<Tensor> {
        // ONNX Runtime copies the host tensors in (image and style vector) and the output out.
        self.copies = 2 + u32::from(!conditioning.is_empty());
        self.inner.run(content, conditioning)
    }

    fn run_into(&mut self, content: &Tensor, conditioning: &[f32], out: &mut Tensor) -> Result<()> {
        self.copies = 2 + u32::from(!conditioning.is_empty());
        self.inner.run_into(content, conditioning, out)
    }

    fn host_copies(&self) -> u32 {
        self.copies
    }

    fn device_frames(&mut self) -> Option<&mut dyn DeviceFrames> {
        if let DevicePath::Unstarted = self.device {
            self.device = match CudaFrames::new(self.inner.parts().0) {
                Ok(frames) => DevicePath::On(Box::new(frames)),
                Err(e) => {
                    tracing::warn!("frames take the host path: device frames failed: {e}");
                    DevicePath::Off
                }
            };
        }
        match self.device {
            DevicePath::On(_) => Some(self),
            _ => None,
        }
    }
}

impl DeviceFrames for OrtGpu {
    fn stylize_frame(
        &mut self,
        data: &mut [u8],
        plan: &FramePlan,
        conditioning: &[f32],
    ) -> Result<Timings> {
        let DevicePath::On(frames) = &mut self.device else {
            return Err(Error::Backend("device frames are not started".into()));
        };
        let (session, info) = self.inner.parts();
        frames.stylize_frame(session, info, data, plan, conditioning)
    }
}
