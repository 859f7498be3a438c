//! `fieldclip bench`: how fast this machine embeds photos and prompts with a model, on the CPU
//! or the GPU, so a user can see what a device gives before choosing it (and so a GPU can be
//! measured where there is no browser, #18). Speed does not depend on the pixel values, so the
//! photos are synthetic; the prompts are 30 fixed biology labels, cycled to `--prompts`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use fieldclip::clip::{read, BENCH_PROMPTS};
use serde_json::json;

use crate::common::{err, load, Backend};



#[derive(Args)]
pub struct BenchArgs {
    /// The model: a weights file or a folder holding one
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: Backend,
    /// Image batch sizes to time (comma-separated; `--batch` with none: no images)
    #[arg(long, value_delimiter = ',', default_value = "1,8", num_args = 0..)]
    batch: Vec<usize>,
    /// Prompts in the text batch (0: no text)
    #[arg(long, default_value_t = 30)]
    prompts: usize,
    /// Timed runs per case (after the warm-ups); the table gives their median and minimum
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Untimed runs per case before timing (the first call compiles the GPU's kernels)
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

struct Row {
    case: String,
    first_ms: f64,
    median_ms: f64,
    min_ms: f64,
    items: usize,
}

/// Times `f` (each call ends with the result read back to the CPU, as an app needs it).
fn time(runs: usize, warmup: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<(f64, f64, f64), String> {
    let start = Instant::now();
    f()?;
    let first = start.elapsed().as_secs_f64() * 1000.0;
    for _ in 1..warmup.max(1) {
        f()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let median = if n % 2 == 1 { times[n / 2] } else { (times[n / 2 - 1] + times[n / 2]) / 2.0 };
    Ok((first, median, times[0]))
}

pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    let BenchArgs { weights, backend, batch, prompts, runs, warmup, json } = args;
    if batch.contains(&0) {
        return Err("--batch sizes must be at least 1".into());
    }
    if batch.is_empty() && prompts == 0 {
        return Err("nothing to time: give --batch sizes or --prompts".into());
    }
    let start = Instant::now();
    let session = load(&weights, backend)?;
    let load_ms = start.elapsed().as_secs_f64() * 1000.0;
    let model = session.model();
    let size = model.preprocess.image_size;
    // A deterministic, photo-like range of values (normalised pixels lie in about −2..2).
    let photo = |seed: usize| -> Vec<f32> {
        (0..3 * size * size).map(|i| (((i * 7919 + seed * 104_729) % 4001) as f32 / 1000.0) - 2.0).collect()
    };
    let largest = batch.iter().copied().max().unwrap_or(0);
    let pixels: Vec<Vec<f32>> = (0..largest).map(photo).collect();

    let mut rows = Vec::new();
    for &n in &batch {
        let (first_ms, median_ms, min_ms) =
            time(runs, warmup, || read(model.encode_images(&pixels[..n]).map_err(err)?.embeds).map(drop).map_err(err))?;
        rows.push(Row { case: format!("image batch {n}"), first_ms, median_ms, min_ms, items: n });
    }
    let mut longest = 0;
    let mut prompt_ids = Vec::new();
    if prompts > 0 {
        let texts: Vec<&str> = BENCH_PROMPTS.iter().copied().cycle().take(prompts).collect();
        let tokens = model.tokenize(&texts).map_err(err)?;
        longest = tokens.iter().map(|t| t.eot_index + 1).max().unwrap_or(0);
        prompt_ids = tokens.iter().map(|t| t.ids.clone()).collect();
        let (first_ms, median_ms, min_ms) =
            time(runs, warmup, || read(model.encode_tokens(&tokens).map_err(err)?.embeds).map(drop).map_err(err))?;
        rows.push(Row { case: format!("{prompts} prompts"), first_ms, median_ms, min_ms, items: prompts });
    }

    let backend_name = match backend {
        Backend::Cpu => "cpu",
        Backend::Wgpu => "wgpu",
    };
    // A build with debug assertions (cargo's dev profile) is slower on the CPU side; say which ran.
    let build = if cfg!(debug_assertions) { "dev" } else { "release" };
    if json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| json!({"case": r.case, "first_ms": r.first_ms, "median_ms": r.median_ms, "min_ms": r.min_ms, "items": r.items}))
            .collect();
        let out = json!({
            "model": model.info.name, "backend": backend_name, "build": build, "load_ms": load_ms, "runs": runs, "warmup": warmup,
            "longest_prompt_tokens": longest, "rows": rows,
            // The prompts' token ids (padded to the context), to time another engine on the same.
            "prompt_ids": prompt_ids,
        });
        println!("{out}");
    } else {
        println!(
            "{} on {backend_name} ({build} build): loaded in {load_ms:.0} ms; medians of {runs} runs after {warmup} warm-ups, results read back",
            model.info.name
        );
        println!("| case | first call | median | min | median per item |");
        println!("| --- | --- | --- | --- | --- |");
        for r in &rows {
            println!(
                "| {} | {:.1} ms | {:.2} ms | {:.2} ms | {:.3} ms |",
                r.case,
                r.first_ms,
                r.median_ms,
                r.min_ms,
                r.median_ms / r.items as f64
            );
        }
        if longest > 0 {
            println!("prompts cut to the batch's longest end-of-text: {longest} tokens");
        }
    }
    Ok(ExitCode::SUCCESS)
}
