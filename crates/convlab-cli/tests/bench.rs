//! `convlab bench` runs its suites and prints what the comparison scripts
//! read: one JSON object per case and pass. Timings are printed, never
//! asserted (they belong to BENCHMARKS.md, not to tests).

use std::path::PathBuf;
use std::process::Command;

/// Runs `convlab bench ARGS --json --reps 2` and returns the parsed lines.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_convlab"))
        .arg("bench")
        .args(args)
        .args(["--json", "--reps", "2", "--threads", "2"])
        .output()
        .expect("run convlab");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn names_and_passes(lines: &[serde_json::Value]) -> Vec<(String, String)> {
    for l in lines {
        let ms = l["median_ms"].as_f64().expect("median_ms is a number");
        assert!(ms.is_finite() && ms > 0.0, "{l}");
    }
    lines
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().to_string(),
                l["pass"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn bundled_suite_case_both_passes() {
    let lines = bench(&["--filter", "d2l_edge"]);
    assert_eq!(
        names_and_passes(&lines),
        [("d2l_edge_1x2", "fwd"), ("d2l_edge_1x2", "bwd")].map(|(a, b)| (a.into(), b.into()))
    );
}

/// The separable filters' suite (Gaussian weights), one pass.
#[test]
fn separable_suite_runs() {
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/separable.json");
    let suite = suite.display().to_string();
    let lines = bench(&["--suite", &suite, "--filter", "dw_gauss", "--pass", "fwd"]);
    assert_eq!(
        names_and_passes(&lines),
        [("dw_gauss_5x5".to_string(), "fwd".to_string())]
    );
}
