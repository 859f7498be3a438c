//! `fieldclip explain`: where each label matches each photo — a cosine per patch (#15,
//! ClearCLIP's dense features, see `fieldclip::model::patches`), as JSON, as PNG overlays, or
//! drawn in the terminal.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use fieldclip::heatmap::{self, LabelMap, PatchEmbeddings};
use fieldclip::model::MapVariant;
use fieldclip::session::LabelSet;
use serde_json::json;

use crate::classify::{set_resize, Resize};
use crate::common::{err, load, read_file_as, Backend, FileKind, DEFAULT_TEMPLATE};

#[derive(Args)]
pub struct ExplainArgs {
    /// A .safetensors file, or a folder holding model.safetensors (+ config file)
    #[arg(long)]
    weights: PathBuf,
    /// A photo (repeat for several)
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    /// A label to map (repeat for several); its prompts are made with --template and averaged
    #[arg(long, required_unless_present = "text", conflicts_with = "text")]
    label: Vec<String>,
    /// Prompt template with `{}` for the label (repeat to ensemble) [default: `a photo of a {}.`]
    #[arg(long, requires = "label")]
    template: Vec<String>,
    /// A text to map, used as the prompt as it is (repeat for several)
    #[arg(long)]
    text: Vec<String>,
    /// How the last block attends: clearclip (ClearCLIP, no residual), maskclip, sclip, vanilla
    /// (ClearCLIP's forms), or plain (CLIP's own patch tokens)
    #[arg(long, default_value = "clearclip", value_parser = parse_variant)]
    variant: MapVariant,
    /// Print {"variant", "images": [{"path", "grid", "maps": [{"text", "cosine"}]}]}
    #[arg(long, conflicts_with = "out")]
    json: bool,
    /// Write one PNG per photo and label into this folder: the photo as the model saw it with
    /// the map over it
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// How strongly the map covers the photo in the PNGs (0 to 1)
    #[arg(long, default_value_t = 0.5)]
    opacity: f32,
    /// How photos are resized: crop or squash [default: the model's]
    #[arg(long)]
    preprocess: Option<Resize>,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
}

fn parse_variant(name: &str) -> Result<MapVariant, String> {
    MapVariant::parse(name).ok_or_else(|| format!("unknown variant `{name}`: use clearclip, maskclip, sclip, vanilla or plain"))
}

pub fn run(args: ExplainArgs) -> Result<ExitCode, String> {
    if !(0.0..=1.0).contains(&args.opacity) {
        return Err(format!("--opacity must be between 0 and 1, not {}", args.opacity));
    }
    // Label mistakes are found before the slow model load.
    let labels = if args.label.is_empty() {
        None
    } else {
        let templates = if args.template.is_empty() { vec![DEFAULT_TEMPLATE.to_string()] } else { args.template.clone() };
        let set = LabelSet::new(&args.label, &templates).map_err(err)?;
        for dropped in &set.dropped {
            eprintln!("warning: {dropped}");
        }
        Some(set)
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    }
    let mut session = load(&args.weights, args.backend)?;
    set_resize(&mut session, args.preprocess);
    // (name, normalised text embedding) of each map.
    let texts: Vec<(String, Vec<f32>)> = match labels {
        Some(set) => {
            pollster::block_on(session.set_labels(set)).map_err(err)?;
            session.labels().iter().map(|l| Ok((l.clone(), session.label_embedding(l).map_err(err)?.to_vec()))).collect::<Result<_, String>>()?
        }
        None => {
            let embeds = pollster::block_on(session.embed_texts(&args.text)).map_err(err)?;
            args.text.iter().cloned().zip(embeds.chunks_exact(session.dim()).map(<[f32]>::to_vec)).collect()
        }
    };

    let mut failed = false;
    let mut written = HashSet::new();
    let mut images_json = Vec::new();
    for path in &args.images {
        let explained = read_file_as(path, FileKind::Image).and_then(|bytes| {
            let pixels = session.model().pixels(&bytes).map_err(err)?;
            let patches = pollster::block_on(session.embed_pixels_with_patches(&[pixels.clone()], args.variant)).map_err(err)?;
            Ok((pixels, patches.into_iter().next().map(|(_, p)| p).ok_or("no output")?))
        });
        let (pixels, patches) = match explained {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let maps: Vec<LabelMap> = texts.iter().map(|(t, e)| LabelMap { text: t.clone(), cosine: patches.cosine(e) }).collect();
        if args.json {
            let maps: Vec<_> = maps.iter().map(|m| json!({"text": m.text, "cosine": m.cosine})).collect();
            images_json.push(json!({"path": path.display().to_string(), "grid": patches.grid, "maps": maps}));
        } else if let Some(dir) = &args.out {
            let photo = heatmap::model_view(&pixels, &session.model().preprocess);
            for map in &maps {
                let file = unique_name(dir, path, &map.text, &mut written);
                heatmap::overlay(&photo, &map.cosine, patches.grid, args.opacity)
                    .save(&file)
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                let (lo, hi) = heatmap::range(&map.cosine);
                println!("{}  ({}: cosine {lo:.3} … {hi:.3})", file.display(), map.text);
            }
        } else {
            print_maps(path, &patches, &maps);
        }
    }
    if args.json {
        let out = json!({"variant": args.variant.name(), "images": images_json});
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `<photo stem>-<label>.png` in `dir`, made unique within this run.
fn unique_name(dir: &Path, photo: &Path, label: &str, written: &mut HashSet<PathBuf>) -> PathBuf {
    let slug = |s: &str| -> String {
        let s: String = s.chars().map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let s = s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
        s.chars().take(60).collect()
    };
    let stem = slug(&photo.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let base = format!("{stem}-{}", slug(label));
    let mut file = dir.join(format!("{base}.png"));
    let mut n = 2;
    while !written.insert(file.clone()) {
        file = dir.join(format!("{base}-{n}.png"));
        n += 1;
    }
    file
}

/// Each map as a grid of shades in the terminal, darkest = least similar, with its range.
fn print_maps(path: &Path, patches: &PatchEmbeddings, maps: &[LabelMap]) {
    const SHADES: [char; 5] = [' ', '░', '▒', '▓', '█'];
    let [rows, cols] = patches.grid;
    println!("{}", path.display());
    for map in maps {
        let (lo, hi) = heatmap::range(&map.cosine);
        println!("  {}  (cosine {lo:.3} … {hi:.3}, {rows}×{cols} patches)", map.text);
        let span = if hi > lo { hi - lo } else { 1.0 };
        for r in 0..rows {
            let line: String = (0..cols)
                .map(|c| SHADES[(((map.cosine[r * cols + c] - lo) / span) * 4.0).round() as usize].to_string().repeat(2))
                .collect();
            println!("    {line}");
        }
    }
}
