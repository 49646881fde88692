//! The arbitrary-style predictor (Ghiasi et al. 2017): any image → a style embedding.

use std::path::Path;

use fast_image_resize as fr;
use ort::session::Session;
use ort::value::Tensor as OrtTensor;

use crate::backend::cpu;
use crate::error::{Error, Result};
use crate::frame::{self, RgbImage};
use crate::model::{self, PredictorInfo};
use crate::size::Size;
use crate::tensor::Tensor;

pub struct StylePredictor {
    session: Session,
    info: PredictorInfo,
    /// SHA-256 of the model file: half of the embedding cache key.
    model_hash: [u8; 32],
    resizer: fr::Resizer,
}

/// Centre square crop, as the predictor was trained on square style images.
fn centre_square(img: &RgbImage) -> RgbImage {
    let side = img.width.min(img.height);
    let (left, top) = ((img.width - side) / 2, (img.height - side) / 2);
    let mut out = RgbImage::new(side, side);
    for (y, row) in out.data.chunks_exact_mut(side * 3).enumerate() {
        let start = ((top + y) * img.width + left) * 3;
        row.copy_from_slice(&img.data[start..start + side * 3]);
    }
    out
}

impl StylePredictor {
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let session = cpu::session(path, threads)?;
        let (inputs, outputs, _) = cpu::describe(path, &session)?;
        let info = model::check_predictor_contract(path, &inputs, &outputs)?;
        let model_hash = crate::files::sha256_file(path)?;
        Ok(Self {
            session,
            info,
            model_hash,
            resizer: fr::Resizer::new(),
        })
    }

    pub fn info(&self) -> &PredictorInfo {
        &self.info
    }

    pub fn model_hash(&self) -> &[u8; 32] {
        &self.model_hash
    }

    /// The predictor's input for an image: centre square, Lanczos-resized to S×S, 0..1.
    pub fn preprocess(&mut self, img: &RgbImage) -> Result<Tensor> {
        let side = self.info.input_size;
        let square = centre_square(img);
        let small = frame::resize_rgb_with(
            &mut self.resizer,
            &square,
            side,
            side,
            fr::FilterType::Lanczos3,
        )?;
        Ok(frame::image_to_tensor(&small, Size::new(side, side), 1.0))
    }

    /// Run the network on a preprocessed [1,3,S,S] tensor.
    pub fn run(&mut self, input: &Tensor) -> Result<Vec<f32>> {
        let fail = |e: ort::Error| Error::Inference(e.to_string());
        let value = OrtTensor::from_array((input.shape(), input.data.clone())).map_err(fail)?;
        let outputs = self
            .session
            .run(ort::inputs![model::STYLE => value])
            .map_err(fail)?;
        let (_, data) = outputs[model::STYLE_EMBEDDING]
            .try_extract_tensor::<f32>()
            .map_err(fail)?;
        Ok(data.to_vec())
    }

    /// Style embedding of an image.
    pub fn embed(&mut self, img: &RgbImage) -> Result<Vec<f32>> {
        let input = self.preprocess(img)?;
        self.run(&input)
    }
}

/// α·a + (1−α)·b, elementwise: embedding interpolation and style strength.
pub fn lerp(a: &[f32], b: &[f32], alpha: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| alpha * x + (1.0 - alpha) * y)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_square_takes_the_middle() {
        let img = RgbImage {
            width: 4,
            height: 2,
            data: (0..24).collect(),
        };
        let sq = centre_square(&img);
        assert_eq!((sq.width, sq.height), (2, 2));
        // columns 1..3 of both rows
        assert_eq!(sq.data, vec![3, 4, 5, 6, 7, 8, 15, 16, 17, 18, 19, 20]);
    }

    #[test]
    fn lerp_endpoints_are_exact() {
        let (a, b) = (vec![1.5, -2.0], vec![0.25, 4.0]);
        assert_eq!(lerp(&a, &b, 1.0), a);
        assert_eq!(lerp(&a, &b, 0.0), b);
        assert_eq!(lerp(&a, &b, 0.5), vec![0.875, 1.0]);
    }
}
