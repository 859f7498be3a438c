//! `fieldclip pack`: a compact model pack (.fcpk) in f16 or int8.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use fieldclip::pack::{pack, PackDtype};

use crate::common::{read_file_as, resolve_weights, FileKind};

#[derive(Clone, Copy, ValueEnum)]
enum PackArg {
    /// Half precision: half the size
    F16,
    /// int8 matrices with a scale per output channel: about a quarter of the size
    Q8,
}

#[derive(Args)]
pub struct PackArgs {
    #[arg(long)]
    weights: PathBuf,
    #[arg(long, value_enum)]
    dtype: PackArg,
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: PackArgs) -> Result<ExitCode, String> {
    let PackArgs { weights, dtype, output } = args;
    let (file, config) = resolve_weights(&weights)?;
    let bytes = read_file_as(&file, FileKind::Weights)?;
    let config_bytes = config.as_deref().map(|c| read_file_as(c, FileKind::Config)).transpose()?;
    let dtype = match dtype {
        PackArg::F16 => PackDtype::F16,
        PackArg::Q8 => PackDtype::Q8,
    };
    let packed = pack(&bytes, config_bytes.as_deref(), dtype).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::write(&output, &packed).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let mb = |n: usize| n as f64 / 1e6;
    println!(
        "{}: {:.1} MB ({}), {:.0}% of {} ({:.1} MB)",
        output.display(),
        mb(packed.len()),
        dtype.name(),
        100.0 * packed.len() as f64 / bytes.len() as f64,
        file.display(),
        mb(bytes.len())
    );
    Ok(ExitCode::SUCCESS)
}
