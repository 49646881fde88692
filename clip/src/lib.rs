//! CLIP for text prompts: tokenizer, image preprocessing, the two encoders, and the tuner
//! that turns a prompt into a style embedding for arbitrary-style models (docs/prompts.md).

pub mod encoder;
pub mod preprocess;
pub mod rng;
pub mod tokenizer;
pub mod tune;

pub use encoder::ClipEncoders;
pub use tune::{PromptObjective, TuneOptions, TuneResult};
