//! The proptest twin of the cargo-fuzz target `pth` (fuzz/fuzz_targets/pth.rs):
//! it runs on stable in `cargo test` and in `fuzz/smoke.sh` without nightly.
//! Inputs are mutations of the torch.save files in tests/fixtures/pth/: of
//! the whole file (most fail a CRC or the zip structure), and of the pickle
//! alone, re-wrapped in an archive with the file's own storages and correct
//! CRCs, so the mutations reach the unpickler and the tensor checks.
//!
//! Never a panic, every error one line, and never an allocation larger than
//! the memory limit: a counting allocator records the largest request.

#[path = "pth_builder/mod.rs"]
mod builder;
mod common;

use convlab::io::{pth_from_bytes, pth_key_from_bytes, tensors_from_bytes};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Well above what the fixtures need (at most a few thousand values) and
/// below what a hostile size would ask for.
const LIMIT: usize = 1 << 20;

/// The largest single allocation this process has asked for.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new_size` is the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A fixture's bytes, its data.pkl, and its storages as (key, bytes).
struct Parts {
    file: Vec<u8>,
    pickle: Vec<u8>,
    storages: Vec<(String, Vec<u8>)>,
}

fn fixtures() -> &'static [Parts] {
    static ALL: OnceLock<Vec<Parts>> = OnceLock::new();
    ALL.get_or_init(|| {
        [
            "conv_bn_linear_f32.pt",
            "conv_bn_linear_bf16.pt",
            "protocol4.pt",
            "views.pt",
            "checkpoint.pt",
        ]
        .iter()
        .map(|f| parts(&std::fs::read(common::fixture_dir().join("pth").join(f)).unwrap()))
        .collect()
    })
}

fn parts(file: &[u8]) -> Parts {
    let mut zip = zip::ZipArchive::new(Cursor::new(file)).unwrap();
    let (mut pickle, mut storages) = (Vec::new(), Vec::new());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let rest = name.split_once('/').unwrap().1.to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if rest == "data.pkl" {
            pickle = data;
        } else if let Some(key) = rest.strip_prefix("data/") {
            storages.push((key.to_string(), data));
        }
    }
    Parts {
        file: file.to_vec(),
        pickle,
        storages,
    }
}

/// Reads `bytes` every way the public API can; panics and multi-line
/// errors fail the case, as does an allocation over the limit.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    convlab::memory::set_max_bytes(LIMIT);
    let r = catch_unwind(AssertUnwindSafe(|| {
        [
            pth_from_bytes(bytes),
            pth_key_from_bytes(bytes, "model"),
            tensors_from_bytes(bytes),
        ]
    }));
    prop_assert!(r.is_ok(), "panicked");
    for r in r.unwrap() {
        match r {
            Ok(tensors) => {
                for (_, t) in tensors {
                    prop_assert_eq!(t.numel(), t.shape().iter().product::<usize>());
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n'), "{}", e),
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(largest <= LIMIT, "an allocation of {} bytes", largest);
    Ok(())
}

/// A mutation: overwrite, insert or delete one byte, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<prop::sample::Index>().prop_map(Edit::Delete),
        1 => any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        if bytes.is_empty() {
            return;
        }
        match e {
            Edit::Set(i, b) => {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
            Edit::Delete(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Edit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(which in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..4)) {
        let mut file = fixtures()[which.index(fixtures().len())].file.clone();
        apply(&mut file, &edits);
        check(&file)?;
    }

    #[test]
    fn mutated_pickles_in_valid_archives_never_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let parts = &fixtures()[which.index(fixtures().len())];
        let mut pickle = parts.pickle.clone();
        apply(&mut pickle, &edits);
        let storages: Vec<(&str, &[u8])> =
            parts.storages.iter().map(|(k, d)| (k.as_str(), d.as_slice())).collect();
        check(&builder::archive(&pickle, &storages))?;
    }
}

#[test]
fn the_unmutated_fixtures_read() {
    // The mutations start from files that read, through both routes.
    convlab::memory::set_max_bytes(LIMIT);
    for p in fixtures() {
        let storages: Vec<(&str, &[u8])> = p
            .storages
            .iter()
            .map(|(k, d)| (k.as_str(), d.as_slice()))
            .collect();
        let rewrapped = builder::archive(&p.pickle, &storages);
        let direct = pth_from_bytes(&p.file).or_else(|_| pth_key_from_bytes(&p.file, "model"));
        let again = pth_from_bytes(&rewrapped).or_else(|_| pth_key_from_bytes(&rewrapped, "model"));
        assert_eq!(direct.unwrap(), again.unwrap());
    }
}
