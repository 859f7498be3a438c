//! Architecture description of a CLIP model. It is derived from the shapes of the weight
//! tensors (see `crate::weights`) and refined by a config file where the shapes cannot tell
//! (head count, activation, layer-norm epsilon).

use serde::Serialize;

/// The MLP non-linearity. OpenAI's CLIP checkpoints use QuickGELU; open_clip models trained
/// without `quick_gelu: true` (e.g. many LAION and BioCLIP ones) use exact erf GELU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    QuickGelu,
    Gelu,
}

/// One transformer stack (vision or text tower).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformerConfig {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp_width: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VisionConfig {
    pub transformer: TransformerConfig,
    pub patch_size: usize,
    /// Side of the square input image in pixels.
    pub image_size: usize,
}

impl VisionConfig {
    pub fn grid_size(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens the vision transformer sees: one per patch plus the class token.
    pub fn num_positions(&self) -> usize {
        self.grid_size() * self.grid_size() + 1
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextConfig {
    pub transformer: TransformerConfig,
    pub vocab_size: usize,
    pub context_length: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipConfig {
    pub vision: VisionConfig,
    pub text: TextConfig,
    /// Size of the shared image/text embedding space.
    pub projection_dim: usize,
}

impl ClipConfig {
    /// Number of learned scalars, as PyTorch counts them (`logit_scale` included).
    pub fn parameter_count(&self) -> usize {
        fn stack(t: &TransformerConfig) -> usize {
            let w = t.width;
            let attn = 4 * (w * w + w);
            let mlp = w * t.mlp_width + t.mlp_width + t.mlp_width * w + w;
            let norms = 2 * 2 * w;
            t.layers * (attn + mlp + norms)
        }
        let v = &self.vision;
        let vw = v.transformer.width;
        let vision = 3 * v.patch_size * v.patch_size * vw // patch embedding, no bias
            + vw // class embedding
            + v.num_positions() * vw
            + 2 * 2 * vw // pre and post layer norms
            + stack(&v.transformer)
            + vw * self.projection_dim;
        let t = &self.text;
        let tw = t.transformer.width;
        let text = t.vocab_size * tw
            + t.context_length * tw
            + stack(&t.transformer)
            + 2 * tw // final layer norm
            + tw * self.projection_dim;
        vision + text + 1
    }

    /// A short human name such as "ViT-B/32" where the shape is a known one.
    pub fn name(&self) -> String {
        let v = &self.vision;
        let size = match (v.transformer.width, v.transformer.layers) {
            (768, 12) => "B",
            (1024, 24) => "L",
            (1280, 32) => "H",
            (1408, 40) => "g",
            (1664, 48) => "bigG",
            _ => return format!(
                "ViT ({} wide, {} layers, patch {}, {} px)",
                v.transformer.width, v.transformer.layers, v.patch_size, v.image_size
            ),
        };
        let suffix = if v.image_size == 224 { String::new() } else { format!("@{}px", v.image_size) };
        format!("ViT-{size}/{}{suffix}", v.patch_size)
    }
}
