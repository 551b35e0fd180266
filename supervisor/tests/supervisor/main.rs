//! Integration tests against real processes (`sh` scripts and `sleep`), plus the restart
//! schedule on paused time. Tests that measure the whole process (CPU time, fds, zombies) or
//! need a host to kill re-run themselves alone in a fresh process of this binary.

// Test helpers outside `#[test]` functions panic on unexpected input too.
#![allow(clippy::unwrap_used)]

mod support;

mod before_spawn;
mod cpu;
mod deadlines;
mod destroy;
mod errors;
mod health;
mod host;
mod hygiene;
mod lifecycle;
mod lines;
mod output;
mod runs;
mod schedule;
mod stop;
