//! Few-shot adaptation: teaching zero-shot CLIP a user's own classes from a few labelled
//! photos, on frozen embeddings (the model itself is not trained).
//!
//! Tip-Adapter (Zhang et al., 2022), training-free: every labelled photo is a key of a cache,
//! and a photo with normalised embedding `f` gets
//! `logits = zero_shot + α·exp(−β(1 − f·Fᵀ))·L` (`zero_shot = scale · f·Wᵀ`, `W` the label text
//! embeddings, `F` the keys, `L` their one-hot labels). Optionally a linear probe, trained on the
//! keys and held near the text weights, replaces `zero_shot` by
//! `(1 − blend)·zero_shot + blend·f·Pᵀ`.

use serde::{Deserialize, Serialize};

use crate::clip::{normalize_rows, predictions, softmax, zero_shot_logits, Prediction};
use crate::error::Error;

/// Version of the adapter file's layout.
pub const ADAPTER_FORMAT: u32 = 1;
/// Tip-Adapter's defaults: the cache's weight against zero-shot, and its sharpness.
pub const DEFAULT_ALPHA: f32 = 1.0;
pub const DEFAULT_BETA: f32 = 5.5;
/// The probe's defaults: its share of the text logits, and its L2 pull toward the text weights.
pub const DEFAULT_BLEND: f32 = 0.5;
pub const DEFAULT_PROBE_L2: f32 = 0.1;

/// Gradient steps of the probe. With the L2 term its loss is strongly convex; at the default
/// λ = 0.1 each step of size 1/L shrinks the distance to the minimum by 1/6, so 100 steps reach
/// it to float precision (smaller λ stops earlier, itself a pull toward the text weights).
const PROBE_STEPS: usize = 100;
/// Most parts an adapter check is split into (and folds, with a probe).
pub const MAX_CHECK_PARTS: usize = 10;

/// A linear probe on the embeddings: one weight row per label, in logits (`f·P_cᵀ` is label
/// `c`'s logit), started at `scale·W` and trained by gradient descent on the cross-entropy of
/// the keys plus `l2/2·‖P − scale·W‖²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// Its share of the text logits: `(1 − blend)·zero_shot + blend·probe`.
    pub blend: f32,
    pub l2: f32,
    /// `[labels][dim]`.
    pub weights: Vec<Vec<f32>>,
}

/// A few-shot classifier over one label list and one model; its JSON form is the adapter file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adapter {
    pub format: u32,
    /// `fingerprint::model_id` of the model that made the keys.
    pub model: String,
    pub dim: usize,
    pub labels: Vec<String>,
    /// The prompt templates the label text embeddings are made with; empty when unknown.
    #[serde(default)]
    pub templates: Vec<String>,
    pub alpha: f32,
    pub beta: f32,
    /// The labelled photos' L2-normalised embeddings, `[examples][dim]`.
    pub keys: Vec<Vec<f32>>,
    /// Each key's index in `labels`.
    pub key_labels: Vec<usize>,
    pub probe: Option<Probe>,
}

/// Leave-one-out accuracy on the labelled photos: each one classified by an adapter made
/// without it, against zero-shot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeaveOneOut {
    pub examples: usize,
    pub zero_shot_correct: usize,
    pub adapted_correct: usize,
}

impl LeaveOneOut {
    pub fn zero_shot_accuracy(&self) -> f32 {
        self.zero_shot_correct as f32 / self.examples as f32
    }

    pub fn adapted_accuracy(&self) -> f32 {
        self.adapted_correct as f32 / self.examples as f32
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn class_without_examples<'a>(labels: &'a [String], example_labels: &[usize]) -> Option<&'a String> {
    labels.iter().enumerate().find(|(c, _)| !example_labels.contains(c)).map(|(_, label)| label)
}

/// The first label with the highest logit (as `predictions` orders them).
fn argmax(logits: &[f32]) -> usize {
    logits.iter().enumerate().fold(0, |best, (i, l)| if *l > logits[best] { i } else { best })
}

impl Adapter {
    /// A Tip-Adapter cache (α = 1, β = 5.5, no probe) from labelled photos: `examples` is
    /// `[n, dim]` row-major (normalised here), `example_labels` their indices in `labels`.
    /// Every label needs at least one photo (as `fieldclip adapt` asks of its folders).
    pub fn new(
        model: &str,
        labels: Vec<String>,
        templates: Vec<String>,
        dim: usize,
        examples: &[f32],
        example_labels: &[usize],
    ) -> Result<Self, Error> {
        if let Some(label) = class_without_examples(&labels, example_labels) {
            return Err(Error::ClassWithoutExamples(label.clone()));
        }
        Self::with_some_classes(model, labels, templates, dim, examples, example_labels)
    }

    /// Like `new`, but labels without photos are allowed: they keep their zero-shot logit (no
    /// cache term). The page builds adapters this way while the user labels photos one by one.
    pub fn with_some_classes(
        model: &str,
        labels: Vec<String>,
        templates: Vec<String>,
        dim: usize,
        examples: &[f32],
        example_labels: &[usize],
    ) -> Result<Self, Error> {
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if example_labels.is_empty() {
            return Err(Error::NoExamples);
        }
        if dim == 0 || examples.len() != example_labels.len() * dim {
            let rows = example_labels.len();
            return Err(Error::RowCount { rows, dim, expected: rows * dim, found: examples.len() });
        }
        if let Some(&index) = example_labels.iter().find(|&&l| l >= labels.len()) {
            return Err(Error::LabelIndex { index, labels: labels.len() });
        }
        let mut keys = examples.to_vec();
        normalize_rows(&mut keys, dim);
        Ok(Self {
            format: ADAPTER_FORMAT,
            model: model.to_string(),
            dim,
            labels,
            templates,
            alpha: DEFAULT_ALPHA,
            beta: DEFAULT_BETA,
            keys: keys.chunks_exact(dim).map(<[f32]>::to_vec).collect(),
            key_labels: example_labels.to_vec(),
            probe: None,
        })
    }

    /// How many labels have no labelled photo (and so rely on their text alone).
    pub fn classes_without_examples(&self) -> usize {
        (0..self.labels.len()).filter(|c| !self.key_labels.contains(c)).count()
    }

    /// `label_embeds` must be `[labels, dim]` of a model with this adapter's dimension.
    fn check_label_embeds(&self, label_embeds: &[f32]) -> Result<(), Error> {
        if label_embeds.len() != self.labels.len() * self.dim {
            let expected = label_embeds.len() / self.labels.len();
            return Err(Error::DimensionMismatch { what: "adapter", expected, found: self.dim });
        }
        Ok(())
    }

    /// Trains the linear probe on the keys (replacing any), starting from and pulled toward
    /// `scale · label_embeds` (normalised label text embeddings, `[labels, dim]`).
    pub fn train_probe(&mut self, label_embeds: &[f32], scale: f32, blend: f32, l2: f32) -> Result<(), Error> {
        self.check_label_embeds(label_embeds)?;
        let (n, dim) = (self.keys.len(), self.dim);
        // The probe's change Δ to the text weights starts at zero and every gradient step adds
        // a combination of keys, so it is trained as coefficients over the keys,
        // Δ_c = Σ_j a_cj·key_j, where a key's logits need only the keys' Gram matrix: n×n
        // instead of n×dim work per step.
        let gram: Vec<Vec<f32>> = self.keys.iter().map(|a| self.keys.iter().map(|b| dot(a, b)).collect()).collect();
        let zero_shot: Vec<Vec<f32>> = self.keys.iter().map(|k| zero_shot_logits(k, label_embeds, scale)).collect();
        // 1/L: the mean cross-entropy's Hessian is at most ½ (Böhning's bound, unit keys), plus λ.
        let step = 1.0 / (0.5 + l2);
        let mut coefficients = vec![vec![0.0f32; n]; self.labels.len()];
        let mut residuals = coefficients.clone();
        for _ in 0..PROBE_STEPS {
            for i in 0..n {
                let logits: Vec<f32> =
                    zero_shot[i].iter().zip(&coefficients).map(|(z, a)| z + dot(a, &gram[i])).collect();
                for (c, p) in softmax(&logits).into_iter().enumerate() {
                    let truth = if c == self.key_labels[i] { 1.0 } else { 0.0 };
                    residuals[c][i] = (p - truth) / n as f32;
                }
            }
            for (a_c, r_c) in coefficients.iter_mut().zip(&residuals) {
                for (a, r) in a_c.iter_mut().zip(r_c) {
                    *a -= step * (r + l2 * *a);
                }
            }
        }
        let weights = label_embeds
            .chunks_exact(dim)
            .zip(&coefficients)
            .map(|(w, a)| {
                (0..dim).map(|d| scale * w[d] + a.iter().zip(&self.keys).map(|(a, k)| a * k[d]).sum::<f32>()).collect()
            })
            .collect();
        self.probe = Some(Probe { blend, l2, weights });
        Ok(())
    }

    /// The adapted logits of one photo, in label order. `image_embed` is normalised here;
    /// `label_embeds` are the labels' normalised text embeddings `[labels, dim]` and `scale`
    /// the model's `exp(logit_scale)`.
    pub fn logits(&self, image_embed: &[f32], label_embeds: &[f32], scale: f32) -> Result<Vec<f32>, Error> {
        self.logits_skipping(image_embed, label_embeds, scale, None)
    }

    /// `logits`, with the cache entry `skip` (a held-out photo) left out.
    fn logits_skipping(&self, image_embed: &[f32], label_embeds: &[f32], scale: f32, skip: Option<usize>) -> Result<Vec<f32>, Error> {
        if image_embed.len() != self.dim {
            return Err(Error::DimensionMismatch { what: "adapter", expected: image_embed.len(), found: self.dim });
        }
        self.check_label_embeds(label_embeds)?;
        let mut f = image_embed.to_vec();
        normalize_rows(&mut f, self.dim);
        let zero_shot = zero_shot_logits(&f, label_embeds, scale);
        let mut logits: Vec<f32> = match &self.probe {
            None => zero_shot,
            Some(p) => {
                zero_shot.iter().zip(&p.weights).map(|(z, w)| (1.0 - p.blend) * z + p.blend * dot(&f, w)).collect()
            }
        };
        for (j, (key, &label)) in self.keys.iter().zip(&self.key_labels).enumerate() {
            if Some(j) == skip {
                continue;
            }
            logits[label] += self.alpha * (-self.beta * (1.0 - dot(&f, key))).exp();
        }
        Ok(logits)
    }

    /// Like `clip::classify`, with the few-shot terms: every label, best first.
    pub fn classify(&self, image_embed: &[f32], label_embeds: &[f32], scale: f32) -> Result<Vec<Prediction>, Error> {
        Ok(predictions(&self.labels, &self.logits(image_embed, label_embeds, scale)?))
    }

    /// In how many parts `leave_one_out_part` checks this adapter: one per labelled photo up to
    /// `MAX_CHECK_PARTS`, so the page can check part by part and stop when a newer edit comes.
    pub fn check_parts(&self) -> usize {
        self.keys.len().clamp(1, MAX_CHECK_PARTS)
    }

    /// Classifies each labelled photo with an adapter made without it, and zero-shot. Without
    /// a probe that is exact leave-one-out (each photo's own cache entry left out). With a
    /// probe, which must be retrained without the held-out photos, it is k-fold with
    /// k = `check_parts()` (leave-one-out up to 10 photos): k trainings instead of n, so the
    /// check grows as n² rather than n³.
    pub fn leave_one_out(&self, label_embeds: &[f32], scale: f32) -> Result<LeaveOneOut, Error> {
        let mut total = LeaveOneOut { examples: 0, zero_shot_correct: 0, adapted_correct: 0 };
        for part in 0..self.check_parts() {
            let p = self.leave_one_out_part(label_embeds, scale, part)?;
            total.examples += p.examples;
            total.zero_shot_correct += p.zero_shot_correct;
            total.adapted_correct += p.adapted_correct;
        }
        Ok(total)
    }

    /// `leave_one_out` for the photos of one part (those whose index ≡ `part` mod
    /// `check_parts()`); the parts' counts add up to the whole check.
    pub fn leave_one_out_part(&self, label_embeds: &[f32], scale: f32, part: usize) -> Result<LeaveOneOut, Error> {
        self.check_label_embeds(label_embeds)?;
        let parts = self.check_parts();
        if part >= parts {
            return Err(Error::CheckPart { part, parts });
        }
        let held_out: Vec<usize> = (part..self.keys.len()).step_by(parts).collect();
        let mut result = LeaveOneOut { examples: held_out.len(), zero_shot_correct: 0, adapted_correct: 0 };
        // With a probe: one adapter trained without this part's photos.
        let fold = match &self.probe {
            None => None,
            Some(p) => {
                let mut others = self.clone();
                let keep = |i: &usize| i % parts != part;
                others.keys = (0..self.keys.len()).filter(keep).map(|i| self.keys[i].clone()).collect();
                others.key_labels = (0..self.keys.len()).filter(keep).map(|i| self.key_labels[i]).collect();
                others.train_probe(label_embeds, scale, p.blend, p.l2)?;
                Some(others)
            }
        };
        for i in held_out {
            let (key, truth) = (&self.keys[i], self.key_labels[i]);
            result.zero_shot_correct += usize::from(argmax(&zero_shot_logits(key, label_embeds, scale)) == truth);
            let adapted = match &fold {
                Some(others) => others.logits(key, label_embeds, scale)?,
                None => self.logits_skipping(key, label_embeds, scale, Some(i))?,
            };
            result.adapted_correct += usize::from(argmax(&adapted) == truth);
        }
        Ok(result)
    }

    /// Errors unless the adapter was made by the model `model` (a `fingerprint::model_id`)
    /// with `dim`-dimensional embeddings.
    pub fn check_model(&self, model: &str, dim: usize) -> Result<(), Error> {
        if self.dim != dim {
            return Err(Error::DimensionMismatch { what: "adapter", expected: dim, found: self.dim });
        }
        if self.model != model {
            return Err(Error::ModelMismatch { what: "adapter", made_with: self.model.clone(), loaded: model.into() });
        }
        Ok(())
    }

    /// Errors unless `labels` are the adapter's, in its order.
    pub fn check_labels(&self, labels: &[String]) -> Result<(), Error> {
        if labels != self.labels {
            return Err(Error::AdapterLabels { adapter: self.labels.clone(), given: labels.to_vec() });
        }
        Ok(())
    }

    /// The adapter file. serde_json writes each f32 as the shortest decimal that reads back as
    /// the same f32, so an imported adapter gives bit-identical logits.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an adapter serialises")
    }

    /// Reads an adapter file, checking its format version and that its parts fit together
    /// (labels without photos are allowed, see `with_some_classes`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidFile { what: "adapter", reason };
        let a: Self = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let (classes, dim) = (a.labels.len(), a.dim);
        if a.format != ADAPTER_FORMAT {
            return Err(invalid(format!("its format is {}, this fieldclip reads {ADAPTER_FORMAT}", a.format)));
        }
        if classes == 0 {
            return Err(invalid("it has no labels".into()));
        }
        if a.keys.len() != a.key_labels.len() {
            return Err(invalid(format!("it has {} keys but {} key labels", a.keys.len(), a.key_labels.len())));
        }
        if a.keys.iter().any(|k| k.len() != dim) {
            return Err(invalid(format!("a key does not have {dim} values")));
        }
        if a.key_labels.iter().any(|&l| l >= classes) {
            return Err(invalid(format!("a key label is not one of the {classes} labels")));
        }
        if let Some(p) = &a.probe {
            if p.weights.len() != classes || p.weights.iter().any(|w| w.len() != dim) {
                return Err(invalid(format!("the probe's weights are not {classes} rows of {dim} values")));
            }
        }
        let finite = |v: &f32| v.is_finite();
        let probe_finite = a.probe.as_ref().is_none_or(|p| {
            [p.blend, p.l2].iter().all(finite) && p.weights.iter().flatten().all(finite)
        });
        if ![a.alpha, a.beta].iter().all(finite) || !a.keys.iter().flatten().all(finite) || !probe_finite {
            return Err(invalid("it holds a number that is not finite (NaN or infinity)".into()));
        }
        if a.keys.is_empty() {
            return Err(Error::NoExamples);
        }
        Ok(a)
    }
}
