use super::conv::{global_average_pool, Conv2d, ConvAlgorithm, ConvShape};
use super::norm::BatchNorm2d;
use super::{Classifier, Dense, Pass};
use crate::kernels::residual::add_relu;
use crate::kernels::Activation;
use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

/// The CIFAR ResNet of He et al. 2016, section 4.2: a 3×3 convolution to `width`
/// channels, then three stages of n basic blocks (`width`, 2·`width`, 4·`width`
/// channels; the second and third start with stride 2), global average pooling and a
/// linear head; depth 6n+2. Shortcuts are the paper's option A: identity, subsampled
/// and zero-padded in channels where the shape changes, so the network has exactly the
/// paper's parameter count (ResNet-20: 0.27 M). Every convolution is followed by
/// BatchNorm (batch statistics in training, running statistics in evaluation). The
/// penultimate features are the 4·`width` pooled activations.
pub struct Resnet {
    stem: Conv2d,
    stem_norm: BatchNorm2d,
    blocks: Vec<BasicBlock>,
    head: Dense,
}

impl Resnet {
    pub fn new(
        channels: usize,
        depth: usize,
        width: usize,
        classes: usize,
        algorithm: ConvAlgorithm,
        vb: VarBuilder,
    ) -> Result<Self> {
        let n = (depth - 2) / 6;
        let stem = conv3x3(channels, width, 1, algorithm, vb.pp("stem"))?;
        let stem_norm = BatchNorm2d::new(width, Activation::Relu, vb.pp("stem_norm"))?;
        let mut blocks = Vec::with_capacity(3 * n);
        let mut inputs = width;
        for stage in 0..3 {
            let outputs = width << stage;
            for b in 0..n {
                let stride = if stage > 0 && b == 0 { 2 } else { 1 };
                let vb = vb.pp(format!("stage{}.{b}", stage + 1));
                blocks.push(BasicBlock::new(inputs, outputs, stride, algorithm, vb)?);
                inputs = outputs;
            }
        }
        let head = Dense::new(inputs, classes, Activation::Identity, vb.pp("head"))?;
        Ok(Self {
            stem,
            stem_norm,
            blocks,
            head,
        })
    }
}

impl Classifier for Resnet {
    fn features(&self, x: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let train = matches!(pass, Pass::Train(_));
        let mut h = self.stem_norm.forward_t(&self.stem.forward(x)?, train)?;
        for block in &self.blocks {
            h = block.forward(&h, train)?;
        }
        global_average_pool(&h)
    }

    fn head(&self, features: &Tensor) -> Result<Tensor> {
        self.head.forward(features)
    }
}

fn conv3x3(
    inputs: usize,
    outputs: usize,
    stride: usize,
    algorithm: ConvAlgorithm,
    vb: VarBuilder,
) -> Result<Conv2d> {
    let shape = ConvShape {
        inputs,
        outputs,
        size: 3,
        stride,
        padding: 1,
        bias: false,
        activation: Activation::Identity,
    };
    Conv2d::new(shape, algorithm, vb)
}

/// `relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`.
struct BasicBlock {
    conv1: Conv2d,
    norm1: BatchNorm2d,
    conv2: Conv2d,
    norm2: BatchNorm2d,
    /// Stride and channels added by the shortcut (option A), when the shape changes.
    downsample: Option<(usize, usize)>,
}

impl BasicBlock {
    fn new(
        inputs: usize,
        outputs: usize,
        stride: usize,
        algorithm: ConvAlgorithm,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            conv1: conv3x3(inputs, outputs, stride, algorithm, vb.pp("conv1"))?,
            norm1: BatchNorm2d::new(outputs, Activation::Relu, vb.pp("norm1"))?,
            conv2: conv3x3(outputs, outputs, 1, algorithm, vb.pp("conv2"))?,
            norm2: BatchNorm2d::new(outputs, Activation::Identity, vb.pp("norm2"))?,
            downsample: (stride != 1 || inputs != outputs).then_some((stride, outputs - inputs)),
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.norm1.forward_t(&self.conv1.forward(x)?, train)?;
        let h = self.norm2.forward_t(&self.conv2.forward(&h)?, train)?;
        let shortcut = match self.downsample {
            None => x.clone(),
            Some((stride, extra)) => option_a_shortcut(x, stride, extra)?,
        };
        add_relu(&h, &shortcut)
    }
}

/// `x[:, :, ::stride, ::stride]`, then `extra` zero channels split evenly before and
/// after (as in the reference implementations of option A).
fn option_a_shortcut(x: &Tensor, stride: usize, extra: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (out_h, out_w) = (h.div_ceil(stride), w.div_ceil(stride));
    let x = x
        .pad_with_zeros(2, 0, out_h * stride - h)?
        .pad_with_zeros(3, 0, out_w * stride - w)?
        .reshape((n, c, out_h, stride, out_w, stride))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, out_h, out_w))?;
    x.pad_with_zeros(1, extra / 2, extra - extra / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_core::{Device, Var};

    #[test]
    fn the_fused_residual_sum_equals_add_then_relu_and_is_off_at_zero() {
        let dev = Device::Cpu;
        let a = Var::new(&[[1.5f64, -2.0, 0.25], [-0.5, 3.0, -1.0]], &dev).unwrap();
        let b = Var::new(&[[-1.0f64, 1.0, 0.5], [0.5, -4.0, 2.5]], &dev).unwrap();
        let weights = Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]], &dev).unwrap();
        let fused = add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let composite = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
        let sums = [[0.5, 0.0, 0.75], [0.0, 0.0, 1.5]];
        assert_eq!(fused.to_vec2::<f64>().unwrap(), sums);
        assert_eq!(composite.to_vec2::<f64>().unwrap(), sums);

        let grads = (&fused * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        // On where the sum is positive; off below 0 and at exactly 0 ([1][0]: −0.5 + 0.5),
        // where candle's relu would pass the gradient.
        let expected = [[1.0, 0.0, 3.0], [0.0, 0.0, 6.0]];
        for v in [&a, &b] {
            let g = grads.get(v.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
            assert_eq!(g, expected);
        }
    }

    #[test]
    fn the_fused_residual_sum_rejects_different_shapes() {
        let dev = Device::Cpu;
        let a = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let b = Tensor::zeros((3, 2), DType::F32, &dev).unwrap();
        let err = add_relu(&a, &b).unwrap_err().to_string();
        assert!(err.contains("differ"), "{err}");
    }
}
