//! Validated names. Every value of a topology lands in several grammars at
//! once (SQL identifiers and role names, libpq conninfo, `pg_hba.conf`
//! tokens, Compose project / service / network / volume names with `$`
//! interpolation, Docker image references, host paths), so each is a type
//! whose check runs while parsing (`FromStr` and `Deserialize`) and whose
//! rules cover every place it lands. A value that passes cannot add a line,
//! a field or an interpolation to any rendered file.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// Why a value was refused: a stable rule code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for NameError {
    /// `[code] message`, as command-line errors show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)
    }
}

impl std::error::Error for NameError {}

/// Marker put in front of a deserialisation error so the topology loader can
/// report the rule code: `[code] message`.
pub fn tagged(e: &NameError) -> String {
    e.to_string()
}

/// Splits a `[code] message` produced by [`tagged`]; the code must be one
/// of `known`.
pub fn untag<'a>(msg: &'a str, known: &[&'static str]) -> Option<(&'static str, &'a str)> {
    let rest = msg.strip_prefix('[')?;
    let (code, message) = rest.split_once("] ")?;
    known.iter().find(|k| **k == code).map(|k| (*k, message))
}

fn err(code: &'static str, message: String) -> NameError {
    NameError { code, message }
}

/// Shows a value inside a message without letting control characters
/// through (they would forge lines of the report).
pub fn shown(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.chars().count() > 80 {
        let cut: String = out.chars().take(77).collect();
        format!("{cut}...")
    } else {
        out
    }
}

/// The checks every name shares: not empty, no control characters, no `$`
/// (Compose interpolation), at most `max` bytes.
fn common(code: &'static str, what: &str, s: &str, max: usize) -> Result<(), NameError> {
    if s.trim().is_empty() {
        return Err(err(code, format!("{what} is empty")));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(err(
            code,
            format!(
                "{what} `{}` contains the control character {}",
                shown(s),
                c.escape_default()
            ),
        ));
    }
    if s.contains('$') {
        return Err(err(
            code,
            format!(
                "{what} `{}` contains `$`: Compose would expand it as a variable",
                shown(s)
            ),
        ));
    }
    if s.len() > max {
        return Err(err(
            code,
            format!(
                "{what} `{}` is {} bytes long; at most {max} are allowed",
                shown(s),
                s.len()
            ),
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $check(s).map(|v| $ty(v))
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse()
                    .map_err(|e: NameError| serde::de::Error::custom(tagged(&e)))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A cluster's name: the Compose project name, the prefix of its
    /// containers, network and volumes, the value of its label, and the
    /// folder `state/<cluster>/` that `down --purge` removes. Lower-case
    /// letters, digits, `-` and `_`, starting with a letter or digit, at most
    /// 40 bytes; never `.`, `..` or a path.
    ClusterName,
    check_cluster_name
);

fn check_cluster_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "cluster-name";
    common(CODE, "cluster name", s, 40)?;
    let mut cs = s.chars();
    let first_ok = matches!(cs.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok
        || !cs.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(err(
            CODE,
            format!(
                "cluster name `{}` is not a valid Compose project name: use lower-case letters, digits, `-` and `_`, starting with a letter or digit (it also names the folder state/<cluster>/)",
                shown(s)
            ),
        ));
    }
    Ok(s.to_string())
}

name_type!(
    /// A node's name: Compose service, container host name (a DNS label),
    /// `application_name` (at most 63 bytes), a standby name in
    /// `synchronous_standby_names`, and the source of its slot name.
    NodeName,
    check_node_name
);

fn check_node_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "node-name";
    common(CODE, "node name", s, 63)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(err(
            CODE,
            format!(
                "node name `{}` may contain only lower-case letters, digits and `-` (it is a host name, a Compose service name and an application_name)",
                shown(s)
            ),
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(err(
            CODE,
            format!("node name `{}` may not start or end with `-`", shown(s)),
        ));
    }
    Ok(s.to_string())
}

/// ASCII letters, digits, `_` and `-`, starting with a letter or `_`: safe
/// unquoted in conninfo and `pg_hba.conf`, in Compose, and quoted in SQL.
fn plain_sql_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

name_type!(
    /// A PostgreSQL role (the replication user, the database owner): SQL,
    /// conninfo, `pg_hba.conf`, `POSTGRES_USER` and `psql -U`. ASCII letters,
    /// digits, `_` and `-`, starting with a letter or `_`, at most 63 bytes;
    /// not a name PostgreSQL reserves (`public`, `none`, `pg_*`).
    RoleName,
    check_role_name
);

fn check_role_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "role-name";
    common(CODE, "role name", s, 63)?;
    if !plain_sql_name(s) {
        return Err(err(
            CODE,
            format!(
                "role name `{}` may contain only ASCII letters, digits, `_` and `-`, starting with a letter or `_` (it lands in SQL, pg_hba.conf, connection strings and the Compose file)",
                shown(s)
            ),
        ));
    }
    let lower = s.to_ascii_lowercase();
    if lower == "public" || lower == "none" || lower.starts_with("pg_") {
        return Err(err(
            CODE,
            format!(
                "role name `{s}` is reserved by PostgreSQL (`public`, `none` and names starting with `pg_`)"
            ),
        ));
    }
    Ok(s.to_string())
}

name_type!(
    /// A database name (`POSTGRES_DB`, `psql -d`, SQL): the rules of
    /// [`RoleName`], and not a template database.
    DatabaseName,
    check_database_name
);

fn check_database_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "database-name";
    common(CODE, "database name", s, 63)?;
    if !plain_sql_name(s) {
        return Err(err(
            CODE,
            format!(
                "database name `{}` may contain only ASCII letters, digits, `_` and `-`, starting with a letter or `_`",
                shown(s)
            ),
        ));
    }
    if s == "template0" || s == "template1" {
        return Err(err(
            CODE,
            format!("database name `{s}` is a template database and cannot be created"),
        ));
    }
    Ok(s.to_string())
}

/// Docker's rule for network and volume names.
fn docker_object_name(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

name_type!(
    /// A Compose network key (Compose prefixes it with the project name).
    NetworkName,
    check_network_name
);

fn check_network_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "network-name";
    common(CODE, "network name", s, 40)?;
    if !docker_object_name(s) {
        return Err(err(
            CODE,
            format!(
                "network name `{}` may contain only ASCII letters, digits, `_`, `.` and `-`, starting with a letter or digit",
                shown(s)
            ),
        ));
    }
    Ok(s.to_string())
}

name_type!(
    /// A named Docker volume (Compose prefixes it with the project name).
    VolumeName,
    check_volume_name
);

fn check_volume_name(s: &str) -> Result<String, NameError> {
    const CODE: &str = "volume-name";
    common(CODE, "volume name", s, 64)?;
    if !docker_object_name(s) {
        return Err(err(
            CODE,
            format!(
                "volume name `{}` may contain only ASCII letters, digits, `_`, `.` and `-`, starting with a letter or digit",
                shown(s)
            ),
        ));
    }
    Ok(s.to_string())
}

/// Folder names inside `state/<cluster>/` that the tool itself uses.
pub const RESERVED_STATE_NAMES: &[&str] = &["conf", "secrets.env", "compose.yml"];

name_type!(
    /// A bind-mounted folder: a relative, `/`-separated path inside the
    /// cluster's state folder. Each part is ASCII letters, digits, `_`, `.`
    /// and `-`, never `.` or `..`, never a Windows device name (`con`,
    /// `nul`, `com1`, ...), never ending in `.`; the first part is not one
    /// the tool uses itself (`conf`).
    BindDir,
    check_bind_dir
);

impl BindDir {
    /// The `/`-separated parts, for joining onto a host path.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

fn check_bind_dir(s: &str) -> Result<String, NameError> {
    const CODE: &str = "bind-path";
    common(CODE, "bind folder", s, 200)?;
    let plain = |what: String| {
        err(
            CODE,
            format!("bind folder `{}` {what}; give a plain relative path inside the cluster's state folder, such as `postgres_data_master`", shown(s)),
        )
    };
    if s.starts_with('/') || s.starts_with('\\') || s.contains(':') {
        return Err(plain("is absolute".into()));
    }
    for part in s.split('/') {
        if part.is_empty() {
            return Err(plain("has an empty part (`//` or a trailing `/`)".into()));
        }
        if part == "." || part == ".." {
            return Err(plain(format!("has a `{part}` part")));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(plain(
                "may contain only ASCII letters, digits, `_`, `.`, `-` and `/` between parts"
                    .into(),
            ));
        }
        if part.starts_with('-') {
            return Err(plain(format!(
                "has a part `{part}` starting with `-` (it would read as an option)"
            )));
        }
        if part.ends_with('.') {
            return Err(plain(format!(
                "has a part `{part}` ending in `.` (Windows drops it)"
            )));
        }
        let stem = part.split('.').next().unwrap_or(part).to_ascii_lowercase();
        let device = matches!(stem.as_str(), "con" | "prn" | "aux" | "nul")
            || (stem.len() == 4
                && (stem.starts_with("com") || stem.starts_with("lpt"))
                && stem.as_bytes()[3].is_ascii_digit());
        if device {
            return Err(plain(format!(
                "has a part `{part}` that is a Windows device name"
            )));
        }
    }
    let first = s.split('/').next().unwrap_or(s);
    if RESERVED_STATE_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(first))
    {
        return Err(err(
            CODE,
            format!(
                "bind folder `{s}` is inside `{first}`, which the tool uses itself in the cluster's state folder; choose another name"
            ),
        ));
    }
    Ok(s.to_string())
}

name_type!(
    /// A Docker image reference: `[host[:port]/]path[:tag][@sha256:digest]`,
    /// as the Docker engine parses it (lower-case path components).
    ImageRef,
    check_image_ref
);

fn check_image_ref(s: &str) -> Result<String, NameError> {
    const CODE: &str = "image-ref";
    common(CODE, "image", s, 255)?;
    let bad = |why: &str| {
        err(
            CODE,
            format!(
                "image `{}` is not a valid Docker image reference: {why} (for example `postgres:15` or `pgrepl/postgres:15`)",
                shown(s)
            ),
        )
    };
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let ok = d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        if !ok {
            return Err(bad(
                "the digest after `@` must be sha256: and 64 hex digits",
            ));
        }
    }
    // A tag is after the last `:` that follows the last `/`.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let mut cs = tag.chars();
        let ok = matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
            && cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && tag.len() <= 128;
        if !ok {
            return Err(bad(
                "a tag is 1 to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
            ));
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit())
            });
            if !host_ok || !port_ok {
                return Err(bad(
                    "the registry host is not a host name with an optional port",
                ));
            }
            parts.remove(0);
        }
    }
    for p in &parts {
        if !path_component(p) {
            return Err(bad(
                "each path part is lower-case letters and digits, separated by `.`, `_`, `__` or dashes",
            ));
        }
    }
    Ok(s.to_string())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn path_component(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    let b = p.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
        if !ok {
            return false;
        }
    }
    true
}

/// A setting name as `postgresql.conf` spells it, lower-cased (PostgreSQL
/// compares them without case): an identifier, or `class.name` for an
/// extension's custom setting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettingName(String);

impl SettingName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `class.name`: an extension's setting, not in PostgreSQL's catalogue.
    pub fn is_custom(&self) -> bool {
        self.0.contains('.')
    }
}

impl FromStr for SettingName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        const CODE: &str = "setting-name";
        common(CODE, "setting name", s, 63)?;
        let ident = |p: &str| {
            let mut cs = p.chars();
            matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if !s.split('.').all(ident) {
            return Err(err(
                CODE,
                format!(
                    "`{}` is not a setting name: letters, digits and `_`, starting with a letter or `_` (or `class.name` for an extension's setting)",
                    shown(s)
                ),
            ));
        }
        Ok(SettingName(s.to_ascii_lowercase()))
    }
}

impl Deref for SettingName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SettingName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: NameError| serde::de::Error::custom(tagged(&e)))
    }
}

impl Serialize for SettingName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Every rule code a name type can raise while parsing.
pub const PARSE_CODES: &[&str] = &[
    "cluster-name",
    "node-name",
    "role-name",
    "database-name",
    "network-name",
    "volume-name",
    "bind-path",
    "image-ref",
    "setting-name",
    "subnet-syntax",
    "subnet-ipv6",
    "subnet-host-bits",
    "postgres-major",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: FromStr<Err = NameError>>(s: &str) -> &'static str {
        match s.parse::<T>() {
            Ok(_) => "ok",
            Err(e) => e.code,
        }
    }

    #[test]
    fn cluster_names() {
        for ok in ["semi-sync", "a", "e2e_1"] {
            assert_eq!(code::<ClusterName>(ok), "ok", "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "Semi",
            "-x",
            "x$y",
            "a\nb",
            &"a".repeat(41),
        ] {
            assert_eq!(code::<ClusterName>(bad), "cluster-name", "{bad:?}");
        }
    }

    #[test]
    fn role_and_database_names() {
        for ok in [
            "replicator",
            "Repl_User",
            "_r",
            "repl-user",
            &"r".repeat(63),
        ] {
            assert_eq!(code::<RoleName>(ok), "ok", "{ok}");
        }
        for bad in [
            "",
            "repl user",
            "a\tb",
            "a\nhost all all 0.0.0.0/0 trust",
            "x\"y",
            "1abc",
            "public",
            "pg_monitor",
            "${HOME}",
            &"r".repeat(64),
            "\u{e9}t\u{e9}",
        ] {
            assert_eq!(code::<RoleName>(bad), "role-name", "{bad:?}");
        }
        assert_eq!(code::<DatabaseName>("template1"), "database-name");
        assert_eq!(code::<DatabaseName>("legendarydb"), "ok");
    }

    #[test]
    fn bind_dirs() {
        for ok in ["postgres_data_master", "data/slave1", "a.b-c"] {
            assert_eq!(code::<BindDir>(ok), "ok", "{ok}");
        }
        for bad in [
            "${X-..}/${X-..}/etc",
            "../etc",
            "a/../../b",
            "/etc",
            "C:/x",
            "a\\b",
            "a//b",
            "a/",
            ".",
            "conf",
            "conf/x",
            "nul",
            "com1.txt",
            "x.",
            "-rf",
            "a b",
        ] {
            assert_eq!(code::<BindDir>(bad), "bind-path", "{bad:?}");
        }
    }

    #[test]
    fn image_refs() {
        for ok in [
            "postgres:15",
            "pgrepl/postgres:15",
            "localhost:5000/pg/postgres:15.4-bookworm",
            "registry.example/a/b",
            "postgres@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "my__img",
        ] {
            assert_eq!(code::<ImageRef>(ok), "ok", "{ok}");
        }
        for bad in [
            "",
            "Postgres:15",
            "postgres:",
            "postgres:-x",
            "${HOME}/x",
            "a b",
            "postgres@sha256:zz",
            "-postgres",
            "a/../b",
            "host:99999999/x",
        ] {
            assert_eq!(code::<ImageRef>(bad), "image-ref", "{bad:?}");
        }
    }

    #[test]
    fn setting_names() {
        assert_eq!(
            "Shared_Buffers".parse::<SettingName>().unwrap().as_str(),
            "shared_buffers"
        );
        assert!("auto_explain.log_min_duration"
            .parse::<SettingName>()
            .unwrap()
            .is_custom());
        for bad in ["", "a\nlisten_addresses", "a-b", "1x", "a..b", "x = 1"] {
            assert_eq!(code::<SettingName>(bad), "setting-name", "{bad:?}");
        }
    }

    #[test]
    fn tags_round_trip() {
        let e = "x y".parse::<NodeName>().unwrap_err();
        let t = tagged(&e);
        assert_eq!(
            untag(&t, PARSE_CODES),
            Some(("node-name", e.message.as_str()))
        );
        assert_eq!(untag("[nope] x", PARSE_CODES), None);
    }

    #[test]
    fn shown_escapes_controls() {
        assert_eq!(shown("a\nb"), "a\\nb");
    }
}
