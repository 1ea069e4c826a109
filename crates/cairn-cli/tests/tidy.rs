//! Tidy checks that turn the style guide into tests: every Rust file says what it is for, and
//! the core crates stay free of I/O and of implementation crates.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the CLI crate lives at crates/cairn-cli")
        .to_owned()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("reading a source directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("reading a source file");
            !text.starts_with("//!")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a `//!` header: {undocumented:#?}"
    );
}

#[test]
fn core_crates_depend_on_no_io_or_implementation_crate() {
    let forbidden = [
        "fs-err",
        "bollard",
        "tokio-postgres",
        "cairn-backend-file",
        "cairn-backend-postgres",
        "cairn-providers",
        "cairn-cli",
    ];
    // `cairn-app` is the app model, which the backends implement the store of: it may not
    // reach for them, nor do I/O itself.
    for core_crate in ["cairn-core", "cairn-program", "cairn-engine", "cairn-app"] {
        let manifest = workspace_root()
            .join("crates")
            .join(core_crate)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("reading a manifest");
        for dependency in forbidden {
            assert!(
                !text.lines().any(
                    |line| line.trim_start().starts_with(&format!("{dependency} "))
                        || line.trim_start().starts_with(&format!("{dependency}."))
                ),
                "{core_crate} depends on {dependency}"
            );
        }
    }
}
