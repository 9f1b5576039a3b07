//! Waiting for a condition with a deadline, never a fixed sleep: a bounded
//! poll that retries errors, ends at once on a [`Stop`], and ends at once
//! when its [`Interrupt`] token is set (Ctrl-C in the drill).

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error that ends a [`poll`] at once instead of being retried.
#[derive(Debug)]
pub struct Stop(pub String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

/// Set when the run is to end (Ctrl-C): every wait holding it ends at once.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with
/// what it was waiting for. Errors are retried, except [`Stop`]; a set
/// `interrupt` ends the wait with a [`Stop`].
pub fn poll<T>(
    interrupt: &Interrupt,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(25);
    let mut last_err = None;
    loop {
        if interrupt.is_set() {
            return Err(Stop(format!("interrupted while waiting for {what}")).into());
        }
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) if e.downcast_ref::<Stop>().is_some() => return Err(e),
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            let why = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{why}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// Whole milliseconds, for reports.
pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_times_out_with_the_last_error() {
        let never = Interrupt::default();
        let mut n = 0;
        let err = poll::<()>(&never, "nothing", Duration::from_millis(300), || {
            n += 1;
            bail!("attempt {n}")
        })
        .unwrap_err();
        assert!(err.to_string().contains("waiting for nothing"), "{err}");
        assert!(err.to_string().contains("attempt"), "{err}");
        let mut calls = 0;
        let got = poll(&never, "the third call", Duration::from_secs(5), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(got, 3);
        let mut tries = 0;
        let stopped = poll::<()>(&never, "x", Duration::from_secs(30), || {
            tries += 1;
            Err(Stop("gone".into()).into())
        });
        assert_eq!(stopped.unwrap_err().to_string(), "gone");
        assert_eq!(
            tries, 1,
            "a Stop error ends the wait at once, untried again"
        );
    }

    #[test]
    fn an_interrupt_ends_the_wait() {
        let token = Interrupt::default();
        let setter = token.clone();
        let mut calls = 0;
        let err = poll::<()>(&token, "forever", Duration::from_secs(600), || {
            calls += 1;
            if calls == 2 {
                setter.set();
            }
            Ok(None)
        })
        .unwrap_err();
        assert!(err.downcast_ref::<Stop>().is_some(), "{err}");
        assert_eq!(calls, 2, "the wait ends at the next round");
    }
}
