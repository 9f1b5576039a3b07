//! PostgreSQL's own catalogues of settings, one per major: names,
//! contexts, types, units, ranges and enum values, generated from each
//! buildable major's image by `cargo xtask catalogue --postgres N`
//! (`postgres --describe-config` and `pg_settings` of a throwaway server)
//! into `pg-settings-<N>.tsv`, each checked for freshness by an end-to-end
//! test. At setup, an image of a major without a committed catalogue (an
//! official 14 or 16) is checked against its own server's catalogue, read
//! the same way. Validation checks every setting against the catalogue of
//! the major that will run; its context column says whether a change needs
//! a restart or a reload.

use crate::guc::{self, Kind};
use crate::version::Major;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The committed catalogues, by major.
const COMMITTED: &[(u32, &str)] = &[
    (15, include_str!("pg-settings-15.tsv")),
    (17, include_str!("pg-settings-17.tsv")),
    (18, include_str!("pg-settings-18.tsv")),
];

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

/// A major's catalogue of settings.
#[derive(Debug, Clone)]
pub struct Catalogue {
    major: Major,
    settings: Vec<Setting>,
    by_name: HashMap<String, usize>,
}

impl Catalogue {
    /// Parses a catalogue's text (its `# major N` line names the major);
    /// `Err` names the line.
    pub fn parse(text: &str) -> Result<Catalogue, String> {
        let major = catalogue_major(text)
            .ok_or("settings catalogue has no `# major N` line")
            .and_then(|n| {
                Major::new(n).map_err(|_| "settings catalogue names an unsupported major")
            })?;
        let settings = parse_catalogue(text)?;
        let by_name = settings
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Catalogue {
            major,
            settings,
            by_name,
        })
    }

    pub fn major(&self) -> Major {
        self.major
    }

    pub fn len(&self) -> usize {
        self.settings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// The setting of that name (any case).
    pub fn lookup(&self, name: &str) -> Option<&Setting> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.settings[i])
    }

    /// The closest known name, for "did you mean".
    pub fn suggest(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        // Names much longer than any setting have no close one: the
        // distance is not computed for them.
        if name.len() > 80 {
            return None;
        }
        self.settings
            .iter()
            .filter(|s| s.name.len().abs_diff(name.len()) <= 2.max(s.name.len() / 6))
            .map(|s| (distance(&name, &s.name), s.name.as_str()))
            .filter(|(d, n)| *d <= 2.max(n.len() / 6))
            .min()
            .map(|(_, n)| n)
    }

    /// Whether changing the setting needs a server restart (context
    /// `postmaster`); unknown settings are taken to need one.
    pub fn needs_restart(&self, name: &str) -> bool {
        self.lookup(name)
            .is_none_or(|s| s.context == Context::Postmaster)
    }
}

/// The committed catalogue of a major, if the project generates one.
pub fn committed(major: Major) -> Option<&'static Catalogue> {
    all_committed().iter().find(|c| c.major == major)
}

/// Every committed catalogue, oldest major first.
pub fn all_committed() -> &'static [Catalogue] {
    static CELL: OnceLock<Vec<Catalogue>> = OnceLock::new();
    CELL.get_or_init(|| {
        COMMITTED
            .iter()
            .map(|(n, text)| {
                let c = Catalogue::parse(text)
                    .expect("a committed settings catalogue parses (a unit test checks it)");
                assert_eq!(c.major.get(), *n, "pg-settings-{n}.tsv names another major");
                c
            })
            .collect()
    })
}

/// The catalogue to check a major against when it has none of its own
/// committed and the image's was not read: the nearest committed major.
pub fn nearest(major: Major) -> &'static Catalogue {
    all_committed()
        .iter()
        .min_by_key(|c| {
            (
                c.major.get().abs_diff(major.get()),
                std::cmp::Reverse(c.major.get()),
            )
        })
        .expect("at least one committed catalogue")
}

/// The newest committed catalogue (units of a setting, for reading values
/// where no major is known: they do not change between majors).
pub fn newest() -> &'static Catalogue {
    all_committed()
        .last()
        .expect("at least one committed catalogue")
}

/// The committed majors that know a setting, for "added in"/"removed in".
pub fn majors_knowing(name: &str) -> Vec<Major> {
    all_committed()
        .iter()
        .filter(|c| c.lookup(name).is_some())
        .map(|c| c.major)
        .collect()
}

/// Settings whose removal or arrival the tool states exactly (the
/// committed catalogues skip 16).
const HISTORY: &[(&str, Option<u32>, Option<u32>)] = &[
    // (name, added in, removed in)
    ("vacuum_defer_cleanup_age", None, Some(16)),
    ("promote_trigger_file", None, Some(16)),
    ("force_parallel_mode", None, Some(16)),
    ("lc_collate", None, Some(16)),
    ("lc_ctype", None, Some(16)),
    ("old_snapshot_threshold", None, Some(17)),
    ("db_user_namespace", None, Some(17)),
    ("trace_recovery_messages", None, Some(17)),
    ("reserved_connections", Some(16), None),
    ("debug_parallel_query", Some(16), None),
    ("summarize_wal", Some(17), None),
    ("sync_replication_slots", Some(17), None),
    ("synchronized_standby_slots", Some(17), None),
    ("io_method", Some(18), None),
];

/// Why a name unknown to `cat` may still be a setting: the majors that
/// know it (`removed in 16`, `added in 17`), or `None`.
pub fn other_majors(cat: &Catalogue, name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let m = cat.major.get();
    if let Some((_, added, removed)) = HISTORY.iter().find(|(n, _, _)| *n == lower) {
        if let Some(r) = removed.filter(|r| m >= *r) {
            return Some(format!("it was removed in PostgreSQL {r}"));
        }
        if let Some(a) = added.filter(|a| m < *a) {
            return Some(format!("it was added in PostgreSQL {a}"));
        }
    }
    let knowing = majors_knowing(&lower);
    if knowing.is_empty() {
        return None;
    }
    let list = knowing
        .iter()
        .map(|k| k.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if knowing.iter().all(|k| *k < cat.major) {
        Some(format!(
            "it is a setting of PostgreSQL {list}, removed since"
        ))
    } else if knowing.iter().all(|k| *k > cat.major) {
        Some(format!(
            "it is a setting of PostgreSQL {list}, added since {}",
            cat.major
        ))
    } else {
        Some(format!("PostgreSQL {list} know it"))
    }
}

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

/// The setting of that name (any case) in the newest committed catalogue.
pub fn lookup(name: &str) -> Option<&'static Setting> {
    newest().lookup(name)
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

/// How a setting's value is read (its unit), by the newest committed
/// catalogue; unknown names read as text. Units do not change between
/// majors.
pub fn kind_of(name: &str) -> Kind {
    lookup(name).map(Setting::kind).unwrap_or(Kind::Text)
}

/// Whether changing the setting needs a server restart, by the newest
/// committed catalogue; unknown settings are taken to need one.
pub fn needs_restart(name: &str) -> bool {
    newest().needs_restart(name)
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
                let base = guc::parse_quantity(raw, kind).map_err(|e| e.to_string())?;
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
        let all = &committed(Major::new(15).unwrap()).unwrap().settings;
        assert!(all.len() > 300, "{}", all.len());
        for c in all_committed() {
            assert!(c.len() > 300, "{}: {}", c.major(), c.len());
        }
        let sb = lookup("SHARED_BUFFERS").unwrap();
        assert_eq!((sb.context, sb.unit.as_str()), (Context::Postmaster, "8kB"));
        assert_eq!(lookup("block_size").unwrap().context, Context::Internal);
        assert!(needs_restart("max_connections"));
        assert!(!needs_restart("synchronous_standby_names"));
        // Every unit in the catalogue is one the tool knows.
        for s in all_committed().iter().flat_map(|c| &c.settings) {
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
        let c = newest();
        assert_eq!(c.suggest("shared_bufers"), Some("shared_buffers"));
        assert_eq!(c.suggest("max_wal_sender"), Some("max_wal_senders"));
        assert_eq!(c.suggest("completely_unrelated_thing"), None);
        assert_eq!(c.suggest(&"x".repeat(100_000)), None);
    }
}
