//! Still images (style images, content photos) from disk.

use std::path::Path;

use crate::error::{Error, Result};
use crate::frame::RgbImage;

/// Decode a PNG or JPEG file to RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let unreadable = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| unreadable(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?;
    let decoded = reader.decode().map_err(|e| unreadable(e.to_string()))?;
    let rgb = decoded.to_rgb8();
    Ok(RgbImage {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

/// Encode an RGB image as PNG (for contact sheets, generated images and test artefacts).
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    image::save_buffer(
        path,
        &img.data,
        img.width as u32,
        img.height as u32,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
