//! Choosing CPUs for a job: from the host's allowed set, spread over consecutive jobs.

use std::sync::atomic::{AtomicUsize, Ordering};

use nix::{
    sched::{CpuSet, sched_getaffinity},
    unistd::Pid,
};

use crate::{error::SpecError, spec::CpuLimit};

/// Process-wide rotating offset, so consecutive `MaxProcs` jobs start on different CPUs.
static NEXT_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// The CPUs this process may run on (`sched_getaffinity`), ascending.
pub(crate) fn allowed_cpus() -> Result<Vec<usize>, SpecError> {
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(SpecError::Affinity)?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}

/// The CPUs for `limit`, ascending. `MaxProcs` takes the next offset of the rotation.
pub(crate) fn choose(limit: &CpuLimit, job: &str) -> Result<Vec<usize>, SpecError> {
    let allowed = allowed_cpus()?;
    match limit {
        CpuLimit::MaxProcs(n) => {
            let mut n = n.get();
            if n > allowed.len() {
                tracing::warn!(
                    job,
                    max_procs = n,
                    allowed = allowed.len(),
                    "max_procs is above the number of CPUs this host may use; clamped"
                );
                n = allowed.len();
            }
            let start = NEXT_OFFSET.fetch_add(n, Ordering::Relaxed);
            Ok(pick(&allowed, n, start))
        }
        CpuLimit::Cpus(cpus) => check_list(cpus, &allowed),
    }
}

/// `n` CPUs of `allowed` starting at index `start` (wrapping), ascending. Pure.
pub(crate) fn pick(allowed: &[usize], n: usize, start: usize) -> Vec<usize> {
    if allowed.is_empty() {
        return Vec::new();
    }
    let mut cpus: Vec<usize> = (0..n.min(allowed.len()))
        .map(|i| allowed[(start.wrapping_add(i)) % allowed.len()])
        .collect();
    cpus.sort_unstable();
    cpus
}

/// Validates an explicit list against `allowed`; returns it sorted and deduplicated. Pure.
pub(crate) fn check_list(cpus: &[usize], allowed: &[usize]) -> Result<Vec<usize>, SpecError> {
    if cpus.is_empty() {
        return Err(SpecError::EmptyCpuList {
            allowed: allowed.to_vec(),
        });
    }
    if let Some(&cpu) = cpus.iter().find(|cpu| !allowed.contains(cpu)) {
        return Err(SpecError::CpuNotAllowed {
            cpu,
            allowed: allowed.to_vec(),
        });
    }
    let mut cpus = cpus.to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The affinity mask for `cpus` (all below `CpuSet::count()`, as they come from the allowed set).
pub(crate) fn cpu_set(cpus: &[usize]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        // Cannot fail: every CPU here came from the allowed set, which is below `count()`.
        let _ = set.set(cpu);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_rotates_and_wraps() {
        let allowed = [0, 1, 2, 5];
        assert_eq!(pick(&allowed, 2, 0), [0, 1]);
        assert_eq!(pick(&allowed, 2, 2), [2, 5]);
        assert_eq!(pick(&allowed, 2, 3), [0, 5]);
        assert_eq!(pick(&allowed, 1, 4), [0]);
        assert_eq!(pick(&allowed, 9, 1), [0, 1, 2, 5]);
        assert_eq!(pick(&[], 1, 0), Vec::<usize>::new());
    }

    #[test]
    fn consecutive_jobs_spread() {
        let allowed = [0, 1];
        let first = pick(&allowed, 1, 0);
        let second = pick(&allowed, 1, 1);
        assert_ne!(first, second);
    }

    #[test]
    fn explicit_lists_are_checked() {
        let allowed = [0, 1, 3];
        assert_eq!(check_list(&[3, 0, 3], &allowed), Ok(vec![0, 3]));
        assert_eq!(
            check_list(&[2], &allowed),
            Err(SpecError::CpuNotAllowed {
                cpu: 2,
                allowed: vec![0, 1, 3]
            })
        );
        assert!(matches!(
            check_list(&[], &allowed),
            Err(SpecError::EmptyCpuList { .. })
        ));
        let message = check_list(&[7], &allowed).unwrap_err().to_string();
        assert!(message.contains("CPU 7"), "{message}");
    }
}
