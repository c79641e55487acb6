//! [`UnknownName`]: a stored or configured name none of a type's names.

/// A stored or configured name that is none of a type's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    /// What was being read (`recording policy`).
    pub kind: &'static str,
    pub value: String,
}

impl UnknownName {
    pub(super) fn new(kind: &'static str, value: &str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
        }
    }
}
