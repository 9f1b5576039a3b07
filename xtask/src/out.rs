//! Standard output and standard error that a closed or full pipe cannot
//! crash.
//!
//! `println!` and `eprintln!` panic when the reader has gone (`cargo xtask
//! status | head -1`, `cargo xtask status 2>&1 | head -1`). Everything the
//! tool prints goes through [`say!`] (standard output) and [`warn!`]
//! (standard error) instead: once a write to a stream fails, further output
//! to it is dropped and the task carries on to its end (a mutating task must
//! not stop half-way because nobody reads its progress), and the exit
//! status stays the task's own. clippy's `disallowed-macros` keeps the
//! panicking macros out of the tool.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);
static ERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to standard output; see the module documentation.
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.flush());
    if let Err(e) = result {
        if e.kind() == ErrorKind::BrokenPipe {
            CLOSED.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes formatted text to standard error; a closed or failing standard
/// error drops the rest of it, never the task.
pub fn write_err(args: std::fmt::Arguments<'_>) {
    if ERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut err = std::io::stderr().lock();
    if err.write_fmt(args).and_then(|()| err.flush()).is_err() {
        ERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!` for the tool's output.
macro_rules! say {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the tool's output.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// `eprintln!` for the tool's messages on standard error.
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::out::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}
