//! A test hook over the tool's external steps that change something: a
//! command not marked read-only, a file effect that changed a file, SQL run
//! as a change. Each is counted as it completes. With
//! `PGREPL_TEST_STEPS=FILE` each step's description is appended there (a
//! test learns how many steps a run takes); with
//! `PGREPL_TEST_INTERRUPT_AFTER=K:kill` or `K:int` the process is
//! interrupted right after its K-th step: `kill` is SIGKILL to the process
//! alone (an out-of-memory kill: children it started run on), `int` is
//! SIGINT to its whole process group (a terminal's Ctrl-C). The
//! interruption tests run every command this way at every step. Unset, a
//! step costs one atomic increment.

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

static COUNT: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Kill,
    Int,
}

struct Hook {
    log: Option<std::path::PathBuf>,
    interrupt: Option<(u32, Signal)>,
}

fn hook() -> &'static Hook {
    static HOOK: OnceLock<Hook> = OnceLock::new();
    HOOK.get_or_init(|| Hook {
        log: std::env::var_os("PGREPL_TEST_STEPS").map(Into::into),
        interrupt: std::env::var("PGREPL_TEST_INTERRUPT_AFTER")
            .ok()
            .and_then(|v| parse(&v)),
    })
}

fn parse(v: &str) -> Option<(u32, Signal)> {
    let (k, s) = v.split_once(':')?;
    let signal = match s {
        "kill" => Signal::Kill,
        "int" => Signal::Int,
        _ => return None,
    };
    Some((k.parse().ok().filter(|k| *k > 0)?, signal))
}

/// One step that changed something has completed.
pub fn done(what: &dyn std::fmt::Display) {
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    let h = hook();
    if let Some(path) = &h.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let line = redact(&what.to_string().replace('\n', " "));
            let cut = line.char_indices().nth(300).map_or(line.len(), |(i, _)| i);
            let _ = writeln!(f, "{n}\t{}", &line[..cut]);
        }
    }
    if let Some((k, signal)) = h.interrupt {
        if k == n {
            interrupt(signal);
        }
    }
}

/// A step's text with every `password=...` value (in a connection string
/// within SQL) replaced.
fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("password=") {
        let (head, tail) = rest.split_at(at + "password=".len());
        out.push_str(head);
        out.push_str("<redacted>");
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn interrupt(signal: Signal) {
    // SAFETY: kill(2) with this process's own id or its group (0) and a
    // constant signal: no memory is touched, and failure is harmless here.
    unsafe {
        match signal {
            Signal::Kill => libc::kill(libc::getpid(), libc::SIGKILL),
            Signal::Int => libc::kill(0, libc::SIGINT),
        };
    }
    // SIGINT's default action ends the process; wait for it. Still here,
    // the signal was ignored (a disposition inherited from a background
    // job): say so and end with a status no command uses, so the test fails
    // instead of counting a run that went on as interrupted.
    std::thread::sleep(std::time::Duration::from_secs(10));
    warn!("test hook: SIGINT did not end the process (is it ignored?)");
    std::process::exit(98);
}

#[cfg(not(unix))]
fn interrupt(_signal: Signal) {
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_reads_its_setting() {
        assert_eq!(parse("3:kill"), Some((3, Signal::Kill)));
        assert_eq!(parse("12:int"), Some((12, Signal::Int)));
        assert_eq!(parse("0:kill"), None);
        assert_eq!(parse("3"), None);
        assert_eq!(parse("3:term"), None);
    }

    #[test]
    fn passwords_in_steps_are_redacted() {
        assert_eq!(
            redact("sql s2: ALTER SYSTEM SET primary_conninfo = 'host=m password=s3cr3t application_name=s2'"),
            "sql s2: ALTER SYSTEM SET primary_conninfo = 'host=m password=<redacted> application_name=s2'"
        );
        assert_eq!(
            redact("password=a password=b"),
            "password=<redacted> password=<redacted>"
        );
        assert_eq!(redact("no secret"), "no secret");
    }
}
