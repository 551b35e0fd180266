//! What changed between two looks at the folder: pure, so that it is tested alone.

use std::{collections::BTreeMap, ffi::OsString};

use super::scan::Stamp;

/// Sockets by file name, as two looks saw them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// New names.
    pub(crate) added: Vec<OsString>,
    /// Names that are gone.
    pub(crate) removed: Vec<OsString>,
    /// Names whose file is another one now (the server bound its socket anew).
    pub(crate) replaced: Vec<OsString>,
}

#[cfg(test)]
impl Changes {
    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.replaced.is_empty()
    }
}

/// The changes from `known` to `found`, each list in name order.
pub(crate) fn diff(
    known: &BTreeMap<OsString, Stamp>,
    found: &BTreeMap<OsString, Stamp>,
) -> Changes {
    let mut changes = Changes::default();
    for (name, stamp) in found {
        match known.get(name) {
            None => changes.added.push(name.clone()),
            Some(was) if was != stamp => changes.replaced.push(name.clone()),
            Some(_) => {}
        }
    }
    changes.removed = known
        .keys()
        .filter(|name| !found.contains_key(*name))
        .cloned()
        .collect();
    changes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stamp(ino: u64) -> Stamp {
        Stamp {
            dev: 1,
            ino,
            ctime: (0, 0),
        }
    }

    fn look(entries: &[(&str, u64)]) -> BTreeMap<OsString, Stamp> {
        entries
            .iter()
            .map(|(name, ino)| (OsString::from(name), stamp(*ino)))
            .collect()
    }

    fn names(list: &[OsString]) -> Vec<&str> {
        list.iter().map(|n| n.to_str().unwrap()).collect()
    }

    #[test]
    fn added_removed_and_replaced_sockets() {
        let known = look(&[("a.sock", 1), ("b.sock", 2), ("c.sock", 3)]);
        let found = look(&[("a.sock", 1), ("c.sock", 9), ("d.sock", 4)]);
        let changes = diff(&known, &found);
        assert_eq!(names(&changes.added), ["d.sock"]);
        assert_eq!(names(&changes.removed), ["b.sock"]);
        assert_eq!(names(&changes.replaced), ["c.sock"]);
        assert!(diff(&found, &found).is_empty());
        assert_eq!(
            names(&diff(&BTreeMap::new(), &found).added),
            ["a.sock", "c.sock", "d.sock"]
        );
        assert_eq!(
            names(&diff(&found, &BTreeMap::new()).removed),
            ["a.sock", "c.sock", "d.sock"]
        );
    }

    proptest! {
        /// Applying the changes to what was known gives what was found: every name is in
        /// exactly one list or unchanged.
        #[test]
        fn the_changes_lead_from_known_to_found(
            known in proptest::collection::btree_map("[a-e]", 0u64..3, 0..5),
            found in proptest::collection::btree_map("[a-e]", 0u64..3, 0..5),
        ) {
            let to = |m: &BTreeMap<String, u64>| -> BTreeMap<OsString, Stamp> {
                m.iter().map(|(k, v)| (OsString::from(k), stamp(*v))).collect()
            };
            let (known, found) = (to(&known), to(&found));
            let changes = diff(&known, &found);
            let mut result = known.clone();
            for name in &changes.removed {
                prop_assert!(result.remove(name).is_some());
            }
            for name in changes.added.iter().chain(&changes.replaced) {
                result.insert(name.clone(), found[name]);
            }
            prop_assert_eq!(result, found);
        }
    }
}
