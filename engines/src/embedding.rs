//! Style embeddings on disk: a small checksummed file format and the predictor cache.
//!
//! File: `STYLEMB1`, u32 LE length D, D × f32 LE, then the first 8 bytes of SHA-256 over
//! everything before. A truncated or edited file is detected, never silently used.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::limits::MAX_EMBEDDING_BYTES;
use crate::predictor::StylePredictor;

const MAGIC: &[u8; 8] = b"STYLEMB1";

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn encode(embedding: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + embedding.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(embedding.len() as u32).to_le_bytes());
    for v in embedding {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum[..8]);
    out
}

pub fn decode(bytes: &[u8], path: &Path) -> Result<Vec<f32>> {
    let corrupt = |reason: &str| Error::CorruptEmbedding {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(corrupt("not a stylize embedding file"));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() != 12 + len * 4 + 8 {
        return Err(corrupt("wrong length"));
    }
    let body = &bytes[..12 + len * 4];
    if Sha256::digest(body)[..8] != bytes[12 + len * 4..] {
        return Err(corrupt("checksum mismatch"));
    }
    let values: Vec<f32> = body[12..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(corrupt("non-finite value"));
    }
    Ok(values)
}

/// Read an embedding file: a regular file of at most [`MAX_EMBEDDING_BYTES`].
pub fn read(path: &Path) -> Result<Vec<f32>> {
    let bytes = crate::files::read_regular(path, MAX_EMBEDDING_BYTES).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    decode(&bytes, path)
}

/// Write atomically (temp file, fsync, rename), so a crash never leaves a half-written
/// embedding; concurrent writers of one path each use their own temporary file.
pub fn write(path: &Path, embedding: &[f32]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.tmp{}-{n}", std::process::id());
    crate::files::write_atomic(path, &tmp, &encode(embedding)).map_err(|e| io_error(path, e))
}

/// Default cache folder: `$STYLIZE_CACHE_DIR`, else `$XDG_CACHE_HOME/stylize/embeddings`,
/// else `~/.cache/stylize/embeddings`.
pub fn default_cache_dir() -> PathBuf {
    crate::runtime::user_dir(
        "STYLIZE_CACHE_DIR",
        "XDG_CACHE_HOME",
        ".cache",
        "embeddings",
    )
}

/// How an embedding was obtained from the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheOutcome {
    Hit,
    Computed,
    /// The cached file was corrupt (the error says why); it was recomputed and replaced.
    Repaired(String),
}

/// Embeddings of style images, keyed by the image file's hash and the predictor's hash.
pub struct EmbeddingCache {
    dir: PathBuf,
}

impl EmbeddingCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn path_for(&self, image_hash: &[u8; 32], model_hash: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.emb",
            hex(&image_hash[..16]),
            hex(&model_hash[..8])
        ))
    }

    /// The embedding of `image`, from the cache or computed (and stored).
    pub fn embed(
        &self,
        predictor: &mut StylePredictor,
        image: &Path,
    ) -> Result<(Vec<f32>, CacheOutcome)> {
        // One bounded read serves the hash and the decoder.
        let bytes = crate::image_io::read_image_file(image)?;
        let image_hash: [u8; 32] = Sha256::digest(&bytes).into();
        let path = self.path_for(&image_hash, predictor.model_hash());
        let mut outcome = CacheOutcome::Computed;
        if path.exists() {
            match read(&path) {
                Ok(v) if v.len() == predictor.info().embedding_len => {
                    return Ok((v, CacheOutcome::Hit))
                }
                Ok(v) => {
                    outcome = CacheOutcome::Repaired(format!(
                        "embedding file {} has {} values, expected {}",
                        path.display(),
                        v.len(),
                        predictor.info().embedding_len
                    ))
                }
                Err(e) => outcome = CacheOutcome::Repaired(e.to_string()),
            }
        }
        let img = crate::image_io::decode_rgb(&bytes, image)?;
        let embedding = predictor.embed(&img)?;
        write(&path, &embedding)?;
        Ok((embedding, outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detection() {
        let v = vec![0.5f32, -1.25, 3.0e-7, 42.0];
        let bytes = encode(&v);
        let p = Path::new("x.emb");
        assert_eq!(decode(&bytes, p).unwrap(), v);

        let mut flipped = bytes.clone();
        flipped[14] ^= 1;
        assert!(decode(&flipped, p)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        assert!(decode(&bytes[..bytes.len() - 1], p)
            .unwrap_err()
            .to_string()
            .contains("wrong length"));
        assert!(decode(b"garbage garbage garbage", p)
            .unwrap_err()
            .to_string()
            .contains("not a stylize embedding"));
    }

    #[test]
    fn atomic_write_then_read() {
        let dir = std::env::temp_dir().join(format!("stylize-emb-{}", std::process::id()));
        let path = dir.join("a/b.emb");
        write(&path, &[1.0, 2.0]).unwrap();
        assert_eq!(read(&path).unwrap(), vec![1.0, 2.0]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
