//! A missing ONNX Runtime library is an error naming the path it tried, not a panic.
//! (Its own test binary: the runtime is loaded once per process.)

use std::path::Path;

use stylize_engines::backend::BackendOptions;
use stylize_engines::Stylizer;

#[test]
fn missing_runtime_library_names_the_path() {
    let model = std::env::temp_dir().join("stylize-any-model.onnx");
    std::fs::write(&model, b"unused").unwrap();
    // SAFETY: set before any thread of this test binary reads the environment.
    unsafe { std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so") };
    let err = Stylizer::load(Path::new(&model), &BackendOptions::default())
        .err()
        .expect("loading must fail")
        .to_string();
    assert!(err.contains("/nonexistent/libonnxruntime.so"), "{err}");
    assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
}
