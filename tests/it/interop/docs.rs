//! `docs/writing-plugins.md` shows excerpts of tested code; each excerpt must
//! still match its file.

use super::root;

/// An elided part of an excerpt.
fn is_elision(line: &str) -> bool {
    matches!(line, "" | "..." | "// ..." | "# ...")
}

/// Code blocks whose first line names a file (`// path` or `# path`): every
/// other line of the block, trimmed, must appear in that file, in order.
#[test]
fn writing_plugins_excerpts_match_the_tested_code() {
    let doc = std::fs::read_to_string(root().join("docs/writing-plugins.md")).unwrap();
    let mut checked = 0;
    for block in doc.split("```").skip(1).step_by(2) {
        let mut lines = block.lines().skip(1); // the language tag
        let Some(first) = lines.next() else { continue };
        let path = first
            .trim()
            .trim_start_matches("// ")
            .trim_start_matches("# ");
        let file = root().join(path);
        if path == first.trim() || !file.is_file() {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        let source: Vec<&str> = source.lines().map(str::trim).collect();
        let mut at = 0;
        for line in lines.map(str::trim).filter(|l| !is_elision(l)) {
            match source[at..].iter().position(|s| *s == line) {
                Some(i) => at += i + 1,
                None => panic!(
                    "docs/writing-plugins.md: excerpt of {path}: {line:?} is not in the file (after line {at})"
                ),
            }
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} excerpts found");
}
