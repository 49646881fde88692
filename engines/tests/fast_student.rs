//! The shipped fast student (`models/multistyle26-fast.onnx`, docs/distill.md) loads under the
//! engine's CIN contract with its teacher's 26 style names, and stylizes a frame at the
//! frame's own size for one style and for a blend. The model file is committed in the
//! repository, so only the ONNX Runtime library is needed from `scripts/setup`.

mod common;

use std::path::PathBuf;

use stylize_engines::backend::BackendOptions;
use stylize_engines::model::Family;
use stylize_engines::tensor::Tensor;
use stylize_engines::{style, Stylizer};

fn student() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/multistyle26-fast.onnx"
    ))
}

/// Smooth colour ramps with a checker texture: something for a style to act on.
fn frame(height: usize, width: usize) -> Tensor {
    let mut t = Tensor::zeros(3, height, width);
    for c in 0..3 {
        for y in 0..height {
            for x in 0..width {
                let ramp = (x + (c + 1) * y) as f32 / (width + 3 * height) as f32;
                let checker = if (x / 6 + y / 6) % 2 == 0 { 0.15 } else { 0.0 };
                t.data[(c * height + y) * width + x] = 0.8 * ramp + checker;
            }
        }
    }
    t
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output sizes differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn fast_student_loads_as_a_26_style_cin_model_named_like_its_teacher() {
    if common::asset("lib/libonnxruntime.so").is_none() {
        return;
    }
    let st = Stylizer::load(&student(), &BackendOptions::with_threads(2)).unwrap();
    let info = st.info();
    assert_eq!(info.family, Family::Cin);
    assert_eq!(info.conditioning_len, 26);
    assert_eq!(info.styles.len(), 26);
    assert!(info.styles.iter().any(|s| s == "starry-swirls"));
    if let Some(teacher) = common::asset("models/multistyle26.onnx") {
        let teacher = Stylizer::load(&teacher, &BackendOptions::with_threads(2)).unwrap();
        assert_eq!(info.styles, teacher.info().styles);
    }
}

#[test]
fn fast_student_stylizes_a_style_and_a_blend_at_the_frame_size() {
    if common::asset("lib/libonnxruntime.so").is_none() {
        return;
    }
    let mut st = Stylizer::load(&student(), &BackendOptions::with_threads(2)).unwrap();
    // 90x134 is not a multiple of the model's size multiple: padding and crop are exercised.
    let input = frame(90, 134);
    let run = |st: &mut Stylizer, style: Option<&str>, blend: Option<&str>| {
        let weights = style::resolve(st.info(), style, blend).unwrap();
        let out = st.run_tensor(&input, &weights).unwrap();
        assert_eq!(out.shape(), [1, 3, 90, 134]);
        assert!(out
            .data
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        out
    };
    let starry = run(&mut st, Some("starry-swirls"), None);
    let mosaic = run(&mut st, Some("mosaic"), None);
    let blend = run(&mut st, None, Some("starry-swirls:0.5,mosaic:0.5"));
    // A style changes the picture, styles differ, and a blend is neither endpoint.
    assert!(max_abs_diff(&starry.data, &input.data) > 0.2);
    assert!(max_abs_diff(&starry.data, &mosaic.data) > 0.1);
    assert!(max_abs_diff(&blend.data, &starry.data) > 0.02);
    assert!(max_abs_diff(&blend.data, &mosaic.data) > 0.02);
}
