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

/// Whether one part of the GPU route works here: `Ok`, or what is missing (the library that
/// did not load, with the loader's reason), for messages.
pub type Check = std::result::Result<(), String>;

/// What this build and machine can run, as [`probe`] found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Availability {
    /// This build has the GPU providers compiled in (cargo feature `tensorrt`).
    pub gpu_build: bool,
    /// The NVIDIA driver (libcuda.so.1) loads and sees a GPU.
    pub gpu: Check,
    /// ONNX Runtime's CUDA execution provider and the CUDA libraries it needs load.
    pub cuda: Check,
    /// ONNX Runtime's TensorRT execution provider and TensorRT (libnvinfer.so.10) load.
    pub tensorrt: Check,
}

/// Why a build without the `tensorrt` feature runs on the CPU.
pub const NO_GPU_BUILD: &str = "this build has no GPU support (rebuild with `--features tensorrt`)";

impl Default for Availability {
    /// A build without GPU support.
    fn default() -> Self {
        Self {
            gpu_build: false,
            gpu: Err(NO_GPU_BUILD.into()),
            cuda: Err(NO_GPU_BUILD.into()),
            tensorrt: Err(NO_GPU_BUILD.into()),
        }
    }
}

/// The backend to run and why: for `auto`, what it took and what ruled out the ones before.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub kind: BackendKind,
    pub reason: String,
}

impl Choice {
    fn new(kind: BackendKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    /// After the chosen GPU backend failed to start, `auto` takes the next one (`have` says
    /// whether CUDA is there to take after TensorRT); `None` when nothing is left to try.
    pub fn fallback(&self, failure: &str, have: &Availability) -> Option<Choice> {
        match self.kind {
            BackendKind::TensorRt if have.cuda.is_ok() => Some(Choice::new(
                BackendKind::Cuda,
                format!("auto: TensorRT failed to start ({failure})"),
            )),
            BackendKind::TensorRt | BackendKind::Cuda => Some(Choice::new(
                BackendKind::Cpu,
                format!("auto: {} failed to start ({failure})", self.kind),
            )),
            BackendKind::Cpu | BackendKind::Auto => None,
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.reason)
    }
}

/// Decide the backend. `Auto` takes TensorRT, then CUDA, then the CPU, by what loads, and says
/// why; an explicit GPU request that cannot be met is an error naming what is missing.
pub fn choose(requested: BackendKind, have: &Availability) -> Result<Choice> {
    let gpu = || {
        if !have.gpu_build {
            return Err(NO_GPU_BUILD.to_string());
        }
        have.gpu.clone()
    };
    // TensorRT hands the nodes it cannot run to the CUDA provider, so it needs CUDA too.
    let tensorrt = || gpu().and(have.cuda.clone()).and(have.tensorrt.clone());
    let cuda = || gpu().and(have.cuda.clone());
    let unavailable = |kind: BackendKind, why: String| {
        Error::Backend(format!("backend `{kind}` is not available: {why}"))
    };
    match requested {
        BackendKind::Cpu => Ok(Choice::new(BackendKind::Cpu, "requested")),
        BackendKind::Cuda => cuda()
            .map(|()| Choice::new(BackendKind::Cuda, "requested"))
            .map_err(|why| unavailable(BackendKind::Cuda, why)),
        BackendKind::TensorRt => tensorrt()
            .map(|()| Choice::new(BackendKind::TensorRt, "requested"))
            .map_err(|why| unavailable(BackendKind::TensorRt, why)),
        BackendKind::Auto => Ok(match (gpu(), cuda(), tensorrt()) {
            (Err(why), _, _) => Choice::new(BackendKind::Cpu, format!("auto: {why}")),
            (_, _, Ok(())) => Choice::new(BackendKind::TensorRt, "auto: TensorRT and CUDA load"),
            (_, Ok(()), Err(why)) => Choice::new(
                BackendKind::Cuda,
                format!("auto: TensorRT unavailable: {why}"),
            ),
            (_, Err(why), _) => {
                Choice::new(BackendKind::Cpu, format!("auto: CUDA unavailable: {why}"))
            }
        }),
    }
}

/// Look at this machine and build (once per process: libraries do not come and go, and the
/// loader's search path is fixed when the process starts).
pub fn probe() -> Availability {
    #[cfg(feature = "tensorrt")]
    {
        static PROBE: std::sync::OnceLock<Availability> = std::sync::OnceLock::new();
        PROBE.get_or_init(super::gpu::probe).clone()
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        Availability::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_DRIVER: &str = "libcuda.so.1 (the NVIDIA driver) could not be loaded";
    const NO_CUDNN: &str = "libcudnn.so.9: cannot open shared object file";
    const NO_TRT: &str = "libnvinfer.so.10: cannot open shared object file";

    fn have(gpu: bool, cuda: bool, trt: bool) -> Availability {
        let check = |ok: bool, why: &str| if ok { Ok(()) } else { Err(why.to_string()) };
        Availability {
            gpu_build: true,
            gpu: check(gpu, NO_DRIVER),
            cuda: check(cuda, NO_CUDNN),
            tensorrt: check(trt, NO_TRT),
        }
    }

    fn kind(requested: BackendKind, have: &Availability) -> BackendKind {
        choose(requested, have).unwrap().kind
    }

    #[test]
    fn auto_takes_tensorrt_then_cuda_then_the_cpu_by_what_loads() {
        use BackendKind::*;
        assert_eq!(kind(Auto, &have(true, true, true)), TensorRt);
        assert_eq!(kind(Auto, &have(true, true, false)), Cuda);
        // TensorRT's libraries alone are not enough: it needs the CUDA provider too.
        assert_eq!(kind(Auto, &have(true, false, true)), Cpu);
        assert_eq!(kind(Auto, &have(false, true, true)), Cpu);
        assert_eq!(kind(Auto, &Availability::default()), Cpu);
        let build = Availability {
            gpu_build: false,
            ..have(true, true, true)
        };
        assert_eq!(kind(Auto, &build), Cpu);
    }

    #[test]
    fn auto_says_why_it_took_what_it_took() {
        use BackendKind::*;
        let reason = |h: &Availability| choose(Auto, h).unwrap().reason;
        assert!(reason(&have(false, true, true)).contains(NO_DRIVER));
        assert!(reason(&have(true, true, false)).contains(NO_TRT));
        assert!(reason(&have(true, false, false)).contains(NO_CUDNN));
        assert!(reason(&Availability::default()).contains("--features tensorrt"));
        let choice = choose(Auto, &have(true, true, false)).unwrap();
        assert_eq!(
            choice.to_string(),
            format!("cuda (auto: TensorRT unavailable: {NO_TRT})")
        );
        assert_eq!(
            choose(Cpu, &have(true, true, true)).unwrap().reason,
            "requested"
        );
    }

    #[test]
    fn explicit_gpu_requests_name_what_is_missing() {
        use BackendKind::*;
        let err = |k, h: &Availability| choose(k, h).unwrap_err().to_string();
        let e = err(TensorRt, &have(true, true, false));
        assert!(e.contains("backend `tensorrt` is not available"), "{e}");
        assert!(e.contains("libnvinfer.so.10"), "{e}");
        let e = err(Cuda, &have(false, false, false));
        assert!(e.contains("libcuda.so.1"), "{e}");
        let e = err(Cuda, &have(true, false, true));
        assert!(e.contains("libcudnn.so.9"), "{e}");
        let e = err(TensorRt, &have(true, false, true));
        assert!(e.contains("libcudnn.so.9"), "TensorRT needs CUDA too: {e}");
        let e = err(Cuda, &Availability::default());
        assert!(e.contains("--features tensorrt"), "{e}");
        assert_eq!(kind(Cuda, &have(true, true, false)), Cuda);
        assert_eq!(kind(TensorRt, &have(true, true, true)), TensorRt);
        assert_eq!(kind(Cpu, &have(false, false, false)), Cpu);
    }

    #[test]
    fn a_gpu_backend_that_fails_to_start_falls_back_in_order() {
        use BackendKind::*;
        let all = have(true, true, true);
        let trt = choose(Auto, &all).unwrap();
        let next = trt.fallback("engine build failed", &all).unwrap();
        assert_eq!(next.kind, Cuda);
        assert!(
            next.reason.contains("engine build failed"),
            "{}",
            next.reason
        );
        let last = next.fallback("no device", &all).unwrap();
        assert_eq!(last.kind, Cpu);
        assert!(last.reason.contains("cuda failed to start (no device)"));
        assert_eq!(last.fallback("x", &all), None);
        // Without CUDA, TensorRT falls back straight to the CPU.
        let no_cuda = have(true, false, true);
        assert_eq!(trt.fallback("x", &no_cuda).unwrap().kind, Cpu);
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
    fn without_a_gpu_auto_runs_on_the_cpu_and_says_why() {
        let have = probe();
        let choice = choose(BackendKind::Auto, &have).unwrap();
        if let Err(why) = have.gpu {
            assert_eq!(choice.kind, BackendKind::Cpu);
            assert_eq!(choice.reason, format!("auto: {why}"));
        }
    }
}
