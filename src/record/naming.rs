//! [`FamilyNames`]: how a layer names its families: a prefix before each name, and
//! constant labels on every series.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{BuildError, LabelProblem};
use crate::metrics::ConstantLabels;
use crate::names::{is_label_name, is_plain_name};

/// The prefix and the constant labels of the families one layer writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct FamilyNames {
    prefix: Option<Arc<str>>,
    constant: ConstantLabels,
}

impl FamilyNames {
    /// Checks the prefix and the constant labels: names of the Prometheus data model
    /// (a prefix `[a-zA-Z_][a-zA-Z0-9_]*`, a label name the same but not starting with
    /// `__`), each label once, none of them one of the `reserved` labels the families
    /// give their series themselves.
    pub(crate) fn new(
        prefix: Option<String>,
        constant: Vec<(String, String)>,
        reserved: &[&str],
    ) -> Result<Self, BuildError> {
        if let Some(prefix) = &prefix {
            if !is_plain_name(prefix) {
                return Err(BuildError::InvalidPrefix(prefix.clone()));
            }
        }
        for (index, (name, _)) in constant.iter().enumerate() {
            let problem = if !is_label_name(name) {
                Some(LabelProblem::InvalidName)
            } else if reserved.contains(&name.as_str()) {
                Some(LabelProblem::FamilyLabel)
            } else if constant[..index].iter().any(|(earlier, _)| earlier == name) {
                Some(LabelProblem::Duplicate)
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(BuildError::ConstantLabel {
                    name: name.clone(),
                    problem,
                });
            }
        }
        Ok(Self {
            prefix: prefix.map(Into::into),
            constant: ConstantLabels::new(constant),
        })
    }

    /// The name the layer gives `family`: `{prefix}_{family}`, or `family` as it is.
    pub(crate) fn of<'a>(&self, family: &'a str) -> Cow<'a, str> {
        match &self.prefix {
            Some(prefix) => Cow::Owned(format!("{prefix}_{family}")),
            None => Cow::Borrowed(family),
        }
    }

    /// The labels every series of the layer's families carries.
    pub(crate) fn constant(&self) -> &ConstantLabels {
        &self.constant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| (name.to_string(), "x".to_string()))
            .collect()
    }

    fn problem(names: &[&str]) -> Option<(String, LabelProblem)> {
        match FamilyNames::new(None, labels(names), &["le"]) {
            Err(BuildError::ConstantLabel { name, problem }) => Some((name, problem)),
            _ => None,
        }
    }

    #[test]
    fn label_names_are_checked() {
        assert_eq!(problem(&["service", "region_2", "_x"]), None);
        for invalid in ["", "2x", "a-b", "a:b", "__name__", "é"] {
            assert_eq!(
                problem(&[invalid]),
                Some((invalid.to_string(), LabelProblem::InvalidName))
            );
        }
        assert_eq!(
            problem(&["le"]),
            Some(("le".to_string(), LabelProblem::FamilyLabel))
        );
        assert_eq!(
            problem(&["a", "b", "a"]),
            Some(("a".to_string(), LabelProblem::Duplicate))
        );
    }

    #[test]
    fn the_prefix_is_joined_with_an_underscore() {
        let names = FamilyNames::new(Some("shop".into()), Vec::new(), &[]).expect("valid");
        assert_eq!(
            names.of("http_server_requests_total"),
            "shop_http_server_requests_total"
        );
        assert_eq!(FamilyNames::default().of("up"), "up");
        for invalid in ["", "1shop", "shop:", "shop-eu"] {
            assert!(matches!(
                FamilyNames::new(Some(invalid.into()), Vec::new(), &[]),
                Err(BuildError::InvalidPrefix(prefix)) if prefix == invalid
            ));
        }
    }
}
