//! PostgreSQL major versions: which one a topology names, which one an
//! image holds (read from its own `postgres --version`, never guessed from a
//! tag), which ones this project can build, and what differs between them
//! that the tool's rules depend on.

use std::fmt;
use std::str::FromStr;

/// A PostgreSQL major version (10 and later: one number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Major(u32);

/// The oldest major the tool drives: `pg_promote()`, `standby.signal` and
/// `primary_conninfo` in `postgresql.conf` are 12's.
pub const OLDEST: Major = Major(12);
/// The newest major the tool knows.
pub const NEWEST: Major = Major(18);

/// The majors whose image the project builds from Debian packages, each
/// with the suite that packages it and whose catalogue is committed.
pub const BUILDABLE: [(Major, &str); 3] = [
    (Major(15), "bookworm"),
    (Major(17), "trixie"),
    (Major(18), "forky"),
];

/// The major of the presets and of `[cluster]` without `postgres` or
/// `image`: Debian stable's (trixie).
pub const DEFAULT: Major = Major(17);

impl Major {
    /// A major in the range the tool drives ([`OLDEST`] to [`NEWEST`]).
    pub fn new(n: u32) -> Result<Major, VersionError> {
        if !(OLDEST.0..=NEWEST.0).contains(&n) {
            return Err(VersionError::Unsupported(n));
        }
        Ok(Major(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// The Debian suite this project builds the major's image from, when it
    /// builds it at all.
    pub fn debian_suite(self) -> Option<&'static str> {
        BUILDABLE.iter().find(|(m, _)| *m == self).map(|(_, s)| *s)
    }

    /// `pg_hba.conf` `include`, `include_if_exists` and `include_dir`
    /// (16 on); before, `include` is an invalid connection type and the
    /// server refuses to start.
    pub fn hba_includes(self) -> bool {
        self.0 >= 16
    }

    /// `initdb` enables data checksums by default (18 on).
    pub fn initdb_checksums_by_default(self) -> bool {
        self.0 >= 18
    }

    /// `reserved_connections` exists (16 on): it and
    /// `superuser_reserved_connections` must stay below `max_connections`.
    pub fn has_reserved_connections(self) -> bool {
        self.0 >= 16
    }
}

impl fmt::Display for Major {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Major {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Major, VersionError> {
        let n: u32 = s
            .trim()
            .parse()
            .map_err(|_| VersionError::NotMajor(crate::names::shown(s)))?;
        Major::new(n)
    }
}

/// Why a major or a version line is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("PostgreSQL {0} is not supported: the tool drives {OLDEST} to {NEWEST}")]
    Unsupported(u32),
    #[error("`{0}` is not a PostgreSQL major version such as 17")]
    NotMajor(String),
    #[error("`{0}` is not what `postgres --version` prints")]
    NotVersionLine(String),
    #[error("no major version in `{0}`")]
    NoMajor(String),
    #[error("PostgreSQL {0} is too old: the tool drives {OLDEST} to {NEWEST}")]
    TooOld(String),
}

impl<'de> serde::Deserialize<'de> for Major {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Major::new(n).map_err(|m| {
            serde::de::Error::custom(crate::names::tagged(&crate::names::NameError {
                code: "postgres-major",
                message: m.to_string(),
            }))
        })
    }
}

impl serde::Serialize for Major {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

/// A server version as `postgres --version` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: Major,
    /// `17.6`, `18.0`, `16beta2`.
    pub version: String,
    /// What follows the version (`(Debian 17.6-0+deb13u1)`), if anything.
    pub build: String,
}

/// Reads `postgres --version` (`postgres (PostgreSQL) 17.6 (Debian
/// 17.6-0+deb13u1)`, `postgres (PostgreSQL) 16.4`, Alpine's and the
/// official images' alike). 9.x and older majors are refused.
pub fn parse_version_line(line: &str) -> Result<ServerVersion, VersionError> {
    let line = line.trim();
    let rest = line
        .lines()
        .find_map(|l| l.trim().strip_prefix("postgres (PostgreSQL) "))
        .ok_or_else(|| VersionError::NotVersionLine(crate::names::shown(line)))?;
    let (version, build) = match rest.split_once(' ') {
        Some((v, b)) => (v, b.trim()),
        None => (rest, ""),
    };
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u32 = digits
        .parse()
        .map_err(|_| VersionError::NoMajor(crate::names::shown(version)))?;
    if n < 10 && version[digits.len()..].starts_with('.') {
        return Err(VersionError::TooOld(version.to_string()));
    }
    Ok(ServerVersion {
        major: Major::new(n)?,
        version: version.to_string(),
        build: build.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines_of_debian_alpine_and_official_images() {
        let debian =
            parse_version_line("postgres (PostgreSQL) 17.6 (Debian 17.6-0+deb13u1)").unwrap();
        assert_eq!((debian.major.get(), debian.version.as_str()), (17, "17.6"));
        assert_eq!(debian.build, "(Debian 17.6-0+deb13u1)");
        let official =
            parse_version_line("postgres (PostgreSQL) 16.4 (Debian 16.4-1.pgdg120+2)\n").unwrap();
        assert_eq!(official.major.get(), 16);
        let alpine = parse_version_line("postgres (PostgreSQL) 16.4").unwrap();
        assert_eq!((alpine.major.get(), alpine.build.as_str()), (16, ""));
        let beta = parse_version_line("postgres (PostgreSQL) 18beta1").unwrap();
        assert_eq!(beta.major.get(), 18);
        assert!(parse_version_line("postgres (PostgreSQL) 9.6.24").is_err());
        assert!(
            parse_version_line("postgres (PostgreSQL) 11.22").is_err(),
            "older than 12"
        );
        assert!(parse_version_line("psql (PostgreSQL) 17.6").is_err());
        assert!(parse_version_line("").is_err());
    }

    #[test]
    fn majors() {
        assert_eq!("17".parse::<Major>().unwrap().get(), 17);
        assert!("11".parse::<Major>().is_err());
        assert!("19".parse::<Major>().is_err());
        assert!("seventeen".parse::<Major>().is_err());
        assert_eq!(Major(18).debian_suite(), Some("forky"));
        assert_eq!(Major(16).debian_suite(), None);
        assert!(!Major(15).hba_includes() && Major(16).hba_includes());
        assert!(Major(18).initdb_checksums_by_default());
    }
}
