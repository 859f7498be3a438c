//! The architecture (`ClipConfig`) of a checkpoint: read from its tensor shapes, then refined by
//! an optional config file. Apart from the tensors' values, so that it also works on a bare
//! name → shape map (`architecture`, for tests and tools).

use serde_json::Value;

use crate::model::{Activation, ClipConfig, TextConfig, TransformerConfig, VisionConfig};
use crate::tokenizer::END_OF_TEXT;

use super::layouts::{self, LayoutKeys, Projection, Tower, LAYOUTS};
use super::{Layout, WeightsError};

/// Where tensor shapes come from: a parsed file, or (for tests and tools) just a name → shape map.
pub trait Shapes {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>>;

    fn shape(&self, key: &str) -> Result<Vec<usize>, WeightsError> {
        self.shape_of(key).ok_or_else(|| WeightsError::MissingTensor(key.to_string()))
    }

    /// Number of transformer layers: the count of consecutive indices `0..n` present.
    fn count_layers(&self, probe: &dyn Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.shape_of(&probe(i)).is_some()).count()
    }

    /// The first layout (`layouts::LAYOUTS`, in order) whose patch embedding is present.
    fn layout(&self) -> Option<Layout> {
        LAYOUTS.iter().find(|keys| self.shape_of(keys.patch_embedding).is_some()).map(|keys| keys.layout)
    }
}

impl Shapes for std::collections::HashMap<String, Vec<usize>> {
    fn shape_of(&self, key: &str) -> Option<Vec<usize>> {
        self.get(key).cloned()
    }
}

/// The architecture and layout implied by tensor shapes and an optional config file.
pub fn architecture(shapes: &dyn Shapes, config_json: Option<&[u8]>) -> Result<(Layout, ClipConfig), WeightsError> {
    let layout = shapes.layout().ok_or_else(|| WeightsError::UnknownLayout("none of the expected keys".into()))?;
    let config = parse_config(config_json)?;
    let (config, _) = derive_config(shapes, layouts::keys(layout), config.as_ref())?;
    Ok((layout, config))
}

pub(super) fn parse_config(config_json: Option<&[u8]>) -> Result<Option<Value>, WeightsError> {
    config_json
        .map(|text| serde_json::from_slice::<Value>(text).map_err(|e| WeightsError::BadConfig(format!("it is not valid JSON ({e})"))))
        .transpose()
}

fn dim(shape: &[usize], i: usize, name: &str, rank: usize) -> Result<usize, WeightsError> {
    if shape.len() != rank {
        return Err(WeightsError::WrongRank { name: name.to_string(), expected: rank, found: shape.to_vec() });
    }
    Ok(shape[i])
}

/// Reads the architecture from the tensor shapes, then applies the config file, if any.
pub(super) fn derive_config(source: &dyn Shapes, keys: &LayoutKeys, config: Option<&Value>) -> Result<(ClipConfig, String), WeightsError> {
    let patch_name = keys.patch_embedding;
    let patch = source.shape(patch_name)?;
    let vision_width = dim(&patch, 0, patch_name, 4)?;
    let patch_size = patch[2];
    let vpos_name = keys.vision_positions;
    let vision_positions = dim(&source.shape(vpos_name)?, 0, vpos_name, 2)?;
    let grid = ((vision_positions.saturating_sub(1)) as f64).sqrt().round() as usize;
    if grid * grid + 1 != vision_positions {
        return Err(WeightsError::BadConfig(format!(
            "`{vpos_name}` has {vision_positions} rows, which is not a square grid of patches plus a class token"
        )));
    }
    let (fc1, qkv_probe) = (keys.block.fc1.0, keys.layer_probe());
    let vision_layers = source.count_layers(&|i| keys.block_key(Tower::Vision, i, qkv_probe));
    let vision_fc1 = keys.block_key(Tower::Vision, 0, fc1);
    let vision_mlp = dim(&source.shape(&vision_fc1)?, 0, &vision_fc1, 2)?;

    let tok_name = keys.token_embedding;
    let tok = source.shape(tok_name)?;
    let (vocab_size, text_width) = (dim(&tok, 0, tok_name, 2)?, tok[1]);
    let tpos_name = keys.text_positions;
    let context_length = dim(&source.shape(tpos_name)?, 0, tpos_name, 2)?;
    let text_layers = source.count_layers(&|i| keys.block_key(Tower::Text, i, qkv_probe));
    let text_fc1 = keys.block_key(Tower::Text, 0, fc1);
    let text_mlp = dim(&source.shape(&text_fc1)?, 0, &text_fc1, 2)?;
    let proj_name = keys.text_projection;
    let proj = source.shape(proj_name)?;
    let projection_dim = match keys.projection {
        Projection::Linear => dim(&proj, 0, proj_name, 2)?,
        Projection::XAtProj => dim(&proj, 1, proj_name, 2)?,
    };

    // What shapes cannot tell: defaults of the layout's own reference implementation.
    let mut vision_heads = vision_width / 64;
    let mut text_heads = text_width / 64;
    let mut vision_act = Activation::QuickGelu;
    let mut text_act = Activation::QuickGelu;
    let mut vision_eps = 1e-5;
    let mut text_eps = 1e-5;
    let mut source_note = String::from("no config file: heads = width/64, QuickGELU (OpenAI CLIP defaults)");

    let act = |name: &str| -> Result<Activation, WeightsError> {
        match name {
            "quick_gelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            other => Err(WeightsError::BadConfig(format!("activation `{other}` is not supported (quick_gelu or gelu)"))),
        }
    };
    let usize_at = |v: &Value, path: &[&str]| -> Option<usize> {
        path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64).map(|n| n as usize)
    };
    let f64_at = |v: &Value, path: &[&str]| -> Option<f64> { path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64) };

    if let Some(cfg) = config {
        if let Some(model_cfg) = cfg.get("model_cfg") {
            // open_clip_config.json (what `push_to_hf_hub` writes).
            let quick = model_cfg.get("quick_gelu").and_then(Value::as_bool).unwrap_or(false);
            let a = if quick { Activation::QuickGelu } else { Activation::Gelu };
            vision_act = a;
            text_act = a;
            let head_width = usize_at(model_cfg, &["vision_cfg", "head_width"]).unwrap_or(64);
            vision_heads = vision_width / head_width.max(1);
            if let Some(h) = usize_at(model_cfg, &["text_cfg", "heads"]) {
                text_heads = h;
            }
            source_note = "open_clip_config.json".into();
        } else if cfg.get("vision_config").is_some() || cfg.get("text_config").is_some() {
            // transformers CLIPConfig.
            if let Some(h) = usize_at(cfg, &["vision_config", "num_attention_heads"]) {
                vision_heads = h;
            }
            if let Some(h) = usize_at(cfg, &["text_config", "num_attention_heads"]) {
                text_heads = h;
            }
            if let Some(a) = cfg.pointer("/vision_config/hidden_act").and_then(Value::as_str) {
                vision_act = act(a)?;
            }
            if let Some(a) = cfg.pointer("/text_config/hidden_act").and_then(Value::as_str) {
                text_act = act(a)?;
            }
            vision_eps = f64_at(cfg, &["vision_config", "layer_norm_eps"]).unwrap_or(vision_eps);
            text_eps = f64_at(cfg, &["text_config", "layer_norm_eps"]).unwrap_or(text_eps);
            source_note = "config.json (Hugging Face)".into();
        } else {
            return Err(WeightsError::BadConfig(
                "it is neither a Hugging Face CLIP config.json (vision_config/text_config) nor an open_clip_config.json (model_cfg)".into(),
            ));
        }
    }
    // Every derived size is checked here, with the tensor it came from, before any tensor is
    // built from it: a hostile file must get a sentence, never a division by zero or an
    // out-of-bounds gather deep in the backend.
    let impossible = |name: &str, what: &'static str, value: usize, why: &str| WeightsError::ImpossibleDimension {
        name: name.to_string(),
        what,
        value,
        why: why.to_string(),
    };
    if patch_size == 0 || patch[3] != patch_size {
        return Err(impossible(patch_name, "a patch size", patch_size, "patches must be square and at least 1 pixel"));
    }
    if grid == 0 {
        return Err(impossible(vpos_name, "image positions", vision_positions, "it needs at least one patch besides the class token"));
    }
    for (name, what, value) in [
        (patch_name, "a vision width", vision_width),
        (tok_name, "a text width", text_width),
        (vision_fc1.as_str(), "an MLP width", vision_mlp),
        (text_fc1.as_str(), "an MLP width", text_mlp),
        (proj_name, "an embedding size", projection_dim),
    ] {
        if value == 0 {
            return Err(impossible(name, what, value, "it must be at least 1"));
        }
    }
    if context_length < 3 {
        return Err(impossible(tpos_name, "a text context", context_length, "a prompt needs at least its start, one token and its end"));
    }
    if vocab_size <= END_OF_TEXT as usize {
        return Err(impossible(
            tok_name,
            "a vocabulary",
            vocab_size,
            "CLIP's tokenizer needs 49,408 token rows (its end-of-text token is number 49,407)",
        ));
    }
    for (tower, width, heads) in [("vision", vision_width, vision_heads), ("text", text_width, text_heads)] {
        if heads == 0 || width % heads != 0 {
            return Err(WeightsError::BadConfig(format!("the {tower} width {width} cannot be split into {heads} attention heads")));
        }
    }
    let config = ClipConfig {
        vision: VisionConfig {
            transformer: TransformerConfig {
                width: vision_width,
                layers: vision_layers,
                heads: vision_heads,
                mlp_width: vision_mlp,
                activation: vision_act,
                layer_norm_eps: vision_eps,
            },
            patch_size,
            image_size: grid * patch_size,
        },
        text: TextConfig {
            transformer: TransformerConfig {
                width: text_width,
                layers: text_layers,
                heads: text_heads,
                mlp_width: text_mlp,
                activation: text_act,
                layer_norm_eps: text_eps,
            },
            vocab_size,
            context_length,
        },
        projection_dim,
    };
    Ok((config, source_note))
}
