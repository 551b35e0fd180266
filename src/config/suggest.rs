//! "Did you mean": the valid key nearest to a misspelt one.

/// The valid key closest to `unknown`, if it is close: same letters up to case and `-`/`_`,
/// or at most two edits away.
pub(super) fn suggest<'a>(unknown: &str, valid: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '-' && *c != '_')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squash(unknown);
    if let Some(same) = valid.iter().find(|v| squash(v) == wanted) {
        return Some(same);
    }
    valid
        .iter()
        .map(|v| (edit_distance(unknown, v), *v))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys() {
        let keys = ["path", "max-procs", "cpus", "start-timeout"];
        assert_eq!(suggest("maxprocs", &keys), Some("max-procs"));
        assert_eq!(suggest("max_procs", &keys), Some("max-procs"));
        assert_eq!(suggest("MaxProcs", &keys), Some("max-procs"));
        assert_eq!(suggest("pth", &keys), Some("path"));
        assert_eq!(suggest("start-timout", &keys), Some("start-timeout"));
        assert_eq!(suggest("bogus", &keys), None);
    }
}
