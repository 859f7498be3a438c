//! The model pack format (`.fcpk`) as data: the `__metadata__` keys, the format version, the
//! suffix of the int8 scale tensors, and reading a pack's config file back. A leaf module (it
//! imports nothing from the crate) so that the pack writer (`pack`) and the weights reader
//! (`weights`) share these names without depending on each other.

/// `__metadata__` keys of a pack.
pub const FORMAT_KEY: &str = "fieldclip.pack";
pub const DTYPE_KEY: &str = "fieldclip.dtype";
pub const CONFIG_KEY: &str = "fieldclip.config";
/// The pack layout version this fieldclip writes and reads.
pub const FORMAT_VERSION: &str = "1";
/// Suffix of the tensor holding an int8 tensor's per-row scales.
pub const SCALE_SUFFIX: &str = ".q8_scale";

/// The config file inside a model pack, checking the pack's version; `None` for a plain
/// checkpoint or a pack made without a config file. `metadata` looks a key up in the file's
/// `__metadata__`. The error is the reason a pack cannot be read (of another format version).
pub fn pack_config<'a>(metadata: impl Fn(&str) -> Option<&'a str>) -> Result<Option<Vec<u8>>, String> {
    match metadata(FORMAT_KEY) {
        None => Ok(None),
        Some(FORMAT_VERSION) => Ok(metadata(CONFIG_KEY).map(|c| c.as_bytes().to_vec())),
        Some(other) => Err(format!("it is pack format {other}, this fieldclip reads format {}", FORMAT_VERSION)),
    }
}
