//! Output container and codecs, chosen by the output's extension, `--codec` and
//! `--quality`.
//!
//! | extension     | muxer        | video codecs (first: default)      | audio re-encoded to |
//! |---------------|--------------|------------------------------------|---------------------|
//! | .mp4, .m4v    | mp4mux       | h264, h265, vp9                    | AAC                 |
//! | .mov          | qtmux        | h264, h265, prores, vp9            | AAC                 |
//! | .mkv          | matroskamux  | h264, h265, vp9, ffv1, prores      | FLAC                |
//! | .webm         | webmmux      | vp9                                | Opus                |
//!
//! Every encoder runs without frame reordering (no B-frames): the output then carries the
//! input's timestamps unchanged, and segments made on different machines join with no
//! decreasing decode timestamps at the cuts.

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use gst::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Mov,
    Mkv,
    Webm,
}

/// Video codecs of the output (`--codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Codec {
    /// H.264 (x264): plays everywhere.
    H264,
    /// H.265/HEVC (x265): smaller files at the same quality.
    H265,
    /// VP9 (libvpx): the WebM codec.
    Vp9,
    /// FFV1: lossless, for editing (MKV).
    Ffv1,
    /// Apple ProRes 422/4444 (MOV, MKV): an editing intermediate.
    Prores,
}

/// Quality levels (`--quality`), mapped to each codec's own scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Quality {
    /// Small files for previews.
    Draft,
    /// Good quality at a moderate size.
    #[default]
    Normal,
    /// Visually lossless.
    High,
    /// Lossless where the codec allows (H.264 QP 0 and H.265 lossless, in 4:4:4; FFV1 in
    /// RGB); VP9 at quantizer 0 (near-lossless); ProRes 4444 XQ.
    Lossless,
}

impl Container {
    /// The container for an output path's extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Ok(match ext.as_str() {
            "mp4" | "m4v" => Self::Mp4,
            "mov" => Self::Mov,
            "mkv" => Self::Mkv,
            "webm" => Self::Webm,
            _ => bail!(
                "output {}: unsupported extension{}: use .mp4, .mov, .mkv or .webm",
                path.display(),
                if ext.is_empty() {
                    String::new()
                } else {
                    format!(" .{ext}")
                }
            ),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Mp4 => "MP4",
            Self::Mov => "MOV",
            Self::Mkv => "MKV",
            Self::Webm => "WebM",
        }
    }

    fn muxer_factory(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4mux",
            Self::Mov => "qtmux",
            Self::Mkv => "matroskamux",
            Self::Webm => "webmmux",
        }
    }

    /// Video codecs this container takes; the first is the default.
    pub fn codecs(self) -> &'static [Codec] {
        match self {
            Self::Mp4 => &[Codec::H264, Codec::H265, Codec::Vp9],
            Self::Mov => &[Codec::H264, Codec::H265, Codec::Prores, Codec::Vp9],
            Self::Mkv => &[
                Codec::H264,
                Codec::H265,
                Codec::Vp9,
                Codec::Ffv1,
                Codec::Prores,
            ],
            Self::Webm => &[Codec::Vp9],
        }
    }

    pub fn muxer(self) -> Result<gst::Element> {
        let mux = make(self.muxer_factory())?;
        if matches!(self, Self::Mp4 | Self::Mov) {
            // A stream that starts later than another (audio before the first video frame)
            // keeps its offset as an edit list; by default qtmux moves every stream to 0.
            mux.set_property("start-gap-threshold", 1_000_000u64);
        }
        Ok(mux)
    }

    /// The audio encoder (and parser) used when the input's audio cannot pass through.
    pub fn audio_encoder(self) -> Result<(Vec<gst::Element>, &'static str)> {
        Ok(match self {
            Self::Mp4 | Self::Mov => {
                let enc = make_any(&["avenc_aac", "voaacenc", "fdkaacenc"])?;
                (vec![enc, make("aacparse")?], "AAC")
            }
            Self::Mkv => (vec![make("flacenc")?, make("flacparse")?], "FLAC"),
            Self::Webm => (vec![make("opusenc")?, make("opusparse")?], "Opus"),
        })
    }
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Self::H264 => "H.264",
            Self::H265 => "H.265",
            Self::Vp9 => "VP9",
            Self::Ffv1 => "FFV1",
            Self::Prores => "ProRes",
        }
    }

    fn encoder_factory(self) -> &'static str {
        match self {
            Self::H264 => "x264enc",
            Self::H265 => "x265enc",
            Self::Vp9 => "vp9enc",
            Self::Ffv1 => "avenc_ffv1",
            Self::Prores => "avenc_prores_ks",
        }
    }
}

/// What the output is made of: container, video codec, quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormat {
    pub container: Container,
    pub codec: Codec,
    pub quality: Quality,
    /// `--quantizer`: an explicit H.264/H.265 constant quantizer over `quality`.
    pub quantizer: Option<u32>,
}

impl OutputFormat {
    pub fn new(
        path: &Path,
        codec: Option<Codec>,
        quality: Quality,
        quantizer: Option<u32>,
    ) -> Result<Self> {
        let container = Container::from_path(path)?;
        let codec = codec.unwrap_or(container.codecs()[0]);
        if !container.codecs().contains(&codec) {
            let names: Vec<_> = container
                .codecs()
                .iter()
                .map(|c| {
                    c.to_possible_value()
                        .expect("no skipped variants")
                        .get_name()
                        .to_string()
                })
                .collect();
            bail!(
                "{} does not take {}: use --codec {} (or another extension)",
                container.name(),
                codec.name(),
                names.join(", ")
            );
        }
        if quantizer.is_some() && !matches!(codec, Codec::H264 | Codec::H265) {
            bail!(
                "--quantizer is for H.264 and H.265; use --quality with {}",
                codec.name()
            );
        }
        Ok(Self {
            container,
            codec,
            quality,
            quantizer,
        })
    }

    /// Encoder, then parser where the muxer needs one, configured for the quality.
    pub fn video_encoder(&self) -> Result<Vec<gst::Element>> {
        let enc = make(self.codec.encoder_factory()).with_context(|| {
            format!(
                "{} output needs the `{}` encoder",
                self.codec.name(),
                self.codec.encoder_factory()
            )
        })?;
        let q = self.quality;
        match self.codec {
            Codec::H264 => {
                enc.set_property_from_str("pass", "quant");
                let qp = self.quantizer.unwrap_or(match q {
                    Quality::Draft => 28,
                    Quality::Normal => 20,
                    Quality::High => 14,
                    Quality::Lossless => 0,
                });
                enc.set_property("quantizer", qp);
                enc.set_property_from_str("speed-preset", "faster");
                // No B-frames: with them mp4mux shifts every PTS by the reorder delay and
                // the output would no longer carry the input's timestamps.
                enc.set_property("bframes", 0u32);
                Ok(vec![enc, make("h264parse")?])
            }
            Codec::H265 => {
                let qp = self.quantizer.map(|v| v as i32).unwrap_or(match q {
                    Quality::Draft => 30,
                    Quality::Normal => 24,
                    Quality::High => 18,
                    Quality::Lossless => 0,
                });
                enc.set_property("qp", qp.min(51));
                enc.set_property_from_str("speed-preset", "faster");
                let lossless = if q == Quality::Lossless && self.quantizer.is_none() {
                    ":lossless=1"
                } else {
                    ""
                };
                enc.set_property("option-string", format!("bframes=0{lossless}"));
                Ok(vec![enc, make("h265parse")?])
            }
            Codec::Vp9 => {
                // Constrained quality with a cap no real stream reaches: quality-driven
                // like x264's constant quantizer (GStreamer exposes no pure "q" mode).
                enc.set_property_from_str("end-usage", "cq");
                enc.set_property("target-bitrate", 200_000_000i32);
                let (cq, min_q, max_q) = match q {
                    Quality::Draft => (40, 4, 63),
                    Quality::Normal => (32, 4, 63),
                    Quality::High => (20, 0, 63),
                    Quality::Lossless => (0, 0, 0),
                };
                enc.set_property("cq-level", cq);
                enc.set_property("min-quantizer", min_q);
                enc.set_property("max-quantizer", max_q);
                // libvpx's "good" deadline at speed 4: the usual speed/quality trade-off.
                enc.set_property("cpu-used", 4i32);
                // No lookahead: with it (the default 25 frames) libvpx in constrained-
                // quality mode lost frames here (44 of 50 written); every frame counts.
                enc.set_property("lag-in-frames", 0i32);
                enc.set_property("row-mt", true);
                enc.set_property("threads", available_threads().min(64) as i32);
                Ok(vec![enc, make("vp9parse")?])
            }
            Codec::Ffv1 => Ok(vec![enc]),
            Codec::Prores => {
                enc.set_property_from_str(
                    "profile",
                    match q {
                        Quality::Draft => "proxy",
                        Quality::Normal => "standard",
                        Quality::High => "hq",
                        Quality::Lossless => "4444xq",
                    },
                );
                Ok(vec![enc])
            }
        }
    }

    /// The raw format the encoder is given: 4:2:0 for the delivery codecs (what every
    /// player takes; 4:4:4 when lossless), RGB for FFV1 (lossless from the stylized RGB
    /// frames), 10-bit 4:2:2 or 4:4:4 for ProRes.
    pub fn raw_format(&self) -> &'static str {
        let lossless = self.quality == Quality::Lossless;
        match self.codec {
            Codec::H264 | Codec::H265 | Codec::Vp9 if lossless => "Y444",
            Codec::H264 | Codec::H265 | Codec::Vp9 => "I420",
            Codec::Ffv1 => "BGRx",
            Codec::Prores if lossless => "Y444_10LE",
            Codec::Prores => "I422_10LE",
        }
    }
}

fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn make(factory: &str) -> Result<gst::Element> {
    gst::ElementFactory::make(factory).build().with_context(|| {
        format!(
            "GStreamer element `{factory}` is missing (run scripts/setup to install the plugins)"
        )
    })
}

/// The first of several interchangeable elements that is installed.
fn make_any(factories: &[&str]) -> Result<gst::Element> {
    factories
        .iter()
        .find_map(|f| gst::ElementFactory::make(f).build().ok())
        .with_context(|| {
            format!(
                "none of the GStreamer elements {} is installed (run scripts/setup)",
                factories.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_container_and_its_default_codec() {
        let f = |p: &str, c| OutputFormat::new(Path::new(p), c, Quality::Normal, None);
        assert_eq!(f("a.MP4", None).unwrap().codec, Codec::H264);
        assert_eq!(f("a.mov", None).unwrap().container, Container::Mov);
        assert_eq!(f("a.mkv", Some(Codec::Ffv1)).unwrap().codec, Codec::Ffv1);
        assert_eq!(f("a.webm", None).unwrap().codec, Codec::Vp9);
        let err = f("a.webm", Some(Codec::H264)).unwrap_err().to_string();
        assert!(
            err.contains("WebM does not take H.264: use --codec vp9"),
            "{err}"
        );
        let err = f("a.avi", None).unwrap_err().to_string();
        assert!(err.contains("unsupported extension .avi"), "{err}");
        assert!(f("noext", None).is_err());
        let err = OutputFormat::new(Path::new("a.mkv"), Some(Codec::Vp9), Quality::High, Some(3))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--quantizer is for H.264"), "{err}");
    }

    /// Each container's codec table agrees with what its muxer really accepts.
    #[test]
    fn every_listed_codec_links_to_its_muxer() {
        gst::init().unwrap();
        for container in [
            Container::Mp4,
            Container::Mov,
            Container::Mkv,
            Container::Webm,
        ] {
            for &codec in container.codecs() {
                let format = OutputFormat::new(
                    Path::new(&format!("x.{}", container.name().to_lowercase())),
                    Some(codec),
                    Quality::Normal,
                    None,
                )
                .unwrap();
                let Ok(chain) = format.video_encoder() else {
                    continue; // encoder not installed here: the run would say so
                };
                let mux = container.muxer().unwrap();
                let src = chain.last().unwrap().static_pad("src").unwrap();
                let mux_pad = mux.request_pad_simple("video_%u").unwrap();
                assert!(
                    mux_pad
                        .query_caps(None)
                        .can_intersect(&src.pad_template_caps()),
                    "{container:?} {codec:?}"
                );
            }
        }
    }
}
