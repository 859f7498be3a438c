//! The browser shell: a thin `#[wasm_bindgen]` layer over `ClipModel`. Everything that reads
//! tensors back does it asynchronously (a synchronous read panics on WebGPU).

#[cfg(feature = "webgpu")]
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::collections::HashMap;

use burn::tensor::Device;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::adapter::Adapter;
use crate::clip::{classify, ensemble_labels, label_prompts, normalize_rows, read_async, Template};
use crate::weights::WeightsReader;
use crate::search::{rank_with_norms, row_norms};
use crate::{ClipModel, Error};

#[cfg(feature = "webgpu")]
thread_local! {
    /// burn's wgpu runtime can be initialised once per page; later models reuse the device.
    static WEBGPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

unsafe extern "C" {
    /// Made by the linker: runs the static constructors (`inventory` registrations of burn's
    /// kernels).
    fn __wasm_call_ctors();
}

/// Runs the static constructors the first time it is called. Calling them from our own code
/// is what stops wasm-ld from wrapping *every* export in a call to them (its "command-style"
/// heuristic): that cost ~17 ms per call into the module (a 10,000-photo search took 85 ms
/// instead of 4). Called by `start` and, for hosts that skip `start` (the wasm-bindgen test
/// runner), by `Classifier::create`.
fn run_constructors_once() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::SeqCst) {
        unsafe { __wasm_call_ctors() };
    }
}

/// The threaded build's `initThreadPool(n)`: starts `n` Web Workers for rayon, which burn's
/// CPU backend uses for its matmuls. Call it once after `init()`, from a worker (rayon blocks
/// the calling thread, which the main thread may not do).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Runs once when the module is instantiated (in the page or a worker).
#[wasm_bindgen(start)]
pub fn start() {
    run_constructors_once();
    console_error_panic_hook::set_once();
}

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()))
}

/// WebGPU through burn's wgpu backend, or why it is not available.
#[cfg(feature = "webgpu")]
async fn webgpu_device() -> Result<Device, String> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options().init_async().await.map_err(|e| format!("{e}"))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// The threaded build has no WebGPU (see Cargo.toml's `threads` feature).
#[cfg(not(feature = "webgpu"))]
async fn webgpu_device() -> Result<Device, String> {
    Err("this is the threaded CPU build of fieldclip, without WebGPU".into())
}

/// Picks the backend: `webgpu`, `cpu`, or `auto` (WebGPU when an adapter is there, else CPU).
/// Returns the device, its name and the reason it was chosen.
async fn pick_device(backend: &str) -> Result<(Device, &'static str, String), JsError> {
    match backend {
        "cpu" => Ok((Device::flex(), "cpu", "CPU was requested".into())),
        "webgpu" => webgpu_device()
            .await
            .map(|d| (d, "webgpu", "WebGPU was requested".into()))
            .map_err(|e| JsError::new(&format!("WebGPU is not available in this browser: {e}"))),
        "auto" | "" => match webgpu_device().await {
            Ok(d) => Ok((d, "webgpu", "a WebGPU adapter is available".into())),
            Err(e) => Ok((Device::flex(), "cpu", format!("WebGPU is not available ({e}), so the CPU runs the model"))),
        },
        other => Err(JsError::new(&format!("Unknown backend `{other}`: use auto, webgpu or cpu."))),
    }
}

/// A weights file (safetensors checkpoint or model pack) arriving in pieces: the page reads
/// the `File` (or download) chunk by chunk into it, so the whole file is never in memory.
/// A file that cannot be a model fails at the first piece that shows it.
#[wasm_bindgen]
pub struct WeightsStream {
    reader: WeightsReader,
}

#[wasm_bindgen]
impl WeightsStream {
    /// `sha256`: also compute the file's SHA-256 (`sha256()`), e.g. to store it under.
    #[wasm_bindgen(constructor)]
    pub fn new(sha256: bool) -> WeightsStream {
        run_constructors_once();
        WeightsStream { reader: WeightsReader::with_file_hash(sha256) }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsError> {
        self.reader.push(chunk).map_err(|e| js_error(e.into()))
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        self.reader.received() as f64
    }

    /// The whole file's size, once its header has arrived.
    #[wasm_bindgen(getter, js_name = expectedSize)]
    pub fn expected_size(&self) -> Option<f64> {
        self.reader.expected_size().map(|n| n as f64)
    }

    /// The SHA-256 of the bytes pushed so far, as hex (when asked for at `new`).
    pub fn sha256(&self) -> Option<String> {
        self.reader.sha256_hex()
    }
}

/// One image's result: the top labels, best first.
#[derive(Serialize)]
struct ClassifyResult {
    predictions: Vec<crate::Prediction>,
}

/// A CLIP model loaded in the page, with its current label list.
#[wasm_bindgen]
pub struct Classifier {
    model: ClipModel,
    backend: &'static str,
    backend_reason: String,
    labels: Vec<String>,
    templates: Vec<Template>,
    /// Normalised, template-averaged label embeddings for `labels`, `[labels, dim]`.
    label_embeds: Vec<f32>,
    /// Prompt text → unnormalised prompt embedding, so editing one label re-encodes only it.
    prompt_cache: HashMap<String, Vec<f32>>,
    /// `fingerprint::model_id` of the weights: what galleries and adapters are made with.
    model_id: String,
    /// The few-shot adapter `classify` adds, when the user switched it on.
    adapter: Option<Adapter>,
}

/// An adapter's leave-one-out check, as the page shows it.
#[derive(Serialize)]
struct AdapterCheck {
    examples: usize,
    zero_shot_correct: usize,
    adapted_correct: usize,
    classes_without_examples: usize,
}

#[wasm_bindgen]
impl Classifier {
    /// Loads a model from the bytes of a safetensors file (and optionally its config file).
    /// `on_progress(step, fraction)` is called as each loading step starts. (The page streams
    /// the file instead: `WeightsStream` and `fromStream`.)
    pub async fn create(
        weights: Vec<u8>,
        config: Option<Vec<u8>>,
        backend: String,
        on_progress: Option<js_sys::Function>,
    ) -> Result<Classifier, JsError> {
        let mut stream = WeightsStream::new(false);
        stream.push(&weights)?;
        drop(weights);
        Self::from_stream(stream, config, backend, on_progress).await
    }

    /// Builds the model from a file streamed into `stream` (all of it pushed).
    #[wasm_bindgen(js_name = fromStream)]
    pub async fn from_stream(
        stream: WeightsStream,
        config: Option<Vec<u8>>,
        backend: String,
        on_progress: Option<js_sys::Function>,
    ) -> Result<Classifier, JsError> {
        run_constructors_once();
        let (device, backend, backend_reason) = pick_device(&backend).await?;
        let mut progress = |step: &str, fraction: f32| {
            if let Some(f) = &on_progress {
                // A failing progress callback must not stop the load.
                let _ = f.call2(&JsValue::NULL, &JsValue::from_str(step), &JsValue::from_f64(fraction as f64));
            }
        };
        let loaded = stream.reader.finish(config.as_deref()).map_err(|e| js_error(e.into()))?;
        let model = ClipModel::from_loaded(loaded, &device, &mut progress).map_err(js_error)?;
        Ok(Classifier {
            model_id: model.id.clone(),
            adapter: None,
            model,
            backend,
            backend_reason,
            labels: Vec::new(),
            templates: Vec::new(),
            label_embeds: Vec::new(),
            prompt_cache: HashMap::new(),
        })
    }

    /// `webgpu` or `cpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }

    #[wasm_bindgen(getter, js_name = backendReason)]
    pub fn backend_reason(&self) -> String {
        self.backend_reason.clone()
    }

    /// Identifies the weights (architecture + content sample hash), as the CLI does.
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> String {
        self.model_id.clone()
    }

    /// Architecture, layout, dtypes, parameter count.
    pub fn info(&self) -> Result<JsValue, JsError> {
        to_js(&self.model.info)
    }

    #[wasm_bindgen(getter, js_name = logitScale)]
    pub fn logit_scale(&self) -> f32 {
        self.model.logit_scale_exp()
    }

    /// Sets the label list and prompt templates (each with `{}`); only prompts not seen
    /// before are encoded. Returns those newly encoded prompts (for the page to store).
    #[wasm_bindgen(js_name = setLabels)]
    pub async fn set_labels(&mut self, labels: Vec<String>, templates: Vec<String>) -> Result<Vec<String>, JsError> {
        let templates: Vec<Template> =
            templates.iter().map(|t| Template::new(t)).collect::<Result<_, _>>().map_err(js_error)?;
        let labels: Vec<String> = labels.into_iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        let prompts = label_prompts(&labels, &templates).map_err(js_error)?;
        let missing: Vec<String> = prompts.iter().filter(|p| !self.prompt_cache.contains_key(*p)).cloned().collect();
        if !missing.is_empty() {
            let embeds = self.encode_texts(&missing).await?;
            let dim = self.model.info.config.projection_dim;
            for (prompt, e) in missing.iter().zip(embeds.chunks_exact(dim)) {
                self.prompt_cache.insert(prompt.clone(), e.to_vec());
            }
        }
        let stacked: Vec<f32> = prompts.iter().flat_map(|p| self.prompt_cache[p].iter().copied()).collect();
        self.label_embeds = ensemble_labels(&stacked, self.model.info.config.projection_dim, templates.len());
        self.labels = labels;
        self.templates = templates;
        // An adapter belongs to one label list; the page makes a new one for the new list.
        if self.adapter.as_ref().is_some_and(|a| a.labels != self.labels) {
            self.adapter = None;
        }
        Ok(missing)
    }

    /// The cached (unnormalised) embeddings of `prompts`, concatenated, to store on the device.
    #[wasm_bindgen(js_name = promptEmbeddings)]
    pub fn prompt_embeddings(&self, prompts: Vec<String>) -> Result<Vec<f32>, JsError> {
        prompts
            .iter()
            .map(|p| self.prompt_cache.get(p).map(Vec::as_slice).ok_or_else(|| JsError::new(&format!("The prompt `{p}` has not been encoded."))))
            .collect::<Result<Vec<_>, _>>()
            .map(|rows| rows.concat())
    }

    /// Fills the prompt cache with embeddings stored by an earlier visit (same model), so
    /// the label list is ready without running the text encoder.
    #[wasm_bindgen(js_name = importPromptEmbeddings)]
    pub fn import_prompt_embeddings(&mut self, prompts: Vec<String>, embeds: Vec<f32>) -> Result<(), JsError> {
        let dim = self.model.info.config.projection_dim;
        if embeds.len() != prompts.len() * dim {
            return Err(JsError::new(&format!(
                "Stored prompt embeddings do not fit this model: {} values for {} prompts of size {dim}.",
                embeds.len(),
                prompts.len()
            )));
        }
        for (prompt, e) in prompts.into_iter().zip(embeds.chunks_exact(dim)) {
            self.prompt_cache.insert(prompt, e.to_vec());
        }
        Ok(())
    }

    /// How many prompts have been encoded so far (the cache size).
    #[wasm_bindgen(getter, js_name = encodedPrompts)]
    pub fn encoded_prompts(&self) -> usize {
        self.prompt_cache.len()
    }

    /// Classifies one image file's bytes: `{predictions: [{label, probability, logit}]}`,
    /// best first, at most `top_k`.
    pub async fn classify(&self, image: Vec<u8>, top_k: usize) -> Result<JsValue, JsError> {
        if self.labels.is_empty() {
            return Err(js_error(Error::NoLabels));
        }
        let pixels = self.model.pixels(&image).map_err(js_error)?;
        let embed = self.embed_pixels_normalized(pixels).await?;
        let scale = self.model.logit_scale_exp();
        let mut predictions = match &self.adapter {
            Some(adapter) => adapter.classify(&embed, &self.label_embeds, scale).map_err(js_error)?,
            None => classify(&embed, &self.label_embeds, &self.labels, scale),
        };
        predictions.truncate(top_k.max(1));
        to_js(&ClassifyResult { predictions })
    }

    /// The L2-normalised embedding of an image file.
    #[wasm_bindgen(js_name = embedImage)]
    pub async fn embed_image(&self, image: Vec<u8>) -> Result<Vec<f32>, JsError> {
        let pixels = self.model.pixels(&image).map_err(js_error)?;
        self.embed_pixels_normalized(pixels).await
    }

    /// The L2-normalised embedding of already preprocessed pixels (`3·S·S`, channel-major).
    #[wasm_bindgen(js_name = embedPixels)]
    pub async fn embed_pixels(&self, pixels: Vec<f32>) -> Result<Vec<f32>, JsError> {
        self.embed_pixels_normalized(pixels).await
    }

    /// L2-normalised embeddings of several preprocessed images in one forward pass
    /// (`count × 3·S·S` values in, `count × dim` out).
    #[wasm_bindgen(js_name = embedPixelsBatch)]
    pub async fn embed_pixels_batch(&self, pixels: Vec<f32>, count: usize) -> Result<Vec<f32>, JsError> {
        let s = self.model.preprocess.image_size;
        if count == 0 || pixels.len() != count * 3 * s * s {
            return Err(JsError::new(&format!("Expected {count} × 3×{s}×{s} pixel values, got {}.", pixels.len())));
        }
        let images: Vec<Vec<f32>> = pixels.chunks_exact(3 * s * s).map(<[f32]>::to_vec).collect();
        let mut e = read_async(self.model.encode_images(&images).embeds).await.map_err(js_error)?;
        normalize_rows(&mut e, self.model.info.config.projection_dim);
        Ok(e)
    }

    /// L2-normalised text embeddings, concatenated (`texts.len() × dim`).
    #[wasm_bindgen(js_name = embedTexts)]
    pub async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<f32>, JsError> {
        let mut e = self.encode_texts(&texts).await?;
        normalize_rows(&mut e, self.model.info.config.projection_dim);
        Ok(e)
    }

    #[wasm_bindgen(getter, js_name = embeddingSize)]
    pub fn embedding_size(&self) -> usize {
        self.model.info.config.projection_dim
    }

    /// A Tip-Adapter (JSON) for the current labels from labelled photos: `examples` their
    /// normalised embeddings (`n × dim`), `example_labels` indices into the labels. Labels
    /// without photos keep their zero-shot logit. With `probe`, a linear probe is trained too.
    #[wasm_bindgen(js_name = makeAdapter)]
    pub fn make_adapter(
        &self,
        examples: Vec<f32>,
        example_labels: Vec<u32>,
        alpha: f32,
        beta: f32,
        probe: bool,
    ) -> Result<String, JsError> {
        let dim = self.embedding_size();
        if self.labels.is_empty() {
            return Err(js_error(Error::NoLabels));
        }
        if examples.len() != example_labels.len() * dim {
            return Err(JsError::new(&format!("Expected {} labelled embeddings of size {dim}, got {} values.", example_labels.len(), examples.len())));
        }
        let example_labels: Vec<usize> = example_labels.into_iter().map(|l| l as usize).collect();
        if let Some(&bad) = example_labels.iter().find(|&&l| l >= self.labels.len()) {
            return Err(JsError::new(&format!("Label number {bad} is not on the list of {} labels.", self.labels.len())));
        }
        let templates = self.templates.iter().map(|t| t.as_str().to_string()).collect();
        let mut adapter =
            Adapter::with_some_classes(&self.model_id, self.labels.clone(), templates, dim, &examples, &example_labels)
                .map_err(js_error)?;
        adapter.alpha = alpha;
        adapter.beta = beta;
        if probe {
            let (blend, l2) = (crate::adapter::DEFAULT_BLEND, crate::adapter::DEFAULT_PROBE_L2);
            adapter.train_probe(&self.label_embeds, self.model.logit_scale_exp(), blend, l2).map_err(js_error)?;
        }
        Ok(adapter.to_json())
    }

    /// Checks an adapter file against this model and the current labels and returns its
    /// leave-one-out accuracy, zero-shot vs adapted.
    #[wasm_bindgen(js_name = checkAdapter)]
    pub fn check_adapter(&self, json: &str) -> Result<JsValue, JsError> {
        let adapter = self.parse_adapter(json)?;
        let check = adapter.leave_one_out(&self.label_embeds, self.model.logit_scale_exp()).map_err(js_error)?;
        to_js(&AdapterCheck {
            examples: check.examples,
            zero_shot_correct: check.zero_shot_correct,
            adapted_correct: check.adapted_correct,
            classes_without_examples: adapter.classes_without_examples(),
        })
    }

    /// Switches the adapter `classify` uses: an adapter file, or nothing for zero-shot.
    #[wasm_bindgen(js_name = setAdapter)]
    pub fn set_adapter(&mut self, json: Option<String>) -> Result<(), JsError> {
        self.adapter = json.map(|j| self.parse_adapter(&j)).transpose()?;
        Ok(())
    }
}

/// A photo collection's embeddings, searched by exact brute-force cosine ranking.
#[wasm_bindgen]
pub struct GalleryIndex {
    dim: usize,
    /// `[photos, dim]`, row-major, in the page's order.
    matrix: Vec<f32>,
    /// Each row's norm, computed once when it is added.
    norms: Vec<f32>,
}

#[wasm_bindgen]
impl GalleryIndex {
    #[wasm_bindgen(constructor)]
    pub fn new(dim: usize) -> GalleryIndex {
        GalleryIndex { dim, matrix: Vec::new(), norms: Vec::new() }
    }

    /// Appends embeddings (`n × dim`).
    pub fn add(&mut self, embeddings: Vec<f32>) -> Result<(), JsError> {
        if self.dim == 0 || embeddings.len() % self.dim != 0 {
            return Err(JsError::new(&format!("Expected embeddings of size {}, got {} values.", self.dim, embeddings.len())));
        }
        self.norms.extend(row_norms(&embeddings, self.dim));
        self.matrix.extend_from_slice(&embeddings);
        Ok(())
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        if self.dim == 0 { 0 } else { self.matrix.len() / self.dim }
    }

    /// The `k` photos most like `query`, best first: `[{index, score}]` (equal scores keep
    /// the lower index first).
    pub fn search(&self, query: Vec<f32>, k: usize) -> Result<JsValue, JsError> {
        if self.size() == 0 {
            return Err(js_error(Error::EmptyGallery));
        }
        if query.len() != self.dim {
            return Err(js_error(Error::DimensionMismatch { what: "collection", expected: query.len(), found: self.dim }));
        }
        to_js(&rank_with_norms(&query, &self.matrix, &self.norms, self.dim, k).map_err(js_error)?)
    }
}

impl Classifier {
    fn parse_adapter(&self, json: &str) -> Result<Adapter, JsError> {
        let adapter = Adapter::from_json(json.as_bytes()).map_err(js_error)?;
        adapter.check_model(&self.model_id, self.embedding_size()).map_err(js_error)?;
        adapter.check_labels(&self.labels).map_err(js_error)?;
        Ok(adapter)
    }

    async fn embed_pixels_normalized(&self, pixels: Vec<f32>) -> Result<Vec<f32>, JsError> {
        let s = self.model.preprocess.image_size;
        if pixels.len() != 3 * s * s {
            return Err(JsError::new(&format!("Expected 3×{s}×{s} pixel values, got {}.", pixels.len())));
        }
        let mut e = read_async(self.model.encode_images(&[pixels]).embeds).await.map_err(js_error)?;
        normalize_rows(&mut e, self.model.info.config.projection_dim);
        Ok(e)
    }

    /// Unnormalised text embeddings.
    async fn encode_texts(&self, texts: &[String]) -> Result<Vec<f32>, JsError> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens = self.model.tokenize(&refs).map_err(js_error)?;
        read_async(self.model.encode_tokens(&tokens).embeds).await.map_err(js_error)
    }
}
