//! Helpers shared by the process tests.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Reads a `scipp serve` child's first stdout line, `listening on ADDR`,
/// and returns `ADDR`. The rest of stdout is left unread.
pub(crate) fn listening_addr(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .expect("reads the first line");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned()
}
