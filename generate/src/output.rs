//! Generated images on disk: [-1,1] tensors → 8-bit RGB, PNG files written atomically, grids.
//!
//! Resumability rests on one rule: a file under its final name is complete. Every file is
//! written to `NAME.part` and renamed, so a killed run leaves at most a `.part` (removed on the
//! next run) and never a truncated output that a rerun would skip.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use stylize_engines::error::{Error, Result};
use stylize_engines::frame::RgbImage;

/// One image of an NCHW batch in [-1,1] as 8-bit RGB, the way the official StyleGAN and
/// DALL·E scripts quantise (`x * 127.5 + 128`, clamped).
pub fn to_rgb(chw: &[f32], height: usize, width: usize) -> RgbImage {
    let plane = height * width;
    assert_eq!(chw.len(), 3 * plane, "a 3-channel image");
    let mut img = RgbImage::new(width, height);
    for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
        for (c, v) in px.iter_mut().enumerate() {
            *v = (chw[c * plane + i] * 127.5 + 128.0).clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Images laid out row by row, `cols` per row; all must have the first image's size.
pub fn grid(images: &[RgbImage], cols: usize) -> Result<RgbImage> {
    let first = images
        .first()
        .ok_or_else(|| Error::Generate("a grid needs at least one image".into()))?;
    let (w, h) = (first.width, first.height);
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let mut out = RgbImage::new(w * cols, h * rows);
    for (i, img) in images.iter().enumerate() {
        if (img.width, img.height) != (w, h) {
            return Err(Error::Generate(format!(
                "grid tile {i} is {}x{}, expected {w}x{h}",
                img.width, img.height
            )));
        }
        let (x0, y0) = ((i % cols) * w, (i / cols) * h);
        for y in 0..h {
            let dst = ((y0 + y) * out.width + x0) * 3;
            out.data[dst..dst + w * 3].copy_from_slice(&img.data[y * w * 3..(y + 1) * w * 3]);
        }
    }
    Ok(out)
}

/// Columns of a near-square grid of `n` tiles.
pub fn grid_columns(n: usize) -> usize {
    (n as f64).sqrt().ceil().max(1.0) as usize
}

/// Where a file is written before it is renamed into place.
pub fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Write a file through `NAME.part` + rename, creating the parent folder.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let part = partial_path(path);
    if let Err(e) = write(&part) {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    std::fs::rename(&part, path).map_err(|e| io_error(path, e))
}

pub fn write_png(path: &Path, img: &RgbImage) -> Result<()> {
    write_atomic(path, |part| {
        let file = File::create(part).map_err(|e| io_error(part, e))?;
        let mut encoder =
            png::Encoder::new(BufWriter::new(file), img.width as u32, img.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| io_error(part, e))?;
        writer
            .write_image_data(&img.data)
            .map_err(|e| io_error(part, e))?;
        writer.finish().map_err(|e| io_error(part, e))
    })
}

/// Read an 8-bit RGB or RGBA PNG (alpha dropped), e.g. a finished tile of a resumed grid.
pub fn read_png(path: &Path) -> Result<RgbImage> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let decoder = png::Decoder::new(BufReader::new(file));
    let mut reader = decoder.read_info().map_err(|e| io_error(path, e))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(|e| io_error(path, e))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let data = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => buf[..w * h * 3].to_vec(),
        (png::ColorType::Rgba, png::BitDepth::Eight) => buf[..w * h * 4]
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        (color, depth) => {
            return Err(io_error(
                path,
                format!("{color:?} {depth:?} PNG; expected 8-bit RGB"),
            ))
        }
    };
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

/// Remove `*.part` leftovers of a killed run in `dir` (absent folder: nothing to do).
pub fn remove_partials(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "part") {
            std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(w: usize, h: usize, v: u8) -> RgbImage {
        RgbImage {
            width: w,
            height: h,
            data: (0..w * h * 3).map(|i| v.wrapping_add(i as u8)).collect(),
        }
    }

    #[test]
    fn grid_places_each_tile_at_its_cell() {
        let tiles: Vec<RgbImage> = (0..5).map(|i| tile(3, 2, i * 40)).collect();
        let g = grid(&tiles, 3).unwrap();
        assert_eq!((g.width, g.height), (9, 4));
        for (i, t) in tiles.iter().enumerate() {
            let (x0, y0) = ((i % 3) * 3, (i / 3) * 2);
            for y in 0..2 {
                for x in 0..3 {
                    let o = ((y0 + y) * 9 + x0 + x) * 3;
                    assert_eq!(&g.data[o..o + 3], &t.data[(y * 3 + x) * 3..][..3]);
                }
            }
        }
        assert!(grid(&[tile(3, 2, 0), tile(2, 2, 0)], 2).is_err());
        assert_eq!(grid_columns(64), 8);
        assert_eq!(grid_columns(5), 3);
    }

    #[test]
    fn quantisation_matches_the_official_scripts() {
        let img = to_rgb(&[-1.0, 0.0, 1.0], 1, 1);
        assert_eq!(img.data, vec![0, 128, 255]);
        let img = to_rgb(&[-3.0, 0.5, 7.0], 1, 1);
        assert_eq!(img.data, vec![0, 191, 255]);
    }

    #[test]
    fn png_round_trip_and_no_partial_left() {
        let dir = std::env::temp_dir().join(format!("stylize-png-{}", std::process::id()));
        let path = dir.join("a.png");
        let img = tile(7, 5, 3);
        write_png(&path, &img).unwrap();
        assert_eq!(read_png(&path).unwrap(), img);
        assert!(!partial_path(&path).exists());
        std::fs::write(dir.join("b.png.part"), b"half").unwrap();
        assert_eq!(remove_partials(&dir).unwrap(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
