use super::conv::{max_pool2, Conv2d, ConvAlgorithm, ConvShape};
use super::{dropout, Activation, Classifier, Dense, Pass};
use candle_core::{bail, Module, Tensor};
use candle_nn::VarBuilder;

/// LeNet-5 (LeCun et al. 1998) as it is usually trained today: ReLU instead of tanh,
/// max instead of average pooling, full connections between the convolutions.
/// `conv 5×5 → 6, pool, conv 5×5 → 16, pool, linear 400 → 120 → 84 → classes`;
/// 28×28 inputs are zero-padded by 2 so that both sizes reach the 5×5×16 map of the
/// paper. The penultimate features are the 84 activations.
pub struct Lenet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Dense,
    fc2: Dense,
    head: Dense,
    dropout: f64,
}

impl Lenet5 {
    pub fn new(
        sample_shape: &[usize],
        classes: usize,
        dropout: f64,
        algorithm: ConvAlgorithm,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let (channels, padding) = match *sample_shape {
            [c, 28, 28] => (c, 2),
            [c, 32, 32] => (c, 0),
            _ => {
                bail!("LeNet-5 takes 28×28 or 32×32 images, got samples of shape {sample_shape:?}")
            }
        };
        let conv = |inputs, outputs, padding, name: &str| {
            let shape = ConvShape {
                inputs,
                outputs,
                size: 5,
                stride: 1,
                padding,
                bias: true,
                activation: Activation::Relu,
            };
            Conv2d::new(shape, algorithm, vb.pp(name))
        };
        Ok(Self {
            conv1: conv(channels, 6, padding, "conv1")?,
            conv2: conv(6, 16, 0, "conv2")?,
            fc1: Dense::new(16 * 5 * 5, 120, Activation::Relu, vb.pp("fc1"))?,
            fc2: Dense::new(120, 84, Activation::Relu, vb.pp("fc2"))?,
            head: Dense::new(84, classes, Activation::Identity, vb.pp("head"))?,
            dropout,
        })
    }
}

impl Classifier for Lenet5 {
    fn features(&self, x: &Tensor, pass: &mut Pass) -> candle_core::Result<Tensor> {
        let h = max_pool2(&self.conv1.forward(x)?)?;
        let h = max_pool2(&self.conv2.forward(&h)?)?.flatten_from(1)?;
        let h = self.fc1.forward(&dropout(&h, self.dropout, pass)?)?;
        self.fc2.forward(&dropout(&h, self.dropout, pass)?)
    }

    fn head(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(features)
    }
}
