//! `cargo bench --bench taxa`: one photo's embedding against a tree-of-life-sized list of taxa
//! (100,000, 512-dimensional, as BioCLIP's): logits, softmax, the roll-up of every rank and the
//! answer, as `Session::classify_taxa` runs them. Medians over 20 runs after 3 warm-ups. The
//! browser's number: bench.html?suite=taxa (`node benches/web/run.mjs taxa`).

use std::time::Instant;

use fieldclip::clip::{normalize_rows, softmax, zero_shot_logits};
use fieldclip::taxonomy::{synthetic_taxa, TaxonIndex};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (n, dim) = (100_000, 512);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2001) as f32 / 1000.0 - 1.0
    };
    let mut embeddings: Vec<f32> = (0..n * dim).map(|_| next()).collect();
    normalize_rows(&mut embeddings, dim);
    let mut image: Vec<f32> = (0..dim).map(|_| next()).collect();
    normalize_rows(&mut image, dim);
    let start = Instant::now();
    let index = TaxonIndex::new(synthetic_taxa(n));
    let build = start.elapsed().as_secs_f64() * 1000.0;
    let mut times: Vec<f64> = Vec::new();
    for run in 0..23 {
        let start = Instant::now();
        let probs = softmax(&zero_shot_logits(&image, &embeddings, 100.0));
        let result = index.classify(&probs, 0.8);
        std::hint::black_box(result);
        if run >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let part = |f: &mut dyn FnMut()| {
        let mut t: Vec<f64> = (0..13).map(|_| { let s = Instant::now(); f(); s.elapsed().as_secs_f64() * 1000.0 }).collect();
        t.sort_by(f64::total_cmp);
        t[6]
    };
    let logits = zero_shot_logits(&image, &embeddings, 100.0);
    let probs = softmax(&logits);
    let dots = part(&mut || drop(std::hint::black_box(zero_shot_logits(&image, &embeddings, 100.0))));
    let soft = part(&mut || drop(std::hint::black_box(softmax(&logits))));
    let roll = part(&mut || drop(std::hint::black_box(index.classify(&probs, 0.8))));
    println!("(of which: {dots:.1} ms dot products, {soft:.1} ms softmax, {roll:.1} ms roll-up and answer)");
    times.sort_by(f64::total_cmp);
    println!("| one photo against {n} taxa ({dim}-d), native CPU, 1 thread | median {:.1} ms | min {:.1} ms |", times[10], times[0]);
    println!("(grouping the taxa once, when the list is loaded: {build:.0} ms)");
}
