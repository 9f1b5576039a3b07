//! PostgreSQL setting ("GUC") values: quoting as `postgresql.conf` parses it,
//! booleans, and numbers with memory and time units.

use std::fmt;

/// How a setting's bare integer is to be read, and which units it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    /// Memory, the bare number counting units of this many bytes.
    Memory(u64),
    /// Time, the bare number counting units of this many microseconds.
    Time(u64),
    Enum,
    Text,
}

const KB: u64 = 1024;
const MB: u64 = 1024 * KB;

/// Parses a boolean the way PostgreSQL's `parse_bool` does: `on`, `off`,
/// `1`, `0`, and any unambiguous prefix of `true`, `false`, `yes`, `no`.
pub fn parse_bool(raw: &str) -> Option<bool> {
    let v = raw.trim().to_ascii_lowercase();
    if v.is_empty() {
        return None;
    }
    let prefix_of = |word: &str| word.starts_with(v.as_str());
    match v.as_str() {
        "on" | "1" => return Some(true),
        "off" | "of" | "0" => return Some(false),
        _ => {}
    }
    if prefix_of("true") || prefix_of("yes") {
        Some(true)
    } else if prefix_of("false") || prefix_of("no") {
        Some(false)
    } else {
        None
    }
}

/// Parses an integer setting with an optional unit, returning the value in
/// the setting's base unit (bytes for memory, microseconds for time), or the
/// plain number for unit-less integers. `-1` (often "disabled") is kept as is.
/// Why a value is not a quantity of its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("`{0}` is not a number with an optional unit")]
    NotNumber(String),
    #[error("`{0}` is not a numeric setting")]
    NotNumeric(String),
    #[error("`{0}`: this setting takes no unit")]
    NoUnit(String),
    #[error("`{raw}`: unknown unit `{unit}` (valid units are {valid}; they are case-sensitive)")]
    UnknownUnit {
        raw: String,
        unit: String,
        valid: String,
    },
}

pub fn parse_quantity(raw: &str, kind: Kind) -> Result<i128, QuantityError> {
    let v = raw.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (num, unit) = (v[..split].trim(), v[split..].trim());
    let number: f64 = num
        .parse()
        .map_err(|_| QuantityError::NotNumber(raw.to_string()))?;
    let (scale, units): (u64, &[(&str, u64)]) = match kind {
        Kind::Int => (1, &[]),
        Kind::Memory(base) => (
            base,
            &[
                ("B", 1),
                ("kB", KB),
                ("MB", MB),
                ("GB", 1024 * MB),
                ("TB", 1024 * 1024 * MB),
            ],
        ),
        Kind::Time(base) => (
            base,
            &[
                ("us", 1),
                ("ms", 1000),
                ("s", 1_000_000),
                ("min", 60_000_000),
                ("h", 3_600_000_000),
                ("d", 86_400_000_000),
            ],
        ),
        _ => return Err(QuantityError::NotNumeric(raw.to_string())),
    };
    if number < 0.0 {
        return Ok(number as i128);
    }
    let factor = if unit.is_empty() {
        scale
    } else {
        match units.iter().find(|(u, _)| *u == unit) {
            Some((_, f)) => *f,
            None => {
                let valid: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
                return Err(if valid.is_empty() {
                    QuantityError::NoUnit(raw.to_string())
                } else {
                    QuantityError::UnknownUnit {
                        raw: raw.to_string(),
                        unit: unit.to_string(),
                        valid: valid.join(", "),
                    }
                });
            }
        }
    };
    Ok((number * factor as f64).round() as i128)
}

/// Quotes a value as a `postgresql.conf` string literal: single quotes, an
/// embedded quote doubled, a backslash doubled (the config lexer processes
/// backslash escapes inside quotes).
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Undoes [`quote`] for a quoted literal's inner text, as PostgreSQL's
/// `DeescapeQuotedString` does.
pub fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('t') => out.push('\t'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some(d @ '0'..='7') => {
                    let mut code = d.to_digit(8).unwrap_or(0);
                    for _ in 0..2 {
                        match chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(n) => {
                                code = code * 8 + n;
                                chars.next();
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    out
}

/// A setting value as a topology file writes it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// The text PostgreSQL would see after unquoting.
    pub fn as_raw(&self) -> String {
        match self {
            Value::Bool(true) => "on".into(),
            Value::Bool(false) => "off".into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(s) => s.clone(),
        }
    }

    /// The value as a `postgresql.conf` right-hand side.
    pub fn render(&self) -> String {
        match self {
            Value::Text(s) => quote(s),
            other => other.as_raw(),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

/// Formats a byte count the way people write settings (`32MB`, `1GB`).
pub fn human_bytes(bytes: i128) -> String {
    const UNITS: [(&str, i128); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("kB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_like_postgres() {
        for t in ["on", "ON", "true", "t", "yes", "y", "1", "tr"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["off", "of", "false", "f", "no", "n", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["o", "", "2", "maybe"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn memory_units() {
        // wal_keep_size, min_wal_size: MB; work_mem: kB; shared_buffers: 8kB.
        let mb = Kind::Memory(MB);
        assert_eq!(parse_quantity("32", mb).unwrap(), 32 << 20);
        assert_eq!(parse_quantity("1GB", mb).unwrap(), 1 << 30);
        assert_eq!(parse_quantity("80MB", Kind::Memory(MB)).unwrap(), 80 << 20);
        assert_eq!(parse_quantity("16kB", Kind::Memory(KB)).unwrap(), 16 << 10);
        assert_eq!(
            parse_quantity("128", Kind::Memory(8 * KB)).unwrap(),
            128 * 8192
        );
        assert_eq!(parse_quantity("1.5GB", mb).unwrap(), 3 << 29);
        let err = parse_quantity("1gb", mb).unwrap_err().to_string();
        assert!(err.contains("case-sensitive"), "{err}");
        assert!(parse_quantity("12", Kind::Int).is_ok());
        assert!(parse_quantity("12MB", Kind::Int).is_err());
    }

    #[test]
    fn time_units() {
        // wal_sender_timeout: ms; checkpoint_timeout: s.
        let ms = Kind::Time(1000);
        assert_eq!(parse_quantity("5min", ms).unwrap(), 300_000_000);
        assert_eq!(parse_quantity("60000", ms).unwrap(), 60_000_000);
        assert_eq!(
            parse_quantity("30s", Kind::Time(1_000_000)).unwrap(),
            30_000_000
        );
        assert_eq!(parse_quantity("-1", ms).unwrap(), -1);
    }

    #[test]
    fn quoting_round_trips() {
        for s in [
            "plain",
            "it's",
            r"back\slash",
            "FIRST 1 (\"a-b\", c)",
            "tab\tnl\n",
        ] {
            let q = quote(s);
            assert!(q.starts_with('\'') && q.ends_with('\''));
            assert_eq!(unescape(&q[1..q.len() - 1]), s);
        }
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(unescape(r"a\'b"), "a'b");
        assert_eq!(unescape(r"\101"), "A");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(32 << 20), "32MB");
        assert_eq!(human_bytes(1 << 30), "1GB");
        assert_eq!(human_bytes(1000), "1000B");
    }
}
