//! Supervised child processes (work in progress; see issue 3).
