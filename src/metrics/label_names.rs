//! The label names a family declares once, and the checks of each call against them.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::LabelPairs;
use crate::names::is_label_name;

/// A label set that does not fit its family's declared label names, or label names
/// that cannot be declared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// A label the family does not declare, for example a misspelled one.
    #[error("label `{name}` is not one of this family's label names ({declared}): check its spelling, or declare it with `Family::label_names`")]
    Unknown {
        /// The name given.
        name: String,
        /// The family's label names, comma-separated.
        declared: String,
    },
    /// A declared label without a value.
    #[error("label `{name}` is missing: give a value for each of this family's label names ({declared})")]
    Missing {
        /// The declared name no value was given for.
        name: String,
        /// The family's label names, comma-separated.
        declared: String,
    },
    /// The same label twice, in a call or in a declaration.
    #[error("label `{name}` is given twice: give each label once")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// Values by position, not one per declared name.
    #[error("{given} label values for {expected} label names ({declared}): give one value per name, in that order")]
    WrongCount {
        /// How many values were given.
        given: usize,
        /// How many names the family declares.
        expected: usize,
        /// The family's label names, comma-separated.
        declared: String,
    },
    /// Values by position or by name for a family that declares no label names.
    #[error("this family declares no label names: declare them with `Family::label_names` to give label values by position or by name")]
    NoLabelNames,
    /// A declared name that is not a label name.
    #[error("`{name}` is not a label name: use a letter or `_` followed by letters, digits or `_`, not starting with `__`")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A declared name the exposition gives another meaning.
    #[error("label name `{name}` is reserved for {reserved_for}: choose another name")]
    Reserved {
        /// The rejected name.
        name: String,
        /// What the name is used for.
        reserved_for: &'static str,
    },
}

/// The label names a family declared, in their declared order.
#[derive(Clone, Debug)]
pub(crate) struct LabelNames(Arc<[String]>);

impl LabelNames {
    /// Checks `names`: each a label name, none twice, none in `reserved` (a name and
    /// what it is reserved for).
    pub(crate) fn new<I>(names: I, reserved: &[(&str, &'static str)]) -> Result<Self, LabelError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let names: Vec<String> = names
            .into_iter()
            .map(|name| name.as_ref().to_string())
            .collect();
        for (index, name) in names.iter().enumerate() {
            if !is_label_name(name) {
                return Err(LabelError::InvalidName { name: name.clone() });
            }
            if let Some((_, reserved_for)) = reserved.iter().find(|(r, _)| r == name) {
                return Err(LabelError::Reserved {
                    name: name.clone(),
                    reserved_for,
                });
            }
            if names[..index].contains(name) {
                return Err(LabelError::Duplicate { name: name.clone() });
            }
        }
        Ok(Self(names.into()))
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.0
    }

    /// Checks that values given by position are one per name.
    pub(crate) fn check_count(&self, given: usize) -> Result<(), LabelError> {
        if given == self.0.len() {
            return Ok(());
        }
        Err(LabelError::WrongCount {
            given,
            expected: self.0.len(),
            declared: self.joined(),
        })
    }

    /// Checks that `pairs` name each declared label exactly once; allocates only for
    /// an error.
    pub(crate) fn check_by_name<N: AsRef<str>, V>(
        &self,
        pairs: &[(N, V)],
    ) -> Result<(), LabelError> {
        for (index, (name, _)) in pairs.iter().enumerate() {
            let name = name.as_ref();
            if !self.0.iter().any(|declared| declared == name) {
                return Err(LabelError::Unknown {
                    name: name.to_string(),
                    declared: self.joined(),
                });
            }
            if pairs[..index]
                .iter()
                .any(|(earlier, _)| earlier.as_ref() == name)
            {
                return Err(LabelError::Duplicate {
                    name: name.to_string(),
                });
            }
        }
        // Every name given is declared and none twice: a shortfall is a missing name.
        match self
            .0
            .iter()
            .find(|declared| !pairs.iter().any(|(name, _)| name.as_ref() == *declared))
        {
            Some(missing) => Err(LabelError::Missing {
                name: missing.clone(),
                declared: self.joined(),
            }),
            None => Ok(()),
        }
    }

    /// `pairs`, checked, in the declared order.
    pub(crate) fn in_order(&self, pairs: LabelPairs) -> Result<LabelPairs, LabelError> {
        self.check_by_name(&pairs)?;
        let mut pairs = pairs;
        pairs.sort_by_key(|(name, _)| self.0.iter().position(|declared| declared == name));
        Ok(pairs)
    }

    fn joined(&self) -> String {
        self.0.join(", ")
    }
}

/// The label set the declared names and a call's values make, in the declared order,
/// before it is built: it hashes as that `Vec<(String, String)>` would, so a call
/// finds its series without building it.
pub(crate) struct DeclaredOrder<'a, F> {
    pub(crate) names: &'a [String],
    /// The value of the label at each declared position.
    pub(crate) value: F,
}

impl<'a, F: Fn(usize) -> &'a str> DeclaredOrder<'a, F> {
    /// Whether `labels` is this label set.
    pub(crate) fn is(&self, labels: &LabelPairs) -> bool {
        labels.len() == self.names.len()
            && labels.iter().zip(self.names).enumerate().all(
                |(index, ((name, value), declared))| {
                    name == declared && value == (self.value)(index)
                },
            )
    }

    /// The label set, built.
    pub(crate) fn build(&self) -> LabelPairs {
        self.names
            .iter()
            .enumerate()
            .map(|(index, name)| (name.clone(), (self.value)(index).to_string()))
            .collect()
    }
}

impl<'a, F: Fn(usize) -> &'a str> Hash for DeclaredOrder<'a, F> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As a slice hashes: its length, then each `(name, value)` as a tuple of
        // strings hashes.
        self.names.len().hash(state);
        for (index, name) in self.names.iter().enumerate() {
            name.as_str().hash(state);
            (self.value)(index).hash(state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;
    use crate::hash::FastHashBuilder;

    fn names(names: &[&str]) -> LabelNames {
        LabelNames::new(names, &[("le", "histogram buckets")]).expect("valid names")
    }

    #[test]
    fn a_declared_order_hashes_and_compares_as_the_label_set_it_builds() {
        let hasher = FastHashBuilder::default();
        let names = names(&["method", "status"]);
        let values = ["GET", "200"];
        let probe = DeclaredOrder {
            names: names.names(),
            value: |index: usize| values[index],
        };
        let built = probe.build();
        assert_eq!(
            built,
            vec![
                ("method".to_string(), "GET".to_string()),
                ("status".to_string(), "200".to_string())
            ]
        );
        assert_eq!(hasher.hash_one(&probe), hasher.hash_one(&built));
        assert!(probe.is(&built));
        let mut other = built.clone();
        other.reverse();
        assert!(!probe.is(&other));
    }

    #[test]
    fn names_given_by_name_are_checked() {
        let names = names(&["method", "status"]);
        assert_eq!(
            names.check_by_name(&[("status", "200"), ("method", "GET")]),
            Ok(())
        );
        assert!(matches!(
            names.check_by_name(&[("methd", "GET"), ("status", "200")]),
            Err(LabelError::Unknown { name, .. }) if name == "methd"
        ));
        assert!(matches!(
            names.check_by_name(&[("status", "200")]),
            Err(LabelError::Missing { name, .. }) if name == "method"
        ));
        assert!(matches!(
            names.check_by_name(&[("status", "200"), ("status", "500")]),
            Err(LabelError::Duplicate { name }) if name == "status"
        ));
        assert!(matches!(
            names.check_by_name(&[("method", "GET"), ("status", "200"), ("path", "/")]),
            Err(LabelError::Unknown { name, .. }) if name == "path"
        ));
    }

    #[test]
    fn pairs_are_put_in_the_declared_order() {
        let names = names(&["method", "status"]);
        let given = vec![
            ("status".to_string(), "200".to_string()),
            ("method".to_string(), "GET".to_string()),
        ];
        let mut expected = given.clone();
        expected.reverse();
        assert_eq!(names.in_order(given), Ok(expected));
    }

    #[test]
    fn declarations_are_checked() {
        let reserved = [("le", "histogram buckets")];
        assert!(matches!(
            LabelNames::new(["ok", "not-ok"], &reserved),
            Err(LabelError::InvalidName { name }) if name == "not-ok"
        ));
        assert!(matches!(
            LabelNames::new(["__name"], &reserved),
            Err(LabelError::InvalidName { .. })
        ));
        assert!(matches!(
            LabelNames::new(["a", "a"], &reserved),
            Err(LabelError::Duplicate { name }) if name == "a"
        ));
        assert!(matches!(
            LabelNames::new(["le"], &reserved),
            Err(LabelError::Reserved { name, .. }) if name == "le"
        ));
        assert_eq!(
            LabelError::WrongCount {
                given: 1,
                expected: 2,
                declared: "method, status".into()
            }
            .to_string(),
            "1 label values for 2 label names (method, status): give one value per name, in that order"
        );
    }
}
