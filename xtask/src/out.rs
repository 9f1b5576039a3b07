//! Standard output that a closed pipe cannot crash.
//!
//! `println!` panics when the reader has gone (`cargo xtask status | head
//! -1`). Everything the tool prints goes through [`say!`] instead: once a
//! write fails with a broken pipe, further output is dropped and the task
//! carries on to its end (a mutating task must not stop half-way because
//! nobody reads its progress), and the exit status stays the task's own.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

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
