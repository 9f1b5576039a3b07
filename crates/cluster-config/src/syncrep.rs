//! `synchronous_standby_names`, parsed with the grammar of PostgreSQL's
//! `syncrep_scanner.l` / `syncrep_gram.y`.
//!
//! A standby name must be a valid SQL identifier (letters, digits, `_`, `$`)
//! or be double-quoted: `FIRST 1 (slave1-db, slave2-db)` is a syntax error at
//! `-`, and a server with it in `postgresql.conf` refuses to start.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `FIRST n (...)`, `n (...)` or a plain list: priority order.
    First,
    /// `ANY n (...)`: quorum.
    Any,
}

/// A parsed, non-empty `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStandbyNames {
    pub method: Method,
    pub num_sync: u32,
    /// Names as PostgreSQL stores them (quotes removed, case kept). PostgreSQL
    /// compares them with `application_name` case-insensitively.
    pub names: Vec<String>,
}

impl SyncStandbyNames {
    pub fn new(method: Method, num_sync: u32, names: Vec<String>) -> Self {
        SyncStandbyNames {
            method,
            num_sync,
            names,
        }
    }

    /// Whether a standby with this `application_name` is a candidate.
    pub fn matches(&self, application_name: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == "*" || n.eq_ignore_ascii_case(application_name))
    }
}

/// Quotes a standby name when it is not a plain identifier.
pub fn quote_name(name: &str) -> String {
    if name == "*" || is_identifier(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

fn is_identifier(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if is_ident_start(c))
        && cs.all(is_ident_cont)
        && !s.eq_ignore_ascii_case("first")
        && !s.eq_ignore_ascii_case("any")
}

impl fmt::Display for SyncStandbyNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.names.iter().map(|n| quote_name(n)).collect();
        let kw = match self.method {
            Method::First => "FIRST",
            Method::Any => "ANY",
        };
        write!(f, "{kw} {} ({})", self.num_sync, list.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Num(String),
    Any,
    First,
    Comma,
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, SyncNamesError> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut name = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(ErrorKind::Unterminated.into()),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        name.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        name.push(*c);
                        i += 1;
                    }
                }
            }
            if name.is_empty() {
                return Err(ErrorKind::EmptyQuoted.into());
            }
            out.push(Tok::Name(name));
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident_cont(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.to_ascii_lowercase().as_str() {
                "any" => Tok::Any,
                "first" => Tok::First,
                _ => Tok::Name(word),
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else {
            out.push(match c {
                '*' => Tok::Name("*".into()),
                ',' => Tok::Comma,
                '(' => Tok::Open,
                ')' => Tok::Close,
                other => return Err(ErrorKind::Unexpected(other).into()),
            });
            i += 1;
        }
    }
    Ok(out)
}

/// `synchronous_standby_names` as a topology writes it: the text, parsed
/// once when the topology is read. A value that does not parse is kept
/// with its error, for validation to report with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncNamesText {
    text: String,
    parsed: Result<Option<SyncStandbyNames>, SyncNamesError>,
}

impl SyncNamesText {
    pub fn new(text: &str) -> SyncNamesText {
        SyncNamesText {
            text: text.to_string(),
            parsed: parse(text),
        }
    }

    /// As written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Parsed: `Ok(None)` for an empty value.
    pub fn parsed(&self) -> Result<Option<&SyncStandbyNames>, &SyncNamesError> {
        self.parsed.as_ref().map(Option::as_ref)
    }
}

impl<'de> serde::Deserialize<'de> for SyncNamesText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(SyncNamesText::new(&s))
    }
}

impl serde::Serialize for SyncNamesText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Why a `synchronous_standby_names` value does not parse (as PostgreSQL's
/// own grammar refuses it: the server does not start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(transparent)]
pub struct SyncNamesError(#[from] ErrorKind);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ErrorKind {
    #[error("unterminated quoted identifier")]
    Unterminated,
    #[error("zero-length quoted identifier")]
    EmptyQuoted,
    #[error("syntax error at or near \"{0}\"{hint}", hint = if *.0 == '-' { " (a standby name that is not a plain identifier must be double-quoted, e.g. \"slave1-db\")" } else { "" })]
    Unexpected(char),
    #[error("number of synchronous standbys `{0}` is too large")]
    TooLarge(String),
    #[error("syntax error: expected the number of synchronous standbys")]
    NoNumber,
    #[error("syntax error: missing closing parenthesis")]
    Unclosed,
    #[error("syntax error: expected `(` after the number of synchronous standbys")]
    NoOpen,
    #[error("syntax error in standby list near {0}")]
    InList(String),
    #[error("syntax error: empty standby name in list")]
    EmptyName,
    #[error("number of synchronous standbys (0) must be greater than zero")]
    Zero,
    #[error("empty synchronous_standby_names")]
    Empty,
}

/// Parses the setting. `Ok(None)` for an empty value (synchronous replication off).
pub fn parse(s: &str) -> Result<Option<SyncStandbyNames>, SyncNamesError> {
    let toks = lex(s)?;
    if toks.is_empty() {
        return Ok(None);
    }
    let num = |t: Option<&Tok>| -> Result<u32, SyncNamesError> {
        match t {
            Some(Tok::Num(n)) => n
                .parse::<u32>()
                .map_err(|_| ErrorKind::TooLarge(n.clone()).into()),
            _ => Err(ErrorKind::NoNumber.into()),
        }
    };
    let (method, num_sync, rest) = match toks.first() {
        Some(Tok::First) => (Method::First, num(toks.get(1))?, &toks[2..]),
        Some(Tok::Any) => (Method::Any, num(toks.get(1))?, &toks[2..]),
        Some(Tok::Num(_)) if toks.get(1) == Some(&Tok::Open) => {
            (Method::First, num(toks.first())?, &toks[1..])
        }
        _ => (Method::First, 1, &toks[..]),
    };
    let list = if rest.first() == Some(&Tok::Open) {
        if rest.last() != Some(&Tok::Close) {
            return Err(ErrorKind::Unclosed.into());
        }
        &rest[1..rest.len() - 1]
    } else if matches!(toks.first(), Some(Tok::First | Tok::Any)) {
        return Err(ErrorKind::NoOpen.into());
    } else {
        rest
    };
    let mut names = Vec::new();
    let mut expect_name = true;
    for t in list {
        match (expect_name, t) {
            (true, Tok::Name(n) | Tok::Num(n)) => names.push(n.clone()),
            (false, Tok::Comma) => {}
            _ => return Err(ErrorKind::InList(format!("{t:?}")).into()),
        }
        expect_name = !expect_name;
    }
    if names.is_empty() || expect_name {
        return Err(ErrorKind::EmptyName.into());
    }
    if num_sync == 0 {
        return Err(ErrorKind::Zero.into());
    }
    Ok(Some(SyncStandbyNames::new(method, num_sync, names)))
}

impl FromStr for SyncStandbyNames {
    type Err = SyncNamesError;
    fn from_str(s: &str) -> Result<Self, SyncNamesError> {
        parse(s)?.ok_or_else(|| ErrorKind::Empty.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SyncStandbyNames {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn all_forms() {
        let f = p("FIRST 1 (\"slave1-db\", \"slave2-db\")");
        assert_eq!((f.method, f.num_sync), (Method::First, 1));
        assert_eq!(f.names, ["slave1-db", "slave2-db"]);
        let a = p("any 2 (s1, s2, s3)");
        assert_eq!((a.method, a.num_sync, a.names.len()), (Method::Any, 2, 3));
        let legacy = p("2 (s1, s2)");
        assert_eq!((legacy.method, legacy.num_sync), (Method::First, 2));
        let plain = p("s1, s2");
        assert_eq!((plain.method, plain.num_sync), (Method::First, 1));
        let star = p("*");
        assert!(star.matches("anything"));
        assert_eq!(parse("  ").unwrap(), None);
    }

    #[test]
    fn runbook_value_is_a_syntax_error() {
        let err = parse("FIRST 1 (slave1-db, slave2-db)")
            .unwrap_err()
            .to_string();
        assert!(err.contains("near \"-\""), "{err}");
        assert!(err.contains("double-quoted"), "{err}");
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "FIRST 0 (a)",
            "FIRST (a)",
            "FIRST 1 (a",
            "FIRST 1 (a,)",
            "ANY 1 a",
            "(a b)",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn display_quotes_when_needed_and_reparses() {
        let s = SyncStandbyNames::new(Method::First, 1, vec!["slave1-db".into(), "s2".into()]);
        assert_eq!(s.to_string(), "FIRST 1 (\"slave1-db\", s2)");
        assert_eq!(p(&s.to_string()), s);
        assert!(s.matches("SLAVE1-DB"));
    }
}
