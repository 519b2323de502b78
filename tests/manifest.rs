//! The README's promises about the manifest: the quick start's dependency lines name the
//! versions this crate builds and tests against, and its feature table lists the
//! crate's features with the defaults Cargo.toml has.

use std::path::Path;

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).expect(file)
}

/// The lines of `[section]` in Cargo.toml, up to the next section.
fn section<'a>(manifest: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    manifest
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .collect()
}

/// The version requirement of a dependency line: `name = "1"` or
/// `name = { version = "1", ... }`.
fn version_of(line: &str) -> Option<(&str, &str)> {
    let (name, spec) = line.split_once(" = ")?;
    let spec = spec.trim();
    let quoted = match spec.strip_prefix('{') {
        Some(table) => table.split_once("version = ")?.1,
        None => spec,
    };
    let version = quoted.strip_prefix('"')?.split('"').next()?;
    Some((name.trim(), version))
}

/// The README from the quick start's heading to the next `##` heading.
fn quick_start(readme: &str) -> &str {
    let start = readme.find("## Quick start").expect("a quick start");
    let rest = &readme[start..];
    let end = rest[2..].find("\n## ").map_or(rest.len(), |at| at + 2);
    &rest[..end]
}

#[test]
fn the_quick_starts_dependency_lines_name_the_versions_the_crate_is_built_against() {
    let readme = read("README.md");
    let manifest = read("Cargo.toml");
    let quick_start = quick_start(&readme);
    let block = quick_start
        .split("```toml\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a [dependencies] block in the quick start");
    // The block, and the other crates the prose names as `name = "version"`.
    let mut lines: Vec<&str> = block.lines().collect();
    lines.extend(
        quick_start
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| code.contains(" = \"") && !code.contains('\n')),
    );
    let package_version = section(&manifest, "package")
        .into_iter()
        .find_map(|line| line.strip_prefix("version = "))
        .expect("the package version")
        .trim_matches('"');
    let mut known: Vec<(&str, &str)> = section(&manifest, "dependencies")
        .into_iter()
        .chain(section(&manifest, "dev-dependencies"))
        .filter_map(version_of)
        .collect();
    known.push(("tower-prometheus", package_version));
    let mut checked = Vec::new();
    for line in lines {
        let (name, version) = version_of(line).unwrap_or_else(|| panic!("{line:?}"));
        let built = known
            .iter()
            .find(|(known_name, _)| *known_name == name)
            .unwrap_or_else(|| panic!("{name}: not a dependency of Cargo.toml"))
            .1;
        assert!(
            built == version || built.starts_with(&format!("{version}.")),
            "README: {name} = {version:?}, Cargo.toml: {built:?}"
        );
        checked.push(name);
    }
    for name in [
        "tower-prometheus",
        "axum",
        "tokio",
        "tonic",
        "prometheus-client",
    ] {
        assert!(checked.contains(&name), "{name} in {checked:?}");
    }
}

#[test]
fn the_feature_table_lists_every_feature_and_the_defaults() {
    let readme = read("README.md");
    let manifest = read("Cargo.toml");
    let features = section(&manifest, "features");
    let mut declared: Vec<&str> = features
        .iter()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split_once(" = ").map(|(name, _)| name.trim()))
        .filter(|name| *name != "default")
        .collect();
    let mut defaults: Vec<&str> = features
        .iter()
        .find_map(|line| line.strip_prefix("default = "))
        .expect("a default feature list")
        .trim_matches(['[', ']'])
        .split(',')
        .map(|name| name.trim().trim_matches('"'))
        .filter(|name| !name.is_empty())
        .collect();

    let table = readme
        .split("| feature | default |")
        .nth(1)
        .expect("the feature table");
    let rows: Vec<(&str, &str)> = table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`'), cells[2])
        })
        .collect();
    let mut listed: Vec<&str> = rows.iter().map(|(name, _)| *name).collect();
    let mut listed_on: Vec<&str> = rows
        .iter()
        .filter(|(_, default)| *default == "on")
        .map(|(name, _)| *name)
        .collect();
    declared.sort_unstable();
    listed.sort_unstable();
    defaults.sort_unstable();
    listed_on.sort_unstable();
    assert_eq!(
        listed, declared,
        "the README's features against Cargo.toml's"
    );
    assert_eq!(
        listed_on, defaults,
        "the README's defaults against Cargo.toml's"
    );
    assert!(!defaults.contains(&"protobuf"), "protobuf is opt-in");
}
