//! Turning a style request (image, blend or name) into a model's conditioning vector.
//!
//! Independent of the [`crate::Stylizer`], so a control thread can resolve a new style (which
//! may run the style predictor) while the streaming thread keeps stylizing with the old one.

use std::path::PathBuf;

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

    /// A style image goes through the predictor (and the on-disk cache); names go through the
    /// model's styles and then the library.
    pub fn resolve(&mut self, request: &StyleRequest) -> Result<ResolvedStyle> {
        let mut notes = Vec::new();
        let conditioning = match &request.image {
            Some(image) => {
                let Some(predictor) = self.predictor.as_mut() else {
                    return Err(Error::UnknownStyle {
                        name: image.display().to_string(),
                        available: if self.info.family == Family::Arbitrary {
                            "a style image needs the style predictor model".into()
                        } else {
                            format!(
                                "style images need an arbitrary-style model; {} is {}",
                                self.info.path.display(),
                                self.info.family
                            )
                        },
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
