//! Turning a style request (image, blend or name) into a model's conditioning vector.
//!
//! Independent of the [`crate::Stylizer`], so a control thread can resolve a new style (which
//! may run the style predictor) while the streaming thread keeps stylizing with the old one.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use crate::embedding::{CacheOutcome, EmbeddingCache};
use crate::error::{Error, Result};
use crate::library::Library;
use crate::model::{Family, ModelInfo};
use crate::predictor::StylePredictor;
use crate::style;

/// What the user asked for, in order of precedence: a style image, a blend, a style name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StyleRequest {
    pub style: Option<String>,
    pub blend: Option<String>,
    pub image: Option<PathBuf>,
}

/// A style request and a text prompt tuned with `stylize tune`, which overrides it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StyleChoice {
    pub request: StyleRequest,
    pub prompt: Option<String>,
}

/// A resolved request: the conditioning vector and anything worth telling the user.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedStyle {
    pub conditioning: Vec<f32>,
    pub notes: Vec<String>,
}

pub struct StyleResolver {
    info: ModelInfo,
    library: Option<Library>,
    cache: EmbeddingCache,
    predictor: Option<StylePredictor>,
}

impl StyleResolver {
    pub fn new(
        info: ModelInfo,
        library: Option<Library>,
        cache: EmbeddingCache,
        predictor: Option<StylePredictor>,
    ) -> Self {
        Self {
            info,
            library,
            cache,
            predictor,
        }
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn library(&self) -> Option<&Library> {
        self.library.as_ref()
    }

    pub fn predictor_mut(&mut self) -> Option<&mut StylePredictor> {
        self.predictor.as_mut()
    }

    /// A text prompt tuned by `stylize tune`, from the library (arbitrary-style models only).
    /// The library is re-read first, so a prompt tuned while a stream runs is found.
    pub fn resolve_prompt(&mut self, text: &str) -> Result<ResolvedStyle> {
        let untuned = |why: String| Error::UnknownStyle {
            name: text.trim().to_string(),
            available: why,
        };
        if self.info.family != Family::Arbitrary {
            return Err(untuned(format!(
                "text prompts need an arbitrary-style model; {} is {}",
                self.info.path.display(),
                self.info.family
            )));
        }
        if let Some(fresh) = self.library.as_ref().map(|l| Library::open(l.dir())) {
            self.library = Some(fresh?);
        }
        let library = self
            .library
            .as_ref()
            .ok_or_else(|| untuned("no style library is open".into()))?;
        let (entry, conditioning) = library.prompt_embedding(text)?;
        if conditioning.len() != self.info.conditioning_len {
            return Err(untuned(format!(
                "style `{}` has {} values, the model takes {}",
                entry.name,
                conditioning.len(),
                self.info.conditioning_len
            )));
        }
        Ok(ResolvedStyle {
            conditioning,
            notes: vec![format!("prompt tuned as library style `{}`", entry.name)],
        })
    }

    /// The prompt when one is set, else the request.
    pub fn resolve_choice(&mut self, choice: &StyleChoice) -> Result<ResolvedStyle> {
        match &choice.prompt {
            Some(prompt) => self.resolve_prompt(prompt),
            None => self.resolve(&choice.request),
        }
    }

    /// A style image goes through the predictor (and the on-disk cache); names go through the
    /// model's styles and then the library.
    pub fn resolve(&mut self, request: &StyleRequest) -> Result<ResolvedStyle> {
        let mut notes = Vec::new();
        let conditioning = match &request.image {
            Some(image) => {
                let Some(predictor) = self.predictor.as_mut() else {
                    if self.info.family == Family::Arbitrary {
                        return Err(Error::PredictorMissing {
                            needed: format!("style image {}", image.display()),
                            model: self.info.path.clone(),
                        });
                    }
                    return Err(Error::BadSetting {
                        setting: format!("style image {}", image.display()),
                        reason: format!(
                            "style images need an arbitrary-style model; {} is {}",
                            self.info.path.display(),
                            self.info.family
                        ),
                    });
                };
                let (embedding, outcome) = self.cache.embed(predictor, image)?;
                if let CacheOutcome::Repaired(why) = outcome {
                    notes.push(format!("{why}; recomputed the embedding"));
                }
                embedding
            }
            None => style::resolve_in(
                &self.info,
                request.style.as_deref(),
                request.blend.as_deref(),
                self.library.as_ref(),
            )?,
        };
        Ok(ResolvedStyle {
            conditioning,
            notes,
        })
    }
}

/// A [`StyleResolver`] on its own thread, so a new style (which may hash an image, run the
/// predictor and write the embedding cache) never holds up a streaming thread: the frame
/// path hands over a choice with [`request`](Self::request), keeps stylizing with the
/// conditioning it has, and swaps in the new one when [`poll`](Self::poll) returns it.
pub struct BackgroundResolver {
    requests: Option<Sender<StyleChoice>>,
    results: Receiver<(StyleChoice, Result<ResolvedStyle>)>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundResolver {
    /// `before_each` runs on the resolver's thread before every resolve (a test seam that
    /// can hold resolves back; pass `|| ()` otherwise).
    pub fn spawn(mut resolver: StyleResolver, before_each: impl Fn() + Send + 'static) -> Self {
        let (requests, inbox) = mpsc::channel::<StyleChoice>();
        let (outbox, results) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("stylize-resolver".into())
            .spawn(move || {
                while let Ok(mut choice) = inbox.recv() {
                    // Only the newest request matters: a user dragging a slider sends many.
                    while let Ok(newer) = inbox.try_recv() {
                        choice = newer;
                    }
                    before_each();
                    let result =
                        panic::catch_unwind(AssertUnwindSafe(|| resolver.resolve_choice(&choice)))
                            .unwrap_or_else(|payload| {
                                Err(Error::Inference(format!(
                                    "resolving the style panicked: {}",
                                    crate::error::panic_message(payload.as_ref())
                                )))
                            });
                    if outbox.send((choice, result)).is_err() {
                        break;
                    }
                }
            })
            .ok();
        Self {
            requests: Some(requests),
            results,
            thread,
        }
    }

    /// Start resolving `choice` (replacing any request not yet started). Never blocks.
    pub fn request(&self, choice: StyleChoice) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(choice);
        }
    }

    /// The newest finished resolve, if any; never blocks.
    pub fn poll(&self) -> Option<(StyleChoice, Result<ResolvedStyle>)> {
        self.results.try_iter().last()
    }

    /// The newest finished resolve, waiting at most `patience` for one: a style name or a
    /// blend resolves in microseconds, so a caller that can spare that long (one
    /// inference's time) applies it on the very next frame, while a predictor run or a
    /// slow disk never holds the caller up for longer.
    pub fn poll_within(
        &self,
        patience: std::time::Duration,
    ) -> Option<(StyleChoice, Result<ResolvedStyle>)> {
        let first = self.results.recv_timeout(patience).ok()?;
        Some(self.results.try_iter().last().unwrap_or(first))
    }

    /// Wait for the next finished resolve (tests, and callers that can afford to wait).
    pub fn wait(&self) -> Option<(StyleChoice, Result<ResolvedStyle>)> {
        self.results.recv().ok()
    }
}

impl Drop for BackgroundResolver {
    /// Waits for a resolve in progress (at most one predictor run): a predictor session
    /// still running at process exit would race ONNX Runtime's exit handlers.
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
