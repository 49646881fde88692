//! Still images (style images, content photos) from disk.

use std::io::Cursor;
use std::path::Path;

use crate::error::{Error, Result};
use crate::files::ReadError;
use crate::frame::RgbImage;
use crate::limits::{MAX_STYLE_IMAGE_BYTES, MAX_STYLE_IMAGE_PIXELS};

/// Decode a PNG or JPEG file to RGB, within the style-image limits.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    decode_rgb(&read_image_file(path)?, path)
}

/// The bytes of an image file: a regular file (not a FIFO or a device) of at most
/// [`MAX_STYLE_IMAGE_BYTES`].
pub fn read_image_file(path: &Path) -> Result<Vec<u8>> {
    crate::files::read_regular(path, MAX_STYLE_IMAGE_BYTES).map_err(|e| Error::Image {
        path: path.to_path_buf(),
        reason: match e {
            ReadError::NotFound => "the file does not exist".into(),
            other => other.to_string(),
        },
    })
}

/// Decode an encoded PNG or JPEG to RGB. The size in its header is checked against
/// [`MAX_STYLE_IMAGE_PIXELS`] before anything is allocated for the pixels.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let unreadable = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let reader = || {
        image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| unreadable(e.to_string()))
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| unreadable(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_STYLE_IMAGE_PIXELS {
        return Err(unreadable(format!(
            "{width}x{height} is past the limit of {MAX_STYLE_IMAGE_PIXELS} pixels; \
             scale the image down"
        )));
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    reader.limits(limits);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stylize-img-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A small JPEG whose header claims `width`x`height` (the SOF0 marker rewritten).
    fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 50]))
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
            .unwrap();
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline JPEG");
        bytes[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
        bytes
    }

    #[test]
    fn style_images_are_read_within_limits() {
        let dir = scratch("limits");
        let ok = dir.join("ok.jpg");
        std::fs::write(&ok, jpeg_claiming(16, 16)).unwrap();
        let img = load_rgb(&ok).unwrap();
        assert_eq!((img.width, img.height), (16, 16));

        // /dev/zero would grow memory without bound; a FIFO would block forever.
        let err = load_rgb(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(
            err.contains("a character device, not a regular file"),
            "{err}"
        );
        let fifo = dir.join("pipe.png");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let start = Instant::now();
        let err = load_rgb(&fifo).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2));
        let err = load_rgb(&dir).unwrap_err().to_string();
        assert!(err.contains("a directory"), "{err}");
        let err = load_rgb(&dir.join("missing.png")).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");

        // A file past the byte limit is refused from its size (sparse: no disk used).
        let huge = dir.join("huge.jpg");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(MAX_STYLE_IMAGE_BYTES + 1)
            .unwrap();
        let err = load_rgb(&huge).unwrap_err().to_string();
        assert!(err.contains("larger than the limit"), "{err}");

        // A header claiming 56 megapixels is refused before the pixels are allocated.
        let claims = dir.join("claims.jpg");
        std::fs::write(&claims, jpeg_claiming(8000, 7000)).unwrap();
        let err = load_rgb(&claims).unwrap_err().to_string();
        assert!(
            err.contains("8000x7000 is past the limit of 50000000 pixels"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
