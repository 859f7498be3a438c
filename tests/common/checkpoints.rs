//! Random checkpoints of real architectures' shapes, for the native and the browser tests.
#![allow(dead_code)]

use safetensors::tensor::{Dtype, TensorView};

/// A checkpoint in the HF layout with the widths, patch size, positions and heads of a real
/// architecture, one layer per tower (depth does not change any shape), small random values,
/// stored as f16.
pub fn random_hf_checkpoint(vision: (usize, usize, usize), text_width: usize, proj: usize) -> Vec<u8> {
    let (vw, patch, image) = vision;
    let positions = (image / patch) * (image / patch) + 1;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("vision_model.embeddings.patch_embedding.weight".into(), vec![vw, 3, patch, patch]),
        ("vision_model.embeddings.class_embedding".into(), vec![vw]),
        ("vision_model.embeddings.position_embedding.weight".into(), vec![positions, vw]),
        ("vision_model.pre_layrnorm.weight".into(), vec![vw]),
        ("vision_model.pre_layrnorm.bias".into(), vec![vw]),
        ("vision_model.post_layernorm.weight".into(), vec![vw]),
        ("vision_model.post_layernorm.bias".into(), vec![vw]),
        ("visual_projection.weight".into(), vec![proj, vw]),
        ("text_model.embeddings.token_embedding.weight".into(), vec![49408, text_width]),
        ("text_model.embeddings.position_embedding.weight".into(), vec![77, text_width]),
        ("text_model.final_layer_norm.weight".into(), vec![text_width]),
        ("text_model.final_layer_norm.bias".into(), vec![text_width]),
        ("text_projection.weight".into(), vec![proj, text_width]),
        ("logit_scale".into(), vec![]),
    ];
    for (tower, w) in [("vision_model", vw), ("text_model", text_width)] {
        let p = format!("{tower}.encoder.layers.0");
        for name in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            shapes.push((format!("{p}.self_attn.{name}.weight"), vec![w, w]));
            shapes.push((format!("{p}.self_attn.{name}.bias"), vec![w]));
        }
        for name in ["layer_norm1", "layer_norm2"] {
            shapes.push((format!("{p}.{name}.weight"), vec![w]));
            shapes.push((format!("{p}.{name}.bias"), vec![w]));
        }
        shapes.push((format!("{p}.mlp.fc1.weight"), vec![4 * w, w]));
        shapes.push((format!("{p}.mlp.fc1.bias"), vec![4 * w]));
        shapes.push((format!("{p}.mlp.fc2.weight"), vec![w, 4 * w]));
        shapes.push((format!("{p}.mlp.fc2.bias"), vec![w]));
    }
    let mut seed = 1u32;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    half::f16::from_f32((seed >> 8) as f32 / (1 << 24) as f32 * 0.04 - 0.02).to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        data.iter().map(|(n, s, d)| (n.clone(), TensorView::new(Dtype::F16, s.clone(), d).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}
