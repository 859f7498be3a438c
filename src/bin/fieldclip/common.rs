//! What the commands share: the backend choice, finding and streaming a weights file, reading
//! label files and image folders, and embedding image files in batches.

use std::io::Read;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::ValueEnum;
use fieldclip::session::{ImageResult, Session};
use fieldclip::weights::WeightsReader;
use fieldclip::{ClipModel, Error};

pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";
/// The files `index` and `adapt` take as photos (by extension, any case).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "bmp"];

#[derive(Clone, Copy, ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend
    Cpu,
    /// burn's wgpu backend (Vulkan / Metal / DX12)
    Wgpu,
}

impl Backend {
    fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            Backend::Wgpu => Device::wgpu(Default::default()),
        }
    }
}

/// A library error as the CLI prints it.
pub fn err(e: Error) -> String {
    e.to_string()
}

/// The weights file and its optional config file.
pub fn resolve_weights(path: &Path) -> Result<(PathBuf, Option<PathBuf>), String> {
    let (file, dir) = if path.is_dir() {
        let file = ["model.safetensors", "open_clip_model.safetensors", "model.fcpk", "open_clip_pytorch_model.bin", "pytorch_model.bin"]
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "{} holds no model.safetensors, open_clip_model.safetensors, model.fcpk or open_clip_pytorch_model.bin",
                    path.display()
                )
            })?;
        (file, path.to_path_buf())
    } else if path.is_file() {
        (path.to_path_buf(), path.parent().map(Path::to_path_buf).unwrap_or_default())
    } else if path.exists() {
        return Err(format!("{} is not a regular file (a device, pipe or socket); give a weights file", path.display()));
    } else {
        return Err(format!("{} does not exist", path.display()));
    };
    // A pack carries its own config file.
    if file.extension().is_some_and(|e| e == "fcpk") {
        return Ok((file, None));
    }
    let config = ["open_clip_config.json", "config.json"].iter().map(|n| dir.join(n)).find(|p| p.is_file());
    Ok((file, config))
}

/// How large a file of each kind may be. Checked before reading, and the read itself stops
/// there, so a link to `/dev/zero` or a file that grows while read cannot fill the memory.
#[derive(Clone, Copy)]
pub enum FileKind {
    /// A photo: 100 MB (a 50-megapixel JPEG is ~25 MB; fieldclip refuses more pixels anyway).
    Image,
    /// A label list: 16 MB.
    Labels,
    /// A gallery or adapter: 1 GB of JSON (a gallery of ~150,000 photos of a 512-wide model).
    Json,
    /// A model's config file: 1 MB.
    Config,
    /// A weights file read whole (`inspect`, `pack`): 4 GB.
    Weights,
}

impl FileKind {
    fn limit(self) -> u64 {
        match self {
            FileKind::Image => 100 << 20,
            FileKind::Labels => 16 << 20,
            FileKind::Json => 1 << 30,
            FileKind::Config => 1 << 20,
            FileKind::Weights => 4 << 30,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FileKind::Image => "a photo",
            FileKind::Labels => "a label list",
            FileKind::Json => "a gallery or adapter",
            FileKind::Config => "a model config",
            FileKind::Weights => "a weights file",
        }
    }
}

/// Opens `path` for reading if it is a regular file (following links): a FIFO would block
/// forever and a device (`/dev/zero`) never ends.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64), String> {
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(cannot_read)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a folder" } else { "not a regular file (a device, pipe or socket)" };
        return Err(format!("{} is {what}; give a file", path.display()));
    }
    Ok((std::fs::File::open(path).map_err(cannot_read)?, meta.len()))
}

/// The whole file, if it is a regular file no larger than `kind` allows.
pub fn read_file_as(path: &Path, kind: FileKind) -> Result<Vec<u8>, String> {
    let (file, len) = open_regular(path)?;
    let limit = kind.limit();
    let too_large = || {
        format!("{} is larger than {} MB, more than {} may be; it was not read", path.display(), limit >> 20, kind.name())
    };
    if len > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A session on the model at `path`. The file is streamed through a `WeightsReader`, never
/// held whole next to the weights.
pub fn load(path: &Path, backend: Backend) -> Result<Session, String> {
    let (file, config) = resolve_weights(path)?;
    let config_bytes = config.as_deref().map(|c| read_file_as(c, FileKind::Config)).transpose()?;
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
    let (mut input, _) = open_regular(&file)?;
    // A PyTorch zip checkpoint (BioCLIP's `open_clip_pytorch_model.bin`) is read as it is.
    let mut magic = [0u8; 4];
    if input.read(&mut magic).map_err(cannot_read)? == 4 && &magic == b"PK\x03\x04" {
        let loaded = fieldclip::weights::load_pytorch(&file, config_bytes.as_deref()).map_err(|e| format!("{}: {e}", file.display()))?;
        let model = ClipModel::from_loaded(loaded, &backend.device(), &mut |_, _| {}).map_err(|e| format!("{}: {e}", file.display()))?;
        return Ok(Session::new(model));
    }
    let (mut input, _) = open_regular(&file)?;
    let mut reader = WeightsReader::with_file_hash(false);
    let mut chunk = vec![0u8; 8 << 20];
    loop {
        let n = input.read(&mut chunk).map_err(cannot_read)?;
        if n == 0 {
            break;
        }
        reader.push(&chunk[..n]).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let loaded = reader.finish(config_bytes.as_deref()).map_err(|e| format!("{}: {e}", file.display()))?;
    let model = ClipModel::from_loaded(loaded, &backend.device(), &mut |_, _| {})
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Session::new(model))
}

/// One label per line (the session trims them and leaves out blanks and repeats). A UTF-8 byte
/// order mark, which some editors write first, is not part of the first label.
pub fn read_labels(file: &Path) -> Result<Vec<String>, String> {
    let bytes = read_file_as(file, FileKind::Labels)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", file.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(text.lines().map(String::from).collect())
}

/// The image files under `dir`, sorted; see `index`'s help for which.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // file_type does not follow links, so a link cannot lead the walk in a circle.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(path);
            } else if path.is_file()
                && path
                    .extension()
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Each image file's normalised embedding, in input order, or why that file failed (alone).
/// Files are read and embedded a batch at a time, so a long list never sits in memory whole.
pub fn image_embeddings(session: &Session, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Result<Vec<f32>, String>)>, String> {
    let mut results = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(fieldclip::session::IMAGE_BATCH) {
        let read: Vec<Result<Vec<u8>, String>> = chunk.iter().map(|p| read_file_as(p, FileKind::Image)).collect();
        let bytes: Vec<Vec<u8>> = read.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
        let embedded: Vec<ImageResult> = pollster::block_on(session.embed_images(&bytes, &mut |_, _| {})).map_err(err)?;
        let mut embedded = embedded.into_iter();
        for (path, r) in chunk.iter().zip(read) {
            let result = match r {
                Err(e) => Err(e),
                Ok(_) => embedded.next().map(|e| e.map_err(err)).unwrap_or_else(|| Err("not embedded".into())),
            };
            results.push((path.clone(), result));
        }
        if paths.len() > chunk.len() {
            eprintln!("[{}/{}] images embedded", results.len(), paths.len());
        }
    }
    Ok(results)
}

/// Normalised text embeddings, `[texts, dim]`.
pub fn text_embeddings(session: &Session, texts: &[String]) -> Result<Vec<f32>, String> {
    pollster::block_on(session.embed_texts(texts)).map_err(err)
}
