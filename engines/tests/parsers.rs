//! Property tests for every parser that takes user bytes: style blends, embedding files, the
//! library index, model metadata and style images. Each must answer any input with a value
//! or an error, never a panic, an abort or an unbounded allocation, and what it accepts must
//! be sane. Case counts are bounded so the whole file runs in seconds (docs/reliability.md:
//! raise PROPTEST_CASES for a longer fuzzing run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use stylize_engines::embedding;
use stylize_engines::library::{Library, INDEX};
use stylize_engines::limits;
use stylize_engines::model::{self, check_contract, Family, InputRange, ModelInfo, TensorSpec};
use stylize_engines::style;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn cin_info() -> ModelInfo {
    ModelInfo {
        path: PathBuf::from("m.onnx"),
        family: Family::Cin,
        input_range: InputRange::Unit,
        size_multiple: 4,
        fixed_size: None,
        styles: vec!["swirls".into(), "mosaic".into(), "ink".into()],
        conditioning_len: 3,
    }
}

/// Blend-like text: names (real, aliases, junk), separators and odd weights.
fn blend_spec() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        proptest::sample::select(vec!["swirls", "mosaic", "ink", "style-02", "1", "MOSAIC"])
            .prop_map(String::from),
        "[a-z:, -]{0,8}",
        ".{0,6}",
    ];
    let weight = prop_oneof![
        Just(String::new()),
        (0.0f32..10.0).prop_map(|w| format!(":{w}")),
        proptest::sample::select(vec![
            ":nan", ":inf", ":-1", ":0", ":3e38", ":1e-45", ": 2 ", "::", ":x",
        ])
        .prop_map(String::from),
    ];
    proptest::collection::vec((name, weight), 0..5).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(n, w)| format!("{n}{w}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn blends_parse_to_sane_weights_or_an_error(spec in blend_spec()) {
        if let Ok(parts) = style::parse_blend(&spec) {
            let total: f32 = parts.iter().map(|(_, w)| w).sum();
            prop_assert!(total.is_finite() && total > 0.0, "{spec}: {parts:?}");
            for (name, w) in &parts {
                prop_assert!(!name.is_empty() && w.is_finite() && *w >= 0.0);
            }
        }
        match style::resolve(&cin_info(), None, Some(&spec)) {
            Ok(weights) => {
                prop_assert_eq!(weights.len(), 3);
                prop_assert!(weights.iter().all(|w| w.is_finite() && *w >= 0.0));
                let sum: f32 = weights.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-4, "{spec}: {weights:?}");
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn style_names_resolve_or_say_why(name in ".{0,12}") {
        match style::resolve(&cin_info(), Some(&name), None) {
            Ok(weights) => prop_assert_eq!(weights.iter().sum::<f32>(), 1.0),
            Err(e) => prop_assert!(e.to_string().contains("unknown style")),
        }
    }

    #[test]
    fn embedding_files_decode_or_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(values) = embedding::decode(&bytes, Path::new("x.emb")) {
            prop_assert!(values.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn any_change_to_an_embedding_file_is_detected(
        values in proptest::collection::vec(-1e6f32..1e6, 0..40),
        at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = embedding::encode(&values);
        prop_assert_eq!(embedding::decode(&bytes, Path::new("x.emb")).unwrap(), values);
        let mut edited = bytes.clone();
        let i = at.index(edited.len());
        edited[i] ^= flip;
        prop_assert!(embedding::decode(&edited, Path::new("x.emb")).is_err());
        prop_assert!(embedding::decode(&bytes[..i], Path::new("x.emb")).is_err());
    }
}

/// Index-like TOML: style tables with good, odd and hostile fields.
fn index_text() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[a-z.-]{0,10}".prop_map(|s| format!("\"{s}\"")),
        Just("\"../../etc/passwd\"".to_string()),
        Just("\"/dev/zero\"".to_string()),
        Just("3".to_string()),
        Just("[1, 2]".to_string()),
        Just("\"a:b\"".to_string()),
        ".{0,8}",
    ];
    let key = proptest::sample::select(vec![
        "name", "kind", "file", "style", "prompt", "source", "x",
    ]);
    let kind =
        proptest::sample::select(vec!["\"cin\"", "\"embedding\"", "\"prompt\"", "\"bogus\""]);
    let table = (kind, proptest::collection::vec((key, value), 0..5)).prop_map(|(kind, fields)| {
        let mut t = format!("[[style]]\nkind = {kind}\n");
        for (k, v) in fields {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t
    });
    prop_oneof![
        proptest::collection::vec(table, 0..4).prop_map(|t| t.concat()),
        ".{0,64}",
    ]
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn library_indexes_open_or_fail_cleanly(text in index_text(), case in any::<u64>()) {
        let dir = std::env::temp_dir().join(format!(
            "stylize-prop-lib-{}-{case}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INDEX), &text).unwrap();
        match Library::open(&dir) {
            Ok(lib) => {
                for entry in lib.entries() {
                    prop_assert!(stylize_engines::library::check_name(&entry.name).is_ok());
                    // Reading an entry's embedding stays inside the library (and fails
                    // cleanly: these files do not exist).
                    let _ = lib.embedding(entry);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("styles.toml")),
        }
        let (_, _) = Library::open_or_empty(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn dim() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-1i64),
        0i64..600,
        proptest::sample::select(vec![1i64, 3, 100_000, i64::MAX, i64::MIN]),
    ]
}

fn spec(name: &'static str) -> impl Strategy<Value = TensorSpec> {
    let ty = proptest::sample::select(vec!["float32", "uint8"]);
    (ty, proptest::collection::vec(dim(), 0..5)).prop_map(move |(ty, dims)| TensorSpec {
        name: name.to_string(),
        element_type: ty.to_string(),
        dims,
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn model_metadata_and_shapes_pass_within_limits_or_fail(
        content in spec(model::CONTENT),
        conditioning in prop_oneof![spec(model::STYLE_WEIGHTS), spec(model::STYLE_EMBEDDING)],
        with_conditioning in any::<bool>(),
        stylized in spec(model::STYLIZED),
        meta in proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    model::META_FAMILY,
                    model::META_INPUT_RANGE,
                    model::META_SIZE_MULTIPLE,
                    model::META_STYLES,
                ]),
                prop_oneof![
                    ".{0,12}",
                    proptest::sample::select(vec![
                        "cin", "arbitrary", "per-style", "0-255", "0-1", "4", "256", "257",
                        "100000", "a,b,c", ",,,",
                    ]).prop_map(String::from),
                ],
            ),
            0..4,
        ),
    ) {
        let mut inputs = vec![content];
        if with_conditioning {
            inputs.push(conditioning);
        }
        let meta: HashMap<String, String> =
            meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Ok(info) = check_contract(Path::new("m.onnx"), &inputs, &[stylized], &meta) {
            prop_assert!((1..=limits::MAX_SIZE_MULTIPLE).contains(&info.size_multiple));
            prop_assert!(info.conditioning_len <= limits::MAX_CONDITIONING_LEN);
            if let Some(size) = info.fixed_size {
                prop_assert!(limits::check_inference_size(size.width, size.height).is_ok());
            }
        }
    }
}

/// A small valid PNG and JPEG, to mutate.
fn encoded_images() -> Vec<Vec<u8>> {
    let img = image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([x as u8 * 20, y as u8 * 25, 7]));
    [image::ImageFormat::Png, image::ImageFormat::Jpeg]
        .iter()
        .map(|format| {
            let mut bytes = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut bytes), *format)
                .unwrap();
            bytes
        })
        .collect()
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn style_images_decode_or_fail_without_panicking(
        which in 0usize..2,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<proptest::sample::Index>(),
    ) {
        let mut bytes = encoded_images().swap_remove(which);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let keep = cut.index(bytes.len() + 1);
        bytes.truncate(keep.max(1));
        if let Ok(img) = stylize_engines::image_io::decode_rgb(&bytes, Path::new("x.png")) {
            prop_assert!((img.width * img.height) as u64 <= limits::MAX_STYLE_IMAGE_PIXELS);
            prop_assert_eq!(img.data.len(), img.width * img.height * 3);
        }
    }
}
