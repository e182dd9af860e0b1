//! An error with its causes on one line, for the messages and logs of crates that do not
//! use `anyhow` (whose `{:#}` prints the same).

use std::error::Error;
use std::fmt;

/// Displays as `error: cause: root cause`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn each_cause_follows_a_colon() {
        let e = Outer(std::io::Error::other("root"));
        assert_eq!(ErrorChain(&e).to_string(), "outer: root");
    }
}
