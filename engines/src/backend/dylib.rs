//! Shared libraries checked by loading them: a GPU backend is offered only when the libraries
//! it needs load here, so `auto` never picks one that then fails (`select::probe`).
//!
//! A library is taken from the first given folder that holds it, by path, else by name from
//! the loader's search path. Loaded by path, a library also satisfies later loads by name
//! (its soname matches): ONNX Runtime's providers then find the CUDA libraries next to
//! `libonnxruntime.so` without `LD_LIBRARY_PATH`. What loads stays loaded for the life of the
//! process, as the providers keep using it.

use std::path::PathBuf;
use std::sync::Mutex;

use libloading::Library;

/// Libraries loaded by [`load`], kept for the life of the process.
static LOADED: Mutex<Vec<Library>> = Mutex::new(Vec::new());

/// Load `name` from the first of `dirs` holding it, else by name; the error is the loader's
/// (which names the library, or the dependency of it that is missing).
pub fn load(dirs: &[PathBuf], name: &str) -> Result<(), String> {
    let path = dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name));
    // SAFETY: loading runs the library's initialisers: these are NVIDIA's and ONNX Runtime's
    // own libraries, which are loaded to be used right after.
    let lib = unsafe { Library::new(&path) }.map_err(|e| reason(&e))?;
    LOADED.lock().unwrap_or_else(|p| p.into_inner()).push(lib);
    Ok(())
}

/// The `symbols` a library (loaded by [`load`] before) lacks: a library of the right name can
/// still be the wrong one (a stub), and calling into it would fail or crash.
pub fn missing_symbols(
    dirs: &[PathBuf],
    name: &str,
    symbols: &[&str],
) -> Result<Vec<String>, String> {
    let path = dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name));
    // SAFETY: as in `load`; looking a symbol up calls nothing.
    let lib = unsafe { Library::new(&path) }.map_err(|e| reason(&e))?;
    Ok(symbols
        .iter()
        .filter(|s| unsafe { lib.get::<*const ()>(s.as_bytes()) }.is_err())
        .map(|s| s.to_string())
        .collect())
}

/// The loader's own words for a failed load (libloading's message alone is "dlopen failed").
pub fn reason(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(source) => source.to_string(),
        None => e.to_string(),
    }
}

/// [`load`] each of `names` in order (dependencies first); the first failure.
pub fn load_all(dirs: &[PathBuf], names: &[&str]) -> Result<(), String> {
    names.iter().try_for_each(|name| load(dirs, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_that_does_not_load_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("stylize-dylib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("libfake-gpu.so.7"), b"not an ELF file").unwrap();
        let e = load(std::slice::from_ref(&dir), "libfake-gpu.so.7").unwrap_err();
        assert!(
            e.contains(&dir.join("libfake-gpu.so.7").display().to_string()),
            "{e}"
        );
        let e = load_all(
            std::slice::from_ref(&dir),
            &["libc.so.6", "libabsent-gpu.so.3"],
        )
        .unwrap_err();
        assert!(e.contains("libabsent-gpu.so.3"), "{e}");
        assert_eq!(load(std::slice::from_ref(&dir), "libc.so.6"), Ok(()));
        assert_eq!(
            missing_symbols(&[], "libc.so.6", &["malloc", "cuInit"]),
            Ok(vec!["cuInit".to_string()])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
