//! Arbitrary-style family (Ghiasi 2017): predictor and transfer net against ONNX Runtime in
//! Python, embedding interpolation and strength, the cache and the library.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use stylize_engines::backend::BackendOptions;
use stylize_engines::embedding::{self, CacheOutcome, EmbeddingCache};
use stylize_engines::image_io::load_rgb;
use stylize_engines::library::{Library, StyleKind};
use stylize_engines::predictor::{lerp, StylePredictor};
use stylize_engines::tensor::Tensor;
use stylize_engines::{frame, StyleRequest, StyleResolver, Stylizer};

struct Assets {
    transform: PathBuf,
    predictor: PathBuf,
    starry: PathBuf,
    chelsea: PathBuf,
    coffee: PathBuf,
}

fn assets() -> Option<Assets> {
    Some(Assets {
        transform: common::asset("models/arbitrary-transform.onnx")?,
        predictor: common::asset("models/arbitrary-predict.onnx")?,
        starry: common::asset("images/starry_night.jpg")?,
        chelsea: common::asset("images/chelsea.png")?,
        coffee: common::asset("images/coffee.png")?,
    })
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylize-arb-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_f32(path: &Path, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// ONNX Runtime in Python on the same model and input tensor.
fn python(model: &Path, input: &Tensor, extra: &[&str], dir: &Path) -> Option<Vec<f32>> {
    let py = common::python()?;
    let (inp, out) = (dir.join("in.f32"), dir.join("out.f32"));
    write_f32(&inp, &input.data);
    let status = Command::new(py)
        .arg(common::script("ort_reference.py"))
        .arg(model)
        .arg(&inp)
        .arg(input.height.to_string())
        .arg(input.width.to_string())
        .arg(&out)
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success());
    Some(read_f32(&out))
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (n(a) * n(b))
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn content_tensor(path: &Path, width: usize) -> Tensor {
    let img = load_rgb(path).unwrap();
    let height = img.height * width / img.width;
    let mut resizer = fast_image_resize::Resizer::new();
    let small = frame::resize_rgb(&mut resizer, &img, width, height).unwrap();
    frame::image_to_tensor(&small, stylize_engines::Size::new(width, height), 1.0)
}

fn arbitrary(a: &Assets) -> Stylizer {
    let mut st = Stylizer::load(&a.transform, &BackendOptions::with_threads(2)).unwrap();
    st.attach_predictor(StylePredictor::load(&a.predictor, 2).unwrap())
        .unwrap();
    st
}

fn resolver(a: &Assets, library: Option<Library>, cache_dir: PathBuf) -> StyleResolver {
    let st = Stylizer::load(&a.transform, &BackendOptions::with_threads(2)).unwrap();
    StyleResolver::new(
        st.info().clone(),
        library,
        EmbeddingCache::new(cache_dir),
        Some(StylePredictor::load(&a.predictor, 2).unwrap()),
    )
}

fn image_request(path: &Path) -> StyleRequest {
    StyleRequest {
        image: Some(path.to_path_buf()),
        ..Default::default()
    }
}

#[test]
fn predictor_and_transfer_match_onnxruntime_python_on_starry_night() {
    let Some(a) = assets() else { return };
    let dir = scratch("ref");
    let mut predictor = StylePredictor::load(&a.predictor, 2).unwrap();
    let style_input = predictor.preprocess(&load_rgb(&a.starry).unwrap()).unwrap();
    assert_eq!(style_input.shape(), [1, 3, 256, 256]);
    let ours = predictor.run(&style_input).unwrap();
    assert_eq!(ours.len(), 100);
    let Some(theirs) = python(&a.predictor, &style_input, &["--predict"], &dir) else {
        return;
    };
    let cos = cosine(&ours, &theirs);
    assert!(cos >= 0.9999, "embedding cosine {cos}");

    // Transfer: chelsea at 150x100 (multiple of 2 but not of 4: padding is exercised).
    let content = content_tensor(&a.chelsea, 150);
    let mut st = arbitrary(&a);
    let stylized = st.run_tensor(&content, &ours).unwrap();
    assert_eq!(stylized.shape(), content.shape());
    let emb = dir.join("emb.f32");
    write_f32(&emb, &ours);
    let reference = python(
        &a.transform,
        &content,
        &["--embedding", emb.to_str().unwrap()],
        &dir,
    )
    .unwrap();
    let diff = max_abs(&stylized.data, &reference);
    assert!(diff <= 1e-3, "stylized max abs diff {diff}");
    assert!(max_abs(&stylized.data, &content.data) > 0.3, "not stylized");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn interpolation_endpoints_and_strength() {
    let Some(a) = assets() else { return };
    let mut st = arbitrary(&a);
    let content = content_tensor(&a.chelsea, 128);
    let predictor = st.predictor_mut().unwrap();
    let e1 = predictor.embed(&load_rgb(&a.starry).unwrap()).unwrap();
    let e2 = predictor.embed(&load_rgb(&a.coffee).unwrap()).unwrap();
    let out1 = st.run_tensor(&content, &e1).unwrap();
    let out2 = st.run_tensor(&content, &e2).unwrap();
    assert_eq!(st.run_tensor(&content, &lerp(&e1, &e2, 1.0)).unwrap(), out1);
    assert_eq!(st.run_tensor(&content, &lerp(&e1, &e2, 0.0)).unwrap(), out2);
    let mid = st.run_tensor(&content, &lerp(&e1, &e2, 0.5)).unwrap();
    assert!(max_abs(&mid.data, &out1.data) > 0.05 && max_abs(&mid.data, &out2.data) > 0.05);

    // Strength 0: the content's own embedding, i.e. its own reconstruction, which is much
    // closer to the content than the fully stylized frame.
    let img = frame::tensor_to_image(
        &content,
        stylize_engines::Size::new(content.width, content.height),
        1.0,
    )
    .unwrap();
    let own = st.predictor_mut().unwrap().embed(&img).unwrap();
    let reconstruction = st.run_tensor(&content, &own).unwrap();
    st.set_strength(0.0).unwrap();
    let size = (content.width, content.height);
    let (at_zero, _) = st.stylize_image(&img, size, &e1).unwrap();
    let expected = frame::tensor_to_image(
        &reconstruction,
        stylize_engines::Size::new(size.0, size.1),
        1.0,
    )
    .unwrap();
    let pixel_diff = at_zero
        .data
        .iter()
        .zip(&expected.data)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap();
    assert!(
        pixel_diff <= 1,
        "strength 0 must equal the own-embedding output"
    );
    let mean = |v: &[f32]| v.iter().map(|x| x.abs()).sum::<f32>() / v.len() as f32;
    let d_recon = mean(
        &reconstruction
            .data
            .iter()
            .zip(&content.data)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
    );
    let d_style = mean(
        &out1
            .data
            .iter()
            .zip(&content.data)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
    );
    assert!(
        d_recon < d_style * 0.8,
        "reconstruction {d_recon} vs stylized {d_style}"
    );
    assert!(st.set_strength(1.5).is_err());
}

#[test]
fn style_image_embeddings_are_cached_and_corrupt_cache_is_repaired() {
    let Some(a) = assets() else { return };
    let dir = scratch("cache");
    let cache = EmbeddingCache::new(dir.join("cache"));
    let mut res = resolver(&a, None, dir.join("cache"));
    let request = image_request(&a.starry);
    let first = res.resolve(&request).unwrap();
    assert!(first.notes.is_empty());
    let files: Vec<_> = std::fs::read_dir(dir.join("cache")).unwrap().collect();
    assert_eq!(files.len(), 1, "one cache entry");
    let cached = files[0].as_ref().unwrap().path();

    let (_, outcome) = cache
        .embed(res.predictor_mut().unwrap(), &a.starry)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);

    std::fs::write(&cached, b"STYLEMB1 truncated").unwrap();
    let again = res.resolve(&request).unwrap();
    assert_eq!(
        again.conditioning, first.conditioning,
        "recomputed, nothing lost"
    );
    assert_eq!(again.notes.len(), 1);
    assert!(again.notes[0].contains("is corrupt"), "{:?}", again.notes);
    assert_eq!(embedding::read(&cached).unwrap(), first.conditioning);

    let unreadable = dir.join("not-an-image.png");
    std::fs::write(&unreadable, b"plain text").unwrap();
    let err = res
        .resolve(&image_request(&unreadable))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read image"), "{err}");
    assert!(err.contains("not-an-image.png"), "{err}");
    let err = res
        .resolve(&image_request(&dir.join("missing.jpg")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.jpg"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn library_names_and_blends_drive_the_arbitrary_model() {
    let Some(a) = assets() else { return };
    let dir = scratch("lib");
    let mut images = resolver(&a, None, dir.join("cache"));
    let e1 = images
        .resolve(&image_request(&a.starry))
        .unwrap()
        .conditioning;
    let e2 = images
        .resolve(&image_request(&a.coffee))
        .unwrap()
        .conditioning;
    let mut lib = Library::open(&dir.join("styles")).unwrap();
    let kind = || StyleKind::Embedding {
        file: String::new(),
    };
    lib.add("van-gogh", kind(), None, Some(&e1), false).unwrap();
    lib.add("coffee", kind(), None, Some(&e2), false).unwrap();
    let mut res = resolver(&a, Some(lib), dir.join("cache"));

    let mut by_name = |style: Option<&str>, blend: Option<&str>| {
        res.resolve(&StyleRequest {
            style: style.map(String::from),
            blend: blend.map(String::from),
            image: None,
        })
    };
    assert_eq!(by_name(Some("van-gogh"), None).unwrap().conditioning, e1);
    let blend = by_name(None, Some("van-gogh:3,coffee:1"))
        .unwrap()
        .conditioning;
    let expected: Vec<f32> = e1
        .iter()
        .zip(&e2)
        .map(|(x, y)| 0.75 * x + 0.25 * y)
        .collect();
    assert!(max_abs(&blend, &expected) < 1e-6);
    let err = by_name(Some("nope"), None).unwrap_err().to_string();
    assert!(err.contains("unknown style `nope`"), "{err}");
    assert!(err.contains("van-gogh, coffee"), "{err}");

    // A corrupt library embedding is an error naming the file (it cannot be recomputed).
    std::fs::write(dir.join("styles/coffee.emb"), b"junk").unwrap();
    let err = by_name(Some("coffee"), None).unwrap_err().to_string();
    assert!(err.contains("coffee.emb is corrupt"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
