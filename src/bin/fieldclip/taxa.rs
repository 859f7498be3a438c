//! `fieldclip classify --taxa FILE | --tree-of-life NPY`: photos against taxa, with the
//! probabilities rolled up each rank and the answer at the deepest rank that reaches the
//! threshold (`fieldclip::taxonomy`).

use std::path::Path;
use std::process::ExitCode;

use fieldclip::taxonomy::{self, Filter, TaxaResult, Taxon, TextFormat, RANKS};
use serde_json::{json, Value};

use crate::classify::{csv_field, set_resize, ClassifyArgs};
use crate::common::{err, image_embeddings, load, open_regular, read_file_as, FileKind};

pub fn run(args: ClassifyArgs) -> Result<ExitCode, String> {
    let format: TextFormat = args.text_format.parse().map_err(|e: taxonomy::TaxonomyError| e.to_string())?;
    if !(0.0..=1.0).contains(&args.rank_threshold) {
        return Err(format!("--rank-threshold must be between 0 and 1, not {}", args.rank_threshold));
    }
    let filter = match (&args.filter, &args.species_list) {
        (Some(name), _) => Some(Filter::Within(name.clone())),
        (None, Some(file)) => {
            let bytes = read_file_as(file, FileKind::Labels)?;
            let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", file.display()))?;
            let names = taxonomy::parse_species_list(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            Some(Filter::species(names))
        }
        (None, None) => None,
    };
    // How the filter is named in an error.
    let filter_name = match (&args.filter, &args.species_list) {
        (Some(name), _) => format!("--filter {name}"),
        (None, Some(file)) => format!("the species list {}", file.display()),
        (None, None) => String::new(),
    };
    // Taxa from a list (read before the slow model load, so a mistake shows at once).
    let listed: Option<Vec<Taxon>> = match &args.taxa {
        Some(file) => {
            let bytes = read_file_as(file, FileKind::Labels)?;
            let text = String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", file.display()))?;
            let taxa = taxonomy::parse_taxa(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let kept: Vec<Taxon> = taxa.into_iter().filter(|t| filter.as_ref().is_none_or(|f| f.keeps(t))).collect();
            if kept.is_empty() {
                return Err(format!("{}: no taxon matches {filter_name}", file.display()));
            }
            Some(kept)
        }
        None => None,
    };
    let mut session = load(&args.weights, args.backend)?;
    set_resize(&mut session, args.preprocess);
    match (listed, &args.tree_of_life) {
        (Some(taxa), _) => {
            let templates: Vec<String> = if args.template.is_empty() {
                taxonomy::OPENAI_TEMPLATES.iter().map(|t| t.to_string()).collect()
            } else {
                args.template.clone()
            };
            let update = pollster::block_on(session.set_taxa(taxa, format, &templates)).map_err(err)?;
            for dropped in &update.dropped {
                eprintln!("warning: {dropped}");
            }
        }
        (None, Some(npy)) => {
            let (taxa, embeds) = read_tree_of_life(npy, filter.as_ref())?;
            session.use_taxa_embeddings(taxa, embeds).map_err(err)?;
        }
        (None, None) => unreachable!("classify::run sends only --taxa or --tree-of-life here"),
    }
    eprintln!("{} taxa", session.labels().len());
    let taxa = session.taxa().expect("taxa were just set").to_vec();
    let mut failed = false;
    let mut rows: Vec<(String, Vec<(usize, f32)>, TaxaResult)> = Vec::new();
    for (path, result) in image_embeddings(&session, &args.images)? {
        match result {
            Ok(e) => {
                let result = session.classify_taxa(&e, args.rank_threshold).map_err(err)?;
                let top: Vec<(usize, f32)> = result.ranked.ranks[6].iter().take(args.top).map(|r| (r.index.unwrap(), r.probability)).collect();
                rows.push((path.display().to_string(), top, result));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if args.json {
        let out: Vec<Value> = rows.iter().map(|(path, _, r)| image_json(path, r)).collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
    } else if args.csv {
        println!("file,rank,label,probability,answer_rank,answer_name,answer_probability,kingdom,phylum,class,order,family,genus,species,common_name");
        for (file, top, r) in &rows {
            let (answer_rank, answer_name, answer_p) = match &r.answer {
                Some(a) => (a.rank.to_string(), a.name.clone(), format!("{:.6}", a.probability)),
                None => (String::new(), String::new(), String::new()),
            };
            for (rank, (i, p)) in top.iter().enumerate() {
                let t = &taxa[*i];
                let mut cells = vec![csv_field(file), (rank + 1).to_string(), csv_field(&t.name_at(6)), format!("{p:.6}")];
                cells.extend([answer_rank.clone(), csv_field(&answer_name), answer_p.clone()]);
                cells.extend(t.ranks.iter().map(|r| csv_field(r)));
                cells.push(csv_field(&t.common_name));
                println!("{}", cells.join(","));
            }
        }
    } else {
        for (file, top, r) in &rows {
            println!("{file}");
            match &r.answer {
                Some(a) if a.rank == "species" => println!("  answer: {} {:.0}%", a.name, a.probability * 100.0),
                Some(a) => println!("  answer: {} {} {:.0}% (species uncertain)", a.rank, a.name, a.probability * 100.0),
                None => println!("  answer: not sure at any rank (no taxon reaches {:.0}%)", args.rank_threshold * 100.0),
            }
            for (rank, (i, p)) in top.iter().enumerate() {
                let t = &taxa[*i];
                let common = if t.common_name.is_empty() { String::new() } else { format!(" ({})", t.common_name) };
                println!("  {}. {:<50} {:>6.2}%", rank + 1, format!("{}{common}", t.name_at(6)), p * 100.0);
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `{"path", "answer": {"rank", "name", "probability"} | null, "ranks": {rank: [{"name",
/// "probability"}…]}}`.
fn image_json(path: &str, r: &TaxaResult) -> Value {
    let ranks: serde_json::Map<String, Value> = RANKS
        .iter()
        .zip(&r.ranked.ranks)
        .map(|(rank, rows)| {
            let rows: Vec<Value> = rows.iter().map(|e| json!({"name": e.name, "probability": e.probability})).collect();
            (rank.to_string(), Value::Array(rows))
        })
        .collect();
    let answer = r.answer.as_ref().map(|a| json!({"rank": a.rank, "name": a.name, "probability": a.probability}));
    json!({"path": path, "answer": answer, "ranks": ranks})
}

/// The npy file streamed (only the kept columns held) and its names file next to it.
fn read_tree_of_life(npy: &Path, filter: Option<&Filter>) -> Result<(Vec<Taxon>, Vec<f32>), String> {
    let names_path = npy.with_extension("json");
    let names = read_file_as(&names_path, FileKind::Json)
        .map_err(|e| format!("{e} (the names file of {} must sit next to it)", npy.display()))?;
    let (file, _) = open_regular(npy)?;
    let tree = taxonomy::read_tree_of_life(std::io::BufReader::with_capacity(1 << 20, file), &names, filter)
        .map_err(|e| format!("{}: {e}", npy.display()))?;
    Ok((tree.taxa, tree.embeddings))
}
