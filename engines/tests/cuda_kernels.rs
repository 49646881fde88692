//! The CUDA kernels of device-resident frames (conversion, resizing and temporal smoothing)
//! compile, without a GPU: `kernels::source()` through
//! NVRTC (as the GPU path compiles it, with the same options) into PTX a CUDA 13.0 driver
//! loads, and that PTX assembled by `ptxas` for sm_80 (A100) and sm_90 (H100/H200), which
//! catches what NVRTC leaves to the assembler (registers, unsupported instructions).
//!
//! NVRTC and ptxas come from the `nvidia-cuda-nvrtc` and `nvidia-cuda-nvcc` wheels
//! (scripts/setup-cuda-tools, which scripts/setup runs). With `CI` set, missing tools fail
//! these tests instead of skipping them.

mod common;

use std::path::PathBuf;
use std::process::Command;

use stylize_engines::backend::kernels::{self, MAX_PTX_ISA};
use stylize_engines::backend::nvrtc::{self, Nvrtc};

/// The architectures the assembled kernels are checked for.
const ARCHITECTURES: [&str; 2] = ["sm_80", "sm_90"];

struct Tools {
    nvrtc: Nvrtc,
    ptxas: PathBuf,
}

fn tools() -> Option<Tools> {
    let dir = common::asset("gpu/tools")?;
    let ptxas = dir.join("bin/ptxas");
    let nvrtc = Nvrtc::load(&[dir.join("lib")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ptxas.is_file(),
        "{} is missing: run scripts/setup-cuda-tools",
        ptxas.display()
    );
    Some(Tools { nvrtc, ptxas })
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylize-kernels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `ptxas` on a PTX text for one architecture: Ok, or its diagnostics.
fn assemble(ptxas: &PathBuf, ptx: &str, arch: &str) -> Result<(), String> {
    let input = scratch(&format!("kernels-{arch}.ptx"));
    let output = input.with_extension("cubin");
    std::fs::write(&input, ptx).unwrap();
    let run = Command::new(ptxas)
        .arg(format!("-arch={arch}"))
        .arg("-Werror")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", ptxas.display()));
    let cubin = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    if run.status.success() && cubin > 0 {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        ))
    }
}

#[test]
fn the_kernels_compile_to_ptx_that_a_cuda_13_0_driver_loads() {
    let Some(tools) = tools() else { return };
    let (major, minor) = tools.nvrtc.version().unwrap();
    assert_eq!(
        major,
        13,
        "{} is NVRTC {major}.{minor}",
        tools.nvrtc.origin()
    );
    let ptx = kernels::compile_ptx(&tools.nvrtc).unwrap_or_else(|e| panic!("{e}"));
    let isa = nvrtc::ptx_isa(&ptx).expect("a .version directive");
    assert!(
        isa <= MAX_PTX_ISA,
        "NVRTC {major}.{minor} wrote PTX ISA {isa:?}, newer than a CUDA 13.0 driver loads"
    );
    for kernel in kernels::all_kernels() {
        assert!(
            ptx.contains(&format!(".entry {kernel}(")),
            "no entry point {kernel} in the PTX"
        );
    }
}

#[test]
fn the_kernels_assemble_for_sm_80_and_sm_90() {
    let Some(tools) = tools() else { return };
    let ptx = kernels::compile_ptx(&tools.nvrtc).unwrap_or_else(|e| panic!("{e}"));
    for arch in ARCHITECTURES {
        if let Err(log) = assemble(&tools.ptxas, &ptx, arch) {
            panic!("ptxas -arch={arch} failed:\n{log}");
        }
    }
}

/// The checks can fail: a kernel with an error is refused with NVRTC's log naming the line,
/// and PTX that is not valid does not assemble.
#[test]
fn a_kernel_that_does_not_compile_is_reported_with_the_line() {
    let Some(tools) = tools() else { return };
    let broken = format!(
        "{}\nextern \"C\" __global__ void broken(float* out) {{ out[0] = undeclared; }}\n",
        kernels::source()
    );
    let err = tools
        .nvrtc
        .compile(&broken, "broken.cu", kernels::NVRTC_OPTIONS)
        .expect_err("an undeclared name must not compile")
        .to_string();
    assert!(err.contains("broken.cu"), "{err}");
    assert!(err.contains("undeclared"), "{err}");
    let ptx = kernels::compile_ptx(&tools.nvrtc).unwrap();
    let mangled = ptx.replacen(".entry", ".entry_", 1);
    assert!(assemble(&tools.ptxas, &mangled, "sm_90").is_err());
}
