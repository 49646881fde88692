//! `stylize generate` end to end on the models scripts/setup builds: output counts and sizes,
//! grids, resuming an interrupted run, interpolation videos, stylized results, bad models.

#[path = "common.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stylize<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn stylegan() -> Option<(String, String)> {
    let m = common::asset("generators/stylegan/mapping.onnx")?;
    let s = common::asset("generators/stylegan/synthesis.onnx")?;
    Some((m.display().to_string(), s.display().to_string()))
}

/// File names in a folder, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

fn png(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = stylize_generate::output::read_png(path).unwrap();
    (img.width as u32, img.height as u32, img.data)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn stylegan_images_and_grid_counts_and_shapes() {
    let Some((m, syn)) = stylegan() else {
        return;
    };
    let dir = common::scratch("gen-images");
    let (out, grid) = (dir.join("imgs"), dir.join("grid.png"));
    let base = ["generate", "stylegan", "--mapping", &m, "--synthesis", &syn];
    let run = stylize(
        &[
            &base[..],
            &[
                "--quiet",
                "--seeds",
                "0-5",
                "--truncation",
                "0.7",
                "--batch",
                "4",
            ],
            &["--out", &s(&out), "--grid", &s(&grid)],
        ]
        .concat(),
    );
    let err = ok(&run);
    assert!(err.contains("generated 6 images, skipped 0"), "{err}");
    let names: Vec<String> = (0..6).map(|i| format!("seed{i:04}.png")).collect();
    assert_eq!(listing(&out), names);
    for n in &names {
        let (w, h, _) = png(&out.join(n));
        assert_eq!((w, h), (32, 32));
    }
    // 6 tiles → 3 columns × 2 rows; tile 4 (row 1, col 1) is seed 4's image.
    let (gw, gh, gdata) = png(&grid);
    assert_eq!((gw, gh), (96, 64));
    let (_, _, tile) = png(&out.join("seed0004.png"));
    for y in 0..32 {
        let row = &gdata[((32 + y) * 96 + 32) * 3..][..32 * 3];
        assert_eq!(row, &tile[y * 96..(y + 1) * 96], "grid row {y}");
    }
    // Different seeds give different images; the same seed the same bytes (batch 4 vs 1).
    assert_ne!(
        png(&out.join("seed0000.png")).2,
        png(&out.join("seed0001.png")).2
    );
    let one = dir.join("one");
    ok(&stylize(
        &[
            &base[..],
            &[
                "-q",
                "--seeds",
                "4",
                "--truncation",
                "0.7",
                "--batch",
                "1",
                "--out",
                &s(&one),
            ],
        ]
        .concat(),
    ));
    let a = png(&one.join("seed0004.png")).2;
    let max = a
        .iter()
        .zip(&tile)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap();
    assert!(
        max <= 1,
        "seed 4 differs by {max} levels between batch sizes"
    );

    // Style mixing: one image per (seed, mix seed).
    let mix = dir.join("mix");
    let err = ok(&stylize(
        &[
            &base[..],
            &[
                "-q",
                "--seeds",
                "0-1",
                "--mix-seeds",
                "7,8,9",
                "--mix-layers",
                "0-3",
                "--out",
                &s(&mix),
            ],
        ]
        .concat(),
    ));
    assert!(err.contains("generated 6 images"), "{err}");
    assert!(listing(&mix).contains(&"seed0001-mix0009.png".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interrupted_run_resumes_without_duplicates_or_gaps() {
    let Some((m, syn)) = stylegan() else {
        return;
    };
    let dir = common::scratch("gen-resume");
    let (out, clean) = (dir.join("out"), dir.join("clean"));
    let base = [
        "generate",
        "stylegan",
        "--mapping",
        &m,
        "--synthesis",
        &syn,
        "-q",
    ];
    let args = |d: &PathBuf, extra: &[&str]| -> Vec<String> {
        let fixed = ["--seeds", "10-19", "--batch", "3", "--out"];
        let head = base.iter().chain(&fixed).map(|a| a.to_string());
        head.chain([s(d)])
            .chain(extra.iter().map(|a| a.to_string()))
            .collect()
    };
    let err = ok(&stylize(&args(&out, &["--limit", "4"])));
    assert!(
        err.contains("generated 4 images, skipped 0 finished, 6 left"),
        "{err}"
    );
    assert_eq!(listing(&out).len(), 4);
    // A run killed mid-write leaves a .part file; it must be neither kept nor skipped.
    std::fs::write(out.join("seed0015.png.part"), b"truncated").unwrap();
    let first: Vec<(String, std::time::SystemTime)> = listing(&out)
        .into_iter()
        .filter(|n| n.ends_with(".png"))
        .map(|n| {
            let t = std::fs::metadata(out.join(&n)).unwrap().modified().unwrap();
            (n, t)
        })
        .collect();
    let err = ok(&stylize(&args(&out, &[])));
    assert!(err.contains("removed 1 unfinished"), "{err}");
    assert!(
        err.contains("generated 6 images, skipped 4 finished, 0 left"),
        "{err}"
    );
    let want: Vec<String> = (10..20).map(|i| format!("seed{i:04}.png")).collect();
    assert_eq!(listing(&out), want, "every seed once, no leftovers");
    for (n, t) in first {
        let now = std::fs::metadata(out.join(&n)).unwrap().modified().unwrap();
        assert_eq!(now, t, "{n} was finished and must not be rewritten");
    }
    // The resumed set equals one uninterrupted run.
    ok(&stylize(&args(&clean, &[])));
    for n in &want {
        assert_eq!(png(&out.join(n)).2, png(&clean.join(n)).2, "{n}");
    }
    let err = ok(&stylize(&args(&out, &[])));
    assert!(err.contains("generated 0 images, skipped 10"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interpolation_video_has_every_frame() {
    let Some((m, syn)) = stylegan() else {
        return;
    };
    let dir = common::scratch("gen-interp");
    let clip = dir.join("clip.mp4");
    let base = [
        "generate",
        "stylegan",
        "--mapping",
        &m,
        "--synthesis",
        &syn,
        "-q",
    ];
    for space in ["z", "w"] {
        let _ = std::fs::remove_file(&clip);
        let err = ok(&stylize(
            &[
                &base[..],
                &[
                    "--interp",
                    "3,4",
                    "--frames",
                    "12",
                    "--fps",
                    "24",
                    "--space",
                    space,
                    "--out",
                    &s(&clip),
                ],
            ]
            .concat(),
        ));
        assert!(err.contains("wrote 12 frames"), "{err}");
        let (pts, size) = common::decoded_frames(&clip);
        assert_eq!(pts.len(), 12, "{space}: frames in the MP4");
        assert_eq!(size, (32, 32));
        assert_eq!(
            pts[11].nseconds(),
            11 * 1_000_000_000 / 24,
            "frame 11 at 11/24 s"
        );
    }
    assert!(!dir.join("clip.mp4.part").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dalle_samples_are_deterministic_per_seed_and_batch_independent() {
    let Some(model) = common::asset("generators/dalle") else {
        return;
    };
    let dir = common::scratch("gen-dalle");
    let run = |out: &Path, batch: &str| {
        ok(&stylize(&[
            "generate",
            "dalle",
            "-q",
            "--prompt",
            "a lighthouse",
            "--model",
            &s(&model),
            "--samples",
            "5",
            "--seed",
            "100",
            "--top-k",
            "8",
            "--batch",
            batch,
            "--out",
            &s(out),
        ]))
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    let err = run(&a, "2");
    assert!(err.contains("generated 5 images"), "{err}");
    run(&b, "5");
    let names = listing(&a);
    assert_eq!(names.len(), 5);
    assert!(names[0].starts_with("a-lighthouse-") && names[0].ends_with("-0100.png"));
    assert_eq!(listing(&b), names);
    for n in &names {
        let (w, h, data) = png(&a.join(n));
        assert_eq!((w, h), (32, 32));
        assert_eq!(data, png(&b.join(n)).2, "{n}: same seed, other batch");
    }
    assert_ne!(png(&a.join(&names[0])).2, png(&a.join(&names[1])).2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stylize_option_restyles_results() {
    let (Some((m, syn)), Some(_)) = (stylegan(), common::asset("models/multistyle26.onnx")) else {
        return;
    };
    let dir = common::scratch("gen-stylize");
    let base = [
        "generate",
        "stylegan",
        "--mapping",
        &m,
        "--synthesis",
        &syn,
        "-q",
        "--seeds",
        "2",
    ];
    let (plain, styled) = (dir.join("plain"), dir.join("styled"));
    ok(&stylize(&[&base[..], &["--out", &s(&plain)]].concat()));
    ok(&stylize(
        &[
            &base[..],
            &[
                "--out",
                &s(&styled),
                "--stylize",
                "mosaic",
                "--threads",
                "2",
            ],
        ]
        .concat(),
    ));
    let (a, b) = (
        png(&plain.join("seed0002.png")),
        png(&styled.join("seed0002.png")),
    );
    assert_eq!((a.0, a.1), (b.0, b.1), "stylized at the generated size");
    let changed =
        a.2.iter()
            .zip(&b.2)
            .filter(|(x, y)| x.abs_diff(**y) > 8)
            .count();
    assert!(changed > a.2.len() / 4, "only {changed} values changed");
    let fresh = dir.join("fresh");
    let out = stylize(&[&base[..], &["--out", &s(&fresh), "--stylize", "nope"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown style `nope`"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn contract_breaking_models_fail_clearly() {
    let (Some((m, syn)), Some(model)) = (stylegan(), common::asset("generators/dalle")) else {
        return;
    };
    let dir = common::scratch("gen-bad");
    let out = stylize(&[
        "generate",
        "stylegan",
        "-q",
        "--mapping",
        &syn,
        "--synthesis",
        &m,
        "--out",
        &s(&dir.join("x")),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("breaks the stylize contract") && err.contains("input `ws`"),
        "{err}"
    );
    assert!(!dir.join("x").exists(), "no output for a failed run");

    let out = stylize(&[
        "generate",
        "dalle",
        "-q",
        "--prompt",
        "x",
        "--model",
        &s(&model.join("vqgan.onnx")),
        "--out",
        &s(&dir),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = stylize(&[
        "generate",
        "dalle",
        "-q",
        "--prompt",
        "x",
        "--model",
        &s(&model),
        "--top-k",
        "999",
        "--out",
        &s(&dir),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the 32 image tokens"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Real StyleGAN exports trace the fused modulated convolution's `groups = batch` as a
/// constant: one made at batch 1 with dynamic axes declares any batch but runs only at 1, one
/// made without them declares its batch. Both must still run at `--batch 8` and give the
/// images of the same network exported with a true dynamic batch.
#[test]
fn stylegan_exports_traced_at_a_fixed_batch_run_at_any_batch() {
    let (Some((m, syn)), Some(b1), Some(b2)) = (
        stylegan(),
        common::asset("generators/stylegan/synthesis_traced_b1.onnx"),
        common::asset("generators/stylegan/synthesis_fixed_b2.onnx"),
    ) else {
        return;
    };
    let dir = common::scratch("gen-traced-batch");
    let run = |synthesis: &str, out: &Path| {
        ok(&stylize(&[
            "generate",
            "stylegan",
            "--mapping",
            &m,
            "--synthesis",
            synthesis,
            "-q",
            "--seeds",
            "0-8",
            "--truncation",
            "0.7",
            "--batch",
            "8",
            "--out",
            &s(out),
        ]))
    };
    run(&syn, &dir.join("dynamic"));
    let err = run(&s(&b1), &dir.join("b1"));
    assert!(err.contains("generated 9 images"), "{err}");
    assert!(
        err.contains("runs at batch 1 only"),
        "the fallback is reported: {err}"
    );
    let err = run(&s(&b2), &dir.join("b2"));
    assert!(err.contains("generated 9 images"), "{err}");
    for seed in 0..9 {
        let name = format!("seed{seed:04}.png");
        let want = png(&dir.join("dynamic").join(&name)).2;
        for variant in ["b1", "b2"] {
            let got = png(&dir.join(variant).join(&name)).2;
            let max = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(
                max <= Some(1),
                "{variant} {name}: differs by {max:?} levels"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
