//! DALL·E-style prompts to text token ids: UTF-8 bytes (the test models) or a Hugging Face
//! `tokenizer.json` (BPE, as real models ship it), padded to the model's text length.

use std::path::{Path, PathBuf};

use stylize_engines::error::{Error, Result};

pub enum PromptTokenizer {
    /// Ids 0–255 are UTF-8 bytes; the prompt is BOS + bytes + EOS.
    Bytes { bos: i64, eos: i64, pad: i64 },
    /// A `tokenizer.json`: its own normaliser, pre-tokeniser, model and post-processor
    /// (which adds any start/end tokens), then `pad` up to the text length.
    Json {
        tokenizer: Box<tokenizers::Tokenizer>,
        path: PathBuf,
        pad: i64,
    },
}

impl PromptTokenizer {
    /// Load a `tokenizer.json`, checking that its ids fit the model's text vocabulary.
    pub fn from_file(path: &Path, pad: Option<i64>, text_vocab: usize) -> Result<Self> {
        let bad = |why: String| Error::Generate(format!("tokenizer {}: {why}", path.display()));
        if !path.is_file() {
            return Err(bad("the file does not exist".into()));
        }
        let tokenizer = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| bad(format!("not a Hugging Face tokenizer.json: {e}")))?;
        let size = tokenizer.get_vocab_size(true);
        if size > text_vocab {
            return Err(bad(format!(
                "{size} tokens, more than the model's text vocabulary ({text_vocab})"
            )));
        }
        // The padding id: the model folder's setting, else the tokenizer's own padding, else
        // a `[PAD]`/`<pad>` token.
        let pad = pad
            .or_else(|| tokenizer.get_padding().map(|p| i64::from(p.pad_id)))
            .or_else(|| {
                ["[PAD]", "<pad>", "<|pad|>"]
                    .iter()
                    .find_map(|t| tokenizer.token_to_id(t))
                    .map(i64::from)
            })
            .ok_or_else(|| {
                bad("no padding id: set `pad_id` in dalle.json (docs/generation.md)".into())
            })?;
        Ok(Self::Json {
            tokenizer: Box::new(tokenizer),
            path: path.to_path_buf(),
            pad,
        })
    }

    /// The prompt's ids, padded to `text_len`; a prompt that does not fit is an error.
    pub fn encode(&self, prompt: &str, text_len: usize) -> Result<Vec<i64>> {
        let (mut ids, pad) = match self {
            Self::Bytes { bos, eos, pad } => {
                if prompt.len() + 2 > text_len {
                    return Err(Error::Generate(format!(
                        "the prompt is {} bytes; this model takes at most {}",
                        prompt.len(),
                        text_len.saturating_sub(2)
                    )));
                }
                let mut ids = Vec::with_capacity(text_len);
                ids.push(*bos);
                ids.extend(prompt.bytes().map(i64::from));
                ids.push(*eos);
                (ids, *pad)
            }
            Self::Json {
                tokenizer,
                path,
                pad,
            } => {
                let encoding = tokenizer
                    .encode(prompt, true)
                    .map_err(|e| Error::Generate(format!("tokenizer {}: {e}", path.display())))?;
                // A tokenizer saved with fixed-length padding pads by itself: count only
                // the real tokens.
                let ids: Vec<i64> = encoding
                    .get_ids()
                    .iter()
                    .zip(encoding.get_attention_mask())
                    .filter(|(_, &m)| m == 1)
                    .map(|(&id, _)| i64::from(id))
                    .collect();
                (ids, *pad)
            }
        };
        if ids.len() > text_len {
            return Err(Error::Generate(format!(
                "the prompt is {} tokens; this model takes at most {text_len}",
                ids.len()
            )));
        }
        ids.resize(text_len, pad);
        Ok(ids)
    }
}
