//! The checkpoint layouts fieldclip reads, as data: one table of tensor names per layout, side
//! by side, apart from the code that reads them, so that a layout is checked (or added) by
//! reading a table.

use super::Layout;

/// A parameter's `(weight, bias)` names (a Linear's, or a layer norm's).
pub(super) type Pair = (&'static str, &'static str);

/// The tower a transformer block belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tower {
    Vision,
    Text,
}

/// How a layout stores a block's attention input projection.
pub(super) enum Qkv {
    /// Separate q, k and v Linears, stacked row after row into one `[3·width, width]` weight
    /// (and a `[3·width]` bias) on load.
    Separate([Pair; 3]),
    /// One fused `[3·width, width]` weight and its `[3·width]` bias.
    Fused(Pair),
}

/// How a layout stores a tower's output projection.
pub(super) enum Projection {
    /// A Linear weight `[projection_dim, width]`, the model's own orientation.
    Linear,
    /// `[width, projection_dim]`, applied as `x @ proj`: turned around on load.
    XAtProj,
}

/// The names of a transformer block's parameters, after the block's prefix.
pub(super) struct BlockKeys {
    pub(super) ln_1: Pair,
    pub(super) qkv: Qkv,
    pub(super) out_proj: Pair,
    pub(super) ln_2: Pair,
    pub(super) fc1: Pair,
    pub(super) fc2: Pair,
}

/// Every tensor name of one layout.
pub(super) struct LayoutKeys {
    pub(super) layout: Layout,
    pub(super) patch_embedding: &'static str,
    pub(super) class_embedding: &'static str,
    pub(super) vision_positions: &'static str,
    pub(super) ln_pre: Pair,
    pub(super) ln_post: Pair,
    pub(super) vision_projection: &'static str,
    pub(super) token_embedding: &'static str,
    pub(super) text_positions: &'static str,
    pub(super) ln_final: Pair,
    pub(super) text_projection: &'static str,
    pub(super) logit_scale: &'static str,
    /// The orientation of both projections.
    pub(super) projection: Projection,
    /// Block `i` of the vision tower is `{vision_blocks}{i}.{part}`.
    pub(super) vision_blocks: &'static str,
    /// Block `i` of the text tower is `{text_blocks}{i}.{part}`.
    pub(super) text_blocks: &'static str,
    pub(super) block: BlockKeys,
}

/// `transformers.CLIPModel`.
pub(super) static HUGGING_FACE: LayoutKeys = LayoutKeys {
    layout: Layout::HuggingFace,
    patch_embedding: "vision_model.embeddings.patch_embedding.weight",
    class_embedding: "vision_model.embeddings.class_embedding",
    vision_positions: "vision_model.embeddings.position_embedding.weight",
    ln_pre: ("vision_model.pre_layrnorm.weight", "vision_model.pre_layrnorm.bias"),
    ln_post: ("vision_model.post_layernorm.weight", "vision_model.post_layernorm.bias"),
    vision_projection: "visual_projection.weight",
    token_embedding: "text_model.embeddings.token_embedding.weight",
    text_positions: "text_model.embeddings.position_embedding.weight",
    ln_final: ("text_model.final_layer_norm.weight", "text_model.final_layer_norm.bias"),
    text_projection: "text_projection.weight",
    logit_scale: "logit_scale",
    projection: Projection::Linear,
    vision_blocks: "vision_model.encoder.layers.",
    text_blocks: "text_model.encoder.layers.",
    block: BlockKeys {
        ln_1: ("layer_norm1.weight", "layer_norm1.bias"),
        qkv: Qkv::Separate([
            ("self_attn.q_proj.weight", "self_attn.q_proj.bias"),
            ("self_attn.k_proj.weight", "self_attn.k_proj.bias"),
            ("self_attn.v_proj.weight", "self_attn.v_proj.bias"),
        ]),
        out_proj: ("self_attn.out_proj.weight", "self_attn.out_proj.bias"),
        ln_2: ("layer_norm2.weight", "layer_norm2.bias"),
        fc1: ("mlp.fc1.weight", "mlp.fc1.bias"),
        fc2: ("mlp.fc2.weight", "mlp.fc2.bias"),
    },
};

/// open_clip / OpenAI state dict.
pub(super) static OPEN_CLIP: LayoutKeys = LayoutKeys {
    layout: Layout::OpenClip,
    patch_embedding: "visual.conv1.weight",
    class_embedding: "visual.class_embedding",
    vision_positions: "visual.positional_embedding",
    ln_pre: ("visual.ln_pre.weight", "visual.ln_pre.bias"),
    ln_post: ("visual.ln_post.weight", "visual.ln_post.bias"),
    vision_projection: "visual.proj",
    token_embedding: "token_embedding.weight",
    text_positions: "positional_embedding",
    ln_final: ("ln_final.weight", "ln_final.bias"),
    text_projection: "text_projection",
    logit_scale: "logit_scale",
    projection: Projection::XAtProj,
    vision_blocks: "visual.transformer.resblocks.",
    text_blocks: "transformer.resblocks.",
    block: BlockKeys {
        ln_1: ("ln_1.weight", "ln_1.bias"),
        qkv: Qkv::Fused(("attn.in_proj_weight", "attn.in_proj_bias")),
        out_proj: ("attn.out_proj.weight", "attn.out_proj.bias"),
        ln_2: ("ln_2.weight", "ln_2.bias"),
        fc1: ("mlp.c_fc.weight", "mlp.c_fc.bias"),
        fc2: ("mlp.c_proj.weight", "mlp.c_proj.bias"),
    },
};

/// The layouts in the order they are recognised, each by its patch embedding's name.
pub(super) static LAYOUTS: [&LayoutKeys; 2] = [&HUGGING_FACE, &OPEN_CLIP];

/// The names of a layout.
pub(super) fn keys(layout: Layout) -> &'static LayoutKeys {
    match layout {
        Layout::HuggingFace => &HUGGING_FACE,
        Layout::OpenClip => &OPEN_CLIP,
    }
}

impl LayoutKeys {
    /// The name of `part` of block `i` of a tower.
    pub(super) fn block_key(&self, tower: Tower, i: usize, part: &str) -> String {
        let prefix = match tower {
            Tower::Vision => self.vision_blocks,
            Tower::Text => self.text_blocks,
        };
        format!("{prefix}{i}.{part}")
    }

    /// A part every block has (its first q/k/v weight): counts the layers.
    pub(super) fn layer_probe(&self) -> &'static str {
        match self.block.qkv {
            Qkv::Separate(parts) => parts[0].0,
            Qkv::Fused((weight, _)) => weight,
        }
    }
}
