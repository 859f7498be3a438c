//! PyTorch zip checkpoints (`torch.save`, e.g. BioCLIP's `open_clip_pytorch_model.bin`) read
//! from their bytes alone, a few pieces at a time: what the page needs, which has a `File` to
//! slice and no path on disk (natively `pytorch.rs` reads them with burn's reader).
//!
//! A `torch.save` file is a zip archive (entries stored, not compressed) holding
//! `<name>/data.pkl`, a pickle of the state dict whose tensors point at storages by key, and
//! one entry `<name>/data/<key>` per storage with its raw little-endian bytes. `TorchZip` asks
//! for the pieces it needs in turn (the archive's end, its central directory, the entries'
//! local headers, then `data.pkl`), interprets the pickle with a small restricted unpickler
//! (it runs nothing: it knows the handful of opcodes and globals a state dict is written with,
//! and any other object is only a name), and ends with the safetensors file those tensors make:
//! a header, and where in the checkpoint each tensor's bytes lie. The page reads those ranges
//! in order behind the header into the same streamed reader as any safetensors file, so the
//! file is never whole in memory and every check after this one is shared.
//!
//! The header is the one `safetensors::serialize` writes for the tensors `pytorch.rs` reads
//! (float32/16 and bfloat16 tensors, under `state_dict`/`model` when nested there, `module.`
//! dropped), so a checkpoint gets the same bytes, and the same model id, on the page and in
//! the CLI. Refused with a sentence: compressed or encrypted entries, big-endian files,
//! tensors that are strided views (not contiguous), storage types and pickle opcodes a state
//! dict does not use, and anything that points outside the file.
//!
//! Standard library only: it is compiled into the WebAssembly build and tested natively.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::rc::Rc;

/// Why a checkpoint cannot be read: a clause that `WeightsError::PyTorchCheckpoint` turns into
/// a sentence ("This PyTorch checkpoint cannot be read: {clause}.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchZipError(pub String);

impl fmt::Display for TorchZipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TorchZipError {}

type Result<T> = std::result::Result<T, TorchZipError>;

fn fail<T>(why: impl Into<String>) -> Result<T> {
    Err(TorchZipError(why.into()))
}

/// The end-of-central-directory record (without its comment).
const EOCD_LEN: u64 = 22;
/// The zip64 end-of-central-directory locator, just before the record above.
const ZIP64_LOCATOR_LEN: u64 = 20;
/// The zip64 end-of-central-directory record (without its extensible data).
const ZIP64_EOCD_LEN: u64 = 56;
/// A local file header before its name and extra field.
const LOCAL_HEADER_LEN: u64 = 30;
/// Most bytes of a central directory read (a checkpoint has one entry per storage: a few
/// thousand entries, a few hundred KB).
const MAX_DIRECTORY: u64 = 64 << 20;
/// Most bytes of `data.pkl` read: it holds names, shapes and storage keys, not tensor data.
const MAX_PICKLE: u64 = 64 << 20;
/// Deepest nesting of containers in the pickle (a state dict nests 1 to 3 deep).
const MAX_DEPTH: u32 = 100;
/// Most container items copied (a container memoised, then changed) before the pickle is
/// refused as built to exhaust memory.
const MAX_COPIED: usize = 10_000_000;

/// The element types a storage can hold (`torch.<Name>Storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DType {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage(name: &str) -> Option<DType> {
        Some(match name {
            "DoubleStorage" => DType::F64,
            "FloatStorage" => DType::F32,
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::BF16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The safetensors name of a weight dtype, and its rank in `safetensors::serialize`'s
    /// order (descending `safetensors::Dtype`: F32, then BF16, then F16); `None` for the
    /// types that are not weights (skipped, as `pytorch.rs` skips them).
    fn weight(self) -> Option<(&'static str, u8)> {
        match self {
            DType::F32 => Some(("F32", 0)),
            DType::BF16 => Some(("BF16", 1)),
            DType::F16 => Some(("F16", 2)),
            _ => None,
        }
    }
}

/// One tensor of the safetensors file a checkpoint makes: where its bytes lie in the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    pub name: String,
    /// `F32`, `F16` or `BF16`.
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    /// Its bytes: `len` bytes from `start` in the checkpoint.
    pub start: u64,
    pub len: u64,
}

/// A zip entry as the central directory describes it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    flags: u16,
    method: u16,
    compressed: u64,
    size: u64,
    local_header: u64,
    /// Where its bytes start (after the local header's name and extra field), once read.
    data_start: Option<u64>,
}

enum Step {
    /// The archive's last bytes (`tail_start..file_len`): its end-of-central-directory record.
    Tail { tail_start: u64 },
    /// The zip64 end-of-central-directory record.
    Zip64 { before: u64 },
    Directory,
    /// The local headers of `reading` (indices into `entries`).
    LocalHeaders { reading: Vec<usize> },
    /// `data.pkl`, then `byteorder` when there is one.
    Contents,
    Done,
    /// A piece showed the file cannot be read: nothing more is asked for.
    Failed,
}

/// A PyTorch zip checkpoint being read piece by piece: ask `wanted()` for the byte ranges it
/// needs next, hand them to `give` (concatenated, in that order), until `wanted()` is empty;
/// then `header()` and `ranges()` make the safetensors file of its weights.
pub struct TorchZip {
    file_len: u64,
    step: Step,
    wanted: Vec<(u64, u64)>,
    entries: Vec<Entry>,
    /// The archive's top folder with its slash (`archive/`), and its `data.pkl`, `byteorder`.
    prefix: String,
    pickle: usize,
    byteorder: Option<usize>,
    /// Storage key → entry.
    storages: HashMap<String, usize>,
    header: Vec<u8>,
    ranges: Vec<(u64, u64)>,
    tensors: Vec<PlannedTensor>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

const CUT_OFF: &str = "the end of its zip archive is missing, so the file is cut off (download it again) or is not a PyTorch checkpoint";

impl TorchZip {
    /// A checkpoint of `file_len` bytes.
    pub fn new(file_len: u64) -> Result<TorchZip> {
        if file_len < EOCD_LEN {
            return fail(CUT_OFF);
        }
        let tail = file_len.min(EOCD_LEN + u16::MAX as u64 + ZIP64_LOCATOR_LEN);
        let tail_start = file_len - tail;
        Ok(TorchZip {
            file_len,
            step: Step::Tail { tail_start },
            wanted: vec![(tail_start, tail)],
            entries: Vec::new(),
            prefix: String::new(),
            pickle: 0,
            byteorder: None,
            storages: HashMap::new(),
            header: Vec::new(),
            ranges: Vec::new(),
            tensors: Vec::new(),
        })
    }

    /// The byte ranges (start, length) to read next and hand to `give` concatenated in this
    /// order; empty once the checkpoint is read.
    pub fn wanted(&self) -> &[(u64, u64)] {
        &self.wanted
    }

    pub fn is_done(&self) -> bool {
        matches!(self.step, Step::Done)
    }

    /// The safetensors header (its 8-byte length, then the JSON), once done (else empty).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Where the tensors' bytes lie in the checkpoint, (start, length), in the order the
    /// header's `data_offsets` put them (next to each other in the file: one range).
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// The tensors the header describes, in its order.
    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// The bytes `wanted()` asked for, concatenated.
    pub fn give(&mut self, bytes: &[u8]) -> Result<()> {
        let expected: u64 = self.wanted.iter().map(|(_, len)| len).sum();
        if self.wanted.is_empty() {
            return fail("nothing more was asked for");
        }
        if bytes.len() as u64 != expected {
            return fail(format!(
                "{} bytes were read where {expected} were asked for (the file changed while it was read)",
                bytes.len()
            ));
        }
        let result = match std::mem::replace(&mut self.step, Step::Failed) {
            Step::Tail { tail_start } => self.read_tail(tail_start, bytes),
            Step::Zip64 { before } => self.read_zip64(bytes, before, None),
            Step::Directory => self.read_directory(bytes),
            Step::LocalHeaders { reading } => self.read_local_headers(&reading, bytes),
            Step::Contents => self.read_contents(bytes),
            Step::Done | Step::Failed => fail("nothing more was asked for"),
        };
        if result.is_err() {
            self.step = Step::Failed;
            self.wanted.clear();
            self.header.clear();
            self.ranges.clear();
            self.tensors.clear();
        }
        result
    }

    fn read_tail(&mut self, tail_start: u64, tail: &[u8]) -> Result<()> {
        // The record is the last one whose comment runs exactly to the end of the file.
        let eocd = (0..=tail.len() - EOCD_LEN as usize)
            .rev()
            .find(|&i| u32_at(tail, i) == 0x0605_4b50 && i + EOCD_LEN as usize + u16_at(tail, i + 20) as usize == tail.len());
        let Some(i) = eocd else { return fail(CUT_OFF) };
        let (disk, directory_disk) = (u16_at(tail, i + 4), u16_at(tail, i + 6));
        let entries = u16_at(tail, i + 10) as u64;
        let (size, offset) = (u32_at(tail, i + 12) as u64, u32_at(tail, i + 16) as u64);
        let at = tail_start + i as u64;
        let locator = i.checked_sub(ZIP64_LOCATOR_LEN as usize).filter(|&l| u32_at(tail, l) == 0x0706_4b50);
        if let Some(l) = locator {
            let record = u64_at(tail, l + 8);
            let before = tail_start + l as u64;
            if record.checked_add(ZIP64_EOCD_LEN).is_none_or(|end| end > before) {
                return fail("its zip64 end record lies outside the file");
            }
            if record >= tail_start {
                let r = (record - tail_start) as usize;
                return self.read_zip64(&tail[r..r + ZIP64_EOCD_LEN as usize], before, Some((tail_start, tail)));
            }
            self.wanted = vec![(record, ZIP64_EOCD_LEN)];
            self.step = Step::Zip64 { before };
            return Ok(());
        }
        if disk != 0 || directory_disk != 0 {
            return fail("it is a zip archive split over several files");
        }
        if entries == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
            return fail("its zip archive is too large for its end record and has no zip64 record");
        }
        self.directory(offset, size, at, Some((tail_start, tail)))
    }

    fn read_zip64(&mut self, record: &[u8], before: u64, tail: Option<(u64, &[u8])>) -> Result<()> {
        if u32_at(record, 0) != 0x0606_4b50 {
            return fail("its zip64 end record is damaged");
        }
        if u32_at(record, 16) != 0 || u32_at(record, 20) != 0 {
            return fail("it is a zip archive split over several files");
        }
        let (size, offset) = (u64_at(record, 40), u64_at(record, 48));
        self.directory(offset, size, before, tail)
    }

    /// The central directory at `offset` (`size` bytes), which must end by `end`; read from
    /// `tail` (its start in the file, its bytes) when it lies there.
    fn directory(&mut self, offset: u64, size: u64, end: u64, tail: Option<(u64, &[u8])>) -> Result<()> {
        if offset.checked_add(size).is_none_or(|e| e > end) {
            return fail("its zip directory lies outside the file, which is cut off or damaged");
        }
        if size > MAX_DIRECTORY {
            return fail(format!("its zip directory takes {size} bytes, more than a checkpoint's"));
        }
        if let Some((tail_start, tail)) = tail.filter(|(start, _)| offset >= *start) {
            let from = (offset - tail_start) as usize;
            return self.read_directory(&tail[from..from + size as usize]);
        }
        self.wanted = vec![(offset, size)];
        self.step = Step::Directory;
        Ok(())
    }

    fn read_directory(&mut self, directory: &[u8]) -> Result<()> {
        let damaged = || fail("its zip directory is damaged");
        let mut at = 0;
        while at + 46 <= directory.len() && u32_at(directory, at) == 0x0201_4b50 {
            let d = &directory[at..];
            let (name_len, extra_len, comment_len) = (u16_at(d, 28) as usize, u16_at(d, 30) as usize, u16_at(d, 32) as usize);
            let end = 46 + name_len + extra_len + comment_len;
            if d.len() < end {
                return damaged();
            }
            let name = String::from_utf8_lossy(&d[46..46 + name_len]).into_owned();
            let mut entry = Entry {
                name,
                flags: u16_at(d, 8),
                method: u16_at(d, 10),
                compressed: u32_at(d, 20) as u64,
                size: u32_at(d, 24) as u64,
                local_header: u32_at(d, 42) as u64,
                data_start: None,
            };
            // Values too large for 32 bits are in the zip64 extra field (0x0001), in this order.
            let mut extra = &d[46 + name_len..46 + name_len + extra_len];
            while extra.len() >= 4 {
                let (id, len) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
                let Some(field) = extra.get(4..4 + len) else { return damaged() };
                if id == 0x0001 {
                    let mut values = field.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()));
                    for value in [&mut entry.size, &mut entry.compressed, &mut entry.local_header] {
                        if *value == 0xffff_ffff {
                            let Some(v) = values.next() else { return damaged() };
                            *value = v;
                        }
                    }
                }
                extra = &extra[4 + len..];
            }
            self.entries.push(entry);
            at += end;
        }
        let top_folder = |name: &str| name.find('/').map(|slash| name[..slash].to_string());
        let pickle = self.entries.iter().position(|e| {
            e.name.strip_suffix("data.pkl").and_then(|p| p.strip_suffix('/')).is_some_and(|folder| !folder.contains('/'))
        });
        let Some(pickle) = pickle else {
            if self.entries.iter().any(|e| e.name.ends_with("/constants.pkl") || e.name.contains("/code/")) {
                return fail("it is a TorchScript archive (torch.jit.save), not a torch.save checkpoint of weights");
            }
            if self.entries.is_empty() {
                return damaged();
            }
            return fail("it is a zip archive without the `data.pkl` of a PyTorch checkpoint");
        };
        self.pickle = pickle;
        self.prefix = format!("{}/", top_folder(&self.entries[pickle].name).unwrap_or_default());
        let data = format!("{}data/", self.prefix);
        for (i, e) in self.entries.iter().enumerate() {
            if let Some(key) = e.name.strip_prefix(&data) {
                self.storages.insert(key.to_string(), i);
            } else if e.name == format!("{}byteorder", self.prefix) {
                self.byteorder = Some(i);
            }
        }
        let mut reading = vec![pickle];
        reading.extend(self.byteorder);
        let mut storages: Vec<usize> = self.storages.values().copied().collect();
        storages.sort_unstable_by_key(|&i| self.entries[i].local_header);
        reading.extend(storages);
        for &i in &reading {
            if self.entries[i].local_header.checked_add(LOCAL_HEADER_LEN).is_none_or(|end| end > self.file_len) {
                return fail(format!("its zip entry `{}` lies outside the file, which is cut off or damaged", self.entries[i].name));
            }
        }
        self.wanted = reading.iter().map(|&i| (self.entries[i].local_header, LOCAL_HEADER_LEN)).collect();
        self.step = Step::LocalHeaders { reading };
        Ok(())
    }

    fn read_local_headers(&mut self, reading: &[usize], headers: &[u8]) -> Result<()> {
        for (&i, header) in reading.iter().zip(headers.chunks_exact(LOCAL_HEADER_LEN as usize)) {
            let entry = &mut self.entries[i];
            if u32_at(header, 0) != 0x0403_4b50 || u16_at(header, 26) as usize != entry.name.len() {
                return fail(format!("its zip entry `{}` is damaged", entry.name));
            }
            let start = entry.local_header + LOCAL_HEADER_LEN + u16_at(header, 26) as u64 + u16_at(header, 28) as u64;
            if start.checked_add(entry.compressed).is_none_or(|end| end > self.file_len) {
                return fail(format!("its zip entry `{}` runs past the end of the file, which is cut off (download it again)", entry.name));
            }
            entry.data_start = Some(start);
        }
        let mut wanted = Vec::new();
        for i in std::iter::once(self.pickle).chain(self.byteorder) {
            let entry = &self.entries[i];
            stored(entry)?;
            if i == self.pickle && entry.size > MAX_PICKLE {
                return fail(format!("its `data.pkl` takes {} bytes, more than a checkpoint's list of tensors", entry.size));
            }
            wanted.push((entry.data_start.unwrap(), entry.size));
        }
        self.wanted = wanted;
        self.step = Step::Contents;
        Ok(())
    }

    fn read_contents(&mut self, bytes: &[u8]) -> Result<()> {
        let (pickle, byteorder) = bytes.split_at(self.entries[self.pickle].size as usize);
        if self.byteorder.is_some() {
            match byteorder.trim_ascii() {
                b"little" => {}
                b"big" => return fail("it was saved on a big-endian machine, whose byte order fieldclip does not read"),
                other => return fail(format!("its byte order is `{}`, neither little nor big", String::from_utf8_lossy(other))),
            }
        }
        let root = Unpickler::new(pickle).run()?;
        let found = tensors_of(root)?;
        self.plan(found)?;
        self.wanted = Vec::new();
        self.step = Step::Done;
        Ok(())
    }

    /// The weights among `found` (name → tensor), as `pytorch.rs` takes them: under
    /// `state_dict`/`model` when nested there, `module.` dropped, float types only.
    fn plan(&mut self, found: Vec<(String, Rc<Tensor>)>) -> Result<()> {
        let nested = nested_prefix(found.iter().map(|(name, _)| name.as_str()));
        let mut planned: Vec<(u8, PlannedTensor)> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for (full, tensor) in found {
            let name = match nested {
                Some(prefix) => match full.strip_prefix(prefix) {
                    Some(inner) => inner,
                    None => continue,
                },
                None => full.as_str(),
            };
            let name = name.strip_prefix(STRIPPED_PREFIX).unwrap_or(name).to_string();
            let Some((dtype, rank)) = tensor.storage.dtype.weight() else { continue };
            if !names.insert(name.clone()) {
                return fail(format!("two of its tensors are both named `{name}`"));
            }
            if !tensor.contiguous {
                return fail(format!(
                    "its tensor `{name}` is a strided view (shape {:?}, stride {:?}), not stored in order; save it with `.contiguous()`",
                    tensor.shape, tensor.stride
                ));
            }
            let key = &tensor.storage.key;
            let Some(&entry) = self.storages.get(key) else {
                return fail(format!("its tensor `{name}` has no data in the archive (`{}data/{key}` is missing)", self.prefix));
            };
            let entry = &self.entries[entry];
            stored(entry)?;
            let element = tensor.storage.dtype.size();
            let needed = tensor.storage.numel.checked_mul(element);
            if needed.is_none_or(|n| n > entry.size) {
                return fail(format!(
                    "its storage `{key}` should hold {} elements but `{}` has {} bytes",
                    tensor.storage.numel, entry.name, entry.size
                ));
            }
            // Within the storage (checked when the tensor was built), so within the entry.
            let start = entry.data_start.unwrap() + tensor.offset * element;
            let len = tensor.numel * element;
            planned.push((rank, PlannedTensor { name, dtype, shape: tensor.shape.clone(), start, len }));
        }
        if planned.is_empty() {
            return fail("it holds no float32, float16 or bfloat16 tensors");
        }
        // `safetensors::serialize`'s order: by dtype (F32, BF16, F16), then by name.
        planned.sort_by(|(ra, a), (rb, b)| ra.cmp(rb).then_with(|| a.name.cmp(&b.name)));
        let mut json = String::from("{");
        let mut offset = 0u64;
        for (k, (_, t)) in planned.iter().enumerate() {
            if k > 0 {
                json.push(',');
            }
            json_string(&mut json, &t.name);
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            json.push_str(&format!(
                ":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
                t.dtype,
                shape.join(","),
                offset + t.len
            ));
            offset += t.len;
            match self.ranges.last_mut() {
                Some((start, len)) if *start + *len == t.start => *len += t.len,
                _ if t.len == 0 => {}
                _ => self.ranges.push((t.start, t.len)),
            }
        }
        json.push('}');
        while json.len() % 8 != 0 {
            json.push(' ');
        }
        self.header = (json.len() as u64).to_le_bytes().to_vec();
        self.header.extend_from_slice(json.as_bytes());
        self.tensors = planned.into_iter().map(|(_, t)| t).collect();
        Ok(())
    }
}

/// An entry whose bytes can be read as they are: stored (torch.save never compresses).
fn stored(entry: &Entry) -> Result<()> {
    if entry.flags & 1 != 0 {
        return fail(format!("its zip entry `{}` is encrypted", entry.name));
    }
    if entry.method != 0 || entry.compressed != entry.size {
        return fail(format!(
            "its zip entry `{}` is compressed (torch.save stores entries uncompressed: was the file repacked?)",
            entry.name
        ));
    }
    Ok(())
}

/// The prefix training code leaves on keys (`module.` from DataParallel), dropped.
const STRIPPED_PREFIX: &str = "module.";

/// Where a checkpoint keeps its weights among its tensor names (nested dicts joined with `.`):
/// under `state_dict.` or `model.` (a training checkpoint: `{"state_dict": …, "epoch": …}`)
/// when no name is a CLIP model's own (`visual.*`, `vision_model.*`, with or without
/// `module.`) and some name starts there; `None`: the names as they are. `pytorch.rs` follows
/// the same rule.
pub fn nested_prefix<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Option<&'static str> {
    let own = ["visual.", "vision_model.", "module.visual.", "module.vision_model."];
    if names.clone().any(|n| own.iter().any(|p| n.starts_with(p))) {
        return None;
    }
    ["state_dict.", "model."].into_iter().find(|p| names.clone().any(|n| n.starts_with(p)))
}

/// `s` as a JSON string, escaped as serde_json escapes it (so the header is byte for byte
/// `safetensors::serialize`'s).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- The restricted unpickler ----

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Debug)]
struct Storage {
    key: String,
    dtype: DType,
    numel: u64,
}

/// A tensor from `torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, …)`.
#[derive(Debug)]
struct Tensor {
    storage: Rc<Storage>,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
    numel: u64,
    /// Row-major with no gaps (strides of size-1 dimensions do not count, as in PyTorch).
    contiguous: bool,
}

/// The globals a state dict's pickle names; any other is only its name (`Other`).
#[derive(Debug, Clone)]
enum Global {
    OrderedDict,
    RebuildTensor,
    /// `_rebuild_parameter(tensor, requires_grad, hooks[, state])`: the tensor.
    RebuildParameter,
    Storage(DType),
    Other(Rc<str>),
}

/// A container's items, how deep it nests containers and whether it holds tensors anywhere.
#[derive(Debug, Clone, Default)]
struct Seq {
    items: Vec<Value>,
    depth: u32,
    tensors: bool,
}

#[derive(Debug, Clone, Default)]
struct Map {
    items: Vec<(Value, Value)>,
    depth: u32,
    tensors: bool,
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    /// An int too wide for 64 bits.
    BigInt,
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    Dict(Rc<Map>),
    Global(Global),
    Storage(Rc<Storage>),
    Tensor(Rc<Tensor>),
    /// An object the unpickler does not build: the name of its class or function.
    Object(Rc<str>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(m) => m.depth,
            _ => 0,
        }
    }

    fn has_tensors(&self) -> bool {
        match self {
            Value::Storage(_) | Value::Tensor(_) => true,
            Value::Tuple(s) | Value::List(s) => s.tensors,
            Value::Dict(m) => m.tensors,
            _ => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) | Value::BigInt => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a str",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Object(_) => "an object",
        }
    }
}

impl Seq {
    fn push(&mut self, item: Value) -> Result<()> {
        self.depth = self.depth.max(item.depth() + 1);
        if self.depth > MAX_DEPTH {
            return fail(format!("its data.pkl nests containers more than {MAX_DEPTH} deep"));
        }
        self.tensors |= item.has_tensors();
        self.items.push(item);
        Ok(())
    }

    fn of(items: Vec<Value>) -> Result<Seq> {
        let mut seq = Seq { items: Vec::with_capacity(items.len()), ..Seq::default() };
        for item in items {
            seq.push(item)?;
        }
        Ok(seq)
    }
}

impl Map {
    fn insert(&mut self, key: Value, value: Value) -> Result<()> {
        self.depth = self.depth.max(key.depth().max(value.depth()) + 1);
        if self.depth > MAX_DEPTH {
            return fail(format!("its data.pkl nests containers more than {MAX_DEPTH} deep"));
        }
        self.tensors |= key.has_tensors() || value.has_tensors();
        self.items.push((key, value));
        Ok(())
    }
}

fn tuple(items: Vec<Value>) -> Result<Value> {
    Ok(Value::Tuple(Rc::new(Seq::of(items)?)))
}

/// Interprets a pickle without running anything (see the module's documentation).
struct Unpickler<'a> {
    data: &'a [u8],
    at: usize,
    /// Each value with the memo slot it was last stored in or fetched from: a container
    /// changed on the stack is stored there again, as Python's memo shares the object.
    stack: Vec<(Value, Option<u32>)>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    storages: HashMap<String, Rc<Storage>>,
    copied: usize,
}

fn truncated<T>() -> Result<T> {
    fail("its data.pkl is cut off")
}

impl<'a> Unpickler<'a> {
    fn new(data: &'a [u8]) -> Self {
        Unpickler { data, at: 0, stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), storages: HashMap::new(), copied: 0 }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let end = usize::try_from(n).ok().and_then(|n| self.at.checked_add(n)).filter(|&end| end <= data.len());
        let Some(end) = end else { return truncated() };
        let bytes = &data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<&'a str> {
        let data: &'a [u8] = self.data;
        let Some(len) = data[self.at..].iter().position(|&b| b == b'\n') else { return truncated() };
        let line = std::str::from_utf8(&data[self.at..self.at + len]).or_else(|_| fail("its data.pkl names a global that is not text"))?;
        self.at += len + 1;
        Ok(line)
    }

    fn text(&mut self, len: u64) -> Result<Value> {
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => fail("its data.pkl holds a string that is not UTF-8"),
        }
    }

    fn push(&mut self, value: Value) {
        self.stack.push((value, None));
    }

    fn pop(&mut self) -> Result<Value> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return fail("its data.pkl is malformed (a value is taken from below a mark)");
        }
        match self.stack.pop() {
            Some((value, _)) => Ok(value),
            None => fail("its data.pkl is malformed (it takes a value from an empty stack)"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(mark) = self.marks.pop() else { return fail("its data.pkl is malformed (no mark where one is needed)") };
        Ok(self.stack.split_off(mark).into_iter().map(|(v, _)| v).collect())
    }

    /// The container on top of the stack, to change in place (`SETITEMS`, `APPENDS`): the
    /// memo's copy is let go first, so that it is not copied, and stored again after.
    fn change_top(&mut self, change: impl FnOnce(&mut Value, &mut usize) -> Result<()>) -> Result<()> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return fail("its data.pkl is malformed (a container is taken from below a mark)");
        }
        let Some((top, slot)) = self.stack.last_mut() else {
            return fail("its data.pkl is malformed (it changes a container on an empty stack)");
        };
        let slot = *slot;
        if let Some(slot) = slot {
            self.memo.remove(&slot);
        }
        change(top, &mut self.copied)?;
        if self.copied > MAX_COPIED {
            return fail("its data.pkl copies containers over and over, as no checkpoint does");
        }
        if let Some(slot) = slot {
            self.memo.insert(slot, top.clone());
        }
        Ok(())
    }

    fn put(&mut self, slot: u32) -> Result<()> {
        let Some((top, memo_slot)) = self.stack.last_mut() else {
            return fail("its data.pkl is malformed (it memoises from an empty stack)");
        };
        *memo_slot = Some(slot);
        self.memo.insert(slot, top.clone());
        Ok(())
    }

    fn get(&mut self, slot: u32) -> Result<()> {
        let Some(value) = self.memo.get(&slot).cloned() else {
            return fail("its data.pkl is malformed (it refers to a value it never stored)");
        };
        self.stack.push((value, Some(slot)));
        Ok(())
    }

    fn run(mut self) -> Result<Value> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    // PROTO
                    let protocol = self.byte()?;
                    if !(2..=5).contains(&protocol) {
                        return fail(format!("its data.pkl is pickle protocol {protocol}, which torch.save does not write"));
                    }
                }
                0x95 => {
                    // FRAME: a length, only a hint for buffering.
                    self.u64()?;
                }
                b'(' => self.marks.push(self.stack.len()),
                b'.' => {
                    // STOP
                    return self.pop();
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    // DUP
                    let Some(top) = self.stack.last().cloned() else { return fail("its data.pkl is malformed (DUP on an empty stack)") };
                    self.stack.push(top);
                }
                b'N' => self.push(Value::None),
                0x88 | 0x89 => self.push(Value::Bool),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    // LONG1, LONG4: little-endian two's complement of n bytes.
                    let n = if op == 0x8a { self.byte()? as u64 } else { self.u32()? as u64 };
                    let bytes = self.take(n)?;
                    self.push(long(bytes));
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Value::Float);
                }
                b'X' => {
                    let n = self.u32()? as u64;
                    let v = self.text(n)?;
                    self.push(v);
                }
                0x8c => {
                    let n = self.byte()? as u64;
                    let v = self.text(n)?;
                    self.push(v);
                }
                0x8d => {
                    let n = self.u64()?;
                    let v = self.text(n)?;
                    self.push(v);
                }
                b'T' | b'U' => {
                    // BINSTRING, SHORT_BINSTRING (Python 2 str): as text where it is.
                    let n = if op == b'T' { self.u32()? as u64 } else { self.byte()? as u64 };
                    let bytes = self.take(n)?;
                    self.push(Value::Str(String::from_utf8_lossy(bytes).into()));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8.
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.byte()? as u64,
                        _ => self.u64()?,
                    };
                    self.take(n)?;
                    self.push(Value::Bytes);
                }
                b'}' => self.push(Value::Dict(Rc::default())),
                b']' | 0x8f => self.push(Value::List(Rc::default())),
                b')' => self.push(Value::Tuple(Rc::default())),
                b't' | b'l' | 0x91 => {
                    // TUPLE, LIST, FROZENSET (a set is read as a list).
                    let items = self.pop_mark()?;
                    let seq = Rc::new(Seq::of(items)?);
                    self.push(if op == b't' { Value::Tuple(seq) } else { Value::List(seq) });
                }
                0x85..=0x87 => {
                    // TUPLE1..3
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = tuple(items)?;
                    self.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let mut map = Map::default();
                    set_items(&mut map, items)?;
                    self.push(Value::Dict(Rc::new(map)));
                }
                b'a' | b'e' | 0x90 => {
                    // APPEND, APPENDS, ADDITEMS
                    let items = if op == b'a' { vec![self.pop()?] } else { self.pop_mark()? };
                    self.change_top(|top, copied| match top {
                        Value::List(seq) => {
                            if Rc::strong_count(seq) > 1 {
                                *copied += seq.items.len();
                            }
                            let seq = Rc::make_mut(seq);
                            items.into_iter().try_for_each(|item| seq.push(item))
                        }
                        Value::Object(name) => unread_items(name, &items),
                        other => fail(format!("its data.pkl is malformed (it appends to {})", other.kind())),
                    })?;
                }
                b's' | b'u' => {
                    // SETITEM, SETITEMS
                    let items = if op == b's' {
                        let value = self.pop()?;
                        let key = self.pop()?;
                        vec![key, value]
                    } else {
                        self.pop_mark()?
                    };
                    self.change_top(|top, copied| match top {
                        Value::Dict(map) => {
                            if Rc::strong_count(map) > 1 {
                                *copied += map.items.len();
                            }
                            set_items(Rc::make_mut(map), items)
                        }
                        Value::Object(name) => unread_items(name, &items),
                        other => fail(format!("its data.pkl is malformed (it sets items of {})", other.kind())),
                    })?;
                }
                b'q' => {
                    let slot = self.byte()? as u32;
                    self.put(slot)?;
                }
                b'r' => {
                    let slot = self.u32()?;
                    self.put(slot)?;
                }
                0x94 => {
                    // MEMOIZE: the next free slot.
                    let slot = self.memo.len() as u32;
                    self.put(slot)?;
                }
                b'h' => {
                    let slot = self.byte()? as u32;
                    self.get(slot)?;
                }
                b'j' => {
                    let slot = self.u32()?;
                    self.get(slot)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(global(module, name)));
                }
                0x93 => {
                    // STACK_GLOBAL
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return fail("its data.pkl is malformed (a global named by something other than text)");
                    };
                    self.push(Value::Global(global(&module, &name)));
                }
                b'Q' => {
                    // BINPERSID: a storage.
                    let pid = self.pop()?;
                    let storage = self.storage(pid)?;
                    self.push(Value::Storage(storage));
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = reduce(callable, args)?;
                    self.push(v);
                }
                0x81 | 0x92 => {
                    // NEWOBJ (cls, args), NEWOBJ_EX (cls, args, kwargs)
                    let kwargs = if op == 0x92 { Some(self.pop()?) } else { None };
                    let args = self.pop()?;
                    let class = self.pop()?;
                    let v = new_object(class, args, kwargs)?;
                    self.push(v);
                }
                b'b' => {
                    // BUILD: an object's state, set on it. A dict (OrderedDict's `_metadata`)
                    // or an object keeps what it is; state with tensors in it would be lost.
                    let state = self.pop()?;
                    let Some((top, _)) = self.stack.last() else { return fail("its data.pkl is malformed (BUILD on an empty stack)") };
                    if state.has_tensors() {
                        return fail(match top {
                            Value::Object(name) => tensors_in_object(name),
                            other => format!("its data.pkl sets tensors as the state of {}, which fieldclip does not read", other.kind()),
                        });
                    }
                }
                _ => {
                    let name = opcode_name(op).map(|n| format!("{n} ")).unwrap_or_default();
                    return fail(format!("its data.pkl uses the pickle opcode {name}(0x{op:02x}), which a torch.save state dict does not"));
                }
            }
        }
    }

    /// A storage from its persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
    fn storage(&mut self, pid: Value) -> Result<Rc<Storage>> {
        let malformed = || fail("its data.pkl names a storage in a form torch.save does not write");
        let Value::Tuple(fields) = pid else { return malformed() };
        let [tag, class, key, _location, numel, rest @ ..] = fields.items.as_slice() else { return malformed() };
        if !matches!(tag, Value::Str(t) if &**t == "storage") || !rest.iter().all(|v| matches!(v, Value::None)) {
            return malformed();
        }
        let dtype = match class {
            Value::Global(Global::Storage(dtype)) => *dtype,
            Value::Global(Global::Other(name)) => {
                return fail(format!("its tensors use storages of type `{name}`, which fieldclip does not read"))
            }
            _ => return malformed(),
        };
        let key = match key {
            Value::Str(s) => s.to_string(),
            Value::Int(i) => i.to_string(),
            _ => return malformed(),
        };
        let Value::Int(numel) = numel else { return malformed() };
        let Ok(numel) = u64::try_from(*numel) else { return malformed() };
        if let Some(known) = self.storages.get(&key) {
            if known.dtype != dtype || known.numel != numel {
                return fail(format!("its data.pkl describes storage `{key}` in two different ways"));
            }
            return Ok(known.clone());
        }
        let storage = Rc::new(Storage { key: key.clone(), dtype, numel });
        self.storages.insert(key, storage.clone());
        Ok(storage)
    }
}

fn long(bytes: &[u8]) -> Value {
    if bytes.len() > 8 {
        return Value::BigInt;
    }
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let mut full = [if negative { 0xff } else { 0 }; 8];
    full[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(full))
}

fn global(module: &str, name: &str) -> Global {
    match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => Global::RebuildParameter,
        ("torch", storage) if DType::from_storage(storage).is_some() => Global::Storage(DType::from_storage(storage).unwrap()),
        _ => Global::Other(format!("{module}.{name}").into()),
    }
}

fn tensors_in_object(name: &str) -> String {
    format!(
        "it keeps tensors inside a `{name}` object, which fieldclip does not read (a whole model saved with torch.save(model)? \
         save its state_dict() instead)"
    )
}

/// Items added to an object the unpickler does not build: let go, unless they hold tensors.
fn unread_items(name: &str, items: &[Value]) -> Result<()> {
    if items.iter().any(Value::has_tensors) {
        return fail(tensors_in_object(name));
    }
    Ok(())
}

fn set_items(map: &mut Map, items: Vec<Value>) -> Result<()> {
    if !items.len().is_multiple_of(2) {
        return fail("its data.pkl is malformed (a dict's keys and values do not pair up)");
    }
    let mut items = items.into_iter();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        map.insert(key, value)?;
    }
    Ok(())
}

fn name_of(callable: &Value) -> Rc<str> {
    match callable {
        Value::Global(Global::Other(name)) | Value::Object(name) => name.clone(),
        Value::Global(Global::Storage(_)) => "torch storage".into(),
        Value::Global(Global::OrderedDict) => "collections.OrderedDict".into(),
        Value::Global(Global::RebuildTensor) => "torch._utils._rebuild_tensor_v2".into(),
        Value::Global(Global::RebuildParameter) => "torch._utils._rebuild_parameter".into(),
        other => other.kind().into(),
    }
}

/// `REDUCE`: `callable(*args)`, for the callables a state dict uses; any other class or
/// function gives an object known only by its name (never called).
fn reduce(callable: Value, args: Value) -> Result<Value> {
    let Value::Tuple(args) = args else { return fail("its data.pkl is malformed (a call without an argument tuple)") };
    match callable {
        Value::Global(Global::OrderedDict) => match args.items.as_slice() {
            [] => Ok(Value::Dict(Rc::default())),
            [Value::List(pairs) | Value::Tuple(pairs)] => {
                let mut map = Map::default();
                for pair in &pairs.items {
                    match pair {
                        Value::Tuple(kv) | Value::List(kv) if kv.items.len() == 2 => map.insert(kv.items[0].clone(), kv.items[1].clone())?,
                        _ => return fail("its data.pkl is malformed (an OrderedDict item that is not a pair)"),
                    }
                }
                Ok(Value::Dict(Rc::new(map)))
            }
            _ => fail("its data.pkl is malformed (an OrderedDict made from something other than pairs)"),
        },
        Value::Global(Global::RebuildTensor) => rebuild_tensor(&args.items),
        Value::Global(Global::RebuildParameter) => match args.items.as_slice() {
            [Value::Tensor(t), rest @ ..] if !rest.iter().any(Value::has_tensors) => Ok(Value::Tensor(t.clone())),
            _ => fail("its data.pkl rebuilds a parameter from something other than one tensor"),
        },
        Value::Global(_) | Value::Object(_) => {
            let name = name_of(&callable);
            if args.tensors {
                return fail(tensors_in_object(&name));
            }
            Ok(Value::Object(name))
        }
        other => fail(format!("its data.pkl is malformed (it calls {})", other.kind())),
    }
}

fn new_object(class: Value, args: Value, kwargs: Option<Value>) -> Result<Value> {
    match class {
        Value::Global(Global::OrderedDict) => Ok(Value::Dict(Rc::default())),
        Value::Global(Global::Other(_)) | Value::Object(_) => {
            let name = name_of(&class);
            if args.has_tensors() || kwargs.is_some_and(|k| k.has_tensors()) {
                return fail(tensors_in_object(&name));
            }
            Ok(Value::Object(name))
        }
        other => fail(format!("its data.pkl is malformed (it makes an object of {})", other.kind())),
    }
}

fn dims(value: &Value, what: &str) -> Result<Vec<u64>> {
    let (Value::Tuple(items) | Value::List(items)) = value else {
        return fail(format!("its data.pkl gives a tensor's {what} as {}", value.kind()));
    };
    items
        .items
        .iter()
        .map(|v| match v {
            Value::Int(i) if *i >= 0 => Ok(*i as u64),
            _ => fail(format!("its data.pkl gives a tensor's {what} with a value that is not a size")),
        })
        .collect()
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])`.
fn rebuild_tensor(args: &[Value]) -> Result<Value> {
    let [Value::Storage(storage), offset, shape, stride, rest @ ..] = args else {
        return fail("its data.pkl rebuilds a tensor from arguments torch.save does not write");
    };
    if rest.len() < 2 || rest.iter().any(Value::has_tensors) {
        return fail("its data.pkl rebuilds a tensor from arguments torch.save does not write");
    }
    let Value::Int(offset) = offset else { return fail("its data.pkl gives a tensor's storage offset as something other than an int") };
    let Ok(offset) = u64::try_from(*offset) else { return fail("its data.pkl gives a tensor a negative storage offset") };
    let (shape, stride) = (dims(shape, "shape")?, dims(stride, "stride")?);
    if shape.len() != stride.len() {
        return fail(format!("its data.pkl gives a tensor the shape {shape:?} with the stride {stride:?}"));
    }
    let too_large = || fail(format!("its data.pkl gives a tensor a shape too large for any file ({shape:?})"));
    let Some(numel) = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)) else { return too_large() };
    if numel.checked_mul(storage.dtype.size()).is_none() {
        return too_large();
    }
    // One past the last element it reads (its offset when it is empty).
    let extent = if numel == 0 {
        Some(offset)
    } else {
        shape
            .iter()
            .zip(&stride)
            .try_fold(offset, |end, (&d, &s)| (d - 1).checked_mul(s).and_then(|step| end.checked_add(step)))
            .and_then(|last| last.checked_add(1))
    };
    if extent.is_none_or(|e| e > storage.numel) {
        return fail(format!(
            "its data.pkl places a tensor of shape {shape:?} at offset {offset} of storage `{}`, which holds only {} elements",
            storage.key, storage.numel
        ));
    }
    let mut expected = 1u64;
    let mut contiguous = true;
    for (&d, &s) in shape.iter().zip(&stride).rev() {
        if d > 1 && s != expected {
            contiguous = false;
        }
        expected = expected.saturating_mul(d);
    }
    Ok(Value::Tensor(Rc::new(Tensor { storage: storage.clone(), offset, shape, stride, numel, contiguous })))
}

/// Every tensor in the pickle's root dict, named by its path through nested dicts, lists and
/// tuples joined with `.` (as burn's reader names them), in the order the pickle gives them.
fn tensors_of(root: Value) -> Result<Vec<(String, Rc<Tensor>)>> {
    let Value::Dict(_) = root else {
        return fail(format!("its data.pkl holds {}, not a dict of tensors (a state dict)", root.kind()));
    };
    let mut found = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    walk(&root, &mut Vec::new(), &mut found, &mut seen)?;
    Ok(found)
}

fn walk(value: &Value, path: &mut Vec<String>, found: &mut Vec<(String, Rc<Tensor>)>, seen: &mut HashSet<String>) -> Result<()> {
    match value {
        Value::Dict(map) if map.tensors => {
            // A key set twice keeps its last value, as in Python.
            let mut last: HashMap<String, usize> = HashMap::new();
            let keys: Vec<Option<String>> = map
                .items
                .iter()
                .map(|(k, _)| match k {
                    Value::Str(s) => Some(s.to_string()),
                    Value::Int(i) => Some(i.to_string()),
                    _ => None,
                })
                .collect();
            for (i, key) in keys.iter().enumerate() {
                if let Some(key) = key {
                    last.insert(key.clone(), i);
                }
            }
            for (i, ((_, v), key)) in map.items.iter().zip(keys).enumerate() {
                let Some(key) = key else { continue };
                if last[&key] != i {
                    continue;
                }
                path.push(key);
                walk(v, path, found, seen)?;
                path.pop();
            }
        }
        Value::List(seq) | Value::Tuple(seq) if seq.tensors => {
            for (i, v) in seq.items.iter().enumerate() {
                path.push(i.to_string());
                walk(v, path, found, seen)?;
                path.pop();
            }
        }
        Value::Tensor(t) => {
            let name = path.join(".");
            if !seen.insert(name.clone()) {
                return fail(format!("two of its tensors are both named `{name}`"));
            }
            found.push((name, t.clone()));
        }
        _ => {}
    }
    Ok(())
}

fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'F' => "FLOAT",
        b'I' => "INT",
        b'L' => "LONG",
        b'P' => "PERSID",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'g' => "GET",
        b'i' => "INST",
        b'o' => "OBJ",
        b'p' => "PUT",
        0x82..=0x84 => "EXT",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

// Natively only: they read files and run python3 (as tests/cli.rs does), and compare with
// burn's reader, which the WebAssembly build has not.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::path::{Path, PathBuf};

    use safetensors::tensor::{Dtype, TensorView};
    use safetensors::SafeTensors;

    use super::*;

    fn data(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(p)
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fieldclip-torch-zip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Reads a checkpoint held in memory as the page reads a `File`: the ranges asked for,
    /// concatenated, step by step. Returns it read, and how many steps it took.
    fn read(file: &[u8]) -> Result<(TorchZip, usize)> {
        let mut zip = TorchZip::new(file.len() as u64)?;
        let mut steps = 0;
        while !zip.wanted().is_empty() {
            let mut piece = Vec::new();
            for &(start, len) in zip.wanted() {
                piece.extend_from_slice(&file[start as usize..(start + len) as usize]);
            }
            zip.give(&piece)?;
            steps += 1;
        }
        assert!(zip.is_done());
        Ok((zip, steps))
    }

    /// The safetensors file the page streams: the header, then each range's bytes in order.
    fn assembled(zip: &TorchZip, file: &[u8]) -> Vec<u8> {
        let mut out = zip.header().to_vec();
        for &(start, len) in zip.ranges() {
            out.extend_from_slice(&file[start as usize..(start + len) as usize]);
        }
        out
    }

    /// What the CLI makes of the file (`pytorch.rs`, burn's reader) before loading it.
    fn native(path: &Path) -> Vec<u8> {
        super::super::pytorch::safetensors_bytes(path).unwrap()
    }

    fn floats(bytes: &[u8]) -> Vec<f32> {
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    }

    fn error(file: &[u8]) -> String {
        match read(file) {
            Ok(_) => panic!("read, where an error was expected"),
            Err(e) => e.0,
        }
    }

    /// The tiny open_clip model written as BioCLIP's `open_clip_pytorch_model.bin` by
    /// scripts/make-torch-checkpoint.py: the same safetensors bytes as the CLI makes of it,
    /// and tensor by tensor the model's own safetensors file.
    #[test]
    fn a_checkpoint_made_from_the_tiny_model_reads_as_native_and_as_its_safetensors() {
        let bin = temp("open_clip_pytorch_model.bin");
        let made = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-torch-checkpoint.py"))
            .args([data("openclip_tiny/model.safetensors").as_os_str(), bin.as_os_str()])
            .status()
            .expect("python3 (scripts/setup.sh installs it)");
        assert!(made.success());
        let file = std::fs::read(&bin).unwrap();
        let native_bytes = native(&bin);
        let _ = std::fs::remove_dir_all(bin.parent().unwrap());
        let (zip, steps) = read(&file).unwrap();
        // The end of the archive (its directory in it), the local headers, data.pkl.
        assert_eq!(steps, 3);
        let bytes = assembled(&zip, &file);
        assert!(bytes == native_bytes, "the page's safetensors bytes are the CLI's, so the model id is too");

        let original = std::fs::read(data("openclip_tiny/model.safetensors")).unwrap();
        let (ours, theirs) = (SafeTensors::deserialize(&bytes).unwrap(), SafeTensors::deserialize(&original).unwrap());
        let mut names = ours.names();
        names.sort();
        let mut expected = theirs.names();
        expected.sort();
        assert_eq!(names, expected);
        for name in names {
            let (a, b) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
            assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{name}");
            assert!(a.data() == b.data(), "{name}: its bytes");
        }
        assert_eq!(zip.tensors().len(), expected.len());
        let total: u64 = zip.ranges().iter().map(|r| r.1).sum();
        assert_eq!(total as usize, bytes.len() - zip.header().len());
    }

    /// Files written by real torch (tests/data/torch/make.py): views at offsets into a shared
    /// storage, float16/bfloat16, a Parameter, an int buffer (skipped), an empty tensor, a
    /// name JSON escapes; a training checkpoint with the weights under `state_dict` and
    /// `module.`, an optimizer's tensors and an argparse.Namespace beside them.
    #[test]
    fn files_saved_by_torch_read_as_native() {
        let path = data("torch/state_dict.pt");
        let file = std::fs::read(&path).unwrap();
        let (zip, _) = read(&file).unwrap();
        let bytes = assembled(&zip, &file);
        assert!(bytes == native(&path));
        let names: Vec<&str> = zip.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["logit_scale", "odd \"name\"\twith\\escapes", "text.empty", "visual.bias", "visual.proj", "text.bf16", "text.half"]
        );
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let proj = st.tensor("visual.proj").unwrap();
        assert_eq!(proj.shape(), [3, 4]);
        let expected: Vec<f32> = (3..15).map(|i| i as f32 / 7.0).collect();
        assert_eq!(floats(proj.data()), expected);
        assert_eq!(floats(st.tensor("visual.bias").unwrap().data()), [0.0, 1.0 / 7.0, 2.0 / 7.0]);
        assert_eq!(st.tensor("text.empty").unwrap().shape(), [0, 3]);
        assert_eq!(st.tensor("logit_scale").unwrap().shape(), [] as [usize; 0]);
        assert_eq!(st.tensor("text.half").unwrap().dtype(), Dtype::F16);

        let training = data("torch/training.pt");
        let file = std::fs::read(&training).unwrap();
        let (zip, _) = read(&file).unwrap();
        let nested = assembled(&zip, &file);
        assert!(nested == native(&training));
        assert!(nested == bytes, "the same weights as the bare state dict");
    }

    #[test]
    fn what_the_page_cannot_read_is_refused_with_a_clause() {
        let strided = std::fs::read(data("torch/strided.pt")).unwrap();
        let why = error(&strided);
        assert!(why.contains("`visual.proj` is a strided view") && why.contains(".contiguous()"), "{why}");

        let model = std::fs::read(data("torch/whole_model.pt")).unwrap();
        let why = error(&model);
        assert!(why.contains("torch.save(model)") && why.contains("state_dict()"), "{why}");

        let good = std::fs::read(data("torch/state_dict.pt")).unwrap();
        let why = error(&good[..good.len() - 1]);
        assert!(why.starts_with("the end of its zip archive is missing"), "{why}");
        assert!(error(&good[..10]).starts_with("the end of its zip archive is missing"));

        let mut big = good.clone();
        let at = big.windows(6).position(|w| w == b"little").unwrap();
        big[at..at + 6].copy_from_slice(b"big\n  ");
        assert!(error(&big).contains("big-endian"));

        // A storage's entry compressed (its method in the central directory).
        let mut packed = good.clone();
        let name = b"state_dict/data/0";
        let at = packed.windows(4 + 42 + name.len()).position(|w| w.starts_with(b"PK\x01\x02") && w.ends_with(name)).unwrap();
        packed[at + 10] = 8;
        assert!(error(&packed).contains("`state_dict/data/0` is compressed"));

        let mut no_pickle = good.clone();
        for at in no_pickle.windows(8).enumerate().filter(|(_, w)| *w == b"data.pkl").map(|(i, _)| i).collect::<Vec<_>>() {
            no_pickle[at..at + 8].copy_from_slice(b"data.pkX");
        }
        assert!(error(&no_pickle).contains("without the `data.pkl`"));
    }

    /// Every cut and every damaged byte of a real checkpoint gives a clause or a reading,
    /// never a panic.
    #[test]
    fn damage_anywhere_never_panics() {
        let good = std::fs::read(data("torch/state_dict.pt")).unwrap();
        for len in 0..good.len() {
            assert!(read(&good[..len]).is_err(), "cut to {len} bytes");
        }
        for at in 0..good.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] ^= flip;
                let _ = read(&bad);
            }
        }
    }

    // ---- Archives and pickles made by hand ----

    /// A pickle written opcode by opcode.
    struct Pickle(Vec<u8>);

    impl Pickle {
        fn new(protocol: u8) -> Self {
            Pickle(vec![0x80, protocol])
        }
        fn op(mut self, bytes: &[u8]) -> Self {
            self.0.extend_from_slice(bytes);
            self
        }
        fn str(self, s: &str) -> Self {
            let len = (s.len() as u32).to_le_bytes();
            self.op(b"X").op(&len).op(s.as_bytes())
        }
        fn int(self, i: u8) -> Self {
            self.op(&[b'K', i])
        }
        fn global(self, module: &str, name: &str) -> Self {
            self.op(format!("c{module}\n{name}\n").as_bytes())
        }
        /// `_rebuild_tensor_v2(storage key of numel floats, offset, shape, contiguous strides, …)`.
        fn tensor(self, key: &str, numel: u8, offset: u8, shape: &[u8]) -> Self {
            let mut p = self.global("torch._utils", "_rebuild_tensor_v2").op(b"((").str("storage").global("torch", "FloatStorage");
            p = p.str(key).str("cpu").int(numel).op(b"tQ").int(offset).op(b"(");
            for &d in shape {
                p = p.int(d);
            }
            p = p.op(b"t(");
            let mut stride = 1;
            let mut strides = Vec::new();
            for &d in shape.iter().rev() {
                strides.push(stride);
                stride *= d;
            }
            for s in strides.into_iter().rev() {
                p = p.int(s);
            }
            p.op(b"t\x89").global("collections", "OrderedDict").op(b")RtR")
        }
        /// `{name: value, …}` around `items` (keys and values pushed in turn).
        fn dict(items: Pickle) -> Vec<u8> {
            let mut p = Pickle::new(2).op(b"}(");
            p.0.extend_from_slice(&items.0[2..]);
            p.op(b"u.").0
        }
    }

    fn items() -> Pickle {
        Pickle(Vec::new()).op(b"..")
    }

    #[derive(Default)]
    struct Options {
        zip64: bool,
        /// An extra field of this many bytes on each directory entry (a directory the end of
        /// the file does not hold).
        junk: usize,
        comment: usize,
    }

    /// A `torch.save`-like archive: `archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`.
    fn archive(pickle: &[u8], storages: &[(&str, &[u8])], options: &Options) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = vec![("archive/data.pkl".into(), pickle.to_vec()), ("archive/byteorder".into(), b"little".to_vec())];
        entries.extend(storages.iter().map(|(k, b)| (format!("archive/data/{k}"), b.to_vec())));
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for (name, bytes) in &entries {
            let offset = out.len() as u64;
            let size = bytes.len() as u32;
            out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0");
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(bytes);
            let mut extra = Vec::new();
            let (size32, offset32) = if options.zip64 {
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&24u16.to_le_bytes());
                for v in [bytes.len() as u64, bytes.len() as u64, offset] {
                    extra.extend_from_slice(&v.to_le_bytes());
                }
                (u32::MAX, u32::MAX)
            } else {
                (size, offset as u32)
            };
            if options.junk > 0 {
                extra.extend_from_slice(&0xcafeu16.to_le_bytes());
                extra.extend_from_slice(&(options.junk as u16).to_le_bytes());
                extra.resize(extra.len() + options.junk, 7);
            }
            directory.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0\0\0\0\0");
            directory.extend_from_slice(&size32.to_le_bytes());
            directory.extend_from_slice(&size32.to_le_bytes());
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 10]);
            directory.extend_from_slice(&offset32.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
            directory.extend_from_slice(&extra);
        }
        let start = out.len() as u64;
        out.extend_from_slice(&directory);
        let count = entries.len() as u64;
        if options.zip64 {
            let record = out.len() as u64;
            out.extend_from_slice(b"PK\x06\x06");
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for v in [count, count, directory.len() as u64, start] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(b"PK\x06\x07\0\0\0\0");
            out.extend_from_slice(&record.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
        } else {
            out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend_from_slice(&(count as u16).to_le_bytes());
            out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
            out.extend_from_slice(&(start as u32).to_le_bytes());
        }
        out.extend_from_slice(&(options.comment as u16).to_le_bytes());
        out.resize(out.len() + options.comment, b'#');
        out
    }

    const VALUES: [f32; 6] = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5];

    fn storage() -> Vec<u8> {
        VALUES.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// `{"w": floats 1..5 of storage "0", "b": floats 0..1}`: what it must read as.
    fn expected() -> Vec<u8> {
        let bytes = storage();
        let views = [("w", TensorView::new(Dtype::F32, vec![2, 2], &bytes[4..20]).unwrap()), ("b", TensorView::new(Dtype::F32, vec![1], &bytes[..4]).unwrap())];
        safetensors::serialize(views, None).unwrap()
    }

    fn good_items() -> Pickle {
        items().str("w").tensor("0", 6, 1, &[2, 2]).str("b").tensor("0", 6, 0, &[1])
    }

    #[test]
    fn archives_zip64_and_a_directory_beyond_the_end_read_alike() {
        let pickle = Pickle::dict(good_items());
        let s = storage();
        for (options, steps) in [
            (Options::default(), 3),
            (Options { zip64: true, ..Options::default() }, 3),
            // The zip64 record before the tail, and so the directory: two more steps.
            (Options { zip64: true, comment: 65535, ..Options::default() }, 5),
            // The directory before the tail: one more step.
            (Options { junk: 40000, ..Options::default() }, 4),
            (Options { zip64: true, junk: 40000, comment: 100 }, 4),
        ] {
            let file = archive(&pickle, &[("0", &s)], &options);
            let (zip, taken) = read(&file).unwrap_or_else(|e| panic!("zip64 {} junk {}: {e}", options.zip64, options.junk));
            assert_eq!(taken, steps, "zip64 {} junk {} comment {}", options.zip64, options.junk, options.comment);
            assert!(assembled(&zip, &file) == expected());
            // "b" (bytes 0..4) then "w" (4..20): one range.
            assert_eq!(zip.ranges().len(), 1);
        }
    }

    #[test]
    fn pickles_in_protocol_4_read_alike() {
        // FRAME, SHORT_BINUNICODE, STACK_GLOBAL and MEMOIZE, as protocol 4 writes them.
        let short = |p: Pickle, s: &str| p.op(&[0x8c, s.len() as u8]).op(s.as_bytes()).op(&[0x94]);
        let tensor = |p: Pickle, name: &str, offset: u8, shape: &[u8]| {
            let mut p = short(p, name);
            p = short(short(p, "torch._utils"), "_rebuild_tensor_v2").op(&[0x93, 0x94]).op(b"((");
            p = short(p, "storage");
            p = short(short(p, "torch"), "FloatStorage").op(&[0x93]);
            p = short(short(p, "0"), "cpu").int(6).op(b"tQ").int(offset).op(b"(");
            for &d in shape {
                p = p.int(d);
            }
            p = p.op(b"t(");
            match shape {
                [_, _] => p = p.int(2).int(1),
                _ => p = p.int(1),
            }
            p = p.op(b"t\x89");
            short(short(p, "collections"), "OrderedDict").op(&[0x93]).op(b")RtR\x94")
        };
        let mut p = Pickle::new(4).op(&[0x95]).op(&0u64.to_le_bytes()).op(b"}\x94(");
        p = tensor(p, "w", 1, &[2, 2]);
        p = tensor(p, "b", 0, &[1]);
        let pickle = p.op(b"u.").0;
        let file = archive(&pickle, &[("0", &storage())], &Options::default());
        let (zip, _) = read(&file).unwrap();
        assert!(assembled(&zip, &file) == expected());
    }

    #[test]
    fn a_pickle_runs_nothing_and_strange_ones_are_refused() {
        let s = storage();
        let run = |items: Pickle| read(&archive(&Pickle::dict(items), &[("0", &s)], &Options::default())).map(|(zip, _)| zip);
        // Any other global is a name: `os.system("…")` is an object never called, beside the weights.
        let call = good_items().str("run").global("os", "system").str("touch /tmp/fieldclip-pwned").op(b"\x85R");
        let zip = run(call).unwrap();
        assert_eq!(zip.tensors().len(), 2);
        assert!(!Path::new("/tmp/fieldclip-pwned").exists());
        // …and tensors handed to one are refused, not lost.
        let hidden = good_items().str("x").global("builtins", "eval").str("w").tensor("0", 6, 0, &[2]).op(b"\x86R");
        assert!(run(hidden).err().unwrap().0.contains("inside a `builtins.eval` object"));
        // Opcodes a state dict has no use for.
        let inst = good_items().str("i").op(b"(ios\nsystem\n");
        assert!(run(inst).err().unwrap().0.contains("INST"));
        assert!(run(good_items().str("p").op(b"p0\n")).err().unwrap().0.contains("PUT"));
        // A storage that is not in the archive, a tensor past its storage's end.
        assert!(run(items().str("w").tensor("9", 6, 0, &[2])).err().unwrap().0.contains("`archive/data/9` is missing"));
        assert!(run(items().str("w").tensor("0", 6, 3, &[4])).err().unwrap().0.contains("holds only 6 elements"));
        // A storage the archive has, shorter than declared.
        let short = error(&archive(&Pickle::dict(good_items()), &[("0", &s[..8])], &Options::default()));
        assert!(short.contains("should hold 6 elements"), "{short}");
        // Not a dict at the root; no float tensors at all; a stack taken from when empty.
        let list = Pickle::new(2).op(b"].").0;
        assert!(error(&archive(&list, &[], &Options::default())).contains("holds a list, not a dict"));
        assert!(run(items().str("n").int(3)).err().unwrap().0.contains("no float32"));
        assert!(error(&archive(&Pickle::new(2).op(b"R.").0, &[], &Options::default())).contains("malformed"));
        // Nested too deep; a container copied over and over.
        let deep = Pickle::new(2).op(&[b']'; 200]).op(&[b'a'; 199]).op(b".").0;
        assert!(error(&archive(&deep, &[], &Options::default())).contains("more than 100 deep"));
        let mut bomb = Pickle::new(2).op(b"]q\x00");
        for _ in 0..100 {
            bomb = bomb.op(b"h\x002(");
            for _ in 0..5000 {
                bomb = bomb.op(b"N");
            }
            bomb = bomb.op(b"eq\x0000");
        }
        let bomb = bomb.op(b".").0;
        assert!(error(&archive(&bomb, &[], &Options::default())).contains("over and over"));
        // Damage to every byte of a good pickle: a clause or a reading, never a panic.
        let pickle = Pickle::dict(good_items());
        for at in 0..pickle.len() {
            for flip in [0x01, 0x20, 0x80, 0xff] {
                let mut bad = pickle.clone();
                bad[at] ^= flip;
                let _ = read(&archive(&bad, &[("0", &s)], &Options::default()));
            }
        }
    }

    #[test]
    fn names_are_escaped_as_serde_json_escapes_them() {
        for name in ["plain.weight", "quote\" and \\ backslash", "tab\t nl\n cr\r bs\u{8} ff\u{c}", "\u{1}\u{1f}\u{7f}", "ünïcödé ✓ 🦉", "/slash"] {
            let mut ours = String::new();
            json_string(&mut ours, name);
            assert_eq!(ours, serde_json::to_string(name).unwrap());
        }
    }

    #[test]
    fn weights_nested_in_a_training_checkpoint_are_found() {
        let names = |n: &[&'static str]| nested_prefix(n.iter().copied());
        assert_eq!(names(&["visual.proj", "logit_scale"]), None);
        assert_eq!(names(&["module.visual.proj"]), None);
        assert_eq!(names(&["state_dict.module.visual.proj", "optimizer.state.0.exp_avg"]), Some("state_dict."));
        assert_eq!(names(&["model.visual.proj", "ema.visual.proj"]), Some("model."));
        assert_eq!(names(&["visual.proj", "model.x"]), None);
        assert_eq!(names(&["text_model.x", "vision_model.y"]), None);
    }
}
