//! SQL text: literals, identifiers, and the statements the tool runs in
//! more than one place, written once.

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A SQL identifier, always quoted.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Creates a physical replication slot unless it exists.
pub fn create_slot(slot: &str) -> String {
    format!(
        "SELECT pg_create_physical_replication_slot({s}) WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = {s})",
        s = literal(slot)
    )
}

/// The table a committed row is written to and read back from, to prove
/// replication works.
pub const CHECK_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS pgrepl_check (token text PRIMARY KEY, at timestamptz DEFAULT now())";

/// Writes a check row with `token` (a literal), under the session's
/// `synchronous_commit`.
pub fn insert_check(token: &str) -> String {
    format!(
        "{CHECK_TABLE};\nINSERT INTO pgrepl_check (token) VALUES ({});",
        literal(token)
    )
}

/// Writes a check row with a token the server makes up.
pub const INSERT_CHECK_RANDOM: &str = "CREATE TABLE IF NOT EXISTS pgrepl_check (token text PRIMARY KEY, at timestamptz DEFAULT now());\n\
     INSERT INTO pgrepl_check (token) VALUES (md5(random()::text || clock_timestamp()::text));";

/// Whether the check row with `token` is there: `1` or `0`.
pub fn count_check(token: &str) -> String {
    format!(
        "SELECT count(*) FROM pgrepl_check WHERE token = {}",
        literal(token)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert!(create_slot("s'1").contains("'s''1'"));
        assert!(insert_check("t").starts_with(CHECK_TABLE));
    }
}
