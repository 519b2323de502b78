//! The shipped Prometheus rules (the crate's own, and the axum-prometheus names for a
//! migrated application): valid, and every recording rule and alert unit-tested by
//! `promtool test rules`.

mod common;

use std::path::Path;
use std::process::Command;

const RULES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus");

/// Each rules file with its unit tests, and the fewest rules it must hold.
const RULE_FILES: [(&str, &str, usize); 2] = [
    ("rules.yml", "rules_test.yml", 15),
    ("axum_prometheus.yml", "axum_prometheus_test.yml", 5),
];

/// Names of the recording rules and alerts in `rules.yml`.
fn rule_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            line.strip_prefix("record: ")
                .or_else(|| line.strip_prefix("alert: "))
                .map(|name| name.trim().to_string())
        })
        .collect()
}

fn every_rule_and_alert_has_a_unit_test() {
    for (rules, tests, fewest) in RULE_FILES {
        let rules = std::fs::read_to_string(Path::new(RULES_DIR).join(rules)).expect(rules);
        let tests = std::fs::read_to_string(Path::new(RULES_DIR).join(tests)).expect(tests);
        let names = rule_names(&rules);
        assert!(names.len() >= fewest, "{names:?}");
        for name in names {
            let tested = tests.contains(&format!("alertname: {name}\n"))
                || tests.contains(&format!("expr: {name}\n"))
                || tests.contains(&format!("expr: {name}{{"));
            assert!(tested, "no unit test for {name}");
        }
    }
}

fn promtool_checks_and_tests_the_rules() -> common::Checked {
    let promtool = common::require_tool("promtool", "check and unit-test the shipped rules")?;
    for (rules, tests, _) in RULE_FILES {
        for args in [["check", "rules", rules], ["test", "rules", tests]] {
            let output = Command::new(&promtool)
                .args(args)
                .current_dir(RULES_DIR)
                .output()
                .expect("promtool runs");
            assert!(
                output.status.success(),
                "promtool {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}

test_main! {
    sync every_rule_and_alert_has_a_unit_test,
    sync promtool_checks_and_tests_the_rules,
}
