//! Problems found by validation: every one is collected, then reported
//! together, errors apart from warnings.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// Where a problem is: a file, optionally a line, optionally a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: String,
    pub line: Option<usize>,
    pub node: Option<String>,
}

impl Location {
    pub fn file(file: &str) -> Self {
        Location {
            file: file.to_string(),
            line: None,
            node: None,
        }
    }

    pub fn at(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(n) = &self.node {
            write!(f, " (node {n})")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable rule name, e.g. `sync-names-syntax`.
    pub code: &'static str,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev}[{}]: {}: {}",
            self.code, self.location, self.message
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub diagnostics: Vec<Diagnostic>,
    /// What is already in `diagnostics`, so that adding stays linear.
    seen: std::collections::HashSet<Diagnostic>,
}

impl PartialEq for Report {
    fn eq(&self, other: &Self) -> bool {
        self.diagnostics == other.diagnostics
    }
}

impl Eq for Report {}

/// How many problems a report shows; the rest are counted.
pub const SHOWN: usize = 200;

impl Report {
    pub fn error(&mut self, code: &'static str, location: Location, message: impl Into<String>) {
        self.push(Severity::Error, code, location, message.into());
    }

    pub fn warning(&mut self, code: &'static str, location: Location, message: impl Into<String>) {
        self.push(Severity::Warning, code, location, message.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        location: Location,
        message: String,
    ) {
        let d = Diagnostic {
            severity,
            code,
            location,
            message,
        };
        if self.seen.insert(d.clone()) {
            self.diagnostics.push(d);
        }
    }

    /// A report of these problems (duplicates dropped).
    pub fn of(diagnostics: Vec<Diagnostic>) -> Report {
        let mut r = Report::default();
        for d in diagnostics {
            r.push(d.severity, d.code, d.location, d.message);
        }
        r
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn codes(&self) -> Vec<&'static str> {
        self.diagnostics.iter().map(|d| d.code).collect()
    }

    pub fn extend(&mut self, other: Report) {
        for d in other.diagnostics {
            self.push(d.severity, d.code, d.location, d.message);
        }
    }
}

impl fmt::Display for Report {
    /// Errors first, then warnings (the first [`SHOWN`] of them, the rest
    /// counted), then a count line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.errors().chain(self.warnings()).take(SHOWN) {
            writeln!(f, "{d}")?;
        }
        let (e, w) = (self.errors().count(), self.warnings().count());
        if e + w > SHOWN {
            writeln!(f, "... and {} more not shown", e + w - SHOWN)?;
        }
        write!(
            f,
            "{e} error{}, {w} warning{}",
            if e == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" }
        )
    }
}
