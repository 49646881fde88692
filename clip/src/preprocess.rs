//! CLIP's image preprocessing, and the random augmentations the tuner applies before it.
//!
//! Standard path (`pixel_values` of a photo): resize the shortest side to 224 with bicubic
//! interpolation, centre crop 224×224, scale to 0..1, normalise with CLIP's mean and std — as
//! OpenAI's `clip.load` transform and Hugging Face's `CLIPImageProcessor` do.
//!
//! Tuning path: the stylized output is already a float tensor, so a random square crop
//! (with a random flip and colour jitter) is resampled straight to 224 bilinearly. Scoring many
//! random views instead of one fixed view is what keeps the optimiser from finding
//! adversarial pixel patterns that only fool CLIP at one exact framing.

use fast_image_resize as fr;

use super::rng::Rng;
use stylize_engines::error::{Error, Result};
use stylize_engines::frame::RgbImage;
use stylize_engines::tensor::Tensor;

/// Side of CLIP ViT-B/32's input.
pub const SIZE: usize = 224;
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// `pixel_values` [3,224,224] (batch dim left to the caller) of an RGB image.
pub fn pixel_values(img: &RgbImage) -> Result<Vec<f32>> {
    if img.width == 0 || img.height == 0 {
        return Err(Error::Frame("empty image".into()));
    }
    // torchvision Resize(224): the short side becomes 224, the long side int(224·long/short).
    let (w, h) = if img.width <= img.height {
        (SIZE, (SIZE * img.height) / img.width)
    } else {
        ((SIZE * img.width) / img.height, SIZE)
    };
    // PIL's BICUBIC is the a = −0.5 cubic, i.e. Catmull–Rom.
    let resized = stylize_engines::frame::resize_rgb_with(
        &mut fr::Resizer::new(),
        img,
        w,
        h,
        fr::FilterType::CatmullRom,
    )?;
    let data = resized.data;
    let (left, top) = ((w - SIZE) / 2, (h - SIZE) / 2);
    let mut out = vec![0.0; 3 * SIZE * SIZE];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let p = ((top + y) * w + left + x) * 3;
            for c in 0..3 {
                let v = f32::from(data[p + c]) / 255.0;
                out[c * SIZE * SIZE + y * SIZE + x] = (v - MEAN[c]) / STD[c];
            }
        }
    }
    Ok(out)
}

/// One random view of a 0..1 image tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Square crop: top-left corner and side, in source pixels.
    pub top: f32,
    pub left: f32,
    pub side: f32,
    pub flip: bool,
    /// Colour jitter: v ← (v − 0.5)·contrast + 0.5 + brightness, per image.
    pub brightness: f32,
    pub contrast: f32,
}

impl View {
    /// The whole image's centre square, unflipped, unjittered: the view scores are reported on
    /// when augmentation is off.
    pub fn centre(height: usize, width: usize) -> Self {
        let side = height.min(width) as f32;
        Self {
            top: (height as f32 - side) / 2.0,
            left: (width as f32 - side) / 2.0,
            side,
            flip: false,
            brightness: 0.0,
            contrast: 1.0,
        }
    }

    /// A random crop covering 60–100 % of the short side, a coin-flip mirror, ±10 %
    /// brightness and contrast.
    pub fn random(rng: &mut Rng, height: usize, width: usize) -> Self {
        let short = height.min(width) as f32;
        let side = short * (0.6 + 0.4 * rng.uniform());
        Self {
            top: (height as f32 - side) * rng.uniform(),
            left: (width as f32 - side) * rng.uniform(),
            side,
            flip: rng.uniform() < 0.5,
            brightness: 0.2 * rng.uniform() - 0.1,
            contrast: 0.9 + 0.2 * rng.uniform(),
        }
    }

    /// Render this view of a 0..1 [3,H,W] tensor as normalised `pixel_values` into `out`
    /// (3·224·224 values), bilinear.
    pub fn render(&self, img: &Tensor, out: &mut [f32]) {
        let (h, w) = (img.height, img.width);
        let scale = self.side / SIZE as f32;
        let plane = h * w;
        for y in 0..SIZE {
            let sy = (self.top + (y as f32 + 0.5) * scale - 0.5).clamp(0.0, (h - 1) as f32);
            let y0 = sy.floor() as usize;
            let y1 = (y0 + 1).min(h - 1);
            let fy = sy - y0 as f32;
            for x in 0..SIZE {
                let xo = if self.flip { SIZE - 1 - x } else { x };
                let sx = (self.left + (xo as f32 + 0.5) * scale - 0.5).clamp(0.0, (w - 1) as f32);
                let x0 = sx.floor() as usize;
                let x1 = (x0 + 1).min(w - 1);
                let fx = sx - x0 as f32;
                for c in 0..3 {
                    let p = &img.data[c * plane..(c + 1) * plane];
                    let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
                    let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
                    let v = top * (1.0 - fy) + bottom * fy;
                    let v = ((v - 0.5) * self.contrast + 0.5 + self.brightness).clamp(0.0, 1.0);
                    out[c * SIZE * SIZE + y * SIZE + x] = (v - MEAN[c]) / STD[c];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_image_normalises_to_minus_mean_over_std() {
        let img = RgbImage {
            width: 300,
            height: 200,
            data: vec![128; 300 * 200 * 3],
        };
        let px = pixel_values(&img).unwrap();
        assert_eq!(px.len(), 3 * SIZE * SIZE);
        for c in 0..3 {
            let want = (128.0 / 255.0 - MEAN[c]) / STD[c];
            let plane = &px[c * SIZE * SIZE..(c + 1) * SIZE * SIZE];
            assert!(plane.iter().all(|v| (v - want).abs() < 1e-5));
        }
    }

    #[test]
    fn centre_crop_keeps_the_middle_of_the_long_side() {
        // Left third red, middle third green, right third blue: the crop sees only green.
        let (w, h) = (672, 224);
        let mut img = RgbImage::new(w, h);
        for (i, px) in img.data.chunks_exact_mut(3).enumerate() {
            px[(i % w) * 3 / w] = 255;
        }
        let px = pixel_values(&img).unwrap();
        let green = (1.0 - MEAN[1]) / STD[1];
        let centre = SIZE * SIZE + (SIZE / 2) * SIZE + SIZE / 2;
        assert!((px[centre] - green).abs() < 1e-5);
        // The crop edges stay inside the green band (no red or blue leaks at 224-px scale).
        assert!((px[SIZE * SIZE + 100 * SIZE + 1] - green).abs() < 1e-3);
    }

    #[test]
    fn centre_view_of_a_224_tensor_is_the_identity_and_flip_mirrors() {
        let mut t = Tensor::zeros(3, SIZE, SIZE);
        for (i, v) in t.data.iter_mut().enumerate() {
            *v = (i % SIZE) as f32 / SIZE as f32;
        }
        let mut out = vec![0.0; 3 * SIZE * SIZE];
        let mut view = View::centre(SIZE, SIZE);
        view.render(&t, &mut out);
        for x in [0, 17, 223] {
            let want = (t.data[x] - MEAN[0]) / STD[0];
            assert!((out[x] - want).abs() < 1e-5);
        }
        view.flip = true;
        view.render(&t, &mut out);
        let want = (t.data[SIZE - 1] - MEAN[0]) / STD[0];
        assert!((out[0] - want).abs() < 1e-5);
    }

    #[test]
    fn random_views_stay_inside_the_image() {
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let v = View::random(&mut rng, 120, 90);
            assert!(v.side >= 54.0 - 1e-3 && v.side <= 90.0);
            assert!(v.top >= 0.0 && v.top + v.side <= 120.0 + 1e-3);
            assert!(v.left >= 0.0 && v.left + v.side <= 90.0 + 1e-3);
        }
    }
}
