//! [`At`]: where a config check reports what it found wrong, by key, so
//! one load reports every problem at once.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::Path;

use super::problem::ConfigProblem;

/// Problems found under one key prefix (`sip`, `sip.trunks[2]`).
pub(super) struct At<'a> {
    prefix: String,
    problems: &'a mut Vec<ConfigProblem>,
}

impl<'a> At<'a> {
    pub(super) fn new(prefix: impl Into<String>, problems: &'a mut Vec<ConfigProblem>) -> Self {
        Self {
            prefix: prefix.into(),
            problems,
        }
    }

    /// Problems under `prefix.key` (a table within this one).
    pub(super) fn nested(&mut self, key: &str) -> At<'_> {
        At::new(format!("{}.{key}", self.prefix), self.problems)
    }

    pub(super) fn bad(&mut self, key: &str, message: impl Display) {
        let key = format!("{}.{key}", self.prefix);
        self.problems
            .push(ConfigProblem::new(key, message.to_string()));
    }

    pub(super) fn range<T: PartialOrd + Display>(
        &mut self,
        key: &str,
        value: T,
        range: RangeInclusive<T>,
    ) {
        if !range.contains(&value) {
            let message = format!("must be between {} and {}", range.start(), range.end());
            self.bad(key, message);
        }
    }

    /// Opening is the real test of readability (permissions, not just
    /// existence); a directory opens too, so it is ruled out separately.
    pub(super) fn readable(&mut self, key: &str, path: &Path) {
        let opened = std::fs::File::open(path).and_then(|file| file.metadata());
        match opened {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => self.bad(key, format!("{} is not a file", path.display())),
            Err(e) => self.bad(key, format!("cannot read {}: {e}", path.display())),
        }
    }
}
