//! The test suite's own promise: a test file run through `tests/common/harness.rs`
//! (`harness = false`) holds no `#[test]` function, which such a file would compile to
//! nothing and so never run.

use std::path::Path;

/// The `[[test]]` targets of Cargo.toml declared with `harness = false`.
fn files_without_libtest() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("Cargo.toml");
    manifest
        .split("[[test]]")
        .skip(1)
        .filter_map(|table| {
            let table = table.split("\n[").next().unwrap_or(table);
            if !table.lines().any(|line| line.trim() == "harness = false") {
                return None;
            }
            table.lines().find_map(|line| {
                let name = line.trim().strip_prefix("name = ")?;
                Some(name.trim_matches('"').to_string())
            })
        })
        .collect()
}

#[test]
fn files_run_by_the_harness_have_no_libtest_tests() {
    let files = files_without_libtest();
    assert!(files.iter().any(|name| name == "ops"), "{files:?}");
    for name in files {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&path).expect("test file");
        for (number, line) in source.lines().enumerate() {
            let attribute = line.trim_start();
            assert!(
                !(attribute.starts_with("#[test]") || attribute.starts_with("#[tokio::test")),
                "{name}.rs:{}: a libtest test in a file with `harness = false` never runs; \
                 list it in the file's test_main! instead",
                number + 1
            );
        }
        assert!(
            source.contains("test_main!"),
            "{name}.rs has `harness = false` but no test_main!"
        );
    }
}
