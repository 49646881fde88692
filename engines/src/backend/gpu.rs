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
use super::dylib;
use super::engine_cache::{self, EngineKey};
use super::kernels::FramePlan;
use super::select::{Availability, BackendKind, Check};
use super::smoothing::Smoothing;
use super::{Backend, BackendOptions, DeviceFrames};
use crate::error::{Error, Result};
use crate::model::{self, ModelInfo};
use crate::runtime;
use crate::tensor::Tensor;
use crate::timings::Timings;

/// TensorRT version the provider wheels of scripts/setup-gpu carry (`tensorrt-cu13-libs`).
pub const TENSORRT_VERSION: &str = "10.16";

/// The NVIDIA driver's library: the machine's, never part of the runtime.
pub const DRIVER: &str = "libcuda.so.1";

/// What ONNX Runtime's CUDA provider needs, dependencies first: the libraries it links
/// (cudart, cuBLAS, cuRAND), those it opens by name while it runs (cuDNN and the parts cuDNN
/// opens, cuFFT with the nvJitLink it uses, NVRTC for cuDNN's run-time compiled engines), then
/// the provider itself. All come from scripts/setup-gpu, in the folder of `libonnxruntime.so`.
pub const CUDA_LIBRARIES: &[&str] = &[
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libnvJitLink.so.13",
    "libcufft.so.12",
    "libnvrtc-builtins.so.13.0",
    "libnvrtc.so.13",
    "libcudnn_graph.so.9",
    "libcudnn_ops.so.9",
    "libcudnn_cnn.so.9",
    "libcudnn_adv.so.9",
    "libcudnn_engines_precompiled.so.9",
    "libcudnn_engines_runtime_compiled.so.9",
    "libcudnn_engines_tensor_ir.so.9",
    "libcudnn_heuristic.so.9",
    "libcudnn.so.9",
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_cuda.so",
];

/// What the TensorRT provider needs beyond [`CUDA_LIBRARIES`].
pub const TENSORRT_LIBRARIES: &[&str] = &[
    "libnvinfer.so.10",
    "libnvonnxparser.so.10",
    "libonnxruntime_providers_tensorrt.so",
];

/// The driver loads and sees a GPU. Checked first: every cudarc call panics without
/// libcuda, and the CUDA provider links it.
fn driver() -> Check {
    dylib::load(&[], DRIVER)
        .map_err(|e| format!("{DRIVER} (the NVIDIA driver) could not be loaded: {e}"))?;
    // cudarc panics when a function it calls is missing: a stub or another library under the
    // driver's name must be turned down before.
    let missing = dylib::missing_symbols(&[], DRIVER, &["cuInit", "cuDeviceGetCount"])?;
    if !missing.is_empty() {
        return Err(format!(
            "{DRIVER} loads but is not the NVIDIA driver (it has no {})",
            missing.join(", ")
        ));
    }
    // SAFETY: only dlopen()s libcuda (loaded above) to see whether cudarc finds it too.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(format!(
            "{DRIVER} loads, but not under the names cudarc tries"
        ));
    }
    let count = std::panic::catch_unwind(|| {
        cudarc::driver::result::init()?;
        cudarc::driver::result::device::get_count()
    })
    .map_err(|_| format!("the NVIDIA driver ({DRIVER}) failed while starting"))?;
    match count {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("the NVIDIA driver sees no GPU".into()),
        Err(e) => Err(format!("the NVIDIA driver did not start: {e}")),
    }
}

/// The providers in the ONNX Runtime library in use, and the libraries each needs, loaded.
fn providers() -> (Check, Check) {
    if let Err(e) = runtime::environment() {
        return (Err(e.to_string()), Err(e.to_string()));
    }
    let ort = runtime::library_path();
    let dirs: Vec<PathBuf> = ort.parent().map(Path::to_path_buf).into_iter().collect();
    let compiled_in = |available: ort::Result<bool>, name: &str| {
        if available.unwrap_or(false) {
            Ok(())
        } else {
            Err(format!(
                "{} has no {name} execution provider (the GPU build of ONNX Runtime comes from \
                 scripts/setup-gpu: point ORT_DYLIB_PATH at assets/gpu/lib/libonnxruntime.so)",
                ort.display()
            ))
        }
    };
    let cuda = compiled_in(CUDA::is_available(), "CUDA")
        .and_then(|()| dylib::load_all(&dirs, CUDA_LIBRARIES));
    let tensorrt = compiled_in(TensorRT::is_available(), "TensorRT")
        .and_then(|()| dylib::load_all(&dirs, TENSORRT_LIBRARIES));
    (cuda, tensorrt)
}

/// What loads here. The libraries are checked only when there is a GPU to run them on.
pub fn probe() -> Availability {
    let gpu = driver();
    let (cuda, tensorrt) = match &gpu {
        Ok(()) => providers(),
        Err(why) => (Err(why.clone()), Err(why.clone())),
    };
    Availability {
        gpu_build: true,
        gpu,
        cuda,
        tensorrt,
    }
}

/// Name of GPU 0, for the engine cache key.
fn gpu_name() -> Result<String> {
    // SAFETY: only dlopen()s libcuda to see whether it exists; `CudaContext::new` panics
    // without it.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::Backend(format!(
            "{DRIVER} (the NVIDIA driver) was not found"
        )));
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
    fn run_frame(
        &mut self,
        data: &mut [u8],
        plan: &FramePlan,
        conditioning: &[f32],
        smoothing: Option<Smoothing>,
    ) -> Result<Timings> {
        let DevicePath::On(frames) = &mut self.device else {
            return Err(Error::Backend("device frames are not started".into()));
        };
        let (session, info) = self.inner.parts();
        frames.run_frame(session, info, data, plan, conditioning, smoothing)
    }
}
