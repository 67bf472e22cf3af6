//! `scipp decode`: decode transcript files or hex frames and print them.

use super::{render, CliError};
use bytes::Bytes;
use scipp::{Codec, MsgpackCodec, WireProfile};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct DecodeArgs {
    /// Transcript JSON files (as in tractor's golden vectors), or hex
    /// frames (with their 4-byte length prefix).
    #[arg(required = true)]
    inputs: Vec<String>,
}

pub(crate) fn run(args: DecodeArgs) -> Result<(), CliError> {
    for input in &args.inputs {
        let path = PathBuf::from(input);
        if path.exists() {
            transcript(&path)?;
        } else {
            let frame =
                unhex(input).ok_or_else(|| format!("{input:?} is neither a file nor hex"))?;
            frame_line("", MsgpackCodec::new(), &frame);
        }
    }
    Ok(())
}

fn transcript(path: &PathBuf) -> Result<(), CliError> {
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)
        .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let profile = file["meta"]["tractor_commit"]
        .as_str()
        .and_then(WireProfile::from_commit)
        .unwrap_or_default();
    let codec = MsgpackCodec::with_profile(profile);
    let frames = file["frames"]
        .as_array()
        .ok_or_else(|| format!("{}: no `frames` array", path.display()))?;
    out!("{} ({} frames, {profile:?})", path.display(), frames.len());
    for f in frames {
        let dir = f["dir"].as_str().unwrap_or("?");
        match f["hex"].as_str().and_then(unhex) {
            Some(frame) => frame_line(dir, codec, &frame),
            None => out!("  {dir}  <frame without valid hex>"),
        }
    }
    Ok(())
}

fn frame_line(dir: &str, codec: MsgpackCodec, frame: &[u8]) {
    let body = frame.get(4..).unwrap_or_default();
    let body = Bytes::copy_from_slice(body);
    match codec.decode(body.clone()) {
        Ok(msg) => {
            let same = codec.encode_to_bytes(&msg).is_ok_and(|b| b == body);
            let mark = if same { "=" } else { "≠" };
            out!(
                "  {dir:<3} {:>7} B {mark} {}",
                body.len(),
                render::msg(&codec, &msg)
            );
        }
        Err(e) => out!("  {dir:<3} {:>7} B ! {e}", body.len()),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 || s.is_empty() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
