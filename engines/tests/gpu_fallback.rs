//! The GPU build (feature `tensorrt`) on a machine without a GPU: `auto` stylizes every frame on
//! the CPU and says why; an explicit GPU backend is an error naming what is missing. Runs in
//! CI (scripts/test), no GPU needed.
//!
//! With the runtime of scripts/setup-gpu unpacked (`assets/gpu/lib`), it is the ONNX Runtime
//! these tests load, so the CUDA and TensorRT providers are there and only the driver is
//! missing; otherwise the CPU build of scripts/setup stands in. A second case runs this binary
//! again with a fake driver (a library named libcuda.so.1 that is not the driver) first on the
//! loader's path: it must be turned down with a reason, not crash the process.

mod common;

use std::path::PathBuf;
use std::process::Command;

use stylize_engines::backend::{self, select, BackendKind, BackendOptions};
use stylize_engines::frame::{FrameLayout, PixelFormat};
use stylize_engines::{InferenceSize, Stylizer};

/// Set in the child process of the fake-driver case.
const FAKE_DRIVER_CHILD: &str = "STYLIZE_TEST_FAKE_DRIVER";

/// The ONNX Runtime to load: the GPU runtime when unpacked, else the CPU one.
fn onnx_runtime() -> Option<PathBuf> {
    let gpu = common::assets_dir().join("gpu/lib/libonnxruntime.so");
    if gpu.is_file() {
        return Some(gpu);
    }
    eprintln!("no GPU runtime (scripts/setup-gpu): the CPU ONNX Runtime stands in");
    common::asset("lib/libonnxruntime.so")
}

fn options(kind: BackendKind) -> BackendOptions {
    BackendOptions {
        kind,
        threads: 2,
        ..BackendOptions::default()
    }
}

/// Whether this machine has a driver after all (then these tests have nothing to check).
fn has_gpu() -> bool {
    let have = select::probe();
    if have.gpu.is_ok() {
        eprintln!("this machine has an NVIDIA GPU: the fallback is not exercised here");
    }
    have.gpu.is_ok()
}

#[test]
fn without_a_gpu_auto_stylizes_on_the_cpu_and_explicit_gpu_backends_name_what_is_missing() {
    let (Some(ort), Some(model)) = (onnx_runtime(), common::asset("models/mosaic.onnx")) else {
        return;
    };
    // SAFETY: set before this test binary loads ONNX Runtime, and to the same value by every
    // test in it (the runtime is loaded once per process).
    unsafe { std::env::set_var("ORT_DYLIB_PATH", &ort) };
    if has_gpu() {
        return;
    }
    let mut stylizer = Stylizer::load(&model, &options(BackendKind::Auto)).unwrap();
    assert_eq!(stylizer.backend_name(), "cpu");
    let reason = stylizer.backend_reason().to_string();
    assert!(
        reason.starts_with("auto: libcuda.so.1 (the NVIDIA driver) could not be loaded"),
        "{reason}"
    );
    assert_eq!(stylizer.backend_summary(), format!("cpu ({reason})"));

    // Every frame is stylized (on the CPU).
    let layout = FrameLayout {
        format: PixelFormat::Rgba,
        width: 64,
        height: 48,
        stride: 64 * 4,
    };
    let conditioning = vec![0.0; stylizer.info().conditioning_len];
    for i in 0..3u8 {
        let original: Vec<u8> = (0..layout.stride * layout.height)
            .map(|p| (p as u8).wrapping_mul(7).wrapping_add(i * 30))
            .collect();
        let mut frame = original.clone();
        stylizer
            .stylize_frame(
                &mut frame,
                &layout,
                &InferenceSize::default(),
                &conditioning,
            )
            .unwrap();
        assert_ne!(frame, original, "frame {i} stylized");
    }

    for kind in [BackendKind::Cuda, BackendKind::TensorRt] {
        let err = backend::load(&model, &options(kind))
            .err()
            .unwrap_or_else(|| panic!("{kind} cannot load without a GPU"))
            .to_string();
        assert!(
            err.contains(&format!("backend `{kind}` is not available")),
            "{err}"
        );
        assert!(err.contains("libcuda.so.1"), "{err}");
    }
}

/// A library named libcuda.so.1 that is not the driver (here: ONNX Runtime under that name,
/// first on the loader's path) is turned down by name, and `auto` runs on the CPU.
#[test]
fn a_libcuda_that_is_not_the_driver_is_turned_down_not_a_crash() {
    let Some(ort) = onnx_runtime() else { return };
    if std::env::var_os(FAKE_DRIVER_CHILD).is_some() {
        // SAFETY: as in the other test (this process runs only this one).
        unsafe { std::env::set_var("ORT_DYLIB_PATH", &ort) };
        let choice = select::choose(BackendKind::Auto, &select::probe()).unwrap();
        println!("choice: {choice}");
        assert_eq!(choice.kind, BackendKind::Cpu);
        let err = select::choose(BackendKind::Cuda, &select::probe())
            .unwrap_err()
            .to_string();
        println!("cuda: {err}");
        return;
    }
    if has_gpu() {
        return;
    }
    let fake = std::env::temp_dir().join(format!("stylize-fake-driver-{}", std::process::id()));
    std::fs::create_dir_all(&fake).unwrap();
    let driver = fake.join("libcuda.so.1");
    let _ = std::fs::remove_file(&driver);
    std::os::unix::fs::symlink(&ort, &driver).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_libcuda_that_is_not_the_driver_is_turned_down_not_a_crash",
            "--exact",
            "--nocapture",
        ])
        .env(FAKE_DRIVER_CHILD, "1")
        .env("LD_LIBRARY_PATH", &fake)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&fake).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = "libcuda.so.1 loads but is not the NVIDIA driver (it has no cuInit";
    assert!(
        stdout.contains(&format!("choice: cpu (auto: {expected}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "cuda: backend `cuda` is not available: {expected}"
        )),
        "{stdout}"
    );
}
