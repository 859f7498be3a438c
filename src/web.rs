//! The browser shell: a thin `#[wasm_bindgen]` layer over `Session` — conversions between
//! JavaScript and Rust values, and async. It keeps no classification state of its own.
//!
//! Every error it throws is a JavaScript `Error` with a `kind` (`input`, `model`, `device`,
//! `storage`, `cancelled`; see `ErrorKind`) next to its sentence: the page's worker decides
//! on the kind (a device error moves the model to the CPU, an input error never does).

#[cfg(feature = "webgpu")]
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::adapter::{Adapter, DEFAULT_BLEND};
use crate::error::{Error, ErrorKind};
use crate::search::Gallery;
use crate::session::{AdapterSettings, LabelSet, Session};
use crate::weights::{TorchZip, TorchZipError, WeightsError, WeightsReader};
use crate::ClipModel;

#[cfg(feature = "webgpu")]
thread_local! {
    /// burn's wgpu runtime can be initialised once per page; later models reuse the device
    /// (with the largest tensor it can bind, in bytes).
    static WEBGPU: RefCell<Option<(Device, u64)>> = const { RefCell::new(None) };
    /// A second device, made at WebGPU's default limits (backend `webgpu:default-limits`).
    static WEBGPU_DEFAULT_LIMITS: RefCell<Option<(Device, u64)>> = const { RefCell::new(None) };
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

/// A JavaScript `Error` with the sentence as its message and `kind` set.
fn failure(kind: ErrorKind, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&error, &JsValue::from_str("kind"), &JsValue::from_str(kind.as_str()));
    error.into()
}

fn js_error(e: Error) -> JsValue {
    failure(e.kind(), &e.to_string())
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| failure(ErrorKind::Device, &format!("A result could not be handed to the page: {e}")))
}

/// The largest tensor a wgpu device can hold in one binding, in bytes (what cubecl's memory
/// pages are capped at).
#[cfg(feature = "webgpu")]
fn largest_binding(device: &burn::tensor::wgpu::wgpu::Device) -> u64 {
    let limits = device.limits();
    limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
}

/// WebGPU through burn's wgpu backend (the device asks for all the adapter allows, as cubecl
/// does), with its largest binding; or why it is not available.
#[cfg(feature = "webgpu")]
async fn webgpu_device() -> Result<(Device, u64), String> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let (device, setup) = Device::wgpu_options().init_with_setup_async().await.map_err(|e| format!("{e}"))?;
    let device = (device, largest_binding(&setup.device));
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// WebGPU's default limits for storage bindings and buffers (128 MiB and 256 MiB): what a
/// device gets where the adapter allows no more. The backend `webgpu:default-limits` makes its
/// device with them (on any adapter), so that the tests show big models fit there (#18).
#[cfg(feature = "webgpu")]
async fn webgpu_device_at_default_limits() -> Result<(Device, u64), String> {
    use burn::tensor::wgpu::{wgpu, WgpuSetup};
    if let Some(device) = WEBGPU_DEFAULT_LIMITS.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions::default())
        .await
        .map_err(|e| format!("{e}"))?;
    // cubecl sizes its kernels from the adapter's compute limits, so those stay; only the
    // sizes of bindings and buffers drop to the defaults.
    let defaults = wgpu::Limits::default();
    let mut limits = adapter.limits();
    limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(defaults.max_storage_buffer_binding_size);
    limits.max_buffer_size = limits.max_buffer_size.min(defaults.max_buffer_size);
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: None,
            required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: limits,
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            trace: wgpu::Trace::Off,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
        })
        .await
        .map_err(|e| format!("{e}"))?;
    let largest = largest_binding(&device);
    let backend = adapter.get_info().backend;
    let setup = WgpuSetup { instance, adapter, device, queue, backend };
    let device = (Device::wgpu_options().setup(setup).init().map_err(|e| format!("{e}"))?, largest);
    WEBGPU_DEFAULT_LIMITS.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// The threaded build has no WebGPU (see Cargo.toml's `threads` feature).
#[cfg(not(feature = "webgpu"))]
async fn webgpu_device() -> Result<(Device, u64), String> {
    Err("this is the threaded CPU build of fieldclip, without WebGPU".into())
}

#[cfg(not(feature = "webgpu"))]
async fn webgpu_device_at_default_limits() -> Result<(Device, u64), String> {
    webgpu_device().await
}

/// The device a model runs on: burn's device, its name, why it was chosen, and the largest
/// tensor it holds in bytes (`None`: no limit).
struct PickedDevice {
    device: Device,
    name: &'static str,
    reason: String,
    largest_tensor: Option<u64>,
}

/// Picks the backend: `webgpu`, `cpu`, or `auto` (WebGPU when an adapter is there, else CPU);
/// `webgpu:default-limits` is WebGPU on a device made at WebGPU's default limits (for tests).
async fn pick_device(backend: &str) -> Result<PickedDevice, JsValue> {
    let cpu = |reason: String| PickedDevice { device: Device::flex(), name: "cpu", reason, largest_tensor: None };
    let gpu = |(device, largest): (Device, u64), reason: &str| PickedDevice {
        device,
        name: "webgpu",
        reason: reason.into(),
        largest_tensor: Some(largest),
    };
    let unavailable = |e: String| failure(ErrorKind::Device, &format!("WebGPU is not available in this browser: {e}"));
    match backend {
        "cpu" => Ok(cpu("CPU was requested".into())),
        "webgpu" => webgpu_device().await.map(|d| gpu(d, "WebGPU was requested")).map_err(unavailable),
        "webgpu:default-limits" => webgpu_device_at_default_limits()
            .await
            .map(|d| gpu(d, "WebGPU at its default limits was requested"))
            .map_err(unavailable),
        "auto" | "" => match webgpu_device().await {
            Ok(d) => Ok(gpu(d, "a WebGPU adapter is available")),
            Err(e) => Ok(cpu(format!("WebGPU is not available ({e}), so the CPU runs the model"))),
        },
        other => Err(failure(ErrorKind::Input, &format!("Unknown backend `{other}`: use auto, webgpu or cpu."))),
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

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
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

/// A PyTorch zip checkpoint (`torch.save`, e.g. BioCLIP's `open_clip_pytorch_model.bin`) seen
/// as the safetensors file of its weights (`weights::TorchZip`), read from a `File` piece by
/// piece: the page reads the byte ranges `wanted()` asks for (`Blob.slice`s, concatenated)
/// into `give` until `wanted()` is empty, then streams `header()` followed by the file's
/// `ranges()`, in order, into a `WeightsStream`, as it streams a safetensors file. Only the
/// archive's directory and its `data.pkl` are read here, never the tensors.
#[wasm_bindgen]
pub struct TorchCheckpoint {
    zip: TorchZip,
}

fn torch_error(e: TorchZipError) -> JsValue {
    js_error(WeightsError::from(e).into())
}

/// `(start, length)` pairs flattened for JavaScript: `[start0, length0, start1, length1, …]`.
fn flat_ranges(ranges: &[(u64, u64)]) -> Vec<f64> {
    ranges.iter().flat_map(|&(start, len)| [start as f64, len as f64]).collect()
}

#[wasm_bindgen]
impl TorchCheckpoint {
    /// For a file of `size` bytes (`Blob.size`).
    #[wasm_bindgen(constructor)]
    pub fn new(size: f64) -> Result<TorchCheckpoint, JsValue> {
        run_constructors_once();
        TorchZip::new(size as u64).map(|zip| TorchCheckpoint { zip }).map_err(torch_error)
    }

    /// The bytes to read next, as `[start, length, …]` pairs; empty once the checkpoint is read.
    pub fn wanted(&self) -> Vec<f64> {
        flat_ranges(self.zip.wanted())
    }

    /// The bytes `wanted()` asked for, concatenated in its order. Throws (kind `model`) as
    /// soon as they show the file cannot be read.
    pub fn give(&mut self, bytes: &[u8]) -> Result<(), JsValue> {
        self.zip.give(bytes).map_err(torch_error)
    }

    /// The safetensors header of the weights (its 8-byte length, then the JSON).
    pub fn header(&self) -> Result<Vec<u8>, JsValue> {
        if !self.zip.is_done() {
            return Err(failure(ErrorKind::Model, "The PyTorch checkpoint has not been read to its end yet."));
        }
        Ok(self.zip.header().to_vec())
    }

    /// Where the weights' bytes lie in the file, as `[start, length, …]` pairs in the header's
    /// order: the header followed by these bytes is the safetensors file.
    pub fn ranges(&self) -> Vec<f64> {
        flat_ranges(self.zip.ranges())
    }
}

/// One image's result: the top labels, best first.
#[derive(Serialize)]
struct ClassifyResult {
    predictions: Vec<crate::Prediction>,
}

#[derive(Serialize)]
struct MapJs<'a> {
    text: &'a str,
    cosine: &'a [f32],
    min: f32,
    max: f32,
}

#[derive(Serialize)]
struct ExplainResult<'a> {
    variant: &'a str,
    grid: [usize; 2],
    predictions: &'a [crate::Prediction],
    maps: Vec<MapJs<'a>>,
}

fn map_variant(name: &str) -> Result<crate::model::MapVariant, JsValue> {
    if name.trim().is_empty() {
        return Ok(crate::model::MapVariant::default());
    }
    crate::model::MapVariant::parse(name).ok_or_else(|| {
        failure(ErrorKind::Input, &format!("Unknown map variant `{name}`: use clearclip, maskclip, sclip, vanilla or plain."))
    })
}

/// A label's map from `embedImageWithPatches`' `patches` (`cells × dim`, normalised) and the
/// label's normalised text embedding (`dim`): one cosine per patch.
#[wasm_bindgen(js_name = cosineMap)]
pub fn cosine_map(patches: &[f32], text: &[f32]) -> Result<Vec<f32>, JsValue> {
    if text.is_empty() || patches.len() % text.len() != 0 {
        let error = Error::DimensionMismatch { what: "label embedding", expected: text.len(), found: patches.len() };
        return Err(js_error(error));
    }
    let cells = patches.len() / text.len();
    Ok(crate::heatmap::PatchEmbeddings { grid: [cells, 1], dim: text.len(), values: patches.to_vec() }.cosine(text))
}

/// The heat-maps' colour map (viridis): 256 RGB triples, 768 bytes.
#[wasm_bindgen(js_name = colourTable)]
pub fn colour_table() -> Vec<u8> {
    crate::heatmap::colour_table()
}

/// One species in `classifyTaxa`'s result.
#[derive(Serialize)]
struct TaxonPrediction {
    label: String,
    common_name: String,
    probability: f32,
    /// The taxon's position in the list (a `TaxaIndex`'s `embedding(index)`).
    index: Option<usize>,
}

#[derive(Serialize)]
struct RankRow {
    name: String,
    probability: f32,
}

#[derive(Serialize)]
struct TaxaClassifyResult {
    predictions: Vec<TaxonPrediction>,
    answer: Option<crate::taxonomy::Answer>,
    ranks: std::collections::BTreeMap<&'static str, Vec<RankRow>>,
}

/// An adapter's leave-one-out check, as the page shows it.
#[derive(Serialize)]
struct AdapterCheck {
    examples: usize,
    zero_shot_correct: usize,
    adapted_correct: usize,
    classes_without_examples: usize,
}

/// A CLIP model loaded in the page: a `Session` and the backend it runs on.
#[wasm_bindgen]
pub struct Classifier {
    session: Session,
    backend: &'static str,
    backend_reason: String,
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
    ) -> Result<Classifier, JsValue> {
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
    ) -> Result<Classifier, JsValue> {
        run_constructors_once();
        let picked = pick_device(&backend).await?;
        let mut progress = |step: &str, fraction: f32| {
            if let Some(f) = &on_progress {
                // A failing progress callback must not stop the load.
                let _ = f.call2(&JsValue::NULL, &JsValue::from_str(step), &JsValue::from_f64(fraction as f64));
            }
        };
        let loaded = stream.reader.finish(config.as_deref()).map_err(|e| js_error(e.into()))?;
        let at = crate::model::Placement {
            largest_tensor: picked.largest_tensor.map(|bytes| bytes.min(usize::MAX as u64) as usize),
            ..crate::clip::placement(&picked.device)
        };
        let model = ClipModel::from_loaded_at(loaded, &at, &mut progress).map_err(js_error)?;
        Ok(Classifier { session: Session::new(model), backend: picked.name, backend_reason: picked.reason })
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
        self.session.model_id().to_string()
    }

    /// Architecture, layout, dtypes, parameter count.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        to_js(&self.session.model().info)
    }

    #[wasm_bindgen(getter, js_name = logitScale)]
    pub fn logit_scale(&self) -> f32 {
        self.session.model().logit_scale_exp()
    }

    /// Sets the label list and prompt templates (each with `{}`; both trimmed, blanks and
    /// repeats left out); only prompts not seen before are encoded. Returns those newly encoded
    /// prompts (for the page to store).
    #[wasm_bindgen(js_name = setLabels)]
    pub async fn set_labels(&mut self, labels: Vec<String>, templates: Vec<String>) -> Result<Vec<String>, JsValue> {
        let set = LabelSet::new(&labels, &templates).map_err(js_error)?;
        Ok(self.session.set_labels(set).await.map_err(js_error)?.encoded)
    }

    /// Uses taxa as the labels. `table`: a taxa list (CSV or TSV with the header
    /// `kingdom,phylum,class,order,family,genus,species,common_name`, `species` the epithet,
    /// missing ranks allowed; or pybioclip's names JSON). `format`: BioCLIP's text format
    /// (`taxon`, `sci`, `com`, `sci_com`, `taxon_com`). `templates`: empty for OpenAI's 80 (as
    /// pybioclip). Returns the newly encoded prompts, as `setLabels` does.
    #[wasm_bindgen(js_name = setTaxa)]
    pub async fn set_taxa(&mut self, table: String, format: String, templates: Vec<String>) -> Result<Vec<String>, JsValue> {
        let taxa = crate::taxonomy::parse_taxa(&table).map_err(|e| js_error(e.into()))?;
        let format: crate::taxonomy::TextFormat = format.parse().map_err(|e: crate::taxonomy::TaxonomyError| js_error(e.into()))?;
        let templates: Vec<String> = if templates.is_empty() {
            crate::taxonomy::OPENAI_TEMPLATES.iter().map(|t| t.to_string()).collect()
        } else {
            templates
        };
        Ok(self.session.set_taxa(taxa, format, &templates).await.map_err(js_error)?.encoded)
    }

    /// How many taxa are in use (0: the labels are plain).
    #[wasm_bindgen(getter, js_name = taxonCount)]
    pub fn taxon_count(&self) -> usize {
        self.session.taxa().map_or(0, <[_]>::len)
    }

    /// One photo against the taxa in use: `{ predictions: [{ label, common_name, probability }]
    /// (the `top_k` likeliest species, label `Genus epithet`), answer: { rank, name, probability }
    /// | null (no rank reaches `threshold`), ranks: { kingdom: [{ name, probability }], …,
    /// species: […] } }` (each rank's best five, a higher taxon's probability the sum of its
    /// species').
    #[wasm_bindgen(js_name = classifyTaxa)]
    pub async fn classify_taxa(&self, image: Vec<u8>, threshold: f64, top_k: usize) -> Result<JsValue, JsValue> {
        let embed = self.session.embed_image(&image).await.map_err(js_error)?;
        let result = self.session.classify_taxa(&embed, threshold).map_err(js_error)?;
        taxa_result_js(result, self.session.taxa().unwrap_or_default(), top_k)
    }

    /// How photos are resized: `crop` (the model's own: shortest side, centre crop) or
    /// `squash` (both sides to the model's size, no crop: pybioclip's for BioCLIP).
    #[wasm_bindgen(js_name = setPreprocess)]
    pub fn set_preprocess(&mut self, mode: &str) -> Result<(), JsValue> {
        use crate::preprocess::Pipeline;
        let pipeline = match mode {
            "squash" => Pipeline::Squash,
            "crop" => match self.session.model().info.layout {
                crate::weights::Layout::HuggingFace => Pipeline::HuggingFace,
                crate::weights::Layout::OpenClip => Pipeline::OpenClip,
            },
            other => return Err(failure(ErrorKind::Input, &format!("Unknown resize `{other}`: use crop or squash."))),
        };
        self.session.set_pipeline(pipeline);
        Ok(())
    }

    /// `crop` or `squash`: how photos are resized now.
    #[wasm_bindgen(getter)]
    pub fn preprocess(&self) -> String {
        match self.session.model().preprocess.pipeline {
            crate::preprocess::Pipeline::Squash => "squash".into(),
            _ => "crop".into(),
        }
    }

    /// The labels in use, in the order `makeAdapter`'s label numbers refer to.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.session.labels().to_vec()
    }

    /// The cached (unnormalised) embeddings of `prompts`, concatenated, to store on the device.
    #[wasm_bindgen(js_name = promptEmbeddings)]
    pub fn prompt_embeddings(&self, prompts: Vec<String>) -> Result<Vec<f32>, JsValue> {
        self.session.prompt_embeddings(&prompts).map_err(js_error)
    }

    /// Fills the prompt cache with embeddings stored by an earlier visit (same model), so
    /// the label list is ready without running the text encoder. Embeddings that do not fit
    /// are a `storage` error.
    #[wasm_bindgen(js_name = importPromptEmbeddings)]
    pub fn import_prompt_embeddings(&mut self, prompts: Vec<String>, embeds: Vec<f32>) -> Result<(), JsValue> {
        self.session.import_prompt_embeddings(prompts, &embeds).map_err(js_error)
    }

    /// How many prompts have been encoded so far (the cache size).
    #[wasm_bindgen(getter, js_name = encodedPrompts)]
    pub fn encoded_prompts(&self) -> usize {
        self.session.encoded_prompts()
    }

    /// Classifies one image file's bytes: `{predictions: [{label, probability, logit}]}`,
    /// best first, at most `top_k`.
    pub async fn classify(&self, image: Vec<u8>, top_k: usize) -> Result<JsValue, JsValue> {
        let mut predictions = self.session.classify(&image).await.map_err(js_error)?;
        predictions.truncate(top_k.max(1));
        to_js(&ClassifyResult { predictions })
    }

    /// Classifies one image file's bytes and maps where labels match it, in one pass (#15):
    /// `{variant, grid: [rows, cols], predictions: [{label, probability, logit}] (best first, at
    /// most top_k), maps: [{text, cosine: [rows·cols, row-major], min, max}], taxa?}`. `labels`:
    /// labels in use to map (none: the best one). `variant`: `clearclip` (default when empty),
    /// `maskclip`, `sclip`, `vanilla`, `plain`. With taxa in use and a `threshold`, `taxa` is
    /// `classifyTaxa`'s result for the same photo.
    pub async fn explain(
        &self,
        image: Vec<u8>,
        labels: Vec<String>,
        variant: String,
        top_k: usize,
        threshold: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let variant = map_variant(&variant)?;
        let pixels = self.session.model().pixels(&image).map_err(js_error)?;
        self.explained(pixels, labels, variant, top_k, threshold).await
    }

    /// `explain` for already preprocessed pixels (`3·S·S`, channel-major).
    #[wasm_bindgen(js_name = explainPixels)]
    pub async fn explain_pixels(&self, pixels: Vec<f32>, labels: Vec<String>, variant: String) -> Result<JsValue, JsValue> {
        let variant = map_variant(&variant)?;
        self.explained(pixels, labels, variant, usize::MAX, None).await
    }

    /// One pass over an image file for labels the page holds itself (a tree-of-life index):
    /// `{variant, grid: [rows, cols], embedding: Float32Array (the normalised image embedding),
    /// patches: Float32Array (rows·cols × dim, each normalised)}`; `cosineMap(patches, text)`
    /// then gives a label's map.
    #[wasm_bindgen(js_name = embedImageWithPatches)]
    pub async fn embed_image_with_patches(&self, image: Vec<u8>, variant: String) -> Result<JsValue, JsValue> {
        let variant = map_variant(&variant)?;
        let pixels = self.session.model().pixels(&image).map_err(js_error)?;
        let mut out = self.session.embed_pixels_with_patches(&[pixels], variant).await.map_err(js_error)?;
        let (embedding, patches) = out.pop().ok_or_else(|| failure(ErrorKind::Device, "The model gave no output."))?;
        let result = js_sys::Object::new();
        let set = |key: &str, value: JsValue| js_sys::Reflect::set(&result, &JsValue::from_str(key), &value);
        let grid = js_sys::Array::of2(&JsValue::from(patches.grid[0] as u32), &JsValue::from(patches.grid[1] as u32));
        for (key, value) in [
            ("variant", JsValue::from_str(&variant.name())),
            ("grid", grid.into()),
            ("embedding", js_sys::Float32Array::from(embedding.as_slice()).into()),
            ("patches", js_sys::Float32Array::from(patches.values.as_slice()).into()),
        ] {
            set(key, value).map_err(|_| failure(ErrorKind::Device, "A result could not be handed to the page."))?;
        }
        Ok(result.into())
    }

    /// The L2-normalised patch embeddings of `variant` for preprocessed pixels (`3·S·S`):
    /// `rows·cols × dim` values, row-major over the patch grid.
    #[wasm_bindgen(js_name = patchEmbeddings)]
    pub async fn patch_embeddings(&self, pixels: Vec<f32>, variant: String) -> Result<Vec<f32>, JsValue> {
        let variant = map_variant(&variant)?;
        let mut out = self.session.embed_pixels_with_patches(&[pixels], variant).await.map_err(js_error)?;
        Ok(out.pop().map(|(_, p)| p.values).unwrap_or_default())
    }

    async fn explained(
        &self,
        pixels: Vec<f32>,
        labels: Vec<String>,
        variant: crate::model::MapVariant,
        top_k: usize,
        threshold: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let mut explained = self.session.explain_pixels(pixels, &labels, variant).await.map_err(js_error)?;
        explained.predictions.truncate(top_k.max(1));
        let maps: Vec<MapJs> = explained
            .maps
            .iter()
            .map(|m| {
                let (min, max) = crate::heatmap::range(&m.cosine);
                MapJs { text: &m.text, cosine: &m.cosine, min, max }
            })
            .collect();
        let out = to_js(&ExplainResult { variant: &explained.variant, grid: explained.grid, predictions: &explained.predictions, maps })?;
        if let (Some(threshold), Some(taxa)) = (threshold, self.session.taxa()) {
            let result = self.session.classify_taxa(&explained.embedding, threshold).map_err(js_error)?;
            let taxa_js = taxa_result_js(result, taxa, top_k.min(1000))?;
            let _ = js_sys::Reflect::set(&out, &JsValue::from_str("taxa"), &taxa_js);
        }
        Ok(out)
    }

    /// The L2-normalised embedding of an image file.
    #[wasm_bindgen(js_name = embedImage)]
    pub async fn embed_image(&self, image: Vec<u8>) -> Result<Vec<f32>, JsValue> {
        self.session.embed_image(&image).await.map_err(js_error)
    }

    /// The L2-normalised embedding of already preprocessed pixels (`3·S·S`, channel-major).
    #[wasm_bindgen(js_name = embedPixels)]
    pub async fn embed_pixels(&self, pixels: Vec<f32>) -> Result<Vec<f32>, JsValue> {
        self.session.embed_pixels(&[pixels]).await.map_err(js_error)
    }

    /// L2-normalised embeddings of several preprocessed images in one forward pass
    /// (`count × 3·S·S` values in, `count × dim` out).
    #[wasm_bindgen(js_name = embedPixelsBatch)]
    pub async fn embed_pixels_batch(&self, pixels: Vec<f32>, count: usize) -> Result<Vec<f32>, JsValue> {
        let s = self.session.model().preprocess.image_size;
        let per_image = 3 * s * s;
        if count == 0 || pixels.len() != count * per_image {
            let error = Error::RowCount { rows: count, dim: per_image, expected: count * per_image, found: pixels.len() };
            return Err(js_error(error));
        }
        let images: Vec<Vec<f32>> = pixels.chunks_exact(per_image).map(<[f32]>::to_vec).collect();
        self.session.embed_pixels(&images).await.map_err(js_error)
    }

    /// L2-normalised text embeddings, concatenated (`texts.len() × dim`).
    #[wasm_bindgen(js_name = embedTexts)]
    pub async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<f32>, JsValue> {
        self.session.embed_texts(&texts).await.map_err(js_error)
    }

    /// On WebGPU, runs one blank image and one prompt through the model, so that the GPU
    /// compiles its kernels at load instead of on the first photo (#18: the first image made 43
    /// pipelines on the tiny model, later ones none). Does nothing on the CPU.
    #[wasm_bindgen(js_name = warmUp)]
    pub async fn warm_up(&self) -> Result<(), JsValue> {
        if self.backend != "webgpu" {
            return Ok(());
        }
        let size = self.session.model().preprocess.image_size;
        self.session.embed_pixels(&[vec![0.0; 3 * size * size]]).await.map_err(js_error)?;
        self.session.embed_texts(&["a photo.".to_string()]).await.map_err(js_error)?;
        Ok(())
    }

    #[wasm_bindgen(getter, js_name = embeddingSize)]
    pub fn embedding_size(&self) -> usize {
        self.session.dim()
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
    ) -> Result<String, JsValue> {
        let example_labels: Vec<usize> = example_labels.into_iter().map(|l| l as usize).collect();
        let settings = AdapterSettings {
            alpha,
            beta,
            probe_blend: probe.then_some(DEFAULT_BLEND),
            every_label_needs_examples: false,
        };
        let adapter = self.session.make_adapter(&examples, &example_labels, settings).map_err(js_error)?;
        Ok(adapter.to_json())
    }

    /// Checks an adapter file against this model and the current labels and returns its
    /// leave-one-out accuracy, zero-shot vs adapted.
    #[wasm_bindgen(js_name = checkAdapter)]
    pub fn check_adapter(&self, json: &str) -> Result<JsValue, JsValue> {
        let adapter = Adapter::from_json(json.as_bytes()).map_err(js_error)?;
        let check = self.session.leave_one_out(&adapter).map_err(js_error)?;
        to_js(&AdapterCheck {
            examples: check.examples,
            zero_shot_correct: check.zero_shot_correct,
            adapted_correct: check.adapted_correct,
            classes_without_examples: adapter.classes_without_examples(),
        })
    }

    /// In how many parts `checkAdapterPart` checks this adapter file (1 to 10).
    #[wasm_bindgen(js_name = adapterCheckParts)]
    pub fn adapter_check_parts(&self, json: &str) -> Result<usize, JsValue> {
        Ok(Adapter::from_json(json.as_bytes()).map_err(js_error)?.check_parts())
    }

    /// `checkAdapter` for one part's held-out photos: the parts' counts add up to the whole
    /// check. The page checks part by part so that a newer edit can stop a long check.
    #[wasm_bindgen(js_name = checkAdapterPart)]
    pub fn check_adapter_part(&self, json: &str, part: usize) -> Result<JsValue, JsValue> {
        let adapter = Adapter::from_json(json.as_bytes()).map_err(js_error)?;
        let check = self.session.leave_one_out_part(&adapter, part).map_err(js_error)?;
        to_js(&AdapterCheck {
            examples: check.examples,
            zero_shot_correct: check.zero_shot_correct,
            adapted_correct: check.adapted_correct,
            classes_without_examples: adapter.classes_without_examples(),
        })
    }

    /// Switches the adapter `classify` uses: an adapter file, or nothing for zero-shot.
    #[wasm_bindgen(js_name = setAdapter)]
    pub fn set_adapter(&mut self, json: Option<String>) -> Result<(), JsValue> {
        let adapter = json.map(|j| Adapter::from_json(j.as_bytes())).transpose().map_err(js_error)?;
        self.session.set_adapter(adapter).map_err(js_error)
    }
}

/// A photo collection's embeddings, searched by exact brute-force cosine ranking
/// (`search::Gallery`).
#[wasm_bindgen]
pub struct GalleryIndex {
    gallery: Gallery,
}

#[wasm_bindgen]
impl GalleryIndex {
    #[wasm_bindgen(constructor)]
    pub fn new(dim: usize) -> GalleryIndex {
        GalleryIndex { gallery: Gallery::new(dim) }
    }

    /// Appends embeddings (`n × dim`).
    pub fn add(&mut self, embeddings: Vec<f32>) -> Result<(), JsValue> {
        self.gallery.add(&embeddings).map_err(js_error)
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.gallery.len()
    }

    /// The `k` photos most like `query`, best first: `[{index, score}]` (equal scores keep
    /// the lower index first).
    pub fn search(&self, query: Vec<f32>, k: usize) -> Result<JsValue, JsValue> {
        to_js(&self.gallery.search(&query, k).map_err(js_error)?)
    }
}

/// `classifyTaxa`'s result as the page reads it.
fn taxa_result_js(result: crate::taxonomy::TaxaResult, taxa: &[crate::taxonomy::Taxon], top_k: usize) -> Result<JsValue, JsValue> {
    let predictions: Vec<TaxonPrediction> = result.ranked.ranks[6]
        .iter()
        .take(top_k.max(1))
        .map(|r| TaxonPrediction {
            label: r.name.clone(),
            common_name: r.index.map(|i| taxa[i].common_name.clone()).unwrap_or_default(),
            probability: r.probability,
            index: r.index,
        })
        .collect();
    let ranks: std::collections::BTreeMap<&str, Vec<RankRow>> = crate::taxonomy::RANKS
        .iter()
        .zip(&result.ranked.ranks)
        .map(|(rank, rows)| (*rank, rows.iter().map(|r| RankRow { name: r.name.clone(), probability: r.probability }).collect()))
        .collect();
    to_js(&TaxaClassifyResult { predictions, answer: result.answer, ranks })
}

impl TaxaIndex {
    fn from_embeddings(tree: crate::taxonomy::TaxaEmbeddings) -> Self {
        let mut embeddings = tree.embeddings;
        crate::clip::normalize_rows(&mut embeddings, tree.dim);
        TaxaIndex { index: crate::taxonomy::TaxonIndex::new(tree.taxa), embeddings, dim: tree.dim }
    }
}

/// pybioclip's tree-of-life `.npy` streamed into WebAssembly piece by piece (a 1 GB file is
/// never whole in memory: only the taxa the filter keeps are), then `finish()` → `TaxaIndex`.
#[wasm_bindgen]
pub struct TreeOfLifeStream {
    reader: crate::taxonomy::TreeOfLifeReader,
}

#[wasm_bindgen]
impl TreeOfLifeStream {
    /// `names`: the `txt_emb_species.json` bytes; `filter`: keep only taxa with this name at
    /// some rank (empty or absent: all).
    #[wasm_bindgen(constructor)]
    pub fn new(names: Vec<u8>, filter: Option<String>) -> Result<TreeOfLifeStream, JsValue> {
        let filter = filter.filter(|f| !f.trim().is_empty()).map(crate::taxonomy::Filter::Within);
        Ok(Self { reader: crate::taxonomy::TreeOfLifeReader::new(&names, filter).map_err(|e| js_error(e.into()))? })
    }

    /// Like `new`, keeping only the species on `list` (one `Genus epithet` a line, or a taxa
    /// table with genus and species columns; see `taxonomy::parse_species_list`).
    #[wasm_bindgen(js_name = withSpeciesList)]
    pub fn with_species_list(names: Vec<u8>, list: &str) -> Result<TreeOfLifeStream, JsValue> {
        let species = crate::taxonomy::parse_species_list(list).map_err(|e| js_error(e.into()))?;
        let filter = Some(crate::taxonomy::Filter::species(species));
        Ok(Self { reader: crate::taxonomy::TreeOfLifeReader::new(&names, filter).map_err(|e| js_error(e.into()))? })
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<(), JsValue> {
        self.reader.push(chunk).map_err(|e| js_error(e.into()))
    }

    /// Bytes pushed so far.
    #[wasm_bindgen(getter)]
    pub fn received(&self) -> f64 {
        self.reader.received() as f64
    }

    /// Taxa the filter keeps (known once the header is read).
    #[wasm_bindgen(getter)]
    pub fn kept(&self) -> usize {
        self.reader.kept()
    }

    pub fn finish(self) -> Result<TaxaIndex, JsValue> {
        Ok(TaxaIndex::from_embeddings(self.reader.finish().map_err(|e| js_error(e.into()))?))
    }
}

/// Taxa with known text embeddings (pybioclip's tree-of-life files, filtered), matched against
/// image embeddings without a model: the page keeps hundreds of thousands of taxa here, and the
/// browser benchmark times it.
#[wasm_bindgen]
pub struct TaxaIndex {
    index: crate::taxonomy::TaxonIndex,
    /// `[taxa, dim]`, L2-normalised.
    embeddings: Vec<f32>,
    dim: usize,
}

#[wasm_bindgen]
impl TaxaIndex {
    /// From pybioclip's pair: the `.npy` bytes (`[dim, taxa]` float32) and the names JSON;
    /// `filter`: keep only taxa with this name at some rank ("Plantae", "Fagaceae").
    #[wasm_bindgen(js_name = fromTreeOfLife)]
    pub fn from_tree_of_life(npy: Vec<u8>, names: Vec<u8>, filter: Option<String>) -> Result<TaxaIndex, JsValue> {
        let filter = filter.filter(|f| !f.trim().is_empty()).map(crate::taxonomy::Filter::Within);
        let tree = crate::taxonomy::read_tree_of_life(std::io::Cursor::new(npy), &names, filter.as_ref())
            .map_err(|e| js_error(e.into()))?;
        Ok(Self::from_embeddings(tree))
    }

    /// `count` made-up taxa in a plausible tree with random unit embeddings of `dim` (for the
    /// benchmark of tree-of-life sizes).
    pub fn synthetic(count: usize, dim: usize, seed: u32) -> TaxaIndex {
        let mut state = seed as u64 | 1;
        let mut embeddings: Vec<f32> = (0..count * dim)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        crate::clip::normalize_rows(&mut embeddings, dim);
        TaxaIndex { index: crate::taxonomy::TaxonIndex::new(crate::taxonomy::synthetic_taxa(count)), embeddings, dim }
    }

    /// The normalised text embedding of taxon `index` (the `index` of a classify prediction).
    pub fn embedding(&self, index: usize) -> Result<Vec<f32>, JsValue> {
        let dim = self.dim;
        self.embeddings
            .get(index * dim..(index + 1) * dim)
            .map(<[f32]>::to_vec)
            .ok_or_else(|| js_error(Error::LabelIndex { index, labels: self.embeddings.len() / dim.max(1) }))
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.index.taxa().len()
    }

    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The compact label pack (f16 embeddings + names) to keep on the device.
    pub fn pack(&self) -> Vec<u8> {
        crate::taxonomy::TaxaEmbeddings { taxa: self.index.taxa().to_vec(), dim: self.dim, embeddings: self.embeddings.clone() }.to_pack()
    }

    /// An index from a pack made by `pack()`.
    #[wasm_bindgen(js_name = fromPack)]
    pub fn from_pack(bytes: Vec<u8>) -> Result<TaxaIndex, JsValue> {
        let tree = crate::taxonomy::TaxaEmbeddings::from_pack(&bytes).map_err(|e| failure(ErrorKind::Storage, &e.to_string()))?;
        Ok(Self::from_embeddings(tree))
    }

    /// Taxa `start .. start + count`: `[{ranks: [kingdom … epithet], common_name}]`.
    pub fn taxa(&self, start: usize, count: usize) -> Result<JsValue, JsValue> {
        let all = self.index.taxa();
        let start = start.min(all.len());
        to_js(&all[start..(start + count).min(all.len())].to_vec())
    }

    /// One image embedding (normalised) against every taxon, with the model's
    /// `exp(logit_scale)`: the same result as `Classifier.classifyTaxa`.
    pub fn classify(&self, image_embed: Vec<f32>, scale: f32, threshold: f64, top_k: usize) -> Result<JsValue, JsValue> {
        if image_embed.len() != self.dim {
            return Err(js_error(Error::DimensionMismatch { what: "image embedding", expected: self.dim, found: image_embed.len() }));
        }
        let probs = crate::clip::softmax(&crate::clip::zero_shot_logits(&image_embed, &self.embeddings, scale));
        taxa_result_js(self.index.classify(&probs, threshold), self.index.taxa(), top_k)
    }
}

/// The packed matmul alone on random values, for the kernels' benchmark (`bench.html?suite=kernels`):
/// the page times `run`.
#[wasm_bindgen]
pub struct KernelBench {
    weight: crate::model::packed::PackedWeight,
    x: Vec<f32>,
    rows: usize,
}

#[wasm_bindgen]
impl KernelBench {
    /// A `[rows, inputs] × [inputs, outputs]` matmul; `int8`: int8 weights (a q8 pack's) with
    /// the activations quantised on the fly, else f32.
    #[wasm_bindgen(constructor)]
    pub fn new(rows: usize, inputs: usize, outputs: usize, int8: bool) -> Result<KernelBench, JsValue> {
        use crate::model::{packed::PackedWeight, HostMatrix};
        if !PackedWeight::fits(outputs) || rows == 0 || inputs == 0 {
            return Err(failure(ErrorKind::Input, "The kernel benchmark needs rows, inputs and a multiple of 8 outputs."));
        }
        let values = |n: usize, seed: f32| (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect::<Vec<f32>>();
        let weight = if int8 {
            let q = values(inputs * outputs, 0.5).iter().map(|v| (v * 127.0).round() as i8).collect();
            HostMatrix::Int8 { values: q, scales: vec![0.01; outputs] }
        } else {
            HostMatrix::F32(values(inputs * outputs, 0.5))
        };
        Ok(KernelBench { weight: PackedWeight::new(weight, outputs), x: values(rows * inputs, 1.0), rows })
    }

    /// One matmul; returns an output so the work is kept.
    pub fn run(&self) -> f32 {
        self.weight.matmul(&self.x, self.rows, None, None)[0]
    }

    /// `f32_peak` (`packed.rs`): rounds of 12 independent f32x4 multiply-adds.
    #[wasm_bindgen(js_name = f32Peak)]
    pub fn f32_peak(iterations: u32) -> f32 {
        #[allow(unused_unsafe)]
        unsafe {
            crate::model::packed::f32_peak(iterations)
        }
    }

    /// FLOP per round of `f32Peak`.
    #[wasm_bindgen(js_name = f32PeakFlop)]
    pub fn f32_peak_flop() -> f64 {
        crate::model::packed::F32_PEAK_FLOP
    }

    /// `int8_peak`: rounds of 12 independent int8 dot products (the kernels' instruction).
    #[wasm_bindgen(js_name = int8Peak)]
    pub fn int8_peak(iterations: u32) -> i32 {
        #[allow(unused_unsafe)]
        unsafe {
            crate::model::packed::int8_peak(iterations)
        }
    }

    /// Products per round of `int8Peak`.
    #[wasm_bindgen(js_name = int8PeakMacs)]
    pub fn int8_peak_macs() -> f64 {
        crate::model::packed::int8_peak_macs()
    }

    /// Which kernels this build has: `relaxed SIMD` or `SIMD128`.
    pub fn kernels() -> String {
        if crate::model::packed::RELAXED_SIMD { "relaxed SIMD" } else { "SIMD128" }.into()
    }
}
