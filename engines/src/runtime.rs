//! The process-wide ONNX Runtime environment, loaded at run time from `libonnxruntime.so`.
//!
//! ONNX Runtime allows one environment per process and `ort` loads the library once, so the
//! first successful call fixes both; a failure is remembered and returned again (with the path
//! it tried) rather than retried into a half-initialised library.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Folder holding fetched models, media and the runtime library (`scripts/setup` fills it).
/// `STYLIZE_ASSETS` overrides the default, which is `assets/` in the source checkout.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("STYLIZE_ASSETS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")),
    }
}

/// A per-user folder: `$override_var` if set, else `$xdg_var/stylize/<sub>`, else
/// `~/<home_default>/stylize/<sub>` (XDG base directories).
pub fn user_dir(override_var: &str, xdg_var: &str, home_default: &str, sub: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(override_var) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os(xdg_var)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_default)))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stylize").join(sub)
}

/// Where the ONNX Runtime library is looked for: `ORT_DYLIB_PATH`, else `<assets>/lib`.
pub fn library_path() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) => PathBuf::from(path),
        None => assets_dir().join("lib/libonnxruntime.so"),
    }
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment>> = OnceLock::new();

/// The shared environment, loading the library on first use.
pub fn environment() -> Result<&'static ort::environment::Environment> {
    ENVIRONMENT
        .get_or_init(|| load(library_path()))
        .as_ref()
        .map_err(Clone::clone)
}

fn load(path: PathBuf) -> Result<ort::environment::Environment> {
    if !path.is_file() {
        return Err(Error::RuntimeLoad {
            path,
            reason: "no such file".into(),
        });
    }
    let fail = |reason: String| Error::RuntimeLoad {
        path: path.clone(),
        reason,
    };
    // A wrong library (not ONNX Runtime, or too old for API 24) is reported by `ort` as an
    // error; guard against a panic anyway, since this runs inside a GStreamer streaming thread.
    let builder = std::panic::catch_unwind(|| ort::init_from(&path))
        .map_err(|_| fail("the library panicked while loading".into()))?
        .map_err(|e| fail(e.to_string()))?;
    builder
        .with_name("stylize")
        .build()
        .map_err(|e| fail(e.to_string()))
}
