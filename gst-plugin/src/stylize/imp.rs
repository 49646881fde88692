use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use stylize_engines::backend::deferred::{Deferred, Poll};
use stylize_engines::backend::{self, BackendKind};
use stylize_engines::frame::FrameLayout;
use stylize_engines::frame::PixelFormat;
use stylize_engines::session::{DEFAULT_SCALE, DEFAULT_STABILITY, DEFAULT_STRENGTH};
use stylize_engines::{
    library, style, BackgroundResolver, InferenceSize, Session, SessionConfig, StyleChoice,
    StyleRequest, Stylizer,
};

use super::errors::{error_message, post_warning};
use super::hold;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "stylize",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

/// The least a frame waits for a style change being resolved (see `refresh_style`), for
/// when no inference time has been measured yet.
const MIN_STYLE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(5);
/// How long `stop` waits for a background load still running (see `stop`).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Lock, recovering from poisoning: a panic on a streaming thread (caught and posted as an
/// error) must not turn every later property read into a second panic, which would abort the
/// application across the C boundary.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Run engine code so that a panic in it becomes an error, never an unwind into GStreamer.
fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> stylize_engines::Result<T>,
) -> stylize_engines::Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(stylize_engines::Error::Inference(format!(
            "{what} panicked: {}",
            stylize_engines::error::panic_message(payload.as_ref())
        )))
    })
}

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

/// The `background-load` property: when the model loads off the streaming thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, glib::Enum)]
#[enum_type(name = "GstStylizeBackgroundLoad")]
pub enum BackgroundLoad {
    #[default]
    #[enum_value(
        name = "Only when a TensorRT engine must be built first (cold engine cache)",
        nick = "auto"
    )]
    Auto,
    #[enum_value(name = "Always, for any backend", nick = "always")]
    Always,
    #[enum_value(name = "Never: start waits, every frame is stylized", nick = "never")]
    Never,
}

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
    background_load: BackgroundLoad,
    post_messages: bool,
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
            background_load: BackgroundLoad::Auto,
            post_messages: true,
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

    fn style_choice(&self) -> StyleChoice {
        StyleChoice {
            request: StyleRequest {
                style: self.style.clone(),
                blend: self.style_weights.clone(),
                image: self.style_image.clone(),
            },
            prompt: self.prompt.clone(),
        }
    }

    fn library_dir(&self) -> PathBuf {
        self.library.clone().unwrap_or_else(library::default_dir)
    }

    /// The session these settings describe: the same constructor and defaults as the CLI's.
    fn session_config(&self, model: &Path) -> SessionConfig {
        SessionConfig {
            model: model.to_path_buf(),
            predictor: self.predictor.clone(),
            library: self.library.clone(),
            threads: self.threads as usize,
            backend: self.backend.into(),
            strength: self.style_strength,
            stability: self.stability,
            inference: self.inference_size(),
        }
    }
}

/// The style names of a model, for the read-only `model-styles` property.
fn style_names(stylizer: &Stylizer) -> String {
    let info = stylizer.info();
    if info.styles.is_empty() {
        (0..info.conditioning_len)
            .map(style::alias)
            .collect::<Vec<_>>()
            .join(",")
    } else {
        info.styles.join(",")
    }
}

struct State {
    stylizer: Stylizer,
    /// Resolves style changes on its own thread (a style image runs the predictor).
    styles: BackgroundResolver,
    /// The choice last handed to `styles`, and whether its result is still to come.
    requested: StyleChoice,
    pending: bool,
    /// The strength last asked for (applied, or warned about once).
    strength: f64,
    conditioning: Vec<f32>,
    layout: Option<FrameLayout>,
    /// Model time per frame, measured at negotiation; reported in the latency query
    /// (through `Stylize::latency_ns`, which needs no lock).
    latency: gst::ClockTime,
    frames: u64,
}

/// A loaded model with its style resolved, and the warnings to post once it is in use.
struct Prepared {
    state: State,
    warnings: Vec<String>,
}

/// Load the model and resolve the style request: all of `start`'s work, so it can also run on
/// a background thread. An untuned prompt falls back to the style properties with a warning
/// (a later `prompt` change is retried, as any style change).
fn prepare(settings: &Settings, model: &Path) -> Result<Prepared, gst::ErrorMessage> {
    let Session {
        stylizer,
        mut resolver,
        mut warnings,
    } = Session::open(&settings.session_config(model)).map_err(|e| error_message(&e, None))?;
    let choice = settings.style_choice();
    let resolved = match resolver.resolve_choice(&choice) {
        Err(err) if choice.prompt.is_some() => {
            warnings.push(format!("{err}; using the style properties instead"));
            resolver.resolve(&choice.request)
        }
        other => other,
    }
    .map_err(|e| error_message(&e, None))?;
    warnings.extend(resolved.notes);
    gst::info!(
        CAT,
        "loaded {} ({} model, backend {})",
        model.display(),
        stylizer.info().family,
        stylizer.backend_summary()
    );
    Ok(Prepared {
        state: State {
            stylizer,
            styles: BackgroundResolver::spawn(resolver, || hold::RESOLVES.wait_while_held()),
            // The prompt counts as applied even when it fell back, so the warning is not
            // repeated every frame.
            requested: choice,
            pending: false,
            strength: settings.style_strength,
            conditioning: resolved.conditioning,
            layout: None,
            latency: gst::ClockTime::ZERO,
            frames: 0,
        },
        warnings,
    })
}

/// The packed layout of negotiated caps (only formats of the pad templates get here).
fn frame_layout(info: &gst_video::VideoInfo) -> Result<FrameLayout, gst::LoggableError> {
    let format = FORMATS
        .iter()
        .find(|(f, _)| *f == info.format())
        .map(|(_, p)| *p)
        .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
    Ok(FrameLayout {
        format,
        width: info.width() as usize,
        height: info.height() as usize,
        stride: info.stride()[0] as usize,
    })
}

/// One frame at the negotiated size: it builds ONNX Runtime's kernels (and a TensorRT
/// engine) for that shape and gives the latency query a measured model time before the first
/// buffer. Returns the warm-up time in ms.
fn warm_up(
    state: &mut State,
    layout: FrameLayout,
    size: &InferenceSize,
    stability: f64,
) -> stylize_engines::Result<f64> {
    // Warm up the path real frames take (smoothing decides between host and device frames).
    state.stylizer.set_stability(stability);
    let mut blank = vec![128u8; layout.stride * layout.height];
    let conditioning = state.conditioning.clone();
    let timings = state
        .stylizer
        .stylize_frame(&mut blank, &layout, size, &conditioning)?;
    // The warm-up frame must not be the previous frame of the first real one.
    state.stylizer.reset_temporal();
    state.latency = gst::ClockTime::from_nseconds((timings.total_ms() * 1e6) as u64);
    state.layout = Some(layout);
    Ok(timings.total_ms())
}

/// A background job's result: a load error is a GStreamer error ready to post.
type Job = Deferred<Result<Prepared, gst::ErrorMessage>>;

fn spawn_job(
    what: String,
    job: impl FnOnce() -> Result<Prepared, gst::ErrorMessage> + Send + 'static,
) -> Job {
    Deferred::spawn(what, move || {
        hold::LOADS.wait_while_held();
        Ok(job())
    })
}

enum Phase {
    /// Stylizing every frame (boxed: far larger than the other phases).
    Ready(Box<State>),
    /// Loading or warming up on a background thread; frames pass through unstylized.
    /// `layout` is the negotiated one, to warm up at once the load is done.
    Preparing {
        job: Job,
        layout: Option<FrameLayout>,
    },
    /// A background job failed and its error was posted; every frame is an error.
    Failed,
}

impl Phase {
    /// Take the ready state out, leaving `Failed` until the caller puts the next phase in.
    fn take_ready(&mut self) -> Option<State> {
        match std::mem::replace(self, Phase::Failed) {
            Phase::Ready(state) => Some(*state),
            other => {
                *self = other;
                None
            }
        }
    }
}

#[derive(Default)]
pub struct Stylize {
    settings: Mutex<Settings>,
    /// Held by the streaming thread across inference: nothing a property read, a query or
    /// a control thread needs lives here (see `latency_ns`, `model_styles`).
    state: Mutex<Option<Phase>>,
    /// Decided in `start`: loads and warm-ups run in the background (`background-load`).
    background: AtomicBool,
    /// The model time reported in latency queries, in ns (0 until measured).
    latency_ns: AtomicU64,
    /// The `model-styles` property: set when a model is ready.
    model_styles: Mutex<Option<String>>,
    /// The backend the loaded model runs on and why (`active-backend`, `backend-reason`);
    /// `None` until a load finishes.
    active_backend: Mutex<Option<(String, String)>>,
}

impl Stylize {
    fn latency(&self) -> gst::ClockTime {
        gst::ClockTime::from_nseconds(self.latency_ns.load(Ordering::Relaxed))
    }

    /// Publish what a ready state knows for readers that must not wait for a frame.
    fn publish(&self, state: &State) {
        self.latency_ns
            .store(state.latency.nseconds(), Ordering::Relaxed);
        *lock(&self.model_styles) = Some(style_names(&state.stylizer));
    }

    fn warm_up_job(
        &self,
        mut state: State,
        layout: FrameLayout,
        size: InferenceSize,
        stability: f64,
    ) -> Job {
        let what = format!("warming up at {}x{}", layout.width, layout.height);
        spawn_job(what, move || {
            warm_up(&mut state, layout, &size, stability)
                .map_err(|err| error_message(&err, Some("warm-up inference failed")))?;
            Ok(Prepared {
                state,
                warnings: Vec::new(),
            })
        })
    }

    /// Move a background job along. Returns whether the element became ready just now (so
    /// the caller posts the new latency); a failed job posts its error once and every later
    /// frame is an error.
    fn poll_background(
        &self,
        phase: &mut Phase,
        size: &InferenceSize,
        stability: f64,
    ) -> Result<bool, gst::FlowError> {
        let Phase::Preparing { job, layout } = phase else {
            return match phase {
                Phase::Failed => Err(gst::FlowError::Error),
                _ => Ok(false),
            };
        };
        let layout = *layout;
        match job.poll() {
            Poll::Pending => Ok(false),
            Poll::Ready(Ok(prepared)) => {
                self.post_notes(&prepared.warnings);
                self.announce_backend(&prepared.state.stylizer);
                let state = prepared.state;
                match layout {
                    // Loaded, but not yet warmed up at the negotiated size: that runs in the
                    // background too (with TensorRT it is where the engine gets built).
                    Some(layout) if state.layout != Some(layout) => {
                        *job = self.warm_up_job(state, layout, *size, stability);
                        Ok(false)
                    }
                    _ => {
                        gst::info!(CAT, imp = self, "model ready: stylizing from this frame");
                        self.publish(&state);
                        *phase = Phase::Ready(Box::new(state));
                        Ok(true)
                    }
                }
            }
            Poll::Ready(Err(message)) => {
                self.post_error_message(message);
                *phase = Phase::Failed;
                Err(gst::FlowError::Error)
            }
            Poll::Failed(err) => {
                gst::element_imp_error!(self, gst::LibraryError::Failed, ("{err}"));
                *phase = Phase::Failed;
                Err(gst::FlowError::Error)
            }
        }
    }

    fn post_latency(&self) {
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
    }

    /// Follow the settings: a new strength applies at once (cheap), a new style choice is
    /// handed to the background resolver and its conditioning swapped in on the first frame
    /// after it is ready; this never waits. A bad change while running keeps the current
    /// style and posts a warning, so a live stream is never lost to a typo; at start-up it
    /// is an error (see `start`).
    fn refresh_style(&self, state: &mut State, choice: StyleChoice, strength: f64) {
        if strength != state.strength {
            state.strength = strength;
            if let Err(err) = state.stylizer.set_strength(strength as f32) {
                post_warning(self, &err, &format!("{err}; keeping the previous strength"));
            }
        }
        if choice != state.requested {
            gst::debug!(CAT, imp = self, "resolving {choice:?} in the background");
            state.styles.request(choice.clone());
            state.requested = choice;
            state.pending = true;
        }
        // Waiting up to one inference's time lets a name or blend (microseconds) apply on
        // this very frame; a style image being predicted never stalls a frame longer.
        let result = if state.pending {
            let patience =
                std::time::Duration::from_nanos(state.latency.nseconds()).max(MIN_STYLE_PATIENCE);
            state.styles.poll_within(patience)
        } else {
            state.styles.poll()
        };
        let Some((done, result)) = result else {
            return;
        };
        if done == state.requested {
            state.pending = false;
        }
        match result {
            Ok(resolved) => {
                gst::info!(CAT, imp = self, "style now {done:?}");
                self.post_notes(&resolved.notes);
                state.conditioning = resolved.conditioning;
                // A new style shows in full on the next frame, not faded in by smoothing.
                state.stylizer.reset_temporal();
            }
            Err(err) => {
                post_warning(self, &err, &format!("{err}; keeping the previous style"));
            }
        }
    }

    /// Say once per start which backend the model runs on and why (`auto` may have fallen back
    /// to the CPU): the `active-backend` and `backend-reason` properties and an element message.
    fn announce_backend(&self, stylizer: &Stylizer) {
        let (name, reason) = (stylizer.backend_name(), stylizer.backend_reason());
        {
            let mut active = lock(&self.active_backend);
            if active.is_some() {
                return;
            }
            *active = Some((name.to_string(), reason.to_string()));
        }
        gst::info!(CAT, imp = self, "backend {}", stylizer.backend_summary());
        let requested = lock(&self.settings).backend;
        let s = gst::Structure::builder(super::BACKEND_MESSAGE)
            .field("backend", name)
            .field("requested", BackendKind::from(requested).to_string())
            .field("reason", reason)
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
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
                    .blurb("Path of the ONNX style model (per-style, multi-style CIN or arbitrary-style), loaded when the element starts.")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("style")
                    .nick("Style")
                    .blurb("Style of a multi-style model by name (see model-styles), style-NN or index; changeable while PLAYING.")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("style-weights")
                    .nick("Style weights")
                    .blurb("Blend of styles as name:weight pairs, e.g. \"starry-swirls:0.7,mosaic:0.3\"; overrides style.")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("style-image")
                    .nick("Style image")
                    .blurb("PNG/JPEG image to take the style from (arbitrary-style models); overrides style and style-weights.")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("prompt")
                    .nick("Text prompt")
                    .blurb("Text prompt tuned with `stylize tune` (arbitrary-style models); overrides the other style properties.")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("style-strength")
                    .nick("Style strength")
                    .blurb("Style strength from 0 (the original frame) to 1 (the full style); changeable while PLAYING.")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STRENGTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("predictor")
                    .nick("Style predictor")
                    .blurb("Style predictor ONNX model for arbitrary-style models (default: arbitrary-predict.onnx beside the model).")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("library")
                    .nick("Style library")
                    .blurb("Style library folder whose names work in style and style-weights (default: $STYLIZE_LIBRARY or ~/.local/share/stylize/styles).")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("inference-width")
                    .nick("Inference width")
                    .blurb("Width the network runs at (0: from inference-height keeping the aspect ratio, or from scale).")
                    .maximum(8192)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inference-height")
                    .nick("Inference height")
                    .blurb("Height the network runs at (0: from inference-width keeping the aspect ratio, or from scale).")
                    .maximum(8192)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("scale")
                    .nick("Inference scale")
                    .blurb("Inference size as a fraction of the frame size when inference-width and -height are 0; lower is faster.")
                    .minimum(0.01)
                    .maximum(4.0)
                    .default_value(DEFAULT_SCALE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("CPU threads for inference, frame conversion and smoothing (0: one per core).")
                    .maximum(256)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("stability")
                    .nick("Temporal stability")
                    .blurb("Motion-compensated smoothing against flicker, from 0 (off) to 1; moving edges leave no trails.")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STABILITY)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", Backend::Auto)
                    .nick("Backend")
                    .blurb("Inference backend; GPU backends need the tensorrt build and the scripts/setup-gpu runtime.")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("background-load", BackgroundLoad::Auto)
                    .nick("Background load")
                    .blurb("When to load the model on a background thread while frames pass through unstylized.")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a stylize-frame element message with timings after every frame.")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("active-backend")
                    .nick("Active backend")
                    .blurb("The backend the loaded model runs on (cpu, cuda or tensorrt); empty until loaded.")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("backend-reason")
                    .nick("Backend reason")
                    .blurb("Why active-backend was taken: requested, or what backend=auto found missing.")
                    .read_only()
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
        let mut settings = lock(&self.settings);
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
            "background-load" => settings.background_load = value.get().expect("type checked"),
            "post-messages" => settings.post_messages = value.get().expect("type checked"),
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} = {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
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
            "background-load" => settings.background_load.to_value(),
            "active-backend" => lock(&self.active_backend)
                .as_ref()
                .map(|(name, _)| name.clone())
                .to_value(),
            "backend-reason" => lock(&self.active_backend)
                .as_ref()
                .map(|(_, reason)| reason.clone())
                .to_value(),
            "model-styles" => lock(&self.model_styles).to_value(),
            "post-messages" => settings.post_messages.to_value(),
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
        let settings = lock(&self.settings).clone();
        let Some(model) = settings.model.clone() else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no model set: set the `model` property to an ONNX style model")
            ));
        };
        *lock(&self.active_backend) = None;
        let building = settings.background_load != BackgroundLoad::Never
            && backend::engine_build_pending(
                &model,
                &settings.session_config(&model).backend_options(),
            );
        let background = building || settings.background_load == BackgroundLoad::Always;
        self.background.store(background, Ordering::Relaxed);
        let phase = if background {
            let doing = if building {
                format!(
                    "building the TensorRT engine for {} (first start with this model, GPU \
                     and TensorRT version; this can take minutes)",
                    model.display()
                )
            } else {
                format!("loading {} in the background", model.display())
            };
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                ("{doing}: frames pass through unstylized until it is ready")
            );
            let what = format!("loading {}", model.display());
            Phase::Preparing {
                job: spawn_job(what, move || prepare(&settings, &model)),
                layout: None,
            }
        } else {
            let prepared = prepare(&settings, &model)?;
            self.post_notes(&prepared.warnings);
            self.publish(&prepared.state);
            self.announce_backend(&prepared.state.stylizer);
            Phase::Ready(Box::new(prepared.state))
        };
        *lock(&self.state) = Some(phase);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let phase = lock(&self.state).take();
        *lock(&self.model_styles) = None;
        self.latency_ns.store(0, Ordering::Relaxed);
        if let Some(Phase::Preparing { job, .. }) = phase {
            // A load still running when the application exits races ONNX Runtime's exit
            // handlers (a crash at exit). A CPU load ends within a second, so wait for it; a
            // TensorRT engine build may take minutes and is handed over to be joined at exit.
            if !job.settle(STOP_WAIT) {
                gst::warning!(
                    CAT,
                    imp = self,
                    "a background load is still running after {STOP_WAIT:?}; it finishes \
                     on its own"
                );
            }
        }
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
            if let Some(Phase::Ready(state)) = lock(&self.state).as_mut() {
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
        let layout = frame_layout(in_info)?;
        let (size, stability) = {
            let settings = lock(&self.settings);
            (settings.inference_size(), settings.stability)
        };
        let mut guard = lock(&self.state);
        let phase = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps set before start"))?;
        if let Phase::Preparing {
            layout: pending, ..
        } = phase
        {
            // Warmed up at this layout once the load is done.
            *pending = Some(layout);
            return Ok(());
        }
        let warmed = matches!(phase, Phase::Ready(s) if s.layout == Some(layout));
        if self.background.load(Ordering::Relaxed) && !warmed {
            if let Some(state) = phase.take_ready() {
                gst::info!(
                    CAT,
                    imp = self,
                    "warming up in the background at {layout:?}"
                );
                *phase = Phase::Preparing {
                    job: self.warm_up_job(state, layout, size, stability),
                    layout: Some(layout),
                };
            }
            return Ok(());
        }
        let Phase::Ready(state) = phase else {
            // Failed: the error was posted; the frames report it.
            return Ok(());
        };
        let before = state.latency;
        let warm_ms = match guarded("warm-up", || warm_up(state, layout, &size, stability)) {
            Ok(ms) => ms,
            Err(err) => {
                // Posted as the element's error: otherwise the application sees only
                // "not-negotiated" and the reason (a fixed-size model, a size past the
                // limits) is visible with GST_DEBUG alone.
                drop(guard);
                let context = format!("cannot stylize {}x{} frames", layout.width, layout.height);
                self.post_error_message(error_message(&err, Some(&context)));
                return Err(gst::loggable_error!(CAT, "warm-up inference failed: {err}"));
            }
        };
        gst::info!(
            CAT,
            imp = self,
            "negotiated {}x{} {:?}; inference {:?}, warm-up {warm_ms:.1} ms",
            layout.width,
            layout.height,
            layout.format,
            size.resolve(layout.width, layout.height),
        );
        let changed = state.latency != before;
        self.publish(state);
        drop(guard);
        if changed {
            self.post_latency();
        }
        Ok(())
    }

    fn transform_frame_ip(
        &self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (choice, strength, size, stability, post_messages) = {
            let settings = lock(&self.settings);
            (
                settings.style_choice(),
                settings.style_strength,
                settings.inference_size(),
                settings.stability,
                settings.post_messages,
            )
        };
        let mut guard = lock(&self.state);
        let phase = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let became_ready = self.poll_background(phase, &size, stability)?;
        let Phase::Ready(state) = phase else {
            // Still loading: the frame passes through unstylized, timestamps untouched.
            return Ok(gst::FlowSuccess::Ok);
        };
        self.refresh_style(state, choice, strength);
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
        let result = guarded("inference", || {
            super::faults::panic_if_armed(|| self.obj().name().to_string());
            state
                .stylizer
                .stylize_frame(data, &layout, &size, &conditioning)
        });
        state.conditioning = conditioning;
        let timings = match result {
            Ok(t) => t,
            Err(err) => {
                // Unlocked first: a synchronous bus handler may read properties.
                drop(guard);
                self.post_error_message(error_message(&err, None));
                return Err(gst::FlowError::Error);
            }
        };
        state.frames += 1;
        let frame_number = state.frames;
        let (iw, ih) = size.resolve(layout.width, layout.height);
        drop(guard);
        if became_ready {
            self.post_latency();
        }
        if !post_messages {
            return Ok(gst::FlowSuccess::Ok);
        }
        let s = gst::Structure::builder(super::FRAME_MESSAGE)
            .field("frame", frame_number)
            .field("pts", pts)
            .field("inference-ms", timings.infer_ms)
            .field("convert-ms", timings.convert_in_ms + timings.convert_out_ms)
            .field("temporal-ms", timings.temporal_ms)
            .field("total-ms", timings.total_ms())
            .field("host-copies", timings.host_copies)
            .field("inference-width", iw as u32)
            .field("inference-height", ih as u32)
            .build();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        Ok(gst::FlowSuccess::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poison a mutex the way a panic on a streaming thread does.
    fn poison<T: Send>(mutex: &Mutex<T>) {
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _guard = mutex.lock();
                    panic!("poisoning for the test");
                })
                .join();
        });
        assert!(mutex.is_poisoned());
    }

    #[test]
    fn every_property_works_after_a_panic_poisoned_the_locks() {
        gst::init().unwrap();
        let element = glib::Object::new::<super::super::Stylize>();
        poison(&element.imp().settings);
        poison(&element.imp().state);
        // Before: the first read panicked inside a C callback, which aborts the process.
        for pspec in element.list_properties() {
            if pspec.flags().contains(glib::ParamFlags::READABLE) {
                let _ = element.property_value(pspec.name());
            }
            if pspec.flags().contains(glib::ParamFlags::WRITABLE)
                && !pspec.flags().contains(glib::ParamFlags::CONSTRUCT_ONLY)
            {
                element.set_property_from_value(pspec.name(), pspec.default_value());
            }
        }
        element.set_property("style", "mosaic");
        assert_eq!(
            element.property::<Option<String>>("style").as_deref(),
            Some("mosaic")
        );
    }

    #[test]
    fn a_panic_in_engine_code_becomes_an_error() {
        let err = guarded::<()>("inference", || panic!("index out of bounds"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inference panicked: index out of bounds"),
            "{err}"
        );
        assert_eq!(guarded("x", || Ok(3)).unwrap(), 3);
    }
}
