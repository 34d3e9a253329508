//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! entry points as the cargo-fuzz targets, on stable, in `cargo test`.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("read"))
        })
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{target}: corpus too small");
    files
}

/// Runs `f` on a thread with a modest stack, so unbounded recursion shows
/// up as a failure here rather than only under a fuzzer.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

#[test]
fn message_corpus_replays() {
    on_small_stack(|| {
        for (name, data) in corpus("message") {
            let out = portcullis::fuzz::messages(&data);
            match name.as_str() {
                // Framing errors: nothing is answered.
                "length-4gib" | "garbage" | "deep-filter-10000" | "length-indefinite" => {
                    assert!(out.is_empty(), "{name}: {} bytes answered", out.len())
                }
                "root-bind-search" | "rootdse" | "whoami" | "bad-scope" | "filters" => {
                    assert!(!out.is_empty(), "{name}: no answer")
                }
                _ => {}
            }
        }
    });
}

#[test]
fn filter_corpus_replays() {
    on_small_stack(|| {
        for (name, data) in corpus("filter") {
            let n = portcullis::fuzz::filter(&data);
            match name.as_str() {
                "eq" | "deep-20" => assert_eq!(n, 1, "{name}"),
                "unknown-attr" | "deep-10000" | "garbage" => assert_eq!(n, 0, "{name}"),
                _ => {}
            }
        }
    });
}

#[test]
fn dn_corpus_replays() {
    on_small_stack(|| {
        for (name, data) in corpus("dn") {
            if let Err(violation) = portcullis::fuzz::dn(&data) {
                panic!("{name}: {violation}");
            }
        }
    });
}

#[test]
fn ldif_corpus_replays() {
    on_small_stack(|| {
        for (name, data) in corpus("ldif") {
            let read = portcullis::fuzz::ldif(&data).unwrap_or_else(|v| panic!("{name}: {v}"));
            match name.as_str() {
                "users-groups" => assert_eq!(read, 3, "{name}"),
                "duplicate" | "cycle" => assert_eq!(read, 2, "{name}"),
                "bad-base64" | "garbage" | "empty" => assert_eq!(read, 0, "{name}"),
                _ => {}
            }
        }
    });
}
