//! Documented limits on every user-controlled size that drives an allocation.
//!
//! Each limit is checked before the allocation it guards, and a value past it is a clear
//! [`Error::Limit`] naming the value, the limit and what to do, never an abort. The numbers
//! are generous for real use (8K frames, 4K inference) and small enough that one bad value
//! cannot take the machine's memory: docs/reliability.md lists them with their reasons.

use crate::error::{Error, Result};

/// Largest inference area in pixels (3840×2160, 4K UHD). The 26-style network needs about
/// 1 KiB of activations per pixel under ONNX Runtime, so this bounds inference memory to a
/// few GiB; 8192×8192 would need over 60 GiB.
pub const MAX_INFERENCE_PIXELS: usize = 3840 * 2160;
/// Longest inference side in pixels.
pub const MAX_INFERENCE_SIDE: usize = 8192;
/// Largest video frame the element or the daemon accepts (8K UHD).
pub const MAX_FRAME_PIXELS: usize = 7680 * 4320;
/// Largest `stylize.size_multiple` a model may declare (real style nets use 4 to 32).
pub const MAX_SIZE_MULTIPLE: usize = 256;
/// Largest style image file read from disk, in bytes.
pub const MAX_STYLE_IMAGE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest decoded style image, in pixels (about 50 megapixels).
pub const MAX_STYLE_IMAGE_PIXELS: u64 = 50_000_000;
/// Longest control-protocol request line, in bytes.
pub const MAX_CONTROL_LINE: usize = 64 * 1024;
/// Largest style library index (`styles.toml`), in bytes: thousands of styles fit.
pub const MAX_LIBRARY_INDEX_BYTES: u64 = 4 * 1024 * 1024;
/// Largest embedding file, in bytes (real embeddings have 100 values, 420 bytes).
pub const MAX_EMBEDDING_BYTES: u64 = 1024 * 1024;
/// Longest conditioning vector a model may take (`style_weights` N or embedding D).
pub const MAX_CONDITIONING_LEN: usize = 65_536;
/// Most control connections served at once; more are answered with an error and closed.
pub const MAX_CONTROL_CLIENTS: usize = 16;
/// Most CPU inference threads (ONNX Runtime's pool); 0 means one per core.
pub const MAX_THREADS: u32 = 256;
/// Inference scale range (fraction of the frame size).
pub const MIN_SCALE: f64 = 0.01;
pub const MAX_SCALE: f64 = 4.0;

/// Refuse an inference size whose area or side is past the limits.
pub fn check_inference_size(width: usize, height: usize) -> Result<()> {
    let area = width.saturating_mul(height);
    if width > MAX_INFERENCE_SIDE || height > MAX_INFERENCE_SIDE || area > MAX_INFERENCE_PIXELS {
        return Err(Error::Limit(format!(
            "inference size {width}x{height} is past the limit ({MAX_INFERENCE_SIDE} px a side, \
             {MAX_INFERENCE_PIXELS} px in all, i.e. 3840x2160); choose a smaller \
             inference size or scale"
        )));
    }
    Ok(())
}

/// Refuse a frame size past [`MAX_FRAME_PIXELS`].
pub fn check_frame_size(width: usize, height: usize) -> Result<()> {
    if width.saturating_mul(height) > MAX_FRAME_PIXELS {
        return Err(Error::Limit(format!(
            "frame size {width}x{height} is past the limit of {MAX_FRAME_PIXELS} pixels (8K UHD)"
        )));
    }
    Ok(())
}

/// Refuse a scale outside [`MIN_SCALE`]..=[`MAX_SCALE`] (NaN included).
pub fn check_scale(scale: f64) -> Result<()> {
    if !(MIN_SCALE..=MAX_SCALE).contains(&scale) {
        return Err(Error::Limit(format!(
            "scale {scale} is outside {MIN_SCALE}..={MAX_SCALE}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_the_limits_are_refused() {
        assert!(check_inference_size(3840, 2160).is_ok());
        assert!(check_inference_size(1, 8192).is_ok());
        assert!(check_inference_size(8193, 1).is_err());
        assert!(check_inference_size(8192, 6144).is_err());
        assert!(check_inference_size(usize::MAX, usize::MAX).is_err());
        assert!(check_frame_size(7680, 4320).is_ok());
        assert!(check_frame_size(7681, 4320).is_err());
        assert!(check_scale(1.0).is_ok());
        assert!(check_scale(0.0).is_err());
        assert!(check_scale(f64::NAN).is_err());
        assert!(check_scale(1000.0).is_err());
    }
}
