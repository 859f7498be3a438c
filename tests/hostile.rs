//! The hostile corpus (`tests/hostile/corpus.rs`, issue #19) through the CLI: every case ends as
//! its `Expect` says (exit code and message), the good files next to it are still classified,
//! and no run takes more than 30 s or 1 GB. A panic (exit 101), a hang or a crash fails.
#![cfg(unix)]

#[path = "hostile/corpus.rs"]
mod corpus;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use corpus::{Case, Expect, Kind};
use serde_json::Value;

const TIME_LIMIT: Duration = Duration::from_secs(30);
const MEMORY_LIMIT_BYTES: u64 = 1 << 30;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The corpus, made once per test run.
fn corpus() -> &'static (PathBuf, Vec<Case>) {
    static CORPUS: OnceLock<(PathBuf, Vec<Case>)> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-corpus");
        let _ = std::fs::remove_dir_all(&dir);
        let cases = corpus::make(&dir, &corpus::Model::tiny(&repo()));
        (dir, cases)
    })
}

fn cases(kind: Kind) -> Vec<Case> {
    corpus().1.iter().filter(|c| c.kind == kind).cloned().collect()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    peak_bytes: u64,
    took: Duration,
}

/// Runs the CLI with a deadline, measuring its peak memory (`wait4`'s maximum resident size).
fn fieldclip(args: &[&str], name: &str) -> Run {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-runs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let (out_path, err_path) = (out_dir.join(format!("{name}.out")), out_dir.join(format!("{name}.err")));
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldclip"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run fieldclip");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(done >= 0, "wait4 failed");
        if done == pid {
            break;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            panic!("{name}: fieldclip {args:?} ran past {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -libc::WTERMSIG(status) };
    let run = Run {
        code,
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
        peak_bytes: usage.ru_maxrss as u64 * 1024,
        took: start.elapsed(),
    };
    assert!(!run.stderr.contains("panicked"), "{name}: fieldclip panicked:\n{}", run.stderr);
    assert!(run.code >= 0 && run.code != 101, "{name}: fieldclip crashed (code {}):\n{}", run.code, run.stderr);
    assert!(run.peak_bytes <= MEMORY_LIMIT_BYTES, "{name}: peak memory {} MB", run.peak_bytes >> 20);
    run
}

fn path_of(case: &Case) -> String {
    corpus().0.join(&case.file).to_str().unwrap().to_string()
}

const TINY: &str = "tests/data/tiny";
const GOOD_BEFORE: &str = "tests/data/images/coffee.jpg";
const GOOD_AFTER: &str = "tests/data/images/chelsea_small.png";

/// The classify JSON: (path, probabilities) per photo.
fn classified(stdout: &str) -> Vec<(String, Vec<f64>)> {
    let v: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let probs = r["predictions"].as_array().unwrap().iter().map(|p| p["probability"].as_f64().unwrap()).collect();
            (r["path"].as_str().unwrap().to_string(), probs)
        })
        .collect()
}

fn assert_sane_probabilities(name: &str, probs: &[f64]) {
    assert!(probs.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)), "{name}: {probs:?}");
}

/// Whether `run` refused `case` as it should (exit `code`, the file named, the message); the
/// reason when not, so that one test run lists every case that is off.
fn refusal_problem(case: &Case, run: &Run, code: i32) -> Option<String> {
    let Expect::Refused(message) = &case.expect else { unreachable!() };
    let named = run.stderr.contains(&case.file);
    (run.code != code || !named || !run.stderr.contains(message.as_str())).then(|| {
        format!(
            "{} ({}): expected exit {code} naming the file and saying `{message}`; got exit {}:\n{}",
            case.file, case.what, run.code, run.stderr
        )
    })
}

fn assert_no_problems(problems: &[String]) {
    assert!(problems.is_empty(), "{} cases are off:\n\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_hostile_image_fails_alone_and_the_photos_around_it_are_classified() {
    let images = cases(Kind::Image);
    assert!(images.len() >= 30, "the corpus holds {} images", images.len());
    let mut problems = Vec::new();
    for case in &images {
        let path = path_of(case);
        let args = ["classify", "--weights", TINY, "--label", "cat", "--label", "dog", "--json", GOOD_BEFORE, &path, GOOD_AFTER];
        let run = fieldclip(&args, &case.file);
        let rows = classified(&run.stdout);
        for (name, probs) in &rows {
            assert_sane_probabilities(name, probs);
            assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{name}: {probs:?}");
        }
        let paths: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
        match &case.expect {
            Expect::Accepted => {
                if run.code != 0 || paths != [GOOD_BEFORE, path.as_str(), GOOD_AFTER] {
                    problems.push(format!("{} ({}) should be classified; stderr:\n{}", case.file, case.what, run.stderr));
                }
            }
            Expect::Refused(_) => {
                problems.extend(refusal_problem(case, &run, 1));
                assert_eq!(paths, [GOOD_BEFORE, GOOD_AFTER], "{}: the good photos around it", case.file);
            }
        }
        eprintln!("{:<34} {:>5} ms {:>5} MB", case.file, run.took.as_millis(), run.peak_bytes >> 20);
    }
    assert_no_problems(&problems);
}

#[test]
fn a_batch_of_every_hostile_image_classifies_exactly_the_good_ones() {
    let images = cases(Kind::Image);
    let paths: Vec<String> = images.iter().map(path_of).collect();
    let mut args = vec!["classify", "--weights", TINY, "--label", "cat", "--label", "dog", "--json", GOOD_BEFORE];
    args.extend(paths.iter().map(String::as_str));
    args.push(GOOD_AFTER);
    let run = fieldclip(&args, "all-images");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let got: Vec<String> = classified(&run.stdout).into_iter().map(|(p, _)| p).collect();
    let mut want = vec![GOOD_BEFORE.to_string()];
    want.extend(images.iter().filter(|c| c.expect == Expect::Accepted).map(path_of));
    want.push(GOOD_AFTER.to_string());
    assert_eq!(got, want);
    let refused = images.iter().filter(|c| c.expect != Expect::Accepted).count();
    assert_eq!(run.stderr.lines().filter(|l| l.starts_with("error: ")).count(), refused, "one error line per refused file:\n{}", run.stderr);
}

#[test]
fn every_hostile_weights_file_is_refused_with_a_reason() {
    let weights = cases(Kind::Weights);
    assert!(weights.len() >= 10);
    let mut problems = Vec::new();
    for case in &weights {
        let path = path_of(case);
        let run = fieldclip(&["classify", "--weights", &path, "--label", "cat", GOOD_BEFORE], &case.file);
        problems.extend(refusal_problem(case, &run, 2));
        eprintln!("{:<34} {:>5} ms {:>5} MB  {}", case.file, run.took.as_millis(), run.peak_bytes >> 20, run.stderr.trim());
    }
    // A link to a device and a FIFO as the weights.
    for file in ["dev-zero.jpg", "fifo.jpg"] {
        let path = corpus().0.join(file);
        let run = fieldclip(&["classify", "--weights", path.to_str().unwrap(), "--label", "cat", GOOD_BEFORE], file);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    }
    assert_no_problems(&problems);
}

#[test]
fn every_hostile_label_list_is_used_or_refused_as_a_whole() {
    let mut problems = Vec::new();
    for case in &cases(Kind::Labels) {
        let path = path_of(case);
        let run = fieldclip(&["classify", "--weights", TINY, "--labels", &path, "--json", GOOD_BEFORE], &case.file);
        match &case.expect {
            Expect::Accepted => {
                assert_eq!(run.code, 0, "{}: {}", case.file, run.stderr);
                let rows = classified(&run.stdout);
                assert_eq!(rows.len(), 1);
                assert_sane_probabilities(&case.file, &rows[0].1);
            }
            Expect::Refused(_) => problems.extend(refusal_problem(case, &run, 2)),
        }
        eprintln!("{:<34} {:>5} ms {:>5} MB", case.file, run.took.as_millis(), run.peak_bytes >> 20);
    }
    assert_no_problems(&problems);
    // What the odd lists turn into: labels as written (HTML is text), BOM and CR gone.
    let labels_of = |file: &str| -> Vec<String> {
        let path = corpus().0.join(file);
        let run = fieldclip(&["classify", "--weights", TINY, "--labels", path.to_str().unwrap(), "--json", GOOD_BEFORE], file);
        let v: Value = serde_json::from_str(&run.stdout).unwrap();
        let mut labels: Vec<String> =
            v[0]["predictions"].as_array().unwrap().iter().map(|p| p["label"].as_str().unwrap().to_string()).collect();
        labels.sort();
        labels
    };
    assert_eq!(labels_of("labels-crlf-bom.txt"), ["cat", "dog"]);
    assert_eq!(labels_of("labels-html.txt"), ["<img src=x onerror=alert(1)>", "<script>alert('x')</script>", "cat"]);
    assert_eq!(labels_of("labels-nul.txt"), ["cat\0tabby", "dog\0"]);
}

#[test]
fn every_hostile_adapter_and_gallery_is_used_or_refused() {
    let mut problems = Vec::new();
    for case in &cases(Kind::Adapter) {
        let path = path_of(case);
        let run = fieldclip(&["classify", "--weights", TINY, "--adapter", &path, "--json", GOOD_BEFORE], &case.file);
        match &case.expect {
            Expect::Accepted => {
                assert_eq!(run.code, 0, "{}: {}", case.file, run.stderr);
                assert_sane_probabilities(&case.file, &classified(&run.stdout)[0].1);
            }
            Expect::Refused(_) => problems.extend(refusal_problem(case, &run, 2)),
        }
        eprintln!("{:<34} {:>5} ms {:>5} MB  {}", case.file, run.took.as_millis(), run.peak_bytes >> 20, run.stderr.trim());
    }
    for case in &cases(Kind::Gallery) {
        let path = path_of(case);
        let run = fieldclip(&["search", "--index", &path, "--weights", TINY, "--text", "a cat", "--json"], &case.file);
        match &case.expect {
            Expect::Accepted => {
                assert_eq!(run.code, 0, "{}: {}", case.file, run.stderr);
                let hits: Value = serde_json::from_str(&run.stdout).unwrap();
                assert_eq!(hits.as_array().unwrap().len(), 3, "{}", run.stdout);
            }
            Expect::Refused(_) => problems.extend(refusal_problem(case, &run, 2)),
        }
        eprintln!("{:<34} {:>5} ms {:>5} MB  {}", case.file, run.took.as_millis(), run.peak_bytes >> 20, run.stderr.trim());
    }
    assert_no_problems(&problems);
}
