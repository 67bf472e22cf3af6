//! Reading the golden transcripts of `vectors/` in tests.
//!
//! One file for the test suites of every crate in the workspace: the root
//! crate's tests declare it as a module, `codecs/` and `layers/` include it
//! with `#[path = "../../tests/support/transcripts.rs"]`.

// each suite uses its own part of this
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace's `vectors/`, from whichever crate's tests run.
pub(crate) fn vectors_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|dir| dir.join("vectors"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no vectors/ at or above {}", manifest.display()))
}

/// A transcript file's bytes; `*.json.gz` (the big captures) gunzipped.
pub(crate) fn read_transcript_bytes(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&raw[..]), &mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out
    } else {
        raw
    }
}

/// A transcript file, parsed.
pub(crate) fn read_transcript(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&read_transcript_bytes(path))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The bytes of a transcript's hex string.
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Bytes as the transcripts write them: lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a uuid (`8-4-4-4-12` hex digits) starts at `b[i]`.
pub(crate) fn is_uuid_at(b: &[u8], i: usize) -> bool {
    b.len() >= i + 36
        && (0..36).all(|k| match k {
            8 | 13 | 18 | 23 => b[i + k] == b'-',
            _ => b[i + k].is_ascii_hexdigit(),
        })
}

/// Replaces uuids with `<uuid>` and `0x...` addresses with `0x?`.
pub(crate) fn normalise_text(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        if is_uuid_at(b, i) {
            out.push_str("<uuid>");
            i += 36;
        } else if b[i..].starts_with(b"0x") && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
            out.push_str("0x?");
            i += 2;
            while b.get(i).is_some_and(u8::is_ascii_hexdigit) {
                i += 1;
            }
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}
