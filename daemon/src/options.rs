//! Command-line value parsers shared by every subcommand.
//!
//! Each numeric option has a documented range, checked here, while parsing: a value out
//! of range is a clap usage error (exit 2) naming the range, never a panic later when it
//! reaches a GStreamer property or an allocation. The limits that guard memory come from
//! [`stylize_engines::limits`], so the CLI, the element and the engine agree.

use stylize_engines::limits::{check_inference_size, MAX_SCALE, MAX_THREADS, MIN_SCALE};

/// Largest x264 constant quantizer (x264enc's `quantizer` range is 0..=50; 0 is lossless).
pub const MAX_QUANTIZER: u32 = 50;

fn parse_f64(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{s}` is not a number"))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("`{s}` is not a whole number (0 to {})", u32::MAX))
}

/// A size as WIDTHxHEIGHT; 0 in one dimension (not both) keeps the aspect ratio.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT"))?;
    let num = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{v}` in `{s}` is not a number"))
    };
    let (w, h) = (num(w)?, num(h)?);
    if w == 0 && h == 0 {
        return Err("width and height cannot both be 0".into());
    }
    Ok((w, h))
}

/// An inference size: WIDTHxHEIGHT within the engine's limits (a side of at most
/// `MAX_INFERENCE_SIDE`, an area of at most `MAX_INFERENCE_PIXELS`), refused before
/// anything is allocated.
pub fn parse_inference_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = parse_size(s)?;
    check_inference_size(w as usize, h as usize).map_err(|e| e.to_string())?;
    Ok((w, h))
}

/// Inference scale, a fraction of the frame size: `MIN_SCALE` to `MAX_SCALE`.
pub fn parse_scale(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if !(MIN_SCALE..=MAX_SCALE).contains(&v) {
        return Err(format!("scale {v} is outside {MIN_SCALE} to {MAX_SCALE}"));
    }
    Ok(v)
}

/// Any finite number (NaN or infinity as a truncation made every pixel NaN, a black image).
pub fn parse_finite_f32(s: &str) -> Result<f32, String> {
    let v = parse_f64(s)? as f32;
    if !v.is_finite() {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v)
}

/// A finite number of at least 0 (a sampling temperature).
pub fn parse_non_negative_f32(s: &str) -> Result<f32, String> {
    let v = parse_finite_f32(s)?;
    if v < 0.0 {
        return Err(format!("{v} is negative"));
    }
    Ok(v)
}

/// A fraction from 0 to 1 (style strength, temporal stability).
pub fn parse_unit(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{v} is not between 0 and 1"));
    }
    Ok(v)
}

/// CPU inference threads: 0 (one per core) to `MAX_THREADS`.
pub fn parse_threads(s: &str) -> Result<u32, String> {
    let v = parse_u32(s)?;
    if v > MAX_THREADS {
        return Err(format!(
            "{v} threads is more than the limit of {MAX_THREADS}"
        ));
    }
    Ok(v)
}

/// x264 constant quantizer, 0 (lossless) to [`MAX_QUANTIZER`].
pub fn parse_quantizer(s: &str) -> Result<u32, String> {
    let v = parse_u32(s)?;
    if v > MAX_QUANTIZER {
        return Err(format!("quantizer {v} is outside 0 to {MAX_QUANTIZER}"));
    }
    Ok(v)
}

/// A whole number within `min..=max` (counts, frame rates, overlaps).
pub fn parse_u32_in(s: &str, min: u32, max: u32) -> Result<u32, String> {
    let v = parse_u32(s)?;
    if !(min..=max).contains(&v) {
        return Err(format!("{v} is outside {min} to {max}"));
    }
    Ok(v)
}

/// Most segments a job may be cut into.
pub const MAX_SEGMENTS: u32 = 10_000;

/// `K/N`: the K-th (from 1) of N equal parts, N at most [`MAX_SEGMENTS`].
pub fn parse_segment(s: &str) -> Result<(u32, u32), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not K/N (e.g. 3/8: the third of eight parts)"))?;
    let (k, n) = (parse_u32(k)?, parse_u32(n)?);
    if !(1..=MAX_SEGMENTS).contains(&n) || !(1..=n).contains(&k) {
        return Err(format!(
            "`{s}`: K/N needs 1 <= K <= N <= {MAX_SEGMENTS} (K counts from 1)"
        ));
    }
    Ok((k, n))
}

/// Warm-up frames before a segment's cut: 0 to 250.
pub fn parse_overlap(s: &str) -> Result<u32, String> {
    parse_u32_in(s, 0, 250)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_clear_errors() {
        assert_eq!(parse_size("320x180"), Ok((320, 180)));
        assert_eq!(parse_size("320X0"), Ok((320, 0)));
        assert!(parse_size("320").unwrap_err().contains("WIDTHxHEIGHT"));
        assert!(parse_size("ax2").unwrap_err().contains("not a number"));
        assert!(parse_size("0x0").unwrap_err().contains("both be 0"));
    }

    #[test]
    fn out_of_range_values_name_their_range() {
        assert_eq!(parse_inference_size("640x0"), Ok((640, 0)));
        assert_eq!(parse_inference_size("3840x2160"), Ok((3840, 2160)));
        assert!(parse_inference_size("9000x9000")
            .unwrap_err()
            .contains("past the limit"));
        assert!(parse_inference_size("9000x0").is_err());
        assert_eq!(parse_scale("0.5"), Ok(0.5));
        for bad in ["0", "nan", "inf", "-1", "4.5", "x"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
        assert!(parse_scale("0").unwrap_err().contains("0.01 to 4"));
        assert_eq!(parse_unit("1"), Ok(1.0));
        assert!(parse_unit("7").unwrap_err().contains("between 0 and 1"));
        assert!(parse_unit("NaN").unwrap_err().contains("not a number"));
        assert_eq!(parse_threads("0"), Ok(0));
        assert!(parse_threads("1000").unwrap_err().contains("limit of 256"));
        assert!(parse_threads("-1").is_err());
        assert_eq!(parse_quantizer("0"), Ok(0));
        assert!(parse_quantizer("1000").unwrap_err().contains("0 to 50"));
        assert!(parse_u32_in("0", 1, 8).unwrap_err().contains("1 to 8"));
        assert_eq!(parse_segment("3/8"), Ok((3, 8)));
        assert!(parse_segment("0/8")
            .unwrap_err()
            .contains("K counts from 1"));
        assert!(parse_segment("9/8").is_err());
        assert!(parse_segment("1/0").is_err());
        assert!(parse_segment("3").unwrap_err().contains("not K/N"));
        assert!(parse_overlap("251").is_err());
        assert_eq!(parse_finite_f32("0.7"), Ok(0.7));
        for bad in ["nan", "inf", "1e39", "x"] {
            assert!(parse_finite_f32(bad).is_err(), "{bad}");
        }
        assert!(parse_non_negative_f32("-1")
            .unwrap_err()
            .contains("negative"));
        assert_eq!(parse_non_negative_f32("0"), Ok(0.0));
    }
}
