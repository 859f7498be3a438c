//! Where a label matches a photo: patch embeddings (from `model::patches`) against text
//! embeddings give one cosine per patch; this module holds those maps and draws them over the
//! photo for the CLI (the page draws its own, with the same colour table).
//!
//! A map is a similarity, not a cause: it shows which patches' embeddings lie close to the
//! label's, at the model's patch grid (7×7 on ViT-B/32, so coarse).

use image::{Rgb, RgbImage};
use serde::Serialize;

use crate::clip::Prediction;
use crate::preprocess::PreprocessConfig;

/// One image's L2-normalised patch embeddings, row-major over `grid`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchEmbeddings {
    /// `[rows, cols]`.
    pub grid: [usize; 2],
    pub dim: usize,
    /// `[rows·cols, dim]`.
    pub values: Vec<f32>,
}

impl PatchEmbeddings {
    /// The cosine between each patch and one L2-normalised text embedding of the same size.
    pub fn cosine(&self, text: &[f32]) -> Vec<f32> {
        debug_assert_eq!(text.len(), self.dim);
        self.values.chunks_exact(self.dim).map(|p| p.iter().zip(text).map(|(a, b)| a * b).sum()).collect()
    }
}

/// One label's (or text's) map: a cosine per patch, row-major.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMap {
    /// The label (or text) as given.
    pub text: String,
    pub cosine: Vec<f32>,
}

/// A photo classified and mapped in one pass: the predictions as `Session::classify` gives
/// them, and a map for each label asked about.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The variant's name (`MapVariant::name`).
    pub variant: String,
    pub grid: [usize; 2],
    pub predictions: Vec<Prediction>,
    pub maps: Vec<LabelMap>,
    /// The photo's normalised image embedding (for taxa, galleries).
    #[serde(skip)]
    pub embedding: Vec<f32>,
}

/// `map` (`grid`, row-major) resized to `width × height` bilinearly with the cell centres at
/// `(i + 0.5)·scale` and edges clamped (PyTorch's `interpolate(…, 'bilinear',
/// align_corners=False)`, what ClearCLIP upsamples with).
pub fn upsample_bilinear(map: &[f32], grid: [usize; 2], width: usize, height: usize) -> Vec<f32> {
    let [rows, cols] = grid;
    assert_eq!(map.len(), rows * cols, "a map has one value per cell of its grid");
    let source = |out: usize, cells: usize, size: usize| -> (usize, usize, f32) {
        let x = ((out as f32 + 0.5) * cells as f32 / size as f32 - 0.5).max(0.0);
        let i0 = (x.floor() as usize).min(cells - 1);
        let i1 = (i0 + 1).min(cells - 1);
        (i0, i1, x - i0 as f32)
    };
    let xs: Vec<_> = (0..width).map(|x| source(x, cols, width)).collect();
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let (r0, r1, fy) = source(y, rows, height);
        for &(c0, c1, fx) in &xs {
            let top = map[r0 * cols + c0] * (1.0 - fx) + map[r0 * cols + c1] * fx;
            let bottom = map[r1 * cols + c0] * (1.0 - fx) + map[r1 * cols + c1] * fx;
            out.push(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Viridis (perceptually uniform, readable in grey and by most colour-blind readers) at
/// `t ∈ [0, 1]`.
pub fn colour(t: f32) -> [u8; 3] {
    let c = colorous::VIRIDIS.eval_continuous(f64::from(t.clamp(0.0, 1.0)));
    [c.r, c.g, c.b]
}

/// The colour map as 256 RGB triples (768 bytes), for the page to draw with.
pub fn colour_table() -> Vec<u8> {
    (0..256).flat_map(|i| colour(i as f32 / 255.0)).collect()
}

/// The smallest and largest value of a map (the legend's range).
pub fn range(map: &[f32]) -> (f32, f32) {
    map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// The preprocessed photo as the model saw it: normalised pixels (`3·S·S`, channel-major)
/// turned back into colours.
pub fn model_view(pixels: &[f32], config: &PreprocessConfig) -> RgbImage {
    let s = config.image_size;
    RgbImage::from_fn(s as u32, s as u32, |x, y| {
        let at = y as usize * s + x as usize;
        let channel = |c: usize| ((pixels[c * s * s + at] * config.std[c] + config.mean[c]) * 255.0).round().clamp(0.0, 255.0) as u8;
        Rgb([channel(0), channel(1), channel(2)])
    })
}

/// `photo` with `map` on top: upsampled bilinearly to the photo, scaled to its own min–max,
/// coloured, and blended with `opacity` (0: the photo only, 1: the map only).
pub fn overlay(photo: &RgbImage, map: &[f32], grid: [usize; 2], opacity: f32) -> RgbImage {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let values = upsample_bilinear(map, grid, w, h);
    let (lo, hi) = range(map);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let a = opacity.clamp(0.0, 1.0);
    let mut out = photo.clone();
    for (pixel, v) in out.pixels_mut().zip(values) {
        let c = colour((v - lo) / span);
        for i in 0..3 {
            pixel[i] = (f32::from(pixel[i]) * (1.0 - a) + f32::from(c[i]) * a).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_matches_align_corners_false() {
        // 2×2 → 4×4 as torch.nn.functional.interpolate(mode="bilinear", align_corners=False).
        let up = upsample_bilinear(&[0.0, 1.0, 2.0, 3.0], [2, 2], 4, 4);
        let expected = [0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0];
        for (a, b) in up.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{up:?}");
        }
    }

    #[test]
    fn viridis_ends() {
        assert_eq!(colour(0.0), [68, 1, 84]);
        assert_eq!(colour(1.0), [253, 231, 37]);
        assert_eq!(colour_table().len(), 768);
    }
}
