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
    fn keys_are_read_exactly() {
        let text = "# comment\r\nPOSTGRES_PASSWORD=abc\r\nPGREPL_REPLICATION_PASSWORD=\nPOSTGRES_PASSWORD_X=no\n";
        assert_eq!(get(text, OWNER).as_deref(), Some("abc"));
        assert_eq!(get(text, REPLICATION), None, "empty is missing");
        assert_eq!(get("POSTGRES_PASSWORD_X=no\n", OWNER), None);
    }
}
