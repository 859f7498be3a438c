//! Tokenizer, preprocessing, weight layouts and every bad-input path, against reference data.
#![cfg(not(target_arch = "wasm32"))]

mod common;
#[path = "common/checkpoints.rs"]
mod checkpoints;

use std::collections::HashMap;

use burn::tensor::Device;
use common::*;
use fieldclip::preprocess::{self, ImageError, Pipeline, PreprocessConfig};
use fieldclip::tokenizer::ClipTokenizer;
use fieldclip::weights::{self, Layout, WeightsError};
use fieldclip::{ClipModel, Error};
use safetensors::tensor::{Dtype, TensorView};

#[test]
fn tokenizer_equals_open_clip_on_every_reference_case() {
    let tokenizer = ClipTokenizer::new().unwrap();
    let cases = json("tokenize_cases.json");
    let mut mismatches = Vec::new();
    for case in cases.as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let got = tokenizer.encode(text).unwrap();
        assert_eq!(got.ids.len(), 77);
        assert_eq!(got.eot_index as u64, case["eot_index"].as_u64().unwrap(), "{text:?}");
        if got.ids != want {
            mismatches.push(format!("{text:?}\n  got  {:?}\n  want {:?}", got.ids, want));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} cases differ:\n{}", mismatches.len(), cases.as_array().unwrap().len(), mismatches.join("\n"));
}

/// fieldclip's preprocessing of the 10 oracle images against a reference's pixel files:
/// max abs ≤ 0.05 and mean abs ≤ 2e-3 (normalised units) for every image.
fn check_pixels(expected_json: &str, config: &PreprocessConfig) {
    let expected = json(expected_json);
    let mut failures = Vec::new();
    for image in expected["images"].as_array().unwrap() {
        let file = image["file"].as_str().unwrap();
        let got = preprocess::preprocess(&read(file), config).unwrap();
        let want = npy_f32(&read(image["pixels_npy"].as_str().unwrap()));
        let (max, mean) = (max_abs_diff(&got, &want), mean_abs_diff(&got, &want));
        eprintln!("{file}: max {max:.4}, mean {mean:.2e}");
        if !(max <= 0.05 && mean <= 2e-3) {
            failures.push(format!("{file}: max abs {max}, mean abs {mean}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// transformers' `CLIPImageProcessor` at 224 px.
#[test]
fn preprocessing_matches_clip_image_processor() {
    check_pixels("tiny/expected.json", &PreprocessConfig::openai(224, Pipeline::HuggingFace));
}

/// open_clip's own transform at 64 px: round-half-even crop, alpha dropped after a
/// premultiplied resize.
#[test]
fn preprocessing_matches_open_clip_transform() {
    check_pixels("openclip_tiny/expected.json", &PreprocessConfig::openai(64, Pipeline::OpenClip));
}

fn encode_png(image: image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn sixteen_bit_png_equals_its_eight_bit_version() {
    let rgb8 = image::load_from_memory(&read("images/chelsea.png")).unwrap().to_rgb8();
    let rgb16 = image::DynamicImage::ImageRgb8(rgb8.clone()).to_rgb16();
    let config = PreprocessConfig::openai(224, Pipeline::HuggingFace);
    let a = preprocess::preprocess(&encode_png(image::DynamicImage::ImageRgb8(rgb8)), &config).unwrap();
    let b = preprocess::preprocess(&encode_png(image::DynamicImage::ImageRgb16(rgb16)), &config).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn gif_bmp_and_webp_decode_like_png() {
    let rgb = image::load_from_memory(&read("images/chelsea_small.png")).unwrap().to_rgb8();
    let config = PreprocessConfig::openai(224, Pipeline::HuggingFace);
    let reference = preprocess::preprocess(&encode_png(image::DynamicImage::ImageRgb8(rgb.clone())), &config).unwrap();
    for format in [image::ImageFormat::Bmp, image::ImageFormat::WebP] {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(rgb.clone()).write_to(&mut out, format).unwrap();
        let got = preprocess::preprocess(&out.into_inner(), &config).unwrap();
        assert_eq!(max_abs_diff(&got, &reference), 0.0, "{format:?}");
    }
    // GIF is palette-based: the first frame decodes, close to the original.
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(rgb).write_to(&mut out, image::ImageFormat::Gif).unwrap();
    let got = preprocess::preprocess(&out.into_inner(), &config).unwrap();
    assert!(mean_abs_diff(&got, &reference) < 0.1);
}

/// A JPEG whose EXIF says "rotate 90° clockwise" is classified as the user sees it.
#[test]
fn exif_orientation_is_applied() {
    let jpeg = read("images/rocket.jpg");
    // Insert an APP1 Exif segment with Orientation = 6 right after the SOI marker.
    let tiff: Vec<u8> = [
        b"II*\0".as_slice(),
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    let payload = [b"Exif\0\0".as_slice(), &tiff].concat();
    let mut rotated = vec![0xFF, 0xD8, 0xFF, 0xE1];
    rotated.extend(((payload.len() + 2) as u16).to_be_bytes());
    rotated.extend(&payload);
    rotated.extend(&jpeg[2..]);
    let plain = preprocess::decode(&jpeg).unwrap();
    let turned = preprocess::decode(&rotated).unwrap();
    assert_eq!((turned.width(), turned.height()), (plain.height(), plain.width()));
    assert_eq!(turned.to_rgb8(), plain.rotate90().to_rgb8());
}

/// PNG's chunk checksum (CRC-32, IEEE).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// The error of a preprocessing that must fail (without printing the pixels of one that did not).
fn image_error(bytes: &[u8], config: &PreprocessConfig) -> ImageError {
    preprocess::preprocess(bytes, config).err().expect("the image was accepted")
}

#[test]
fn bad_images_give_clear_errors() {
    let config = PreprocessConfig::openai(224, Pipeline::HuggingFace);
    let err = image_error(b"this is a text file, not a photo", &config);
    assert!(matches!(err, ImageError::UnknownFormat), "{err:?}");
    let jpeg = read("images/coffee.jpg");
    let err = image_error(&jpeg[..jpeg.len() / 3], &config);
    assert!(matches!(err, ImageError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().starts_with("The image could not be decoded"));
    // A PNG header declaring 10000×10000 is refused before any pixel is decoded.
    let mut png = read("images/chelsea_small.png");
    png[16..20].copy_from_slice(&10_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&10_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = image_error(&png, &config);
    assert!(matches!(err, ImageError::TooLarge { width: 10_000, height: 10_000, .. }), "{err:?}");
    assert!(err.to_string().contains("50 megapixels"));
}

/// Long thin strips (under the pixel limit) used to wrap the resized size in u32 (a panic) or
/// be resized to gigabytes; now they are refused before anything is resized. A panorama of a
/// sane shape still works.
#[test]
fn long_thin_strips_are_refused_before_resizing() {
    let config = PreprocessConfig::openai(224, Pipeline::HuggingFace);
    let png = |w: u32, h: u32| {
        let mut out = Vec::new();
        image::DynamicImage::ImageLuma8(image::GrayImage::new(w, h))
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    };
    for (w, h) in [(1, 19_173_962), (1, 400_000), (100_000, 2)] {
        let err = image_error(&png(w, h), &config);
        assert!(matches!(err, ImageError::TooElongated { width, height, .. } if (width, height) == (w, h)), "{w}×{h}: {err:?}");
        assert!(err.to_string().contains("Crop it first"), "{err}");
    }
    assert_eq!(preprocess::preprocess(&png(2_000, 200), &config).unwrap().len(), 3 * 224 * 224);
}

/// Rewrites the tiny model, tensor by tensor, through `edit` (None drops the tensor).
fn rewrite(edit: impl Fn(&str, TensorView) -> Option<(Dtype, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let bytes = read("tiny/model.safetensors");
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let owned: Vec<(String, (Dtype, Vec<usize>, Vec<u8>))> =
        tensors.iter().filter_map(|(name, view)| edit(name, view).map(|t| (name.to_string(), t))).collect();
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, (d, s, data))| (n.clone(), TensorView::new(*d, s.clone(), data).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn keep(view: TensorView) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    Some((view.dtype(), view.shape().to_vec(), view.data().to_vec()))
}

fn load_err(bytes: &[u8]) -> WeightsError {
    match ClipModel::from_bytes(bytes, Some(&read("tiny/config.json")), &Device::flex()) {
        Err(Error::Weights(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("loaded a bad file"),
    }
}

#[test]
fn bad_weight_files_give_clear_errors() {
    let good = read("tiny/model.safetensors");
    let e = load_err(&good[..good.len() - 1000]);
    assert!(matches!(e, WeightsError::Truncated { .. }), "{e:?}");
    assert!(e.to_string().contains("truncated"));
    let e = load_err(&good[..100]);
    assert!(matches!(e, WeightsError::Truncated { .. }), "{e:?}");
    let e = load_err(b"\x80\x02}q\x00(X\x05\x00\x00\x00model");
    assert!(matches!(e, WeightsError::PyTorchPickle), "{e:?}");
    assert!(e.to_string().contains("save_file"), "the message says how to convert");
    let e = load_err(b"PK\x03\x04archive/data.pkl");
    assert!(matches!(e, WeightsError::PyTorchZip), "{e:?}");
    let e = load_err(&read("images/coffee.jpg"));
    assert!(matches!(e, WeightsError::NotSafetensors(_)), "{e:?}");
    assert!(matches!(load_err(b""), WeightsError::Empty));

    let missing = rewrite(|name, v| (name != "text_model.encoder.layers.1.mlp.fc2.bias").then(|| keep(v)).flatten());
    let e = load_err(&missing);
    assert_eq!(e.to_string(), "Tensor `text_model.encoder.layers.1.mlp.fc2.bias` is missing from the weights file.");

    let reshaped = rewrite(|name, v| {
        let (d, s, data) = keep(v)?;
        Some(if name == "vision_model.encoder.layers.0.self_attn.k_proj.weight" { (d, vec![32, 128], data) } else { (d, s, data) })
    });
    let e = load_err(&reshaped);
    assert!(
        matches!(&e, WeightsError::WrongShape { name, expected, found }
            if name == "vision_model.encoder.layers.0.self_attn.k_proj.weight" && expected == &[64, 64] && found == &[32, 128]),
        "{e:?}"
    );

    let ints = rewrite(|name, v| {
        let (d, s, data) = keep(v)?;
        Some(if name == "logit_scale" { (Dtype::I32, s, data) } else { (d, s, data) })
    });
    let e = load_err(&ints);
    assert!(matches!(&e, WeightsError::UnsupportedDtype { name, dtype } if name == "logit_scale" && dtype == "I32"), "{e:?}");

    let unrelated = rewrite(|name, v| name.starts_with("text_model").then(|| keep(v)).flatten());
    assert!(matches!(load_err(&unrelated), WeightsError::UnknownLayout(_)));
}

/// A header is untrusted: one declaring a terabyte tensor used to abort the process (the
/// allocator), offsets near 2^64 to overflow; both are errors now, before anything big exists.
#[test]
fn headers_declaring_impossible_sizes_are_errors_not_aborts() {
    let file = |json: &str| {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.extend_from_slice(&[0; 64]);
        bytes
    };
    let huge = file(r#"{"huge":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#);
    let e = load_err(&huge);
    assert!(matches!(e, WeightsError::Truncated { .. }), "{e:?}");
    let end = u64::MAX - 100;
    let wrapping = file(&format!(r#"{{"x":{{"dtype":"U8","shape":[{end}],"data_offsets":[0,{end}]}}}}"#));
    let e = load_err(&wrapping);
    assert!(matches!(e, WeightsError::NotSafetensors(_) | WeightsError::Truncated { .. }), "{e:?}");
    // A header length of 2^32 + 10 is not read as 10 (as a cast to a 32-bit usize would).
    let mut long = file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#);
    long[..8].copy_from_slice(&((1u64 << 32) + 10).to_le_bytes());
    assert!(matches!(load_err(&long), WeightsError::NotSafetensors(_)));
}

/// Sizes that cannot work used to panic deep inside the tokenizer, burn's gather or cubecl's
/// shape code; each is now refused at load, naming its tensor.
#[test]
fn impossible_dimensions_are_refused_naming_the_tensor() {
    // The tiny model with `name` cut to its first `rows` rows.
    let cut = |target: &'static str, rows: usize| {
        rewrite(move |name, v| {
            let (d, mut shape, data) = keep(v)?;
            if name != target {
                return Some((d, shape, data));
            }
            let row_bytes = data.len() / shape[0];
            shape[0] = rows;
            Some((d, shape, data[..rows * row_bytes].to_vec()))
        })
    };
    for (name, rows, what) in [
        ("text_model.embeddings.position_embedding.weight", 1, "a text context"),
        ("text_model.embeddings.position_embedding.weight", 0, "a text context"),
        ("text_model.embeddings.token_embedding.weight", 10, "a vocabulary"),
        ("vision_model.embeddings.position_embedding.weight", 1, "image positions"),
    ] {
        let e = load_err(&cut(name, rows));
        assert!(
            matches!(&e, WeightsError::ImpossibleDimension { name: n, what: w, value, .. } if n == name && *w == what && *value == rows),
            "{name} cut to {rows} rows: {e:?}"
        );
        assert!(e.to_string().starts_with(&format!("Tensor `{name}` gives the model {what} of {rows}")), "{e}");
    }
    let e = load_err(&cut("vision_model.encoder.layers.0.mlp.fc1.weight", 0));
    assert!(matches!(&e, WeightsError::ImpossibleDimension { what: "an MLP width", .. }), "{e:?}");
}

/// A NaN or infinity in the weights would make every output NaN without a word: refused at
/// load, naming the tensor.
#[test]
fn weights_holding_nan_or_infinity_are_refused_naming_the_tensor() {
    for bad in [f32::NAN, f32::INFINITY] {
        let poisoned = rewrite(|name, v| {
            let (d, s, mut data) = keep(v)?;
            if name == "text_model.encoder.layers.0.mlp.fc1.weight" {
                assert_eq!(d, Dtype::F32);
                data[8..12].copy_from_slice(&bad.to_le_bytes());
            }
            Some((d, s, data))
        });
        let e = load_err(&poisoned);
        assert!(matches!(&e, WeightsError::NotFinite(name) if name == "text_model.encoder.layers.0.mlp.fc1.weight"), "{e:?}");
        assert!(e.to_string().contains("NaN or infinite"), "{e}");
    }
}

/// f16 and bf16 checkpoints are upcast on load and give (nearly) the f32 model's embeddings.
#[test]
fn half_precision_weights_load() {
    let expected = json("tiny/expected.json");
    let pixels = npy_f32(&read("tiny/pixels/astronaut.npy"));
    let want = floats(&expected["image_embeds"][0]);
    for dtype in [Dtype::F16, Dtype::BF16] {
        let bytes = rewrite(|_, v| {
            let values = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()));
            let data: Vec<u8> = match dtype {
                Dtype::F16 => values.flat_map(|x| half::f16::from_f32(x).to_le_bytes()).collect(),
                _ => values.flat_map(|x| half::bf16::from_f32(x).to_le_bytes()).collect(),
            };
            Some((dtype, v.shape().to_vec(), data))
        });
        let model = ClipModel::from_bytes(&bytes, Some(&read("tiny/config.json")), &Device::flex()).unwrap();
        assert_eq!(model.info.dtypes, vec![format!("{dtype:?}")]);
        let mut got = fieldclip::clip::read(model.encode_images(&[pixels.clone()]).unwrap().embeds).unwrap();
        fieldclip::clip::normalize_rows(&mut got, 32);
        let cos = cosine(&got, &want);
        eprintln!("{dtype:?}: cosine to f32 reference {cos}");
        assert!(cos > 0.995, "{dtype:?}: {cos}");
    }
}

/// HF tensor shapes of a CLIP with the given towers.
fn hf_shapes(vision: (usize, usize, usize, usize), text: (usize, usize), proj: usize) -> HashMap<String, Vec<usize>> {
    let (vw, vl, patch, image) = vision;
    let (tw, tl) = text;
    let grid = image / patch;
    let mut m: HashMap<String, Vec<usize>> = HashMap::new();
    m.insert("vision_model.embeddings.patch_embedding.weight".into(), vec![vw, 3, patch, patch]);
    m.insert("vision_model.embeddings.class_embedding".into(), vec![vw]);
    m.insert("vision_model.embeddings.position_embedding.weight".into(), vec![grid * grid + 1, vw]);
    m.insert("text_model.embeddings.token_embedding.weight".into(), vec![49408, tw]);
    m.insert("text_model.embeddings.position_embedding.weight".into(), vec![77, tw]);
    m.insert("text_projection.weight".into(), vec![proj, tw]);
    m.insert("visual_projection.weight".into(), vec![proj, vw]);
    for (tower, w, layers) in [("vision_model", vw, vl), ("text_model", tw, tl)] {
        for i in 0..layers {
            m.insert(format!("{tower}.encoder.layers.{i}.self_attn.q_proj.weight"), vec![w, w]);
            m.insert(format!("{tower}.encoder.layers.{i}.mlp.fc1.weight"), vec![4 * w, w]);
        }
    }
    m
}

#[test]
fn architecture_of_vit_b32_b16_and_l14_from_shapes() {
    let b32 = weights::architecture(&hf_shapes((768, 12, 32, 224), (512, 12), 512), None).unwrap().1;
    assert_eq!(b32.name(), "ViT-B/32");
    assert_eq!(b32.parameter_count(), 151_277_313, "transformers' count for openai/clip-vit-base-patch32");
    assert_eq!((b32.vision.transformer.heads, b32.text.transformer.heads), (12, 8));
    let b16 = weights::architecture(&hf_shapes((768, 12, 16, 224), (512, 12), 512), None).unwrap().1;
    assert_eq!(b16.name(), "ViT-B/16");
    assert_eq!(b16.vision.num_positions(), 197);
    assert_eq!(b16.parameter_count(), 149_620_737, "transformers' count for openai/clip-vit-base-patch16");
    let l14 = weights::architecture(&hf_shapes((1024, 24, 14, 224), (768, 12), 768), None).unwrap().1;
    assert_eq!(l14.name(), "ViT-L/14");
    assert_eq!((l14.vision.transformer.heads, l14.text.transformer.heads), (16, 12));
    assert_eq!(l14.parameter_count(), 427_616_513, "transformers' count for openai/clip-vit-large-patch14");
    let l14_336 = weights::architecture(&hf_shapes((1024, 24, 14, 336), (768, 12), 768), None).unwrap().1;
    assert_eq!(l14_336.name(), "ViT-L/14@336px");
}

#[test]
fn open_clip_config_decides_heads_and_activation() {
    let model = ClipModel::from_bytes(
        &read("openclip_tiny/model.safetensors"),
        Some(&read("openclip_tiny/open_clip_config.json")),
        &Device::flex(),
    )
    .unwrap();
    let c = &model.info.config;
    assert_eq!(model.info.layout, Layout::OpenClip);
    assert_eq!((c.vision.transformer.heads, c.text.transformer.heads), (4, 4));
    assert_eq!(c.vision.transformer.activation, fieldclip::model::Activation::QuickGelu);
    assert_eq!((c.vision.image_size, c.vision.patch_size), (64, 16));
    assert_eq!(model.info.parameters, 1_762_593);
    // Without `quick_gelu` open_clip uses exact GELU.
    let config = String::from_utf8(read("openclip_tiny/open_clip_config.json")).unwrap().replace("\"quick_gelu\": true", "\"quick_gelu\": false");
    let gelu = weights::load(&read("openclip_tiny/model.safetensors"), Some(config.as_bytes())).unwrap();
    assert_eq!(gelu.info.config.text.transformer.activation, fieldclip::model::Activation::Gelu);
    let e = weights::load(&read("openclip_tiny/model.safetensors"), Some(b"{not json")).err().unwrap();
    assert!(matches!(e, WeightsError::BadConfig(_)), "{e:?}");
}

#[test]
fn label_list_and_template_errors() {
    use fieldclip::clip::Template;
    use fieldclip::session::LabelSet;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    assert!(matches!(Template::new("a photo"), Err(Error::TemplateWithoutPlaceholder(_))));
    let t = s(&["a photo of a {}."]);
    assert!(matches!(LabelSet::new(&[], &t), Err(Error::NoLabels)));
    assert!(matches!(LabelSet::new(&s(&["  "]), &t), Err(Error::NoLabels)));
    assert!(matches!(LabelSet::new(&s(&["oak"]), &[]), Err(Error::NoTemplates)));
    assert!(matches!(LabelSet::new(&s(&["oak"]), &s(&["  "])), Err(Error::NoTemplates)));
    assert!(matches!(LabelSet::new(&s(&["oak"]), &s(&["no placeholder"])), Err(Error::TemplateWithoutPlaceholder(_))));
    assert_eq!(LabelSet::new(&s(&["oak"]), &t).unwrap().prompts(), vec!["a photo of a oak."]);
}

/// ViT-B/32, ViT-B/16 and ViT-L/14 shapes load and run: one image and one text each, and a
/// heat-map on each one's patch grid.
#[test]
fn vit_b32_b16_and_l14_shapes_load_and_run() {
    for (name, vision, text_width, proj, heads) in [
        ("ViT-B/32", (768, 32, 224), 512, 512, (12, 8)),
        ("ViT-B/16", (768, 16, 224), 512, 512, (12, 8)),
        ("ViT-L/14", (1024, 14, 224), 768, 768, (16, 12)),
    ] {
        let bytes = checkpoints::random_hf_checkpoint(vision, text_width, proj);
        let model = ClipModel::from_bytes(&bytes, None, &Device::flex()).unwrap();
        let c = &model.info.config;
        assert_eq!((c.vision.transformer.width, c.vision.patch_size, c.text.transformer.width), (vision.0, vision.1, text_width), "{name}");
        assert_eq!(c.vision.num_positions(), (224 / vision.1).pow(2) + 1, "{name}");
        assert_eq!((c.vision.transformer.heads, c.text.transformer.heads), heads, "{name}");
        assert_eq!(model.preprocess.image_size, 224);
        let pixels = model.pixels(&read("images/coffee.jpg")).unwrap();
        let image = fieldclip::clip::read(model.encode_images(&[pixels.clone()]).unwrap().embeds).unwrap();
        // Heat-maps (#15) on each grid: 7×7, 14×14, 16×16 patches, each a unit vector, and the
        // image embedding of the same pass is the ordinary one.
        let mapped = model.encode_images_with_patches(&[pixels], fieldclip::model::MapVariant::CLEARCLIP).unwrap();
        let cells = 224 / vision.1;
        assert_eq!(mapped.grid, [cells, cells], "{name}");
        let patches = fieldclip::clip::read(mapped.patch_embeds).unwrap();
        assert_eq!(patches.len(), cells * cells * proj, "{name}");
        assert!(patches.chunks_exact(proj).all(|p| (p.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4), "{name}");
        let same = fieldclip::clip::read(mapped.image.embeds).unwrap();
        assert!(same.iter().zip(&image).all(|(a, b)| (a - b).abs() <= 1e-5), "{name}");
        let tokens = model.tokenize(&["a photo of a fern."]).unwrap();
        let text = fieldclip::clip::read(model.encode_tokens(&tokens).unwrap().embeds).unwrap();
        assert_eq!((image.len(), text.len()), (proj, proj), "{name}");
        assert!(image.iter().chain(&text).all(|v| v.is_finite()), "{name}");
    }
}
