//! The engine's output equals ONNX Runtime in Python on the same model and input.

mod common;

use std::path::Path;
use std::process::Command;

use stylize_engines::backend::BackendOptions;
use stylize_engines::tensor::Tensor;
use stylize_engines::{style, Stylizer};

/// A deterministic, image-like input: smooth gradients plus a little texture.
fn test_input(height: usize, width: usize) -> Tensor {
    let mut t = Tensor::zeros(3, height, width);
    let mut state = 0x2545_f491_u32;
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let noise = (state % 1000) as f32 / 1000.0;
                let smooth = ((x as f32 / width as f32)
                    + (y as f32 / height as f32) * (c as f32 + 1.0))
                    / (c as f32 + 2.0);
                t.data[c * height * width + y * width + x] = 0.8 * smooth + 0.2 * noise;
            }
        }
    }
    t
}

fn reference(model: &Path, input: &Tensor, blend: Option<&str>) -> Option<Vec<f32>> {
    let python = common::python()?;
    let dir = std::env::temp_dir().join(format!("stylize-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tag = model.file_stem().unwrap().to_string_lossy();
    let (inp, out) = (
        dir.join(format!("{tag}.in")),
        dir.join(format!("{tag}.out")),
    );
    let bytes: Vec<u8> = input.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&inp, bytes).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(common::script("ort_reference.py"))
        .arg(model)
        .arg(&inp)
        .arg(input.height.to_string())
        .arg(input.width.to_string())
        .arg(&out);
    if let Some(b) = blend {
        cmd.arg("--blend").arg(b);
    }
    let status = cmd.status().expect("run python reference");
    assert!(status.success(), "python reference failed");
    let raw = std::fs::read(&out).unwrap();
    Some(
        raw.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn per_style_model_matches_onnxruntime_python() {
    let Some(model) = common::asset("models/starry-swirls.onnx") else {
        return;
    };
    // 90x134 is not a multiple of 4: the engine's reflect padding and crop are compared too.
    let input = test_input(90, 134);
    let mut st = Stylizer::load(&model, &BackendOptions::with_threads(2)).unwrap();
    let weights = style::resolve(st.info(), Some("starry-swirls"), None).unwrap();
    let ours = st.run_tensor(&input, &weights).unwrap();
    assert_eq!(ours.shape(), [1, 3, 90, 134]);
    let Some(theirs) = reference(&model, &input, None) else {
        return;
    };
    let diff = max_abs_diff(&ours.data, &theirs);
    assert!(diff <= 1e-3, "max abs diff {diff}");
    // The model really changed the picture (a pass-through would also "match").
    assert!(max_abs_diff(&ours.data, &input.data) > 0.2);
}

#[test]
fn cin_two_style_blend_matches_onnxruntime_python() {
    let Some(model) = common::asset("models/multistyle26.onnx") else {
        return;
    };
    let input = test_input(96, 160);
    let blend = "starry-swirls:0.7,mosaic:0.3";
    let mut st = Stylizer::load(&model, &BackendOptions::with_threads(2)).unwrap();
    let weights = style::resolve(st.info(), None, Some(blend)).unwrap();
    let ours = st.run_tensor(&input, &weights).unwrap();
    let Some(theirs) = reference(&model, &input, Some(blend)) else {
        return;
    };
    let diff = max_abs_diff(&ours.data, &theirs);
    assert!(diff <= 1e-3, "max abs diff {diff}");
    // A blend differs from either endpoint style.
    let one = style::resolve(st.info(), Some("mosaic"), None).unwrap();
    let mosaic = st.run_tensor(&input, &one).unwrap();
    assert!(max_abs_diff(&ours.data, &mosaic.data) > 0.05);
}

#[test]
fn upstream_model_breaks_the_contract_with_a_clear_error() {
    let Some(model) = common::asset("upstream/multistyle26.onnx") else {
        return;
    };
    let err = Stylizer::load(&model, &BackendOptions::default())
        .err()
        .expect("upstream names its input `image`, not `content`")
        .to_string();
    assert!(err.contains("breaks the stylize contract"), "{err}");
    assert!(err.contains("input `content`"), "{err}");
    assert!(err.contains("tensors [image, style_weights]"), "{err}");
}

#[test]
fn missing_and_corrupt_models_are_errors() {
    if common::asset("lib/libonnxruntime.so").is_none() {
        return;
    }
    let err = Stylizer::load(
        Path::new("/nonexistent/model.onnx"),
        &BackendOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert_eq!(err, "model file /nonexistent/model.onnx does not exist");

    let corrupt = std::env::temp_dir().join(format!("stylize-corrupt-{}.onnx", std::process::id()));
    std::fs::write(&corrupt, b"this is not a protobuf").unwrap();
    let err = Stylizer::load(&corrupt, &BackendOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("could not be loaded"), "{err}");
    assert!(err.contains(&corrupt.display().to_string()), "{err}");
}
