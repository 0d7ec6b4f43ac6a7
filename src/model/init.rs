use candle_core::{bail, DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use std::sync::Mutex;

/// A `VarBuilder` backend that creates missing variables in a [`VarMap`] from a seeded
/// generator, honouring the layer's initialisation hint exactly as candle's own
/// `Init::var` would (same distributions and fan computation), but reproducibly.
pub struct SeededVars {
    vars: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

impl SeededVars {
    pub fn new(vars: VarMap, rng: ChaCha8Rng) -> Self {
        Self {
            vars,
            rng: Mutex::new(rng),
        }
    }
}

/// Draws `shape.elem_count()` values from `init`.
pub fn sample_init(init: Init, shape: &Shape, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = shape.elem_count();
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| {
        mean + std * rng.sample::<f64, _>(StandardNormal)
    };
    let values: Vec<f64> = match init {
        Init::Const(c) => vec![c; n],
        Init::Uniform { lo, up } if lo < up => (0..n).map(|_| rng.random_range(lo..up)).collect(),
        Init::Uniform { lo, .. } => vec![lo; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| normal(rng, mean, stdev)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                }
                NormalOrUniform::Normal => (0..n).map(|_| normal(rng, 0.0, std)).collect(),
            }
        }
    };
    values.into_iter().map(|v| v as f32).collect()
}

impl SimpleBackend for SeededVars {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut vars = self.vars.data().lock().expect("variable map lock");
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                bail!(
                    "shape mismatch on {name}: {shape:?} requested, {:?} stored",
                    var.shape()
                )
            }
            return Ok(var.as_tensor().clone());
        }
        let values = sample_init(init, &shape, &mut self.rng.lock().expect("init rng lock"));
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let vars = self.vars.data().lock().expect("variable map lock");
        match vars.get(name) {
            Some(var) => Ok(var.as_tensor().clone()),
            None => bail!("no variable named {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars
            .data()
            .lock()
            .expect("variable map lock")
            .contains_key(name)
    }
}
