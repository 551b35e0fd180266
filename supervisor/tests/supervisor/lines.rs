//! Properties of the public `LineSplitter`: chunking does not matter, lines are bounded, and
//! nothing but line ends is lost.

use proptest::prelude::*;
use supervisor::LineSplitter;

/// All lines of `data` fed in the chunks that `cuts` (positions, any order) make.
fn lines(max: usize, data: &[u8], cuts: &[usize]) -> Vec<String> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut splitter = LineSplitter::new(max);
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([data.len()]) {
        out.extend(splitter.push(&data[from..cut]));
        from = cut;
    }
    out.extend(splitter.finish());
    out
}

/// The lines of `text` by definition: split at `\n`, a `\r` before it dropped; no empty line
/// after a final line end.
fn expected(text: &str) -> Vec<String> {
    let mut parts: Vec<&str> = text.split('\n').collect();
    let last = parts.pop().unwrap_or_default();
    let mut lines: Vec<String> = parts
        .into_iter()
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if !last.is_empty() {
        lines.push(last.to_owned());
    }
    lines
}

/// Bytes rich in line ends, carriage returns, multi-byte and invalid UTF-8.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => Just(b'a'),
        3 => Just(b'\n'),
        3 => Just(b'\r'),
        1 => Just(0xc3u8),
        1 => Just(0xa9u8),
        2 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..300)
}

/// Valid UTF-8, rich in line ends and multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("a"),
        Just("bc"),
        Just("\n"),
        Just("\r"),
        Just("\r\n"),
        Just("é"),
        Just("€"),
        Just("😀"),
    ];
    proptest::collection::vec(piece, 0..120).prop_map(|p| p.concat())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(any::<usize>(), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn chunking_does_not_change_the_lines(max in 1usize..40, data in bytes(), cuts in cuts()) {
        prop_assert_eq!(lines(max, &data, &cuts), lines(max, &data, &[]));
    }

    #[test]
    fn lines_of_valid_utf8_are_at_most_max_bytes(max in 4usize..40, text in text(), cuts in cuts()) {
        for line in lines(max, text.as_bytes(), &cuts) {
            prop_assert!(line.len() <= max, "{line:?} is longer than {max}");
        }
    }

    #[test]
    fn lines_of_any_bytes_are_bounded(max in 1usize..40, data in bytes(), cuts in cuts()) {
        // Each input byte becomes at most 3 output bytes (U+FFFD for an invalid byte).
        for line in lines(max, &data, &cuts) {
            prop_assert!(line.len() <= 3 * max, "{line:?} from max {max}");
        }
        if data.is_ascii() {
            for line in lines(max, &data, &cuts) {
                prop_assert!(line.len() <= max, "{line:?} is longer than {max}");
            }
        }
    }

    #[test]
    fn only_line_ends_are_lost(max in 4usize..40, text in text(), cuts in cuts()) {
        let got = lines(max, text.as_bytes(), &cuts);
        let want = expected(&text);
        prop_assert_eq!(got.concat(), want.concat());
        if want.iter().all(|l| l.len() <= max) {
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_full_line_before_crlf_is_not_split() {
    let mut splitter = LineSplitter::new(3);
    assert_eq!(splitter.push(b"abc\r"), Vec::<String>::new());
    assert_eq!(splitter.push(b"\nabc\rd"), ["abc", "abc"]);
    assert_eq!(splitter.finish(), ["\rd"]);
    assert_eq!(splitter.push(b"xyz\r"), Vec::<String>::new());
    assert_eq!(splitter.finish(), ["xyz", "\r"]);
}

/// go-plugin's GRPCStdio cuts output into 1 KiB messages that ignore line ends.
#[test]
fn stdio_chunks_of_one_kib_give_whole_lines() {
    let text: String = (0..200).map(|i| format!("log line number {i}\n")).collect();
    let mut splitter = LineSplitter::new(64 * 1024);
    let mut got = Vec::new();
    for chunk in text.as_bytes().chunks(1024) {
        got.extend(splitter.push(chunk));
    }
    got.extend(splitter.finish());
    assert_eq!(got, expected(&text));
}
