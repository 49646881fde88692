//! Backend choice: what the user asked for against what this machine and build can load.
//!
//! The probe is separate from the decision so the decision is unit-tested on any machine.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// TensorRT, else CUDA, else the CPU, by what loads.
    #[default]
    Auto,
    Cpu,
    Cuda,
    TensorRt,
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "tensorrt" | "trt" => Ok(Self::TensorRt),
            other => Err(Error::Backend(format!(
                "unknown backend `{other}`: use auto, cpu, cuda or tensorrt"
            ))),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::TensorRt => "tensorrt",
        })
    }
}

/// What can be loaded here; `missing` names what is absent, for error messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Availability {
    /// This build has the GPU providers compiled in (cargo feature `tensorrt`).
    pub gpu_build: bool,
    /// libcuda (the NVIDIA driver) is present.
    pub cuda_driver: bool,
    /// ONNX Runtime reports the CUDA / TensorRT execution provider as available.
    pub cuda_ep: bool,
    pub tensorrt_ep: bool,
    pub missing: Vec<String>,
}

/// Decide the backend. An explicit GPU request that cannot be met is an error naming what is
/// missing; `Auto` quietly falls back.
pub fn choose(requested: BackendKind, have: &Availability) -> Result<BackendKind> {
    let gpu = have.gpu_build && have.cuda_driver;
    let missing = || {
        if !have.gpu_build {
            "this build has no GPU support (rebuild with `--features tensorrt`)".to_string()
        } else {
            have.missing.join("; ")
        }
    };
    match requested {
        BackendKind::Cpu => Ok(BackendKind::Cpu),
        BackendKind::Auto if gpu && have.tensorrt_ep => Ok(BackendKind::TensorRt),
        BackendKind::Auto if gpu && have.cuda_ep => Ok(BackendKind::Cuda),
        BackendKind::Auto => Ok(BackendKind::Cpu),
        BackendKind::TensorRt if gpu && have.tensorrt_ep => Ok(BackendKind::TensorRt),
        BackendKind::Cuda if gpu && have.cuda_ep => Ok(BackendKind::Cuda),
        kind => Err(Error::Backend(format!(
            "backend `{kind}` is not available: {}",
            missing()
        ))),
    }
}

/// Look at this machine and build.
pub fn probe() -> Availability {
    #[cfg(feature = "tensorrt")]
    {
        super::gpu::probe()
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        Availability::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have(gpu_build: bool, driver: bool, cuda: bool, trt: bool) -> Availability {
        let mut missing = Vec::new();
        if !driver {
            missing.push("libcuda.so.1 (NVIDIA driver) not found".into());
        }
        if !trt {
            missing.push("libnvinfer.so.10 not found".into());
        }
        Availability {
            gpu_build,
            cuda_driver: driver,
            cuda_ep: cuda,
            tensorrt_ep: trt,
            missing,
        }
    }

    #[test]
    fn auto_prefers_tensorrt_then_cuda_then_cpu() {
        assert_eq!(
            choose(BackendKind::Auto, &have(true, true, true, true)).unwrap(),
            BackendKind::TensorRt
        );
        assert_eq!(
            choose(BackendKind::Auto, &have(true, true, true, false)).unwrap(),
            BackendKind::Cuda
        );
        assert_eq!(
            choose(BackendKind::Auto, &have(true, false, true, true)).unwrap(),
            BackendKind::Cpu
        );
        assert_eq!(
            choose(BackendKind::Auto, &Availability::default()).unwrap(),
            BackendKind::Cpu
        );
    }

    #[test]
    fn explicit_gpu_requests_name_what_is_missing() {
        let err = choose(BackendKind::TensorRt, &have(true, true, true, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("backend `tensorrt` is not available"), "{err}");
        assert!(err.contains("libnvinfer.so.10"), "{err}");
        let err = choose(BackendKind::Cuda, &have(true, false, false, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("NVIDIA driver"), "{err}");
        let err = choose(BackendKind::Cuda, &Availability::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--features tensorrt"), "{err}");
        assert_eq!(
            choose(BackendKind::Cpu, &have(true, true, true, true)).unwrap(),
            BackendKind::Cpu
        );
    }

    #[test]
    fn names_parse_and_print() {
        for kind in [
            BackendKind::Auto,
            BackendKind::Cpu,
            BackendKind::Cuda,
            BackendKind::TensorRt,
        ] {
            assert_eq!(kind.to_string().parse::<BackendKind>().unwrap(), kind);
        }
        assert_eq!("TRT".parse::<BackendKind>().unwrap(), BackendKind::TensorRt);
        assert!("metal".parse::<BackendKind>().is_err());
    }

    #[test]
    fn this_build_without_a_gpu_runs_on_the_cpu() {
        assert_eq!(
            choose(BackendKind::Auto, &probe()).unwrap(),
            BackendKind::Cpu
        );
    }
}
