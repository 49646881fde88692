//! DALL·E-style text-to-image: prompt tokens → autoregressive image tokens from a decoder-only
//! transformer with a KV cache → VQ decoder → image.
//!
//! The transformer is a standard decoder export (Optimum's `text-generation-with-past` layout:
//! `input_ids`, optional `attention_mask` and `position_ids`, `past_key_values.{l}.key/value`).
//! The token layout comes from the graph's `dalle.*` metadata or a `dalle.json` beside it
//! (docs/generation.md), which can also name the files and a `tokenizer.json`.
//!
//! The prompt runs once (cache empty, P = 0); each image token is then one step with T = 1
//! that reads the cached keys/values instead of recomputing the whole sequence, so decoding N
//! tokens costs N short steps instead of N full passes. Each sample has its own RNG seeded by
//! its seed, so a sample does not depend on the batch it ran in.

use std::path::Path;

use super::prompt::PromptTokenizer;
use super::rng::RandomState;
use super::sampling::{self, Sampling};
use super::split_images;
use stylize_engines::error::{Error, Result};
use stylize_engines::graph::{Dim, Graph, Input, Output};
use stylize_engines::tensor::Tensor;

pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const POSITION_IDS: &str = "position_ids";
/// Settings beside the graphs, for exports that carry no `dalle.*` metadata.
pub const SETTINGS_FILE: &str = "dalle.json";
pub const LOGITS: &str = "logits";
pub const IMAGE_TOKENS: &str = "image_tokens";
pub const IMG: &str = "img";
pub const TRANSFORMER_FILE: &str = "transformer.onnx";
pub const DECODER_FILE: &str = "vqgan.onnx";

fn past_key(layer: usize) -> String {
    format!("past_key_values.{layer}.key")
}
fn past_value(layer: usize) -> String {
    format!("past_key_values.{layer}.value")
}
fn present_key(layer: usize) -> String {
    format!("present.{layer}.key")
}
fn present_value(layer: usize) -> String {
    format!("present.{layer}.value")
}

/// What the transformer's metadata and shapes say about the token layout.
#[derive(Debug, Clone, PartialEq)]
pub struct DalleConfig {
    /// Text token ids are 0..text_vocab; image token k is fed as text_vocab + k.
    pub text_vocab: usize,
    pub image_vocab: usize,
    /// Prompt length in tokens (padded).
    pub text_len: usize,
    /// Image tokens per image (the VQ grid, row-major).
    pub image_tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Padding, start and end ids when set (the byte tokenizer defaults them to 256, 257,
    /// 258; a tokenizer.json brings its own start/end and usually its padding).
    pub pad_id: Option<i64>,
    pub bos_id: Option<i64>,
    pub eos_id: Option<i64>,
    /// The transformer takes `attention_mask` [B,P+T] (all ones: every position is attended,
    /// padding included, as minDALL-E does) and `position_ids` [B,T] (P..P+T).
    pub attention_mask: bool,
    pub position_ids: bool,
}

/// `dalle.json`: every key optional; a value here overrides the graph's metadata.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub transformer: Option<String>,
    pub decoder: Option<String>,
    /// `bytes`, or a tokenizer.json file in the folder.
    pub tokenizer: Option<String>,
    pub text_vocab: Option<usize>,
    pub image_vocab: Option<usize>,
    pub text_len: Option<usize>,
    pub image_tokens: Option<usize>,
    pub pad_id: Option<usize>,
    pub bos_id: Option<usize>,
    pub eos_id: Option<usize>,
}

impl Settings {
    fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SETTINGS_FILE);
        match std::fs::read(&path) {
            Err(_) => Ok(Self::default()),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Generate(format!("{}: {e} (docs/generation.md)", path.display()))
            }),
        }
    }
}

/// Keys and values of every layer for a batch, [B,H,P,D] each.
struct KvCache {
    len: usize,
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Image tokens per sample and, when asked for, the image-vocabulary logits each token was
/// drawn from (for checks against full recomputation).
pub struct Sampled {
    pub tokens: Vec<Vec<u32>>,
    pub logits: Vec<Vec<Vec<f32>>>,
}

pub struct Dalle {
    transformer: Graph,
    decoder: Graph,
    tokenizer: PromptTokenizer,
    pub config: DalleConfig,
}

impl Dalle {
    /// Load `DIR/transformer.onnx` and `DIR/vqgan.onnx`, or the files `DIR/dalle.json` names.
    pub fn load(dir: &Path, threads: usize) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Generate(format!(
                "model folder {} does not exist (it holds {TRANSFORMER_FILE} and {DECODER_FILE})",
                dir.display()
            )));
        }
        let settings = Settings::load(dir)?;
        let file =
            |name: &Option<String>, default: &str| dir.join(name.as_deref().unwrap_or(default));
        let transformer = Graph::load(&file(&settings.transformer, TRANSFORMER_FILE), threads)?;
        let decoder = Graph::load(&file(&settings.decoder, DECODER_FILE), threads)?;
        let tokenizer_name = tokenizer_setting(&transformer, &settings);
        let bytes = tokenizer_name.as_deref() == Some("bytes");
        let config = check_transformer(&transformer, &settings, bytes)?;
        let tokenizer = match tokenizer_name {
            None => {
                return Err(transformer.violation(
                    "metadata `dalle.tokenizer`",
                    format!(
                    "`bytes` or a tokenizer.json file (here or as `tokenizer` in {SETTINGS_FILE})"
                ),
                    "nothing".into(),
                ))
            }
            Some(name) if name == "bytes" => {
                if config.text_vocab < 256 {
                    return Err(transformer.violation(
                        "metadata `dalle.text_vocab`",
                        "at least 256 for the byte tokenizer",
                        config.text_vocab.to_string(),
                    ));
                }
                // check_transformer gives every id a default in byte mode.
                PromptTokenizer::Bytes {
                    bos: config.bos_id.unwrap_or(257),
                    eos: config.eos_id.unwrap_or(258),
                    pad: config.pad_id.unwrap_or(256),
                }
            }
            Some(name) => {
                PromptTokenizer::from_file(&dir.join(name), config.pad_id, config.text_vocab)?
            }
        };
        decoder.check_input(
            IMAGE_TOKENS,
            "int64",
            &[Dim::Any, Dim::Is(config.image_tokens)],
        )?;
        decoder.check_output(IMG, "float32", &[Dim::Any, Dim::Is(3), Dim::Any, Dim::Any])?;
        Ok(Self {
            transformer,
            decoder,
            tokenizer,
            config,
        })
    }

    /// The prompt's text tokens, padded to `text_len` (bytes or the model's tokenizer.json).
    pub fn tokenize(&self, prompt: &str) -> Result<Vec<i64>> {
        self.tokenizer.encode(prompt, self.config.text_len)
    }

    /// One transformer call on `ids` [B,T] with the cache, which it extends. Returns logits
    /// [B,T,V].
    fn forward(&mut self, ids: Vec<i64>, batch: usize, cache: &mut KvCache) -> Result<Output> {
        let c = &self.config;
        let t = ids.len() / batch;
        let past_shape = vec![batch, c.heads, cache.len, c.head_dim];
        let mut inputs = vec![(INPUT_IDS.to_string(), Input::I64(vec![batch, t], ids))];
        if c.attention_mask {
            let total = cache.len + t;
            let mask = Input::I64(vec![batch, total], vec![1; batch * total]);
            inputs.push((ATTENTION_MASK.to_string(), mask));
        }
        if c.position_ids {
            let positions: Vec<i64> = (0..batch)
                .flat_map(|_| (cache.len..cache.len + t).map(|p| p as i64))
                .collect();
            inputs.push((
                POSITION_IDS.to_string(),
                Input::I64(vec![batch, t], positions),
            ));
        }
        let mut wanted = vec![LOGITS.to_string()];
        for (layer, (k, v)) in cache.layers.iter_mut().enumerate() {
            inputs.push((
                past_key(layer),
                Input::F32(past_shape.clone(), std::mem::take(k)),
            ));
            inputs.push((
                past_value(layer),
                Input::F32(past_shape.clone(), std::mem::take(v)),
            ));
            wanted.push(present_key(layer));
            wanted.push(present_value(layer));
        }
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let mut outs = self.transformer.run(inputs, &wanted)?.into_iter();
        let logits = outs.next().expect("logits requested");
        let vocab = c.text_vocab + c.image_vocab;
        if logits.shape != [batch, t, vocab] {
            return Err(Error::Inference(format!(
                "{}: `{LOGITS}` has shape {:?}, expected [{batch},{t},{vocab}]",
                self.transformer.path.display(),
                logits.shape
            )));
        }
        let total = cache.len + t;
        for (layer, slot) in cache.layers.iter_mut().enumerate() {
            let (k, v) = (outs.next().expect("key"), outs.next().expect("value"));
            let want = [batch, c.heads, total, c.head_dim];
            if k.shape != want || v.shape != want {
                return Err(Error::Inference(format!(
                    "{}: `{}` has shape {:?}, expected {want:?} (past + new tokens)",
                    self.transformer.path.display(),
                    present_key(layer),
                    k.shape
                )));
            }
            *slot = (k.data, v.data);
        }
        cache.len = total;
        Ok(logits)
    }

    fn empty_cache(&self) -> KvCache {
        KvCache {
            len: 0,
            layers: vec![(Vec::new(), Vec::new()); self.config.layers],
        }
    }

    /// Sample one image's tokens per seed (the batch is `seeds.len()`), with the KV cache.
    /// `on_token` is called after each decoding step.
    pub fn sample(
        &mut self,
        prompt: &[i64],
        seeds: &[u32],
        options: &Sampling,
        record_logits: bool,
        mut on_token: impl FnMut(),
    ) -> Result<Sampled> {
        let c = self.config.clone();
        let b = seeds.len();
        let mut rngs: Vec<RandomState> = seeds.iter().map(|&s| RandomState::new(s)).collect();
        let mut sampled = Sampled {
            tokens: vec![Vec::with_capacity(c.image_tokens); b],
            logits: vec![Vec::new(); if record_logits { b } else { 0 }],
        };
        let mut cache = self.empty_cache();
        let mut logits = self.forward(prompt.repeat(b), b, &mut cache)?;
        let vocab = c.text_vocab + c.image_vocab;
        for step in 0..c.image_tokens {
            let t = logits.shape[1];
            let mut next = Vec::with_capacity(b);
            for (row, rng) in rngs.iter_mut().enumerate() {
                // The last position predicts the next token; only image tokens are allowed.
                let start = (row * t + t - 1) * vocab + c.text_vocab;
                let image_logits = &logits.data[start..start + c.image_vocab];
                let token = sampling::sample(image_logits, options, rng);
                sampled.tokens[row].push(token as u32);
                if record_logits {
                    sampled.logits[row].push(image_logits.to_vec());
                }
                next.push((c.text_vocab + token) as i64);
            }
            on_token();
            if step + 1 < c.image_tokens {
                logits = self.forward(next, b, &mut cache)?;
            }
        }
        Ok(sampled)
    }

    /// Image-vocabulary logits at every position that predicts an image token, from one pass
    /// over the whole sequence with no cache: the reference the cached decoding must equal.
    pub fn logits_without_cache(
        &mut self,
        prompt: &[i64],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let c = self.config.clone();
        let mut ids = prompt.to_vec();
        // The last token predicts nothing we sampled, so it is not fed.
        ids.extend(
            tokens[..tokens.len().saturating_sub(1)]
                .iter()
                .map(|&t| (c.text_vocab + t as usize) as i64),
        );
        let t = ids.len();
        let logits = self.forward(ids, 1, &mut self.empty_cache())?;
        let vocab = c.text_vocab + c.image_vocab;
        Ok((c.text_len - 1..t)
            .map(|pos| {
                let start = pos * vocab + c.text_vocab;
                logits.data[start..start + c.image_vocab].to_vec()
            })
            .collect())
    }

    /// Decode image tokens to images in [-1,1].
    pub fn decode(&mut self, tokens: &[Vec<u32>]) -> Result<Vec<Tensor>> {
        let b = tokens.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = tokens.iter().flatten().map(|&t| i64::from(t)).collect();
        let input = Input::I64(vec![b, self.config.image_tokens], ids);
        let img = self
            .decoder
            .run(vec![(IMAGE_TOKENS.to_string(), input)], &[IMG])?
            .remove(0);
        split_images(&self.decoder.path, IMG, img, b)
    }
}

/// `bytes` or a tokenizer file name: dalle.json first, then the metadata.
fn tokenizer_setting(g: &Graph, settings: &Settings) -> Option<String> {
    settings
        .tokenizer
        .clone()
        .or_else(|| g.metadata.get("dalle.tokenizer").cloned())
}

fn check_transformer(g: &Graph, settings: &Settings, bytes: bool) -> Result<DalleConfig> {
    let meta = |key: &str, setting: Option<usize>| {
        if let Some(v) = setting.filter(|&v| v > 0) {
            return Ok(v);
        }
        g.meta_usize(key)?.ok_or_else(|| {
            g.violation(
                &format!("metadata `{key}`"),
                format!(
                    "a positive integer (in the graph or as `{}` in {SETTINGS_FILE})",
                    &key[6..]
                ),
                "nothing".into(),
            )
        })
    };
    let text_vocab = meta("dalle.text_vocab", settings.text_vocab)?;
    let image_vocab = meta("dalle.image_vocab", settings.image_vocab)?;
    let text_len = meta("dalle.text_len", settings.text_len)?;
    let image_tokens = meta("dalle.image_tokens", settings.image_tokens)?;
    // Defaults only for the byte tokenizer; a tokenizer.json has its own special tokens.
    let id = |key: &str, setting: Option<usize>, default: usize| -> Result<Option<i64>> {
        let v = match (setting, g.meta_usize(key)?) {
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) if bytes => default,
            (None, None) => return Ok(None),
        };
        if v >= text_vocab {
            return Err(g.violation(
                &format!("metadata `{key}`"),
                format!("an id below dalle.text_vocab ({text_vocab})"),
                v.to_string(),
            ));
        }
        Ok(Some(v as i64))
    };
    let (pad_id, bos_id, eos_id) = (
        id("dalle.pad_id", settings.pad_id, 256)?,
        id("dalle.bos_id", settings.bos_id, 257)?,
        id("dalle.eos_id", settings.eos_id, 258)?,
    );
    if text_len < 3 {
        return Err(g.violation(
            "metadata `dalle.text_len`",
            "at least 3 (BOS, text, EOS)",
            text_len.to_string(),
        ));
    }

    g.check_input(INPUT_IDS, "int64", &[Dim::Any, Dim::Any])?;
    let vocab = text_vocab + image_vocab;
    g.check_output(LOGITS, "float32", &[Dim::Any, Dim::Any, Dim::Is(vocab)])?;
    let layers = (0..).take_while(|&l| g.has_input(&past_key(l))).count();
    if layers == 0 {
        return Err(g.violation(
            &format!("input `{}`", past_key(0)),
            "a KV cache: inputs past_key_values.{l}.key/value [B,H,P,D]",
            "no cache inputs".into(),
        ));
    }
    let first = g.check_input(&past_key(0), "float32", &[Dim::Any; 4])?;
    let (heads, head_dim) = match (first[1], first[3]) {
        (h, d) if h > 0 && d > 0 => (h as usize, d as usize),
        _ => {
            return Err(g.violation(
                &format!("input `{}`", past_key(0)),
                "shape [B,H,P,D] with H and D fixed",
                format!("{first:?}"),
            ))
        }
    };
    let cache_dims = [Dim::Any, Dim::Is(heads), Dim::Any, Dim::Is(head_dim)];
    for l in 0..layers {
        g.check_input(&past_key(l), "float32", &cache_dims)?;
        g.check_input(&past_value(l), "float32", &cache_dims)?;
        g.check_output(&present_key(l), "float32", &cache_dims)?;
        g.check_output(&present_value(l), "float32", &cache_dims)?;
    }
    let attention_mask = g.has_input(ATTENTION_MASK);
    if attention_mask {
        g.check_input(ATTENTION_MASK, "int64", &[Dim::Any, Dim::Any])?;
    }
    let position_ids = g.has_input(POSITION_IDS);
    if position_ids {
        g.check_input(POSITION_IDS, "int64", &[Dim::Any, Dim::Any])?;
    }
    let expected = 1 + 2 * layers + usize::from(attention_mask) + usize::from(position_ids);
    if g.inputs.len() != expected {
        let names: Vec<&str> = g.inputs.iter().map(|s| s.name.as_str()).collect();
        return Err(g.violation(
            "inputs",
            format!(
                "[{INPUT_IDS}, optional {ATTENTION_MASK} and {POSITION_IDS}, \
                 past_key_values.0-{}.key/value]",
                layers - 1
            ),
            format!("tensors [{}]", names.join(", ")),
        ));
    }
    Ok(DalleConfig {
        text_vocab,
        image_vocab,
        text_len,
        image_tokens,
        layers,
        heads,
        head_dim,
        pad_id,
        bos_id,
        eos_id,
        attention_mask,
        position_ids,
    })
}
