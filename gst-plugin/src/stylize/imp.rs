use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use stylize_engines::backend::{BackendKind, BackendOptions};
use stylize_engines::embedding::{self, EmbeddingCache};
use stylize_engines::frame::{FrameLayout, PixelFormat};
use stylize_engines::library::{self, Library};
use stylize_engines::model::Family;
use stylize_engines::predictor::StylePredictor;
use stylize_engines::temporal::DEFAULT_STABILITY;
use stylize_engines::{style, InferenceSize, StyleRequest, StyleResolver, Stylizer};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stylize",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

const DEFAULT_SCALE: f64 = 1.0;

/// The `backend` property (a GEnum, so gst-inspect lists the choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstStylizeBackend")]
pub enum Backend {
    #[default]
    #[enum_value(name = "TensorRT, then CUDA, then CPU, by what loads", nick = "auto")]
    Auto,
    #[enum_value(name = "ONNX Runtime on the CPU", nick = "cpu")]
    Cpu,
    #[enum_value(name = "ONNX Runtime CUDA execution provider", nick = "cuda")]
    Cuda,
    #[enum_value(
        name = "ONNX Runtime TensorRT execution provider (fp16, engine cache)",
        nick = "tensorrt"
    )]
    TensorRt,
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => BackendKind::Auto,
            Backend::Cpu => BackendKind::Cpu,
            Backend::Cuda => BackendKind::Cuda,
            Backend::TensorRt => BackendKind::TensorRt,
        }
    }
}
const DEFAULT_STRENGTH: f64 = 1.0;
/// Looked for next to an arbitrary-style model when `predictor` is not set.
const DEFAULT_PREDICTOR_NAME: &str = "arbitrary-predict.onnx";

/// Packed RGB layouts handled natively; YUV input goes through `videoconvert` upstream.
const FORMATS: [(gst_video::VideoFormat, PixelFormat); 10] = [
    (gst_video::VideoFormat::Rgbx, PixelFormat::Rgbx),
    (gst_video::VideoFormat::Bgrx, PixelFormat::Bgrx),
    (gst_video::VideoFormat::Xrgb, PixelFormat::Xrgb),
    (gst_video::VideoFormat::Xbgr, PixelFormat::Xbgr),
    (gst_video::VideoFormat::Rgba, PixelFormat::Rgba),
    (gst_video::VideoFormat::Bgra, PixelFormat::Bgra),
    (gst_video::VideoFormat::Argb, PixelFormat::Argb),
    (gst_video::VideoFormat::Abgr, PixelFormat::Abgr),
    (gst_video::VideoFormat::Rgb, PixelFormat::Rgb),
    (gst_video::VideoFormat::Bgr, PixelFormat::Bgr),
];

#[derive(Debug, Clone, PartialEq)]
struct Settings {
    model: Option<PathBuf>,
    style: Option<String>,
    style_weights: Option<String>,
    style_image: Option<PathBuf>,
    prompt: Option<String>,
    style_strength: f64,
    predictor: Option<PathBuf>,
    library: Option<PathBuf>,
    inference_width: u32,
    inference_height: u32,
    scale: f64,
    threads: u32,
    stability: f64,
    backend: Backend,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: None,
            style: None,
            style_weights: None,
            style_image: None,
            prompt: None,
            style_strength: DEFAULT_STRENGTH,
            predictor: None,
            library: None,
            inference_width: 0,
            inference_height: 0,
            scale: DEFAULT_SCALE,
            threads: 0,
            backend: Backend::Auto,
            stability: DEFAULT_STABILITY,
        }
    }
}

impl Settings {
    fn inference_size(&self) -> InferenceSize {
        InferenceSize {
            width: self.inference_width as usize,
            height: self.inference_height as usize,
            scale: self.scale,
        }
    }

    fn style_request(&self) -> Applied {
        let request = StyleRequest {
            style: self.style.clone(),
            blend: self.style_weights.clone(),
            image: self.style_image.clone(),
        };
        (request, self.style_strength, self.prompt.clone())
    }

    fn library_dir(&self) -> PathBuf {
        self.library.clone().unwrap_or_else(library::default_dir)
    }
}

/// Load the model and, for arbitrary-style models, its style predictor (one instance for
/// per-frame strength, one for resolving style images), and the style library.
fn load(settings: &Settings, model: &std::path::Path) -> Result<(Stylizer, StyleResolver), String> {
    let options = BackendOptions {
        threads: settings.threads as usize,
        kind: settings.backend.into(),
        engine_cache: None,
    };
    let mut stylizer = Stylizer::load(model, &options).map_err(|e| e.to_string())?;
    let mut predictor = None;
    if stylizer.info().family == Family::Arbitrary {
        let explicit = settings.predictor.clone();
        let path = explicit
            .clone()
            .unwrap_or_else(|| model.with_file_name(DEFAULT_PREDICTOR_NAME));
        // A missing default predictor only matters once a style image or strength needs it.
        if explicit.is_some() || path.exists() {
            let open = || StylePredictor::load(&path, options.threads).map_err(|e| e.to_string());
            stylizer
                .attach_predictor(open()?)
                .map_err(|e| e.to_string())?;
            predictor = Some(open()?);
        }
    }
    let library = Library::open(&settings.library_dir()).map_err(|e| e.to_string())?;
    let resolver = StyleResolver::new(
        stylizer.info().clone(),
        Some(library),
        EmbeddingCache::new(embedding::default_cache_dir()),
        predictor,
    );
    Ok((stylizer, resolver))
}

/// A style request, the strength and the text prompt (which overrides the request).
type Applied = (StyleRequest, f64, Option<String>);

/// The conditioning for a request: the tuned prompt when one is set, else the style request.
fn resolve_applied(
    stylizer: &mut Stylizer,
    resolver: &mut StyleResolver,
    request: &Applied,
) -> stylize_engines::Result<stylize_engines::ResolvedStyle> {
    stylizer.set_strength(request.1 as f32)?;
    match &request.2 {
        Some(prompt) => resolver.resolve_prompt(prompt),
        None => resolver.resolve(&request.0),
    }
}

struct State {
    stylizer: Stylizer,
    resolver: StyleResolver,
    /// The style request (and strength) the current conditioning was resolved from.
    applied: Applied,
    conditioning: Vec<f32>,
    layout: Option<FrameLayout>,
    /// Model time per frame, measured at negotiation and refreshed while running; reported
    /// in the latency query.
    latency: gst::ClockTime,
    frames: u64,
}

#[derive(Default)]
pub struct Stylize {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl Stylize {
    fn latency(&self) -> gst::ClockTime {
        self.state
            .lock()
            .unwrap()
            .as_ref()
            .map_or(gst::ClockTime::ZERO, |s| s.latency)
    }

    /// Re-resolve the style when the request changed since the last frame. A bad request while
    /// running keeps the current style and posts a warning, so a live stream is never lost to
    /// a typo; at start-up it is an error (see `start`).
    fn refresh_style(&self, state: &mut State, request: Applied) {
        if state.applied == request {
            return;
        }
        let resolved = resolve_applied(&mut state.stylizer, &mut state.resolver, &request);
        match resolved {
            Ok(resolved) => {
                gst::info!(CAT, imp = self, "style now {request:?}");
                self.post_notes(&resolved.notes);
                state.conditioning = resolved.conditioning;
                // A new style shows in full on the next frame, not faded in by smoothing.
                state.stylizer.reset_temporal();
            }
            Err(err) => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("{err}; keeping the previous style")
                );
            }
        }
        state.applied = request;
    }

    fn post_notes(&self, notes: &[String]) {
        for note in notes {
            gst::element_imp_warning!(self, gst::LibraryError::Settings, ("{note}"));
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Stylize {
    const NAME: &'static str = "GstStylize";
    type Type = super::Stylize;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for Stylize {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(
                        "Path of the ONNX style model: a per-style net, a multi-style CIN net or \
                         an arbitrary-style net following the stylize contract (tensors \
                         content/style_weights/stylized). Loaded when the element starts.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("style")
                    .nick("Style")
                    .blurb(
                        "Style of a multi-style model: its name (see the model-styles \
                         property), style-NN or an index. Changeable while PLAYING; applies \
                         from the next frame. Ignored while style-weights is set.",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("style-weights")
                    .nick("Style weights")
                    .blurb(
                        "Blend of styles as name:weight pairs, e.g. \
                         \"starry-swirls:0.7,mosaic:0.3\"; weights are normalised to sum to 1. \
                         Overrides style. Changeable while PLAYING; applies from the next frame.",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("style-image")
                    .nick("Style image")
                    .blurb(
                        "Any PNG/JPEG image to take the style from (arbitrary-style models): the \
                         predictor turns it into an embedding, cached on disk by file and model \
                         hash. Overrides style and style-weights. Changeable while PLAYING.",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("prompt")
                    .nick("Text prompt")
                    .blurb(
                        "A text prompt tuned with `stylize tune` (arbitrary-style models): the \
                         library style whose prompt (or name) matches. An untuned prompt posts \
                         a warning and keeps the current style. Overrides style, style-weights \
                         and style-image. Changeable while PLAYING.",
                    )
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("style-strength")
                    .nick("Style strength")
                    .blurb(
                        "0..1: 1 is the full style. Arbitrary-style models interpolate the \
                         style embedding toward the frame's own embedding; other models blend \
                         the stylized frame with the original. Changeable while PLAYING.",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STRENGTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("predictor")
                    .nick("Style predictor")
                    .blurb(
                        "Style predictor ONNX model for arbitrary-style models (image -> \
                         embedding). Default: arbitrary-predict.onnx next to the model.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("library")
                    .nick("Style library")
                    .blurb(
                        "Style library folder (styles.toml index, see `stylize styles`); its \
                         names work in style and style-weights. Default: $STYLIZE_LIBRARY or \
                         ~/.local/share/stylize/styles.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("inference-width")
                    .nick("Inference width")
                    .blurb(
                        "Width the network runs at (frames are scaled down, stylized and \
                         scaled back to the caps size). 0: from inference-height keeping the \
                         aspect ratio, or from scale when both are 0.",
                    )
                    .maximum(8192)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inference-height")
                    .nick("Inference height")
                    .blurb(
                        "Height the network runs at. 0: from inference-width keeping the \
                         aspect ratio, or from scale when both are 0.",
                    )
                    .maximum(8192)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("scale")
                    .nick("Inference scale")
                    .blurb(
                        "Inference size as a fraction of the frame size, used when \
                         inference-width and inference-height are 0. Lower is faster.",
                    )
                    .minimum(0.01)
                    .maximum(4.0)
                    .default_value(DEFAULT_SCALE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("CPU inference threads; 0 lets ONNX Runtime use one per core.")
                    .maximum(256)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("stability")
                    .nick("Temporal stability")
                    .blurb(
                        "Motion-compensated smoothing of the output against flicker, 0 (off) \
                         to 1: the previous stylized frame is warped along the motion of the \
                         input and blended in, except where the warp disagrees with the input \
                         (moving edges, occlusions), so edges leave no trails. Changeable while \
                         PLAYING.",
                    )
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STABILITY)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", Backend::Auto)
                    .nick("Backend")
                    .blurb(
                        "Inference backend. GPU backends need a build with the tensorrt \
                         feature and the runtime libraries of scripts/setup-gpu; an explicit \
                         GPU backend that cannot load is an error naming what is missing.",
                    )
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("model-styles")
                    .nick("Model styles")
                    .blurb("Comma-separated style names of the loaded model (read-only).")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        let text = || {
            value
                .get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.trim().is_empty())
        };
        match pspec.name() {
            "model" => settings.model = text().map(PathBuf::from),
            "style" => settings.style = text(),
            "style-weights" => settings.style_weights = text(),
            "style-image" => settings.style_image = text().map(PathBuf::from),
            "prompt" => settings.prompt = text(),
            "style-strength" => settings.style_strength = value.get().expect("type checked"),
            "predictor" => settings.predictor = text().map(PathBuf::from),
            "library" => settings.library = text().map(PathBuf::from),
            "inference-width" => settings.inference_width = value.get().expect("type checked"),
            "inference-height" => settings.inference_height = value.get().expect("type checked"),
            "scale" => settings.scale = value.get().expect("type checked"),
            "threads" => settings.threads = value.get().expect("type checked"),
            "backend" => settings.backend = value.get().expect("type checked"),
            "stability" => settings.stability = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} = {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => settings
                .model
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "style" => settings.style.to_value(),
            "style-weights" => settings.style_weights.to_value(),
            "style-image" => settings
                .style_image
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "prompt" => settings.prompt.to_value(),
            "style-strength" => settings.style_strength.to_value(),
            "predictor" => settings
                .predictor
                .as_ref()
                .map(|p| p.display().to_string())
                .to_value(),
            "library" => settings.library_dir().display().to_string().to_value(),
            "inference-width" => settings.inference_width.to_value(),
            "inference-height" => settings.inference_height.to_value(),
            "scale" => settings.scale.to_value(),
            "threads" => settings.threads.to_value(),
            "backend" => settings.backend.to_value(),
            "stability" => settings.stability.to_value(),
            "model-styles" => {
                let state = self.state.lock().unwrap();
                state.as_ref().map(|s| {
                    let info = s.stylizer.info();
                    if info.styles.is_empty() {
                        (0..info.conditioning_len)
                            .map(style::alias)
                            .collect::<Vec<_>>()
                            .join(",")
                    } else {
                        info.styles.join(",")
                    }
                })
            }
            .to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for Stylize {}

impl ElementImpl for Stylize {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Neural style transfer",
                "Filter/Effect/Video",
                "Applies a neural style network (per-style, multi-style CIN or arbitrary-style \
                 ONNX model) to every frame, with styles switchable and blendable per frame",
                "stylize developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS.iter().map(|(f, _)| *f))
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Stylize {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let Some(model) = settings.model.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no model set: set the `model` property to an ONNX style model")
            ));
        };
        let (mut stylizer, mut resolver) = load(&settings, &model).map_err(|err| {
            let kind = if err.contains("does not exist") {
                gst::ResourceError::NotFound
            } else {
                gst::ResourceError::OpenRead
            };
            gst::error_msg!(kind, ("{}", err))
        })?;
        let mut request = settings.style_request();
        // An untuned prompt at start-up: warn and start with the style properties instead
        // (a later `prompt` change is retried, as any style change).
        let resolved = match resolve_applied(&mut stylizer, &mut resolver, &request) {
            Err(err) if request.2.is_some() => {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("{err}; using the style properties instead")
                );
                let fallback = (request.0.clone(), request.1, None);
                let resolved = resolve_applied(&mut stylizer, &mut resolver, &fallback);
                // Remember the prompt as applied so the warning is not repeated every frame.
                request = (fallback.0, fallback.1, request.2);
                resolved
            }
            other => other,
        }
        .map_err(|err| gst::error_msg!(gst::LibraryError::Settings, ("{}", err)))?;
        self.post_notes(&resolved.notes);
        gst::info!(
            CAT,
            imp = self,
            "loaded {} ({} model, backend {})",
            model.display(),
            stylizer.info().family,
            stylizer.backend_name()
        );
        *self.state.lock().unwrap() = Some(State {
            stylizer,
            resolver,
            applied: request,
            conditioning: resolved.conditioning,
            layout: None,
            latency: gst::ClockTime::ZERO,
            frames: 0,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        let is_latency = matches!(query.view(), gst::QueryView::Latency(_));
        let answered = BaseTransformImplExt::parent_query(self, direction, query);
        if answered && is_latency && direction == gst::PadDirection::Src {
            if let gst::QueryViewMut::Latency(q) = query.view_mut() {
                let (live, min, max) = q.result();
                let ours = self.latency();
                q.set(live, min + ours, max.map(|m| m + ours));
                gst::debug!(CAT, imp = self, "latency query: adding {ours}");
            }
        }
        answered
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // After a flush (seek) or a new stream the previous frame is unrelated to the next.
        if matches!(
            event.view(),
            gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_)
        ) {
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                state.stylizer.reset_temporal();
            }
        }
        self.parent_sink_event(event)
    }
}

impl VideoFilterImpl for Stylize {
    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let format = FORMATS
            .iter()
            .find(|(f, _)| *f == in_info.format())
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                gst::loggable_error!(CAT, "unsupported format {:?}", in_info.format())
            })?;
        let layout = FrameLayout {
            format,
            width: in_info.width() as usize,
            height: in_info.height() as usize,
            stride: in_info.stride()[0] as usize,
        };
        let size = self.settings.lock().unwrap().inference_size();
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        // One warm-up frame at the negotiated size: it builds ONNX Runtime's kernels for that
        // shape and gives the latency query a measured model time before the first buffer.
        let mut blank = vec![128u8; layout.stride * layout.height];
        let conditioning = state.conditioning.clone();
        let timings = state
            .stylizer
            .stylize_frame(&mut blank, &layout, &size, &conditioning)
            .map_err(|err| gst::loggable_error!(CAT, "warm-up inference failed: {err}"))?;
        let latency = gst::ClockTime::from_nseconds((timings.total_ms() * 1e6) as u64);
        gst::info!(
            CAT,
            imp = self,
            "negotiated {}x{} {:?}; inference {:?}, warm-up {:.1} ms",
            layout.width,
            layout.height,
            format,
            size.resolve(layout.width, layout.height),
            timings.total_ms()
        );
        // The warm-up frame must not be the previous frame of the first real one.
        state.stylizer.reset_temporal();
        let changed = state.latency != latency;
        state.latency = latency;
        state.layout = Some(layout);
        drop(guard);
        if changed {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
        Ok(())
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (request, size, stability) = {
            let settings = self.settings.lock().unwrap();
            (
                settings.style_request(),
                settings.inference_size(),
                settings.stability,
            )
        };
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        self.refresh_style(state, request);
        state.stylizer.set_stability(stability);
        if frame.buffer().flags().contains(gst::BufferFlags::DISCONT) {
            state.stylizer.reset_temporal();
        }
        let layout = FrameLayout {
            stride: frame.plane_stride()[0] as usize,
            ..*state.layout.as_ref().ok_or(gst::FlowError::NotNegotiated)?
        };
        let pts = frame.buffer().pts();
        let data = frame.plane_data_mut(0).map_err(|_| gst::FlowError::Error)?;
        let conditioning = std::mem::take(&mut state.conditioning);
        let result = state
            .stylizer
            .stylize_frame(data, &layout, &size, &conditioning);
        state.conditioning = conditioning;
        let timings = match result {
            Ok(t) => t,
            Err(err) => {
                gst::element_imp_error!(self, gst::StreamError::Failed, ("{err}"));
                return Err(gst::FlowError::Error);
            }
        };
        state.frames += 1;
        let frame_number = state.frames;
        let (iw, ih) = size.resolve(layout.width, layout.height);
        drop(guard);

        let s = gst::Structure::builder(super::FRAME_MESSAGE)
            .field("frame", frame_number)
            .field("pts", pts)
            .field("inference-ms", timings.infer_ms)
            .field("convert-ms", timings.convert_in_ms + timings.convert_out_ms)
            .field("temporal-ms", timings.temporal_ms)
            .field("total-ms", timings.total_ms())
            .field("inference-width", iw as u32)
            .field("inference-height", ih as u32)
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        Ok(gst::FlowSuccess::Ok)
    }
}
