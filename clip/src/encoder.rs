//! CLIP's image and text encoders as two ONNX graphs, checked against the contract in
//! docs/models.md: `pixel_values` [B,3,224,224] → `image_embeds` [B,D] and `input_ids` [B,77] →
//! `text_embeds` [B,D]. Hugging Face exports of the text model also take `attention_mask`;
//! when the graph has it we feed 1 up to end-of-text, 0 on the padding.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::Tensor as OrtTensor;

use super::preprocess::SIZE;
use super::tokenizer::{self, Overflow, CONTEXT};
use stylize_engines::backend::cpu;
use stylize_engines::error::{Error, Result};
use stylize_engines::model::TensorSpec;

pub const PIXEL_VALUES: &str = "pixel_values";
pub const IMAGE_EMBEDS: &str = "image_embeds";
pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const TEXT_EMBEDS: &str = "text_embeds";

/// Default locations: the real ViT-B/32 export if the user put it there, else nothing.
pub fn default_paths() -> (PathBuf, PathBuf) {
    let dir = stylize_engines::runtime::assets_dir().join("clip");
    (dir.join("image.onnx"), dir.join("text.onnx"))
}

pub struct ClipEncoders {
    image: Session,
    text: Session,
    image_path: PathBuf,
    text_path: PathBuf,
    /// Embedding width D, equal for both towers.
    dim: usize,
    text_has_mask: bool,
    ids_are_i32: bool,
}

fn contract(path: &Path, tensor: &str, expected: &str, actual: String) -> Error {
    Error::Contract {
        path: path.to_path_buf(),
        tensor: tensor.into(),
        expected: expected.into(),
        actual,
    }
}

fn find<'a>(
    path: &Path,
    specs: &'a [TensorSpec],
    name: &str,
    what: &str,
) -> Result<&'a TensorSpec> {
    specs.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        contract(
            path,
            name,
            &format!("{what} `{name}`"),
            format!("{what}s [{}]", names.join(", ")),
        )
    })
}

/// A fixed dimension must equal `want`; a dynamic one (−1) is accepted.
fn dim_ok(d: i64, want: usize) -> bool {
    d < 0 || d == want as i64
}

/// The embedding width of a [B,D] output (D fixed, or None when dynamic).
fn embeds_dim(path: &Path, spec: &TensorSpec) -> Result<Option<usize>> {
    match spec.dims.as_slice() {
        [_, d] if spec.element_type == "float32" => Ok((*d > 0).then_some(*d as usize)),
        _ => Err(contract(
            path,
            &spec.name,
            "float32 [B,D]",
            format!("{} {:?}", spec.element_type, spec.dims),
        )),
    }
}

impl ClipEncoders {
    /// Load both towers; a missing file, wrong tensor names or shapes are clear errors.
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
        let image = cpu::session(image_path, threads)?;
        let (inputs, outputs, _) = cpu::describe(image_path, &image)?;
        let px = find(image_path, &inputs, PIXEL_VALUES, "input")?;
        let px_ok = px.element_type == "float32"
            && px.dims.len() == 4
            && dim_ok(px.dims[1], 3)
            && dim_ok(px.dims[2], SIZE)
            && dim_ok(px.dims[3], SIZE);
        if !px_ok {
            return Err(contract(
                image_path,
                PIXEL_VALUES,
                "float32 [B,3,224,224]",
                format!("{} {:?}", px.element_type, px.dims),
            ));
        }
        let image_dim = embeds_dim(
            image_path,
            find(image_path, &outputs, IMAGE_EMBEDS, "output")?,
        )?;

        let text = cpu::session(text_path, threads)?;
        let (inputs, outputs, _) = cpu::describe(text_path, &text)?;
        let ids = find(text_path, &inputs, INPUT_IDS, "input")?;
        let ids_ok = matches!(ids.element_type.as_str(), "int64" | "int32")
            && ids.dims.len() == 2
            && dim_ok(ids.dims[1], CONTEXT);
        if !ids_ok {
            return Err(contract(
                text_path,
                INPUT_IDS,
                "int64 [B,77]",
                format!("{} {:?}", ids.element_type, ids.dims),
            ));
        }
        let ids_are_i32 = ids.element_type == "int32";
        let text_has_mask = inputs.iter().any(|s| s.name == ATTENTION_MASK);
        let text_dim = embeds_dim(text_path, find(text_path, &outputs, TEXT_EMBEDS, "output")?)?;
        let mut encoders = Self {
            image,
            text,
            image_path: image_path.to_path_buf(),
            text_path: text_path.to_path_buf(),
            dim: 0,
            text_has_mask,
            ids_are_i32,
        };
        // Dynamic widths are learnt from one run; the towers must agree to be compared.
        let probe_text = encoders.encode_ids(&[tokenizer::tokenize("a", Overflow::Error)?])?;
        let probe_image = encoders.encode_pixels(&vec![0.0; 3 * SIZE * SIZE], 1)?;
        let (td, id) = (probe_text.len(), probe_image.len());
        if td != id || text_dim.is_some_and(|d| d != td) || image_dim.is_some_and(|d| d != id) {
            return Err(contract(
                text_path,
                TEXT_EMBEDS,
                &format!("the image tower's width ({id})"),
                format!("width {td}"),
            ));
        }
        encoders.dim = td;
        Ok(encoders)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn paths(&self) -> (&Path, &Path) {
        (&self.image_path, &self.text_path)
    }

    /// L2-normalised `text_embeds` of a prompt.
    pub fn encode_text(&mut self, prompt: &str) -> Result<Vec<f32>> {
        let ids = tokenizer::tokenize(prompt, Overflow::Error)?;
        let mut e = self.encode_ids(&[ids])?;
        normalise(&mut e);
        Ok(e)
    }

    /// Raw `text_embeds` of B tokenised prompts, concatenated.
    pub fn encode_ids(&mut self, batch: &[Vec<i64>]) -> Result<Vec<f32>> {
        let fail = |e: ort::Error| Error::Inference(format!("CLIP text encoder: {e}"));
        let shape = vec![batch.len(), CONTEXT];
        let flat: Vec<i64> = batch.iter().flatten().copied().collect();
        let mask: Vec<i64> = batch
            .iter()
            .flat_map(|ids| {
                let end = ids.iter().position(|&t| t == 0).unwrap_or(CONTEXT);
                (0..CONTEXT).map(move |i| i64::from(i < end))
            })
            .collect();
        let outputs = match (self.ids_are_i32, self.text_has_mask) {
            (false, false) => {
                let ids = OrtTensor::from_array((shape, flat)).map_err(fail)?;
                self.text
                    .run(ort::inputs![INPUT_IDS => ids])
                    .map_err(fail)?
            }
            (false, true) => {
                let ids = OrtTensor::from_array((shape.clone(), flat)).map_err(fail)?;
                let m = OrtTensor::from_array((shape, mask)).map_err(fail)?;
                self.text
                    .run(ort::inputs![INPUT_IDS => ids, ATTENTION_MASK => m])
                    .map_err(fail)?
            }
            (true, has_mask) => {
                let ids32: Vec<i32> = flat.iter().map(|&v| v as i32).collect();
                let ids = OrtTensor::from_array((shape.clone(), ids32)).map_err(fail)?;
                if has_mask {
                    let m32: Vec<i32> = mask.iter().map(|&v| v as i32).collect();
                    let m = OrtTensor::from_array((shape, m32)).map_err(fail)?;
                    self.text
                        .run(ort::inputs![INPUT_IDS => ids, ATTENTION_MASK => m])
                        .map_err(fail)?
                } else {
                    self.text
                        .run(ort::inputs![INPUT_IDS => ids])
                        .map_err(fail)?
                }
            }
        };
        let (_, data) = outputs[TEXT_EMBEDS]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        Ok(data.to_vec())
    }

    /// Raw `image_embeds` of B preprocessed images (B·3·224·224 values), concatenated.
    pub fn encode_pixels(&mut self, pixels: &[f32], batch: usize) -> Result<Vec<f32>> {
        let fail = |e: ort::Error| Error::Inference(format!("CLIP image encoder: {e}"));
        let value =
            OrtTensor::from_array(([batch, 3, SIZE, SIZE], pixels.to_vec())).map_err(fail)?;
        let outputs = self
            .image
            .run(ort::inputs![PIXEL_VALUES => value])
            .map_err(fail)?;
        let (_, data) = outputs[IMAGE_EMBEDS]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        Ok(data.to_vec())
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
