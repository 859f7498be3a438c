//! The one place where a photo gets its labels: a loaded model with its active label list,
//! prompt templates, prompt embedding cache, ensembled label embeddings and optional few-shot
//! adapter, and `classify` / `embed` / `search` on top. The page's wasm shell (`web.rs`) and the
//! CLI both drive a `Session`; neither keeps classification state of its own.
//!
//! Everything that reads tensors back is `async`: on WebGPU a synchronous read panics. Natively
//! the CLI blocks on these futures (`pollster`); on the CPU backend they are ready at once.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::adapter::{Adapter, LeaveOneOut, DEFAULT_PROBE_L2};
use crate::clip::{ensemble_labels, normalize_rows, predictions, read_async, zero_shot_logits, ClipModel, Prediction, Template};
use crate::error::Error;
use crate::heatmap::{Explanation, LabelMap, PatchEmbeddings};
use crate::model::MapVariant;
use crate::search::{Gallery, Hit};
use crate::taxonomy::{self, TaxaResult, Taxon, TextFormat};

/// Why a label or template given by the user was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum DropReason {
    /// Empty or only white space.
    Blank,
    /// The same text (after trimming) as the entry at 1-based position `first`.
    Duplicate { first: usize },
}

/// One entry of a label list (or template list) that was dropped while cleaning it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// `"label"` or `"template"`.
    pub what: &'static str,
    /// 1-based position in the list as given.
    pub position: usize,
    pub text: String,
    #[serde(flatten)]
    pub reason: DropReason,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            DropReason::Blank => write!(f, "{} {} is blank, so it was left out", self.what, self.position),
            DropReason::Duplicate { first } => write!(
                f,
                "{} {} (`{}`) repeats {} {first}, so it was left out",
                self.what, self.position, self.text, self.what
            ),
        }
    }
}

/// A list cleaned once: each entry trimmed, blanks and repeats dropped (first one kept), with
/// what was dropped and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cleaned {
    pub kept: Vec<String>,
    pub dropped: Vec<Dropped>,
}

/// Trims every entry and drops blank and repeated ones (keeping the first), reporting each.
pub fn clean_list(what: &'static str, entries: &[String]) -> Cleaned {
    let mut kept: Vec<String> = Vec::new();
    let mut first_position: HashMap<String, usize> = HashMap::new();
    let mut dropped = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let text = entry.trim();
        let position = i + 1;
        if text.is_empty() {
            dropped.push(Dropped { what, position, text: entry.clone(), reason: DropReason::Blank });
        } else if let Some(&first) = first_position.get(text) {
            dropped.push(Dropped { what, position, text: text.to_string(), reason: DropReason::Duplicate { first } });
        } else {
            first_position.insert(text.to_string(), position);
            kept.push(text.to_string());
        }
    }
    Cleaned { kept, dropped }
}

/// Longest prompt (label put into a template) accepted, in characters. CLIP reads 77 tokens;
/// this is far beyond that, and bounds what a hostile list or adapter file can make us build.
pub const MAX_PROMPT_CHARS: usize = 2_000;

/// A label list and templates, cleaned and checked, ready for `Session::set_labels`. Made
/// without a model, so a CLI can report mistakes before the slow model load.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSet {
    pub labels: Vec<String>,
    pub templates: Vec<Template>,
    /// What cleaning dropped from the lists as given.
    pub dropped: Vec<Dropped>,
}

impl LabelSet {
    /// Cleans both lists; errors if no label or no template is left, or a template has no `{}`.
    pub fn new(labels: &[String], templates: &[String]) -> Result<Self, Error> {
        let labels = clean_list("label", labels);
        let template_texts = clean_list("template", templates);
        if labels.kept.is_empty() {
            return Err(Error::NoLabels);
        }
        if template_texts.kept.is_empty() {
            return Err(Error::NoTemplates);
        }
        let templates = template_texts.kept.iter().map(|t| Template::new(t)).collect::<Result<Vec<_>, _>>()?;
        // The longest prompt, computed without building it.
        let longest_label = labels.kept.iter().max_by_key(|l| l.chars().count()).expect("not empty");
        for template in &templates {
            let slots = template.as_str().matches("{}").count();
            let chars = template.as_str().chars().count() - 2 * slots + slots * longest_label.chars().count();
            if chars > MAX_PROMPT_CHARS {
                let start: String = if template.as_str().chars().count() > 2 * slots + 40 {
                    template.as_str().chars().take(40).collect()
                } else {
                    longest_label.chars().take(40).collect()
                };
                return Err(Error::PromptTooLong { start, chars, limit: MAX_PROMPT_CHARS });
            }
        }
        let mut dropped = labels.dropped;
        dropped.extend(template_texts.dropped);
        Ok(Self { labels: labels.kept, templates, dropped })
    }

    /// Every prompt, label-major (`labels[0]` with every template, then `labels[1]`, …).
    pub fn prompts(&self) -> Vec<String> {
        self.labels.iter().flat_map(|l| self.templates.iter().map(move |t| t.apply(l))).collect()
    }

    pub fn template_texts(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.as_str().to_string()).collect()
    }
}

/// What `Session::set_labels` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelUpdate {
    /// The labels now in use, in order: predictions and adapters refer to these.
    pub labels: Vec<String>,
    /// What cleaning left out, and why.
    pub dropped: Vec<Dropped>,
    /// The prompts that had to be encoded (not in the cache before), e.g. to store.
    pub encoded: Vec<String>,
}

/// How an adapter is made from labelled photos (see `adapter`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdapterSettings {
    pub alpha: f32,
    pub beta: f32,
    /// Train a linear probe with this share of the text logits.
    pub probe_blend: Option<f32>,
    /// Every label needs at least one photo (the CLI's folders); otherwise labels without
    /// photos keep their zero-shot logit (the page, while the user labels photos).
    pub every_label_needs_examples: bool,
}

/// What to search a gallery for.
pub enum Query<'a> {
    Text(&'a str),
    /// An embedding of this model (e.g. of a photo); normalised here.
    Embedding(&'a [f32]),
}

/// One image's outcome in a batch: its normalised embedding, or why it failed (alone).
pub type ImageResult = Result<Vec<f32>, Error>;

/// Images per forward pass when embedding a batch of files.
pub const IMAGE_BATCH: usize = 8;
/// Prompts encoded per forward pass (a long label list goes through in pieces).
pub const TEXT_BATCH: usize = 64;

/// A loaded model and the classification state built on it; see the module docs.
pub struct Session {
    model: ClipModel,
    labels: Vec<String>,
    templates: Vec<Template>,
    /// The ensembled, normalised label embeddings, `[labels, dim]`.
    label_embeds: Vec<f32>,
    /// Prompt text → unnormalised prompt embedding, so editing one label re-encodes only it.
    prompt_cache: HashMap<String, Vec<f32>>,
    /// The few-shot adapter `classify` adds, when one is in use.
    adapter: Option<Adapter>,
    /// When the labels are taxa: each label's taxon, in label order, grouped per rank.
    taxa: Option<taxonomy::TaxonIndex>,
}


impl Session {
    pub fn new(model: ClipModel) -> Self {
        Self {
            model,
            labels: Vec::new(),
            templates: Vec::new(),
            label_embeds: Vec::new(),
            prompt_cache: HashMap::new(),
            adapter: None,
            taxa: None,
        }
    }

    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// Switches how photos are resized for this model (e.g. to pybioclip's `Squash` for BioCLIP).
    pub fn set_pipeline(&mut self, pipeline: crate::preprocess::Pipeline) {
        self.model.preprocess.pipeline = pipeline;
    }

    /// Uses labels whose text embeddings are already known (a tree-of-life file, a label pack):
    /// `embeds` is `[labels, dim]`, normalised here. Replaces the label list and drops any
    /// adapter (made for another list).
    pub fn use_label_embeddings(&mut self, labels: Vec<String>, mut embeds: Vec<f32>) -> Result<(), Error> {
        let dim = self.dim();
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if embeds.len() != labels.len() * dim {
            return Err(Error::RowCount { rows: labels.len(), dim, expected: labels.len() * dim, found: embeds.len() });
        }
        if let Some(v) = embeds.iter().find(|v| !v.is_finite()) {
            return Err(Error::NotFinite { what: "label embedding", value: v.to_string() });
        }
        normalize_rows(&mut embeds, dim);
        self.labels = labels;
        self.templates = Vec::new();
        self.label_embeds = embeds;
        self.adapter = None;
        self.taxa = None;
        Ok(())
    }

    /// `fingerprint::model_id` of the weights: what galleries and adapters are made with.
    pub fn model_id(&self) -> &str {
        &self.model.id
    }

    /// The embedding size.
    pub fn dim(&self) -> usize {
        self.model.info.config.projection_dim
    }

    /// The labels in use (cleaned), in the order predictions and adapters refer to.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The labels' ensembled, normalised text embeddings, `[labels, dim]`.
    pub fn label_embeddings(&self) -> &[f32] {
        &self.label_embeds
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    /// Switches to a checked label list; only prompts not seen before are encoded. An adapter
    /// made for another list is dropped.
    pub async fn set_labels(&mut self, set: LabelSet) -> Result<LabelUpdate, Error> {
        // Plain labels (taxa set theirs again after this).
        self.taxa = None;
        let prompts = set.prompts();
        let mut encoded: Vec<String> = Vec::new();
        for p in &prompts {
            if !self.prompt_cache.contains_key(p) && !encoded.contains(p) {
                encoded.push(p.clone());
            }
        }
        if !encoded.is_empty() {
            let embeds = self.encode_texts(&encoded).await?;
            for (prompt, e) in encoded.iter().zip(embeds.chunks_exact(self.dim())) {
                self.prompt_cache.insert(prompt.clone(), e.to_vec());
            }
        }
        let stacked: Vec<f32> = prompts.iter().flat_map(|p| self.prompt_cache[p].iter().copied()).collect();
        self.label_embeds = ensemble_labels(&stacked, self.dim(), set.templates.len());
        self.labels = set.labels;
        self.templates = set.templates;
        if self.adapter.as_ref().is_some_and(|a| a.labels != self.labels) {
            self.adapter = None;
        }
        Ok(LabelUpdate { labels: self.labels.clone(), dropped: set.dropped, encoded })
    }

    /// `LabelSet::new` and `set_labels` in one step.
    pub async fn set_label_list(&mut self, labels: &[String], templates: &[String]) -> Result<LabelUpdate, Error> {
        self.set_labels(LabelSet::new(labels, templates)?).await
    }

    /// The cached (unnormalised) embeddings of `prompts`, concatenated, to store on the device.
    pub fn prompt_embeddings(&self, prompts: &[String]) -> Result<Vec<f32>, Error> {
        prompts
            .iter()
            .map(|p| self.prompt_cache.get(p).map(Vec::as_slice).ok_or_else(|| Error::PromptNotEncoded(p.clone())))
            .collect::<Result<Vec<_>, _>>()
            .map(|rows| rows.concat())
    }

    /// Fills the prompt cache with embeddings stored by an earlier visit (same model), so the
    /// label list is ready without running the text encoder.
    pub fn import_prompt_embeddings(&mut self, prompts: Vec<String>, embeds: &[f32]) -> Result<(), Error> {
        let dim = self.dim();
        if embeds.len() != prompts.len() * dim || embeds.iter().any(|v| !v.is_finite()) {
            return Err(Error::StoredPromptEmbeddings { values: embeds.len(), prompts: prompts.len(), dim });
        }
        for (prompt, e) in prompts.into_iter().zip(embeds.chunks_exact(dim)) {
            self.prompt_cache.insert(prompt, e.to_vec());
        }
        Ok(())
    }

    /// How many prompts have been encoded so far (the cache size).
    pub fn encoded_prompts(&self) -> usize {
        self.prompt_cache.len()
    }

    /// Unnormalised text embeddings, `[texts, dim]`.
    async fn encode_texts(&self, texts: &[String]) -> Result<Vec<f32>, Error> {
        // A batch at a time: 5,000 labels in one forward pass would hold gigabytes of
        // activations (ViT-B/32: ~1 GB per attention map).
        let mut embeds = Vec::with_capacity(texts.len() * self.dim());
        for chunk in texts.chunks(TEXT_BATCH) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let tokens = self.model.tokenize(&refs)?;
            embeds.extend(read_async(self.model.encode_tokens(&tokens)?.embeds).await?);
        }
        Ok(embeds)
    }

    /// L2-normalised text embeddings, `[texts, dim]`; at least one text.
    pub async fn embed_texts(&self, texts: &[String]) -> Result<Vec<f32>, Error> {
        if texts.is_empty() {
            return Err(Error::NoTexts);
        }
        let mut e = self.encode_texts(texts).await?;
        normalize_rows(&mut e, self.dim());
        Ok(e)
    }

    /// L2-normalised embeddings of preprocessed images (each `3·S·S`, channel-major; at least
    /// one), in one forward pass, `[images, dim]`.
    pub async fn embed_pixels(&self, images: &[Vec<f32>]) -> Result<Vec<f32>, Error> {
        let mut e = read_async(self.model.encode_images(images)?.embeds).await?;
        normalize_rows(&mut e, self.dim());
        Ok(e)
    }

    /// The L2-normalised embedding of one image file's bytes.
    pub async fn embed_image(&self, image: &[u8]) -> Result<Vec<f32>, Error> {
        let pixels = self.model.pixels(image)?;
        self.embed_pixels(&[pixels]).await
    }

    /// Embeds image files in batches of `IMAGE_BATCH`, in order. A file that cannot be decoded
    /// fails alone (its own `Err`); the outer error is the backend failing. `progress(done,
    /// total)` is called after each batch.
    pub async fn embed_images(
        &self,
        images: &[Vec<u8>],
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<ImageResult>, Error> {
        let mut results = Vec::with_capacity(images.len());
        for chunk in images.chunks(IMAGE_BATCH) {
            let decoded: Vec<Result<Vec<f32>, Error>> = chunk.iter().map(|bytes| self.model.pixels(bytes)).collect();
            let pixels: Vec<Vec<f32>> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
            let embeds = if pixels.is_empty() { Vec::new() } else { self.embed_pixels(&pixels).await? };
            let mut rows = embeds.chunks_exact(self.dim());
            for d in decoded {
                results.push(d.map(|_| rows.next().map(<[f32]>::to_vec).unwrap_or_default()));
            }
            progress(results.len(), images.len());
        }
        Ok(results)
    }

    /// Every label's logit and probability for one normalised image embedding, best first,
    /// with the adapter's few-shot terms when one is in use.
    /// One photo's logits in label order (with the adapter's terms when one is in use).
    pub fn logits(&self, image_embed: &[f32]) -> Result<Vec<f32>, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if image_embed.len() != self.dim() {
            return Err(Error::DimensionMismatch { what: "image embedding", expected: self.dim(), found: image_embed.len() });
        }
        let scale = self.model.logit_scale_exp();
        match &self.adapter {
            Some(adapter) => adapter.logits(image_embed, &self.label_embeds, scale),
            None => Ok(zero_shot_logits(image_embed, &self.label_embeds, scale)),
        }
    }

    /// Uses taxa as the labels: each is named in `format` (BioCLIP's) and its prompts made
    /// with `templates` (pybioclip uses `taxonomy::OPENAI_TEMPLATES`). Taxa whose class name
    /// repeats an earlier one are left out (reported in `dropped`, as repeated labels are).
    pub async fn set_taxa(&mut self, taxa: Vec<Taxon>, format: TextFormat, templates: &[String]) -> Result<LabelUpdate, Error> {
        let names: Vec<String> = taxa.iter().map(|t| t.class_name(format)).collect();
        let set = LabelSet::new(&names, templates)?;
        let kept: Vec<Taxon> = {
            let mut seen = std::collections::HashSet::new();
            taxa.into_iter().zip(&names).filter(|(_, n)| !n.trim().is_empty() && seen.insert(n.trim().to_string())).map(|(t, _)| t).collect()
        };
        let update = self.set_labels(set).await?;
        debug_assert_eq!(kept.len(), self.labels.len());
        self.taxa = Some(taxonomy::TaxonIndex::new(kept));
        Ok(update)
    }

    /// Uses taxa whose text embeddings are known (a tree-of-life file): `embeds` is
    /// `[taxa, dim]`. Each is labelled by its `taxon_com` name.
    pub fn use_taxa_embeddings(&mut self, taxa: Vec<Taxon>, embeds: Vec<f32>) -> Result<(), Error> {
        let labels = taxa.iter().map(|t| t.class_name(TextFormat::TaxonCom)).collect();
        self.use_label_embeddings(labels, embeds)?;
        self.taxa = Some(taxonomy::TaxonIndex::new(taxa));
        Ok(())
    }

    /// The taxa in use (aligned with `labels()`), if the labels are taxa.
    pub fn taxa(&self) -> Option<&[Taxon]> {
        self.taxa.as_ref().map(taxonomy::TaxonIndex::taxa)
    }

    /// One photo against taxa: the leaves' probabilities (softmax over every taxon), rolled up
    /// each rank, and the answer at `threshold` (None: not sure at any rank).
    pub fn classify_taxa(&self, image_embed: &[f32], threshold: f64) -> Result<TaxaResult, Error> {
        let taxa = self.taxa.as_ref().ok_or(Error::NoTaxa)?;
        let probs = crate::clip::softmax(&self.logits(image_embed)?);
        Ok(taxa.classify(&probs, threshold))
    }

    pub fn classify_embedding(&self, image_embed: &[f32]) -> Result<Vec<Prediction>, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        if image_embed.len() != self.dim() {
            return Err(Error::DimensionMismatch { what: "image embedding", expected: self.dim(), found: image_embed.len() });
        }
        let scale = self.model.logit_scale_exp();
        match &self.adapter {
            Some(adapter) => adapter.classify(image_embed, &self.label_embeds, scale),
            None => Ok(predictions(&self.labels, &zero_shot_logits(image_embed, &self.label_embeds, scale))),
        }
    }

    /// Classifies one image file's bytes: every label, best first.
    pub async fn classify(&self, image: &[u8]) -> Result<Vec<Prediction>, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        let embed = self.embed_image(image).await?;
        self.classify_embedding(&embed)
    }

    /// L2-normalised image embeddings (as `embed_pixels`) and the patch embeddings of
    /// `variant`, from one forward pass, one pair per image.
    pub async fn embed_pixels_with_patches(
        &self,
        images: &[Vec<f32>],
        variant: MapVariant,
    ) -> Result<Vec<(Vec<f32>, PatchEmbeddings)>, Error> {
        let dim = self.dim();
        let out = self.model.encode_images_with_patches(images, variant)?;
        let mut embeds = read_async(out.image.embeds).await?;
        normalize_rows(&mut embeds, dim);
        let patches = read_async(out.patch_embeds).await?;
        let per_image = out.grid[0] * out.grid[1] * dim;
        Ok(embeds
            .chunks_exact(dim)
            .zip(patches.chunks_exact(per_image))
            .map(|(e, p)| (e.to_vec(), PatchEmbeddings { grid: out.grid, dim, values: p.to_vec() }))
            .collect())
    }

    /// The ensembled, normalised text embedding of a label in use.
    pub fn label_embedding(&self, label: &str) -> Result<&[f32], Error> {
        let index = self.labels.iter().position(|l| l == label).ok_or_else(|| Error::NotALabel(label.to_string()))?;
        Ok(&self.label_embeds[index * self.dim()..(index + 1) * self.dim()])
    }

    /// Classifies preprocessed pixels and maps where each of `labels` matches, in one pass.
    /// No labels: the map of the best label. The maps use the labels' zero-shot text
    /// embeddings (templates ensembled), also when an adapter changes the predictions.
    pub async fn explain_pixels(&self, pixels: Vec<f32>, labels: &[String], variant: MapVariant) -> Result<Explanation, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        let texts: Vec<&[f32]> = labels.iter().map(|l| self.label_embedding(l)).collect::<Result<_, _>>()?;
        let (embed, patches) = self.embed_pixels_with_patches(&[pixels], variant).await?.pop().ok_or(Error::ModelInput(crate::model::ModelInputError::EmptyBatch))?;
        let predictions = self.classify_embedding(&embed)?;
        let maps = if labels.is_empty() {
            let best = &predictions[0].label;
            vec![LabelMap { text: best.clone(), cosine: patches.cosine(self.label_embedding(best)?) }]
        } else {
            labels.iter().zip(texts).map(|(l, t)| LabelMap { text: l.clone(), cosine: patches.cosine(t) }).collect()
        };
        Ok(Explanation { variant: variant.name(), grid: patches.grid, predictions, maps, embedding: embed })
    }

    /// `explain_pixels` for an image file's bytes.
    pub async fn explain(&self, image: &[u8], labels: &[String], variant: MapVariant) -> Result<Explanation, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        let pixels = self.model.pixels(image)?;
        self.explain_pixels(pixels, labels, variant).await
    }

    /// The `k` photos of `gallery` most like `query`, best first.
    pub async fn search(&self, gallery: &Gallery, query: Query<'_>, k: usize) -> Result<Vec<Hit>, Error> {
        let query = match query {
            Query::Text(text) => self.embed_texts(&[text.to_string()]).await?,
            Query::Embedding(e) => e.to_vec(),
        };
        gallery.search(&query, k)
    }

    /// A few-shot adapter for the current labels from labelled photos: `examples` their
    /// embeddings (`n × dim`), `example_labels` indices into `labels()`.
    pub fn make_adapter(
        &self,
        examples: &[f32],
        example_labels: &[usize],
        settings: AdapterSettings,
    ) -> Result<Adapter, Error> {
        if self.labels.is_empty() {
            return Err(Error::NoLabels);
        }
        // Named as the page and the CLI (`--alpha`, `--beta`, `--blend`) name them.
        let named = [("adapter's alpha (α)", Some(settings.alpha)), ("adapter's beta (β)", Some(settings.beta)), ("probe's blend", settings.probe_blend)];
        for (what, value) in named {
            if let Some(value) = value.filter(|v| !v.is_finite()) {
                return Err(Error::NotFinite { what, value: value.to_string() });
            }
        }
        let (labels, templates, dim) = (self.labels.clone(), self.template_texts(), self.dim());
        let mut adapter = if settings.every_label_needs_examples {
            Adapter::new(self.model_id(), labels, templates, dim, examples, example_labels)?
        } else {
            Adapter::with_some_classes(self.model_id(), labels, templates, dim, examples, example_labels)?
        };
        adapter.alpha = settings.alpha;
        adapter.beta = settings.beta;
        if let Some(blend) = settings.probe_blend {
            adapter.train_probe(&self.label_embeds, self.model.logit_scale_exp(), blend, DEFAULT_PROBE_L2)?;
        }
        Ok(adapter)
    }

    fn template_texts(&self) -> Vec<String> {
        self.templates.iter().map(|t| t.as_str().to_string()).collect()
    }

    /// Errors unless `adapter` was made with this model and for the current labels.
    pub fn check_adapter(&self, adapter: &Adapter) -> Result<(), Error> {
        adapter.check_model(self.model_id(), self.dim())?;
        adapter.check_labels(&self.labels)
    }

    /// Leave-one-out accuracy of `adapter` on its own photos, zero-shot vs adapted.
    pub fn leave_one_out(&self, adapter: &Adapter) -> Result<LeaveOneOut, Error> {
        self.check_adapter(adapter)?;
        adapter.leave_one_out(&self.label_embeds, self.model.logit_scale_exp())
    }

    /// One part of `leave_one_out` (see `Adapter::leave_one_out_part`), so a caller can check
    /// part by part and stop early.
    pub fn leave_one_out_part(&self, adapter: &Adapter, part: usize) -> Result<LeaveOneOut, Error> {
        self.check_adapter(adapter)?;
        adapter.leave_one_out_part(&self.label_embeds, self.model.logit_scale_exp(), part)
    }

    /// Switches the adapter `classify` uses (checked against this model and the labels), or
    /// back to zero-shot.
    pub fn set_adapter(&mut self, adapter: Option<Adapter>) -> Result<(), Error> {
        if let Some(a) = &adapter {
            self.check_adapter(a)?;
        }
        self.adapter = adapter;
        Ok(())
    }
}
