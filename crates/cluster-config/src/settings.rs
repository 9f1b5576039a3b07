//! PostgreSQL's own catalogue of settings: names, contexts, types, units,
//! ranges and enum values, generated from the project's image by
//! `cargo xtask catalogue` (`postgres --describe-config` and `pg_settings`
//! of a throwaway server) into `pg-settings.tsv`, and checked for freshness
//! by an end-to-end test. Validation checks every setting against it, and
//! its context column says whether a change needs a restart or a reload.

use crate::guc::{self, Kind};
use std::sync::OnceLock;

/// The committed catalogue text.
pub const CATALOGUE: &str = include_str!("pg-settings.tsv");

/// When a change of the setting takes effect (`pg_settings.context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// Fixed when the server was built or initialised: cannot be set.
    Internal,
    /// Read at server start: a change needs a restart.
    Postmaster,
    /// Read at start or on reload (SIGHUP).
    Sighup,
    /// Fixed per connection at its start (reload affects new sessions).
    Backend,
    SuperuserBackend,
    Superuser,
    User,
}

impl Context {
    fn parse(s: &str) -> Option<Context> {
        Some(match s {
            "internal" => Context::Internal,
            "postmaster" => Context::Postmaster,
            "sighup" => Context::Sighup,
            "backend" => Context::Backend,
            "superuser-backend" => Context::SuperuserBackend,
            "superuser" => Context::Superuser,
            "user" => Context::User,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarType {
    Bool,
    Integer,
    Real,
    String,
    Enum,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Lower-case (PostgreSQL compares names without case).
    pub name: String,
    pub context: Context,
    pub vartype: VarType,
    /// `pg_settings.unit`: what a bare number counts (`8kB`, `ms`, ...).
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub enumvals: Vec<String>,
    /// Listed by `postgres --describe-config` (meant for postgresql.conf).
    pub described: bool,
}

/// Enum spellings PostgreSQL 15 accepts but hides from `pg_settings`
/// (`hidden = true` entries of guc.c's option tables).
const HIDDEN_ENUM_VALUES: &[(&str, &[&str])] = &[
    ("wal_level", &["archive", "hot_standby"]),
    ("client_min_messages", &["debug"]),
    ("log_min_messages", &["debug"]),
    ("log_min_error_statement", &["debug"]),
    ("trace_recovery_messages", &["debug"]),
];

/// Parses the catalogue text; `Err` names the line.
pub fn parse_catalogue(text: &str) -> Result<Vec<Setting>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = |why: &str| format!("settings catalogue line {}: {why}", i + 1);
        if f.len() != 8 {
            return Err(bad("expected 8 tab-separated columns"));
        }
        let num = |s: &str| -> Result<Option<f64>, String> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| bad("bad number"))
            }
        };
        out.push(Setting {
            name: f[0].to_ascii_lowercase(),
            context: Context::parse(f[1]).ok_or_else(|| bad("unknown context"))?,
            vartype: match f[2] {
                "bool" => VarType::Bool,
                "integer" => VarType::Integer,
                "real" => VarType::Real,
                "string" => VarType::String,
                "enum" => VarType::Enum,
                _ => return Err(bad("unknown vartype")),
            },
            unit: f[3].to_string(),
            min: num(f[4])?,
            max: num(f[5])?,
            enumvals: if f[6].is_empty() {
                vec![]
            } else {
                f[6].split(',').map(str::to_string).collect()
            },
            described: f[7] == "1",
        });
    }
    if out.is_empty() {
        return Err("settings catalogue is empty".into());
    }
    Ok(out)
}

/// The PostgreSQL major version the catalogue was generated from.
pub fn catalogue_major(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("# major "))
        .and_then(|v| v.trim().parse().ok())
}

fn all() -> &'static [Setting] {
    static CELL: OnceLock<Vec<Setting>> = OnceLock::new();
    CELL.get_or_init(|| {
        parse_catalogue(CATALOGUE)
            .expect("the committed settings catalogue parses (a unit test checks it)")
    })
}

/// The setting of that name (any case).
pub fn lookup(name: &str) -> Option<&'static Setting> {
    let name = name.to_ascii_lowercase();
    all().iter().find(|s| s.name == name)
}

/// The closest known name, for "did you mean".
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_lowercase();
    all()
        .iter()
        .map(|s| (distance(&name, &s.name), s.name.as_str()))
        .filter(|(d, n)| *d <= 2.max(n.len() / 6))
        .min()
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Whether changing the setting needs a server restart (context
/// `postmaster`); unknown settings are taken to need one.
pub fn needs_restart(name: &str) -> bool {
    lookup(name).is_none_or(|s| s.context == Context::Postmaster)
}

impl Setting {
    /// How the value's bare number and units are read.
    pub fn kind(&self) -> Kind {
        match self.vartype {
            VarType::Bool => Kind::Bool,
            VarType::Integer | VarType::Real => match unit_scale(&self.unit) {
                Some(UnitScale::Bytes(b)) => Kind::Memory(b),
                Some(UnitScale::Micros(u)) => Kind::Time(u),
                None => Kind::Int,
            },
            VarType::Enum => Kind::Enum,
            VarType::String => Kind::Text,
        }
    }

    /// Checks a value as PostgreSQL would read it from `postgresql.conf`.
    pub fn check(&self, raw: &str) -> Result<(), String> {
        match self.vartype {
            VarType::Bool => guc::parse_bool(raw)
                .map(|_| ())
                .ok_or_else(|| format!("`{raw}` is not a boolean (on/off)")),
            VarType::Enum => {
                let v = raw.trim().to_ascii_lowercase();
                let on_off = self.enumvals.iter().any(|e| e == "on")
                    && self.enumvals.iter().any(|e| e == "off");
                let hidden = HIDDEN_ENUM_VALUES
                    .iter()
                    .find(|(n, _)| *n == self.name)
                    .map(|(_, v)| *v)
                    .unwrap_or(&[]);
                let ok = self.enumvals.iter().any(|e| e.eq_ignore_ascii_case(&v))
                    || hidden.contains(&v.as_str())
                    || (on_off && guc::parse_bool(&v).is_some());
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "`{raw}` is not one of {}",
                        self.enumvals.join(", ")
                    ))
                }
            }
            VarType::String => Ok(()),
            VarType::Integer | VarType::Real => {
                let kind = self.kind();
                let base = guc::parse_quantity(raw, kind)?;
                if self.vartype == VarType::Integer && kind == Kind::Int {
                    let t = raw.trim();
                    if t.contains(['.', 'e', 'E'])
                        && t.parse::<f64>().is_ok_and(|f| f.fract() != 0.0)
                    {
                        // PostgreSQL rounds; say so rather than refuse.
                        return Ok(());
                    }
                }
                // The value in the setting's own unit, as PostgreSQL rounds it.
                let per_unit = match unit_scale(&self.unit) {
                    Some(UnitScale::Bytes(b)) => b as f64,
                    Some(UnitScale::Micros(u)) => u as f64,
                    None => 1.0,
                };
                let in_units = if base < 0 {
                    base as f64
                } else {
                    (base as f64 / per_unit).round()
                };
                let (lo, hi) = (self.min.unwrap_or(f64::MIN), self.max.unwrap_or(f64::MAX));
                if in_units < lo || in_units > hi {
                    let u = if self.unit.is_empty() {
                        String::new()
                    } else {
                        format!(" (in units of {})", self.unit)
                    };
                    return Err(format!(
                        "`{raw}` is outside the valid range {} .. {}{u}",
                        fmt_num(lo),
                        fmt_num(hi)
                    ));
                }
                Ok(())
            }
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e18 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

enum UnitScale {
    Bytes(u64),
    Micros(u64),
}

fn unit_scale(unit: &str) -> Option<UnitScale> {
    const KB: u64 = 1024;
    Some(match unit {
        "B" => UnitScale::Bytes(1),
        "kB" => UnitScale::Bytes(KB),
        "8kB" => UnitScale::Bytes(8 * KB),
        "MB" => UnitScale::Bytes(KB * KB),
        "16MB" => UnitScale::Bytes(16 * KB * KB),
        "us" => UnitScale::Micros(1),
        "ms" => UnitScale::Micros(1000),
        "s" => UnitScale::Micros(1_000_000),
        "min" => UnitScale::Micros(60_000_000),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_catalogue_parses() {
        let all = parse_catalogue(CATALOGUE).unwrap();
        assert!(all.len() > 300, "{}", all.len());
        assert_eq!(catalogue_major(CATALOGUE), Some(15));
        let sb = lookup("SHARED_BUFFERS").unwrap();
        assert_eq!((sb.context, sb.unit.as_str()), (Context::Postmaster, "8kB"));
        assert_eq!(lookup("block_size").unwrap().context, Context::Internal);
        assert!(needs_restart("max_connections"));
        assert!(!needs_restart("synchronous_standby_names"));
        // Every unit in the catalogue is one the tool knows.
        for s in &all {
            assert!(
                s.unit.is_empty() || unit_scale(&s.unit).is_some(),
                "{}: unit {}",
                s.name,
                s.unit
            );
        }
    }

    #[test]
    fn values_are_checked_against_the_catalogue() {
        let c = |n: &str, v: &str| lookup(n).unwrap().check(v);
        assert!(c("max_connections", "100").is_ok());
        for bad in ["-1", "0", "9223372036854775807", "1MB"] {
            assert!(c("max_connections", bad).is_err(), "{bad}");
        }
        assert!(c("shared_buffers", "1GB").is_ok());
        assert!(c("shared_buffers", "64kB").is_err(), "below 16 x 8kB");
        assert!(c("shared_buffers", "1gb")
            .unwrap_err()
            .contains("case-sensitive"));
        assert!(c("wal_keep_size", "32").is_ok());
        assert!(c("wal_level", "hot_standby").is_ok());
        assert!(c("wal_level", "Replica").is_ok());
        assert!(c("wal_level", "maximal").is_err());
        assert!(c("synchronous_commit", "true").is_ok());
        assert!(c("synchronous_commit", "sometimes").is_err());
        assert!(c("hot_standby", "yes").is_ok());
        assert!(c("checkpoint_timeout", "5min").is_ok());
        assert!(c("checkpoint_timeout", "1s").is_err());
        assert!(c("vacuum_cost_delay", "2ms").is_ok());
        assert!(c("statement_timeout", "-1").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("shared_bufers"), Some("shared_buffers"));
        assert_eq!(suggest("max_wal_sender"), Some("max_wal_senders"));
        assert_eq!(suggest("completely_unrelated_thing"), None);
    }
}
