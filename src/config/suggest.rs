//! "Did you mean": the valid key nearest to a misspelt one.

/// The valid key closest to `unknown`, if it is close: same letters up to case and `-`/`_`,
/// or at most two edits away.
pub(super) fn suggest<'a>(unknown: &str, valid: &[&'a str]) -> Option<&'a str> {
    suggest_within(unknown, valid, 2)
}

/// Like [`suggest`], at most `max_edits` edits away (an edit: a character inserted, removed,
/// replaced, or two neighbours swapped).
pub(super) fn suggest_within<'a>(
    unknown: &str,
    valid: &[&'a str],
    max_edits: usize,
) -> Option<&'a str> {
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
        .filter(|(d, _)| *d <= max_edits)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Edits from `a` to `b`, a swap of neighbours counting as one (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back, one back, this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (previous[j] + 1)
                .min(row[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut row);
    }
    previous[b.len()]
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

    #[test]
    fn a_swap_is_one_edit() {
        assert_eq!(edit_distance("pluigns", "plugins"), 1);
        assert_eq!(edit_distance("mdoe", "mode"), 1);
        assert_eq!(edit_distance("mod", "mode"), 1);
        assert_eq!(edit_distance("name", "mode"), 3);
        assert_eq!(edit_distance("node", "mode"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(
            suggest_within("pluigns", &["plugins", "plugin"], 2),
            Some("plugins")
        );
        assert_eq!(suggest_within("name", &["mode"], 1), None);
    }
}
