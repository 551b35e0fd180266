//! Why a companion's start failed, in an operator's words: what the child
//! printed or did, and whether it looks like a plugin at all.
//!
//! The readiness hook records how far each run got ([`Progress`]); when the
//! run ends, [`Progress::explain`] joins that with the run's exit. A run
//! that became ready has nothing to explain.

use std::time::Duration;

use supervisor::Exit;

/// The handshake's fields, as go-plugin's documentation names them.
const EXPECTED: &str =
    "CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK-TYPE|NETWORK-ADDR|PROTOCOL";

/// How far one run got towards ready, as its readiness hook saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress {
    /// Spawned; no line on stdout yet.
    Spawned,
    /// Its stdout closed before a first line.
    StdoutClosed,
    /// Its first stdout line is not a handshake line: the quoted line.
    NotHandshake(String),
    /// Its first line was not a valid handshake, or connecting failed: why.
    Failed(String),
    /// A valid handshake line; connecting to it.
    Handshaken,
    /// Nothing on stdout within the start timeout.
    Silent(Duration),
    /// Ready: handed to the owner.
    Ready,
}

impl Progress {
    /// The readiness hook's error for this step (the supervisor records it
    /// as the run's exit when it kills the child).
    pub(crate) fn error(&self) -> String {
        match self {
            Progress::Spawned | Progress::Handshaken | Progress::Ready => String::new(),
            Progress::StdoutClosed => {
                "closed its stdout before printing a handshake line; is this a plugin binary?"
                    .to_owned()
            }
            Progress::NotHandshake(line) => format!(
                "printed {line} on stdout, which is not a go-plugin handshake line (expected {EXPECTED}); \
                 a plugin prints it as its first stdout line"
            ),
            Progress::Failed(why) => why.clone(),
            Progress::Silent(after) => format!(
                "printed nothing on stdout within the start timeout ({after:?}); is this a plugin binary?"
            ),
        }
    }

    /// Why a run that ended with `exit` never became ready; `None` for a run
    /// that did.
    pub(crate) fn explain(&self, exit: &Exit) -> Option<String> {
        let by_itself = matches!(exit, Exit::Exited { .. } | Exit::Signaled { .. });
        Some(match self {
            Progress::Ready => return None,
            // The hook's own error is the run's exit, or the supervisor's
            // backstop timeout is.
            _ if !by_itself => match exit {
                Exit::ReadinessFailed { error } => error.clone(),
                other => other.to_string(),
            },
            Progress::Spawned | Progress::StdoutClosed => {
                format!("{exit} before printing a handshake line; is this a plugin binary?")
            }
            Progress::Handshaken => {
                format!("{exit} after printing its handshake line, before it could be reached")
            }
            other => format!("{}; then it {exit}", other.error()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_name_the_exit_and_what_was_printed() {
        let code0 = Exit::Exited { code: 0 };
        assert_eq!(
            Progress::StdoutClosed.explain(&code0).unwrap(),
            "exited with code 0 before printing a handshake line; is this a plugin binary?"
        );
        assert_eq!(
            Progress::Spawned
                .explain(&Exit::Signaled {
                    signal: 11,
                    core_dumped: false
                })
                .unwrap(),
            "killed by SIGSEGV before printing a handshake line; is this a plugin binary?"
        );
        let hello = Progress::NotHandshake("\"hello\"".into());
        assert_eq!(
            hello.explain(&code0).unwrap(),
            format!("{}; then it exited with code 0", hello.error())
        );
        assert!(hello.error().starts_with(
            "printed \"hello\" on stdout, which is not a go-plugin handshake line (expected CORE-PROTOCOL-VERSION|"
        ));
        let silent = Progress::Silent(Duration::from_secs(5));
        let killed = Exit::ReadinessFailed {
            error: silent.error(),
        };
        assert_eq!(
            silent.explain(&killed).unwrap(),
            "printed nothing on stdout within the start timeout (5s); is this a plugin binary?"
        );
        assert_eq!(Progress::Ready.explain(&code0), None);
    }
}
