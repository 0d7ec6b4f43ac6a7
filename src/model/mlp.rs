use super::{dropout, Activation, Classifier, Dense, Pass};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// Multi-layer perceptron: flatten, then `Linear → ReLU → dropout` per hidden width, then
/// a linear head. Initialisation is candle-nn's: Kaiming-normal weights (std √(2/fan_in))
/// and U(±1/√fan_in) biases, drawn from the run's seed.
pub struct Mlp {
    hidden: Vec<Dense>,
    head: Dense,
    dropout: f64,
}

impl Mlp {
    pub fn new(
        inputs: usize,
        widths: &[usize],
        classes: usize,
        dropout: f64,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut hidden = Vec::with_capacity(widths.len());
        let mut fan_in = inputs;
        for (i, &width) in widths.iter().enumerate() {
            hidden.push(Dense::new(
                fan_in,
                width,
                Activation::Relu,
                vb.pp(format!("hidden.{i}")),
            )?);
            fan_in = width;
        }
        let head = Dense::new(fan_in, classes, Activation::Identity, vb.pp("head"))?;
        Ok(Self {
            hidden,
            head,
            dropout,
        })
    }
}

impl Classifier for Mlp {
    fn features(&self, x: &Tensor, pass: &mut Pass) -> candle_core::Result<Tensor> {
        let mut h = x.flatten_from(1)?;
        for layer in &self.hidden {
            h = dropout(&layer.forward(&h)?, self.dropout, pass)?;
        }
        Ok(h)
    }

    fn head(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.head.forward(features)
    }
}
