//! Naming a resource limit as the cause of an exit. A plugin that hits `RLIMIT_AS` cannot
//! allocate and usually aborts with a message of its runtime; one that hits
//! `RLIMIT_NOFILE` or `RLIMIT_NPROC` fails to open files or start threads. The last stderr
//! lines say which, in each runtime's words; the exit status alone does not.

use crate::config::{LimitsConfig, format_size};

/// What each runtime prints when an allocation fails.
const OUT_OF_MEMORY: [&str; 6] = [
    "memory allocation of",   // Rust's alloc error handler
    "out of memory",          // Go: "fatal error: runtime: out of memory"
    "MemoryError",            // Python
    "Cannot allocate memory", // ENOMEM from the C library
    "std::bad_alloc",         // C++
    "cannot allocate",        // others
];

/// What each runtime prints when it runs out of file descriptors.
const OUT_OF_FILES: [&str; 2] = ["Too many open files", "EMFILE"];

/// What each runtime prints when it cannot start a thread or process.
const OUT_OF_PROCESSES: [&str; 3] = [
    "failed to spawn thread",           // Rust std
    "failed to create new OS thread",   // Go
    "Resource temporarily unavailable", // EAGAIN from clone/fork
];

/// Whether a stderr line shows a plugin hitting one of the limits (whichever is set).
pub(super) fn is_limit_line(line: &str) -> bool {
    [&OUT_OF_MEMORY[..], &OUT_OF_FILES[..], &OUT_OF_PROCESSES[..]]
        .iter()
        .any(|patterns| patterns.iter().any(|p| line.contains(p)))
}

/// `limit N reached (the plugin's own words)` when the given stderr lines (the first such
/// line of the run, or its last lines) show the plugin hit one of the limits it runs under;
/// `None` otherwise.
pub(super) fn explain(limits: &LimitsConfig, stderr_tail: &[String]) -> Option<String> {
    let found = |patterns: &[&str]| {
        stderr_tail
            .iter()
            .rev()
            .find(|line| patterns.iter().any(|p| line.contains(p)))
            .map(|line| line.trim().chars().take(160).collect::<String>())
    };
    if let Some(memory) = limits.memory
        && let Some(line) = found(&OUT_OF_MEMORY)
    {
        return Some(format!(
            "memory limit {} reached (companion.limits.memory): {line}",
            format_size(memory)
        ));
    }
    if let Some(files) = limits.open_files
        && let Some(line) = found(&OUT_OF_FILES)
    {
        return Some(format!(
            "open-files limit {files} reached (companion.limits.open-files): {line}"
        ));
    }
    if let Some(processes) = limits.processes
        && let Some(line) = found(&OUT_OF_PROCESSES)
    {
        return Some(format!(
            "processes limit {processes} reached (companion.limits.processes): {line}"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_named_only_when_set_and_the_plugin_says_so() {
        let limits = LimitsConfig {
            memory: Some(256 << 20),
            open_files: Some(64),
            processes: None,
        };
        let rust = ["memory allocation of 1073741824 bytes failed".to_owned()];
        assert_eq!(
            explain(&limits, &rust).as_deref(),
            Some(
                "memory limit 256MiB reached (companion.limits.memory): memory allocation of 1073741824 bytes failed"
            )
        );
        let go = [
            "fatal error: runtime: out of memory".to_owned(),
            "goroutine 1 [running]:".to_owned(),
        ];
        assert!(
            explain(&limits, &go)
                .unwrap()
                .contains("runtime: out of memory")
        );
        let files = ["accept: Too many open files".to_owned()];
        assert!(
            explain(&limits, &files)
                .unwrap()
                .starts_with("open-files limit 64 reached")
        );
        let threads = ["failed to spawn thread".to_owned()];
        assert_eq!(explain(&limits, &threads), None, "no processes limit set");
        assert_eq!(
            explain(&LimitsConfig::default(), &rust),
            None,
            "no memory limit set"
        );
        assert_eq!(explain(&limits, &["panicked at x".to_owned()]), None);
    }
}
