/// A dense float32 NCHW tensor with batch 1: the only layout style models exchange here.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            data: vec![0.0; channels * height * width],
        }
    }

    pub fn shape(&self) -> [usize; 4] {
        [1, self.channels, self.height, self.width]
    }

    pub fn plane(&self, c: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.data[c * n..(c + 1) * n]
    }
}
