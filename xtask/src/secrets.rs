//! The generated secrets file (`state/<cluster>/secrets.env`): one reader
//! and one parser for everything that needs a password (setup, the direct
//! SQL connections, export). The file is the tool's own: a link in its
//! place is refused, and one that someone made readable by others is made
//! owner-only again before it is read.

use crate::fsx;
use crate::runner::Secret;
use anyhow::Result;
use std::path::Path;

/// The database owner's password (`POSTGRES_PASSWORD` of the image).
pub const OWNER: &str = "POSTGRES_PASSWORD";
/// The replication role's password.
pub const REPLICATION: &str = "PGREPL_REPLICATION_PASSWORD";
/// Every key the file holds, in the order it is written.
pub const KEYS: [&str; 2] = [OWNER, REPLICATION];

/// The two passwords of a cluster.
pub struct Secrets {
    /// The database owner's (`POSTGRES_PASSWORD`).
    pub owner: Secret,
    pub replication: Secret,
}

impl Secrets {
    /// From the file's text; `shown` names the file in errors.
    pub fn from_text(text: &str, shown: &str) -> Result<Secrets> {
        let secret =
            |k: &str| self::secret(text, k).ok_or_else(|| anyhow::anyhow!("{shown} has no {k}"));
        Ok(Secrets {
            owner: secret(OWNER)?,
            replication: secret(REPLICATION)?,
        })
    }

    /// Stand-ins a dry run prints (redacted) where passwords would go.
    pub fn dry_run() -> Secrets {
        Secrets {
            owner: Secret::new("dry-run"),
            replication: Secret::new("dry-run"),
        }
    }
}

/// 32 random characters from an unambiguous alphabet (about 190 bits).
pub fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// Writes a file only its owner can read: mode 0600 on Unix, a protected
/// DACL for the current user alone on Windows (see owner_only.rs), set
/// before the first byte (see [`crate::fsx`]).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    fsx::write(path, text.as_bytes(), fsx::Access::Private)?;
    Ok(())
}

/// The file's text, `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        fsx::tighten(path)?;
    }
    fsx::read_own(path, fsx::SECRETS_LIMIT)
}

/// The value of `key` (`KEY=value` lines, CRLF accepted); an empty value
/// counts as missing.
pub fn get(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| {
            l.trim_end_matches('\r')
                .strip_prefix(key)?
                .strip_prefix('=')
        })
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The value of `key` as a [`Secret`].
pub fn secret(text: &str, key: &str) -> Option<Secret> {
    get(text, key).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_random_and_long() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_are_read_exactly() {
        let text = "# comment\r\nPOSTGRES_PASSWORD=abc\r\nPGREPL_REPLICATION_PASSWORD=\nPOSTGRES_PASSWORD_X=no\n";
        assert_eq!(get(text, OWNER).as_deref(), Some("abc"));
        assert_eq!(get(text, REPLICATION), None, "empty is missing");
        assert_eq!(get("POSTGRES_PASSWORD_X=no\n", OWNER), None);
    }
}
