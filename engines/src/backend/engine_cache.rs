//! TensorRT engine cache keys.
//!
//! An engine is only valid for one model, GPU, TensorRT version, precision and shape profile;
//! each combination gets its own folder, so a driver upgrade or a new inference size builds a
//! fresh engine instead of loading a stale one.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Everything a TensorRT engine depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineKey<'a> {
    pub model_sha256: &'a [u8; 32],
    pub gpu_name: &'a str,
    pub tensorrt_version: &'a str,
    /// `fp16` or `fp32`.
    pub precision: &'a str,
    /// min/opt/max input shapes, e.g. `content:1x3x360x640`.
    pub shape_profile: &'a str,
}

impl EngineKey<'_> {
    /// A readable, filesystem-safe folder name: model hash prefix plus a digest of the rest.
    pub fn folder_name(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            self.gpu_name,
            self.tensorrt_version,
            self.precision,
            self.shape_profile,
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let rest = h.finalize();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        format!(
            "{}-{}-{}",
            hex(&self.model_sha256[..8]),
            self.precision,
            hex(&rest[..8])
        )
    }
}

/// `$STYLIZE_ENGINE_CACHE`, else `$XDG_CACHE_HOME/stylize/tensorrt`, else `~/.cache/...`.
pub fn default_dir() -> PathBuf {
    crate::runtime::user_dir(
        "STYLIZE_ENGINE_CACHE",
        "XDG_CACHE_HOME",
        ".cache",
        "tensorrt",
    )
}

/// Whether a cache folder has no engine yet, so the next TensorRT session builds one
/// (minutes) instead of deserialising it (seconds). ONNX Runtime's TensorRT provider writes
/// `*.engine` files (next to `*.profile` and `*.timing` files, which alone do not count).
pub fn is_cold(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    !entries.flatten().any(|e| {
        let path = e.path();
        path.is_file() && path.extension().is_some_and(|x| x == "engine")
    })
}

/// The TensorRT shape profile for one inference size (batch 1, fixed size: the element
/// re-creates the session when the negotiated size changes).
pub fn shape_profile(input: &str, height: usize, width: usize) -> String {
    format!("{input}:1x3x{height}x{width}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: [u8; 32] = [7; 32];

    fn key<'a>(gpu: &'a str, trt: &'a str, precision: &'a str, shape: &'a str) -> EngineKey<'a> {
        EngineKey {
            model_sha256: &MODEL,
            gpu_name: gpu,
            tensorrt_version: trt,
            precision,
            shape_profile: shape,
        }
    }

    #[test]
    fn every_component_changes_the_key_and_the_key_is_stable() {
        let base = key("NVIDIA H200", "10.16.1", "fp16", "content:1x3x720x1280");
        let name = base.folder_name();
        assert_eq!(name, base.clone().folder_name(), "deterministic");
        assert!(name.starts_with("0707070707070707-fp16-"), "{name}");
        let variants = [
            key("NVIDIA L4", "10.16.1", "fp16", "content:1x3x720x1280"),
            key("NVIDIA H200", "10.9.0", "fp16", "content:1x3x720x1280"),
            key("NVIDIA H200", "10.16.1", "fp32", "content:1x3x720x1280"),
            key("NVIDIA H200", "10.16.1", "fp16", "content:1x3x1080x1920"),
        ];
        for v in &variants {
            assert_ne!(v.folder_name(), name, "{v:?}");
        }
        let other_model = [8u8; 32];
        let k = EngineKey {
            model_sha256: &other_model,
            ..base
        };
        assert_ne!(k.folder_name(), name);
        // Length-prefixing keeps "ab"+"c" and "a"+"bc" apart.
        assert_ne!(
            key("ab", "c", "fp16", "x").folder_name(),
            key("a", "bc", "fp16", "x").folder_name()
        );
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn a_folder_is_cold_until_it_holds_an_engine() {
        let dir = std::env::temp_dir().join(format!("stylize-engine-cold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(is_cold(&dir), "missing folder");
        std::fs::create_dir_all(dir.join("sub.engine")).unwrap();
        std::fs::write(
            dir.join("TensorrtExecutionProvider_cache_sm90.timing"),
            b"t",
        )
        .unwrap();
        assert!(
            is_cold(&dir),
            "timing cache and a folder named *.engine are not engines"
        );
        std::fs::write(
            dir.join("TensorrtExecutionProvider_TRTKernel_graph_main_1_0_sm90.engine"),
            b"e",
        )
        .unwrap();
        assert!(!is_cold(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shape_profiles_name_the_input() {
        assert_eq!(shape_profile("content", 360, 640), "content:1x3x360x640");
    }
}
