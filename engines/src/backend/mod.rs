//! Inference backends. A backend owns a loaded model and runs it on one frame's tensor.
//!
//! Every backend is ONNX Runtime through `ort` with a different execution provider: the CPU
//! (always), or with the `tensorrt` cargo feature, NVIDIA's TensorRT and CUDA providers,
//! loaded at run time so the same build works on machines without a GPU.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::model::ModelInfo;
use crate::stylizer::Timings;
use crate::tensor::Tensor;

pub mod cpu;
pub mod deferred;
#[cfg(feature = "tensorrt")]
mod device;
#[cfg(feature = "tensorrt")]
mod device_smoothing;
pub mod dylib;
pub mod engine_cache;
#[cfg(feature = "tensorrt")]
pub mod gpu;
pub mod kernels;
pub mod nvrtc;
pub mod select;
pub mod smoothing;

pub use select::{BackendKind, Choice};

/// Options shared by every backend.
#[derive(Debug, Clone, Default)]
pub struct BackendOptions {
    /// Intra-op threads; 0 lets the backend choose (ONNX Runtime: one per physical core).
    pub threads: usize,
    /// Which backend to use; `Auto` picks TensorRT, then CUDA, then the CPU, by what loads.
    pub kind: BackendKind,
    /// TensorRT engine cache root (default: [`engine_cache::default_dir`]).
    pub engine_cache: Option<PathBuf>,
    /// Keep frames on the host even on a GPU backend (ONNX Runtime then copies the tensors):
    /// for comparing the two paths. Default: GPU backends keep frames on the device.
    pub host_frames: bool,
}

impl BackendOptions {
    pub fn with_threads(threads: usize) -> Self {
        Self {
            threads,
            ..Self::default()
        }
    }
}

pub trait Backend: Send {
    /// Short name for logs and benchmark output, e.g. `cpu`.
    fn name(&self) -> &'static str;

    /// The model this backend runs, as checked against the contract.
    fn info(&self) -> &ModelInfo;

    /// Run the model: `content` is [1,3,H,W] in the model's value range, `conditioning` the
    /// `style_weights` or `style_embedding` vector (empty for per-style models).
    fn run(&mut self, content: &Tensor, conditioning: &[f32]) -> Result<Tensor>;

    /// [`Backend::run`] into a tensor kept by the caller, so a frame allocates nothing.
    fn run_into(&mut self, content: &Tensor, conditioning: &[f32], out: &mut Tensor) -> Result<()> {
        *out = self.run(content, conditioning)?;
        Ok(())
    }

    /// Host↔device copies the last [`Backend::run`] made (0 on the CPU).
    fn host_copies(&self) -> u32 {
        0
    }

    /// The device-resident frame path, where this backend has one that initialised.
    fn device_frames(&mut self) -> Option<&mut dyn DeviceFrames> {
        None
    }
}

/// Frames that stay on an accelerator between one upload and one download: conversion,
/// resizing, inference and temporal smoothing all run there (see [`kernels`] and
/// [`smoothing`] for the steps).
pub trait DeviceFrames {
    /// Stylize a packed frame in place, smoothed against the previous one when `smoothing`
    /// is given; the timings count the host↔device copies made.
    fn run_frame(
        &mut self,
        data: &mut [u8],
        plan: &kernels::FramePlan,
        conditioning: &[f32],
        smoothing: Option<smoothing::Smoothing>,
    ) -> Result<Timings>;
}

/// Whether loading `path` with `options` builds a TensorRT engine first: the chosen backend
/// is TensorRT and the model's engine cache folder holds no engine yet. That build takes
/// minutes, so callers on a streaming thread load in the background instead
/// ([`deferred`]). Always false in builds without the `tensorrt` feature.
pub fn engine_build_pending(path: &Path, options: &BackendOptions) -> bool {
    #[cfg(feature = "tensorrt")]
    {
        let tensorrt = matches!(
            select::choose(options.kind, &select::probe()),
            Ok(Choice {
                kind: BackendKind::TensorRt,
                ..
            })
        );
        // An unreadable model is not a pending build: the load itself reports it.
        tensorrt && gpu::engine_dir(path, options).is_ok_and(|dir| engine_cache::is_cold(&dir))
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        let _ = (path, options);
        false
    }
}

/// Load a model on the backend the options ask for (see [`select::choose`]).
pub fn load(path: &Path, options: &BackendOptions) -> Result<Box<dyn Backend>> {
    load_chosen(path, options).map(|(backend, _)| backend)
}

/// [`load`], and which backend it took and why. With `auto`, a GPU backend whose libraries
/// load but which fails to start (a session the provider cannot create) gives way to the next
/// one, TensorRT to CUDA to the CPU, and the reason says so.
pub fn load_chosen(path: &Path, options: &BackendOptions) -> Result<(Box<dyn Backend>, Choice)> {
    let have = select::probe();
    let mut choice = select::choose(options.kind, &have)?;
    loop {
        match load_kind(path, options, choice.kind) {
            Ok(backend) => return Ok((backend, choice)),
            Err(e) if options.kind == BackendKind::Auto => {
                let Some(next) = choice.fallback(&e.to_string(), &have) else {
                    return Err(e);
                };
                tracing::warn!("backend {}: {e}; trying {}", choice.kind, next.kind);
                choice = next;
            }
            Err(e) => return Err(e),
        }
    }
}

fn load_kind(path: &Path, options: &BackendOptions, kind: BackendKind) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Cpu | BackendKind::Auto => Ok(Box::new(cpu::OrtCpu::load(path, options)?)),
        #[cfg(feature = "tensorrt")]
        gpu_kind => Ok(Box::new(gpu::OrtGpu::load(path, options, gpu_kind)?)),
        #[cfg(not(feature = "tensorrt"))]
        _ => unreachable!("select::choose only returns GPU kinds in tensorrt builds"),
    }
}
