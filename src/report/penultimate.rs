//! The penultimate-layer picture of Müller, Kornblith & Hinton 2019 (Fig. 1): the
//! penultimate activations of test examples of three classes, projected onto the plane
//! through those classes' templates (their rows of the last layer's weight matrix).
//!
//! Label smoothing should pull each class into a tight cluster at equal distances from
//! the other templates; without it the clusters spread along the template directions.

use crate::data;
use crate::model::{self, Pass};
use crate::spec::DatasetSpec;
use crate::store::{Outcome, RunDir};
use crate::BadInput;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// An orthonormal basis of the plane through three templates, and its origin (their
/// centroid, so that the templates land around (0, 0)).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub origin: Vec<f64>,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

fn unit(a: Vec<f64>) -> Option<Vec<f64>> {
    let norm = dot(&a, &a).sqrt();
    (norm > 1e-12).then(|| a.into_iter().map(|x| x / norm).collect())
}

impl Plane {
    /// Gram–Schmidt on `b − a` and `c − a`. `None` when the templates are collinear (no
    /// single plane passes through them).
    pub fn through(a: &[f64], b: &[f64], c: &[f64]) -> Option<Self> {
        let u = unit(sub(b, a))?;
        let ac = sub(c, a);
        let along = dot(&ac, &u);
        let v = unit(ac.iter().zip(&u).map(|(x, ui)| x - along * ui).collect())?;
        let origin = (0..a.len()).map(|i| (a[i] + b[i] + c[i]) / 3.0).collect();
        Some(Self { origin, u, v })
    }

    /// The coordinates in the plane of the orthogonal projection of `x`.
    pub fn project(&self, x: &[f64]) -> (f64, f64) {
        let d = sub(x, &self.origin);
        (dot(&d, &self.u), dot(&d, &self.v))
    }
}

/// One run's picture: the projected examples and templates.
#[derive(Debug, Clone)]
pub struct Projection {
    pub points: Vec<(f64, f64)>,
    /// For each point, the position (0, 1, 2) of its class in the chosen three.
    pub classes: Vec<usize>,
    /// Where the three templates land.
    pub templates: [(f64, f64); 3],
}

/// Projects `features` (`[n, d]` rows, class positions in `classes`) onto the plane of
/// the three `templates`.
pub fn project(
    features: &[Vec<f64>],
    classes: Vec<usize>,
    templates: [&[f64]; 3],
) -> Result<Projection> {
    let plane = Plane::through(templates[0], templates[1], templates[2])
        .context("the three classes' templates lie on one line: no plane passes through them")?;
    Ok(Projection {
        points: features.iter().map(|f| plane.project(f)).collect(),
        classes,
        templates: templates.map(|t| plane.project(t)),
    })
}

/// Class names where the data set has them (`digit k` for MNIST, `class k` otherwise).
pub fn class_names(spec: &DatasetSpec, classes: usize) -> Vec<String> {
    let known: &[&str] = match spec {
        DatasetSpec::FashionMnist(_) => &[
            "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
            "boot",
        ],
        DatasetSpec::Cifar10(_) => &[
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        _ => &[],
    };
    (0..classes)
        .map(|k| match known.get(k) {
            Some(name) => name.to_string(),
            None if matches!(spec, DatasetSpec::Mnist(_)) => format!("digit {k}"),
            None => format!("class {k}"),
        })
        .collect()
}

/// Parses `--classes`: three distinct class indices or names.
pub fn parse_classes(text: &str, names: &[String]) -> Result<[usize; 3]> {
    let parsed: Vec<usize> = text
        .split(',')
        .map(|part| {
            let part = part.trim();
            if let Some(k) = names.iter().position(|n| n.eq_ignore_ascii_case(part)) {
                return Ok(k);
            }
            match part.parse::<usize>() {
                Ok(k) if k < names.len() => Ok(k),
                _ => Err(anyhow::anyhow!(
                    "--classes: `{part}` is neither a class index below {} nor a class name ({})",
                    names.len(),
                    names.join(", ")
                )),
            }
        })
        .collect::<Result<_>>()?;
    match parsed[..] {
        [a, b, c] if a != b && b != c && a != c => Ok([a, b, c]),
        _ => bail!("--classes {text}: expected three different classes, e.g. --classes 0,1,2"),
    }
}

/// A completed run's penultimate picture for the classes `--classes` names, from up to
/// `examples` test examples per class (the first in test-set order).
pub struct RunPicture {
    pub label: String,
    pub class_names: [String; 3],
    pub projection: Projection,
}

/// Rebuilds the run's model from its `config` and `model.safetensors`, reads its test
/// set, and projects the chosen classes' examples.
pub fn of_run(run_dir: &Path, classes: &str, examples: usize) -> Result<RunPicture> {
    let run = RunDir::new(run_dir);
    let result = run.read_result().map_err(BadInput)?;
    if result.status != Outcome::Completed {
        return Err(BadInput(anyhow::anyhow!(
            "{}: the run failed, so it has no model to look into",
            run_dir.display()
        ))
        .into());
    }
    let config = &result.config;
    let device = Device::Cpu;
    let data = data::load(&config.dataset, config.seed, &device)
        .with_context(|| format!("loading the test set of {}", run_dir.display()))?;
    let names = class_names(&config.dataset, data.classes);
    let chosen = parse_classes(classes, &names).map_err(BadInput)?;

    let labels = data.test.y.to_vec1::<u32>()?;
    let mut indices = vec![];
    let mut positions = vec![];
    for (position, &class) in chosen.iter().enumerate() {
        let of_class: Vec<u32> = (0..labels.len() as u32)
            .filter(|&i| labels[i as usize] as usize == class)
            .take(examples)
            .collect();
        ensure!(
            !of_class.is_empty(),
            "the test set has no example of class {}",
            names[class]
        );
        positions.extend(std::iter::repeat_n(position, of_class.len()));
        indices.extend(of_class);
    }

    let model = model::build(
        &config.model,
        &data.sample_shape,
        data.classes,
        config.seed,
        &device,
    )?;
    let mut vars = model.vars.clone();
    run.load_model(&mut vars)?;
    let n = indices.len();
    let x = data
        .test
        .x
        .index_select(&Tensor::from_vec(indices, n, &device)?, 0)?;
    let features = rows(&model.inference.features(&x, &mut Pass::Eval)?)?;
    let templates = templates(model.inference.as_ref(), features[0].len(), &device)?;
    let projection = project(
        &features,
        positions,
        chosen.map(|k| templates[k].as_slice()),
    )?;
    let label = if result.swept.is_empty() {
        result.run_id.clone()
    } else {
        result
            .swept
            .iter()
            .map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(RunPicture {
        label,
        class_names: chosen.map(|k| names[k].clone()),
        projection,
    })
}

/// The last layer's weight rows, one per class, read through the layer itself:
/// `head(e_i) − head(0)` is column i of the weight matrix, whatever the model names it.
fn templates(
    classifier: &dyn model::Classifier,
    features: usize,
    device: &Device,
) -> Result<Vec<Vec<f64>>> {
    let eye = Tensor::eye(features, DType::F32, device)?;
    let zero = Tensor::zeros((1, features), DType::F32, device)?;
    let weights_t = classifier
        .head(&eye)?
        .broadcast_sub(&classifier.head(&zero)?)?;
    rows(&weights_t.t()?.contiguous()?)
}

fn rows(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

/// `smoothlab viz penultimate`: one panel per run, side by side.
pub fn figure(
    run_dirs: &[std::path::PathBuf],
    classes: &str,
    examples: usize,
    style: super::plot::Style,
) -> Result<super::plot::Figure> {
    let pictures = run_dirs
        .iter()
        .map(|dir| of_run(dir, classes, examples))
        .collect::<Result<Vec<_>>>()?;
    let panels: Vec<super::plot::ScatterPanel> = pictures
        .iter()
        .map(|p| super::plot::ScatterPanel {
            title: p.label.clone(),
            points: p.projection.points.clone(),
            classes: p.projection.classes.clone(),
            class_names: p.class_names.to_vec(),
        })
        .collect();
    let names = pictures
        .first()
        .map(|p| p.class_names.join(", "))
        .unwrap_or_default();
    super::plot::scatter_panels(
        &format!(
            "Penultimate-layer activations of {names}, projected onto the plane of their templates"
        ),
        &panels,
        style,
    )
}
