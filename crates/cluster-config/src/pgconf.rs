//! `postgresql.conf` text: parsing (as PostgreSQL's `guc-file.l` reads it) and
//! rendering.

use crate::guc;

/// One `name = value` line. `value` is the unquoted text PostgreSQL sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    Include,
    IncludeIfExists,
    IncludeDir,
}

impl IncludeKind {
    pub fn keyword(self) -> &'static str {
        match self {
            IncludeKind::Include => "include",
            IncludeKind::IncludeIfExists => "include_if_exists",
            IncludeKind::IncludeDir => "include_dir",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub kind: IncludeKind,
    pub path: String,
    pub line: usize,
}

/// A parsed file: every assignment in order (later ones win, as in
/// PostgreSQL), the include directives met, and lines that did not parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfFile {
    pub entries: Vec<Entry>,
    pub includes: Vec<Include>,
    pub errors: Vec<(usize, String)>,
}

impl ConfFile {
    /// The effective value of a setting (names are case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        let name = name.to_ascii_lowercase();
        self.entries.iter().rev().find(|e| e.name == name)
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '$' || c == '.'
}

/// Parses the text of a `postgresql.conf`.
pub fn parse(text: &str) -> ConfFile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = ConfFile::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((name, value))) => {
                let kind = match name.as_str() {
                    "include" => Some(IncludeKind::Include),
                    "include_if_exists" => Some(IncludeKind::IncludeIfExists),
                    "include_dir" => Some(IncludeKind::IncludeDir),
                    _ => None,
                };
                match kind {
                    Some(kind) => out.includes.push(Include {
                        kind,
                        path: value,
                        line,
                    }),
                    None => out.entries.push(Entry { name, value, line }),
                }
            }
            Err(e) => out.errors.push((line, e)),
        }
    }
    out
}

fn parse_line(raw: &str) -> Result<Option<(String, String)>, String> {
    let s = raw.trim_start();
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    let name_end = s.find(|c: char| !is_name_char(c)).unwrap_or(s.len());
    let name = &s[..name_end];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(format!(
            "syntax error: expected a setting name, found `{}`",
            s.trim_end()
        ));
    }
    let mut rest = s[name_end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let (value, after) = if let Some(body) = rest.strip_prefix('\'') {
        let mut end = None;
        let bytes: Vec<char> = body.chars().collect();
        let mut i = 0;
        let mut byte_pos = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c == '\\' && i + 1 < bytes.len() {
                byte_pos += c.len_utf8() + bytes[i + 1].len_utf8();
                i += 2;
                continue;
            }
            if c == '\'' {
                if bytes.get(i + 1) == Some(&'\'') {
                    byte_pos += 2;
                    i += 2;
                    continue;
                }
                end = Some(byte_pos);
                break;
            }
            byte_pos += c.len_utf8();
            i += 1;
        }
        let end = end.ok_or_else(|| format!("unterminated quoted string for `{name}`"))?;
        (guc::unescape(&body[..end]), &body[end + 1..])
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!("syntax error: `{name}` has no value"));
        }
        (rest[..end].to_string(), &rest[end..])
    };
    let after = after.trim_start();
    if !(after.is_empty() || after.starts_with('#')) {
        return Err(format!(
            "syntax error after the value of `{name}`: unexpected `{}` (quote values that contain spaces)",
            after.trim_end()
        ));
    }
    Ok(Some((name.to_ascii_lowercase(), value)))
}

/// The settings whose effective value differs between two versions of a
/// file (set, changed or removed), each with whether PostgreSQL's catalogue
/// says the change needs a restart (context `postmaster`) rather than a
/// reload.
pub fn changed_settings(old: &str, new: &str) -> Vec<(String, bool)> {
    let (old, new) = (parse(old), parse(new));
    let mut names: Vec<&str> = old
        .entries
        .iter()
        .chain(new.entries.iter())
        .map(|e| e.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|n| old.get(n).map(|e| &e.value) != new.get(n).map(|e| &e.value))
        .map(|n| (n.to_string(), crate::settings::needs_restart(n)))
        .collect()
}

/// Renders settings as `postgresql.conf` lines under a header comment.
pub fn render<'a>(header: &str, settings: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    for (name, rendered) in settings {
        out.push_str(&format!("{name} = {rendered}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runbook_style_file() {
        let text = "listen_addresses = 'localhost,172.21.0.2'\nmax_connections = 100\n\
                    ssl = off   # trailing comment\n\n#commented = 1\nshared_buffers 1GB\n\
                    primary_conninfo = 'host=a password=''x'' user=r'\nmax_connections=200\n";
        let f = parse(text);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(
            f.get("listen_addresses").unwrap().value,
            "localhost,172.21.0.2"
        );
        assert_eq!(f.get("shared_buffers").unwrap().value, "1GB");
        assert_eq!(f.get("SSL").unwrap().value, "off");
        assert_eq!(f.get("max_connections").unwrap().value, "200");
        assert_eq!(f.get("max_connections").unwrap().line, 8);
        assert_eq!(
            f.get("primary_conninfo").unwrap().value,
            "host=a password='x' user=r"
        );
    }

    #[test]
    fn reports_includes_and_errors_with_lines() {
        let f = parse(
            "include 'extra.conf'\ninclude_dir = 'conf.d'\nwal_level = replica extra\nx = 'open\n",
        );
        assert_eq!(f.includes.len(), 2);
        assert_eq!(f.includes[0].kind, IncludeKind::Include);
        assert_eq!(f.includes[1].path, "conf.d");
        assert_eq!(f.includes[1].line, 2);
        assert_eq!(f.errors.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
    }

    #[test]
    fn changes_say_restart_or_reload() {
        let old = "shared_buffers = 128MB\nwork_mem = 4MB\nmax_connections = 100\n";
        let new = "shared_buffers = 256MB\nwork_mem = 8MB\nmax_connections = 100\nhot_standby_feedback = on\n";
        assert_eq!(
            changed_settings(old, new),
            [
                ("hot_standby_feedback".to_string(), false),
                ("shared_buffers".to_string(), true),
                ("work_mem".to_string(), false),
            ]
        );
        assert!(changed_settings(old, old).is_empty());
    }

    #[test]
    fn rendered_text_parses_back() {
        let text = render(
            "generated",
            [
                (
                    "synchronous_standby_names",
                    guc::quote("FIRST 1 (\"a-b\", c)"),
                ),
                ("wal_level", "replica".to_string()),
                ("application_name", guc::quote("it's")),
            ],
        );
        let f = parse(&text);
        assert!(f.errors.is_empty());
        assert_eq!(
            f.get("synchronous_standby_names").unwrap().value,
            "FIRST 1 (\"a-b\", c)"
        );
        assert_eq!(f.get("application_name").unwrap().value, "it's");
    }
}
