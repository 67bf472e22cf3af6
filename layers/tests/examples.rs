//! The example endpoints (`scipp_layers::examples`, ns `scipp_peer`)
//! against the recorded tractor actor they stand in for: for every
//! transcript of `vectors/tractor/` and `vectors/tractor-more/` that calls
//! module `scipp_peer` (and no other), a scripted client sends the
//! recorded client frames byte for byte, and every frame our peer sends
//! must equal the recorded one field by field after normalising uuids,
//! cids-as-uuids, `0x` task addresses and pids. Error texts are held too:
//! `boxed_type_str`, `src_type_str`, `message`, and the exception line of
//! `tb_str` (its last unindented `Type: message` line, module prefix
//! dropped; the frames above it are Python's own and not compared).
//!
//! Then Python's keyword checks: an unexpected keyword argument, for an
//! RPC and for a context, is a boxed `TypeError` worded like CPython's.

use scipp_codecs::msgpack::MsgpackCodec;
use scipp_layers::framing::FramingLayer;
use scipp_layers::peer::Peer;
use scipp_layers::{examples, route::Endpoints};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tower::Layer;
#[path = "../../tests/support/client_script.rs"]
mod client_script;
#[path = "../../tests/support/transcripts.rs"]
mod support;
use support::{normalise_text, read_transcript, vectors_dir as vectors};

/// The exception line of a traceback: its last unindented `Type: message`
/// (or bare `Type`) line, with the type's module path (Python's `a.b.` or
/// Rust's `a::b::`) dropped.
fn exception_line(tb: &str) -> Option<String> {
    tb.lines().rev().find_map(|line| {
        let (ty, rest) = match line.find(": ") {
            Some(at) => (&line[..at], Some(&line[at..])),
            None => (line.strip_suffix(':').unwrap_or(line), None),
        };
        let is_type = ty.starts_with(|c: char| c.is_ascii_alphabetic())
            && ty
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'));
        (is_type && (rest.is_some() || !line.ends_with(':'))).then(|| {
            let short = ty.rsplit(['.', ':']).next().unwrap();
            format!("{short}{}", rest.unwrap_or(""))
        })
    })
}

fn normalise(v: &rmpv::Value, key: Option<&str>) -> rmpv::Value {
    use rmpv::Value as V;
    match v {
        V::String(s) if key == Some("tb_str") => {
            let line = exception_line(s.as_str().unwrap_or(""));
            V::from(format!(
                "<exception line: {}>",
                line.map_or("none".to_owned(), |l| normalise_text(&l))
            ))
        }
        V::Integer(_) if key == Some("pid") => V::from(0),
        V::String(s) => V::from(normalise_text(s.as_str().unwrap_or(""))),
        V::Array(items) => V::Array(items.iter().map(|x| normalise(x, None)).collect()),
        V::Map(entries) => V::Map(
            entries
                .iter()
                .map(|(k, x)| (normalise(k, None), normalise(x, k.as_str())))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn decode(body: &[u8]) -> rmpv::Value {
    normalise(&rmpv::decode::read_value(&mut &body[..]).unwrap(), None)
}

/// The transcripts that call the example module: those of `tractor/` and
/// `tractor-more/` with a `Start` for ns `scipp_peer` and none for another
/// module but the runtime's `self`.
fn transcripts() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for set in ["tractor", "tractor-more"] {
        let mut files: Vec<_> = std::fs::read_dir(vectors().join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.ends_with(".json") || name.ends_with(".json.gz")
            })
            .filter(|p| {
                let file = read_transcript(p);
                let starts: Vec<_> = started_funcs(&file);
                starts.iter().any(|(ns, _)| ns == examples::NS)
                    && starts
                        .iter()
                        .all(|(ns, _)| ns == examples::NS || ns == "self")
            })
            .collect();
        files.sort();
        paths.extend(files);
    }
    paths
}

/// `(ns, func)` of every `Start` the client sent.
fn started_funcs(file: &serde_json::Value) -> Vec<(String, String)> {
    file["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["dir"] == "c2s" && f["msg_type"] == "Start")
        .map(|f| {
            let m = &f["msg"];
            (
                m["ns"].as_str().unwrap().to_owned(),
                m["func"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Plays the client's frames of one transcript against a peer serving the
/// example endpoints under the recorded server's name; returns how many
/// server frames matched.
async fn replay(path: &Path) -> usize {
    let file = read_transcript(path);
    let frames = file["frames"].as_array().unwrap();
    let server_name = frames
        .iter()
        .find(|f| f["dir"] == "s2c" && f["msg_type"] == "Aid")
        .map(|f| f["msg"]["name"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "scipp_peer".to_owned());
    let server = Peer::new(&server_name, MsgpackCodec::new()).endpoints(examples::scipp_peer());
    let (ours, theirs) = tokio::io::duplex(1 << 22);
    let serving = tokio::spawn(async move { server.accept(ours).await });
    let client = FramingLayer::new().layer(theirs);
    client_script::play(path, frames, client, serving, |at, sent, body| {
        let (ours, recorded) = (decode(sent), decode(body));
        assert!(
            ours == recorded,
            "{at}: the example endpoint's frame differs from the recorded actor's\n ours:     {ours}\n recorded: {recorded}"
        );
    })
    .await
}

/// The example endpoints, as `examples.rs` documents them.
const EXAMPLE_FUNCS: [&str; 8] = [
    "echo",
    "echo_int",
    "echo_point",
    "bad_yield",
    "raises",
    "bad_started",
    "sleep_forever",
    "add",
];

#[tokio::test]
async fn every_example_endpoint_answers_as_the_recorded_actor_texts_included() {
    let paths = transcripts();
    let mut exercised = BTreeSet::new();
    let mut frames = 0;
    for path in &paths {
        for (ns, func) in started_funcs(&read_transcript(path)) {
            if ns == examples::NS {
                exercised.insert(func);
            }
        }
        frames += replay(path).await;
    }
    let endpoints = examples::scipp_peer::<MsgpackCodec>();
    for func in EXAMPLE_FUNCS {
        assert!(endpoints.contains(examples::NS, func), "{func} not served");
        assert!(exercised.contains(func), "no transcript exercises {func}");
    }
    let names: Vec<_> = paths.iter().map(|p| p.file_name().unwrap()).collect();
    eprintln!(
        "{} transcripts, {frames} server frames matched: {names:?}",
        paths.len()
    );
    assert!(paths.len() >= 14, "{names:?}");
}

#[test]
fn the_exception_line_is_the_last_unindented_type_line() {
    let tb = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise E\nValueError: scipp_peer.raises: boom\n";
    assert_eq!(
        exception_line(tb).as_deref(),
        Some("ValueError: scipp_peer.raises: boom")
    );
    let tb = "tractor._exceptions.MsgTypeError: invalid `Started` msg payload\n\n  value: ...\n";
    assert_eq!(
        exception_line(tb).as_deref(),
        Some("MsgTypeError: invalid `Started` msg payload")
    );
    assert_eq!(
        exception_line("Traceback (scipp, Rust):\nscipp_layers::payload::MsgTypeError: bad\n")
            .as_deref(),
        Some("MsgTypeError: bad")
    );
    assert_eq!(
        exception_line("ValueError\n").as_deref(),
        Some("ValueError")
    );
    assert_eq!(
        exception_line("Caused by:\n  indented: only\n( collapsed )"),
        None
    );
}

// ---- keyword arguments, checked as Python checks them ---------------------

/// A client channel to a peer serving the example endpoints and those of
/// [`with_kwargs_endpoints`].
async fn client_of() -> scipp_layers::peer::Channel<MsgpackCodec> {
    let endpoints = with_kwargs_endpoints(examples::scipp_peer());
    let server = Peer::new("scipp_peer", MsgpackCodec::new()).endpoints(endpoints);
    let client = Peer::new("scipp_client", MsgpackCodec::new());
    let (a, b) = tokio::io::duplex(1 << 16);
    let served = tokio::spawn(async move {
        let chan = server.channel(a).await.unwrap();
        chan.closed().await;
    });
    let chan = client.channel(b).await.unwrap();
    drop(served);
    chan
}

/// Adds `scipp_peer:kw_map` (a map of kwargs: takes any keyword) and
/// `scipp_peer:kw_flatten` (`a` plus a flattened map of the rest).
fn with_kwargs_endpoints(mut endpoints: Endpoints<MsgpackCodec>) -> Endpoints<MsgpackCodec> {
    #[derive(serde::Deserialize)]
    struct Flat {
        a: i64,
        #[serde(flatten)]
        rest: BTreeMap<String, i64>,
    }
    endpoints.rpc(
        examples::NS,
        "kw_map",
        |kw: BTreeMap<String, i64>| async move { Ok(kw.values().sum::<i64>()) },
    );
    endpoints.rpc(examples::NS, "kw_flatten", |kw: Flat| async move {
        Ok(kw.a * 100 + kw.rest.values().sum::<i64>())
    });
    endpoints
}

/// The boxed type and the exception line of a failed call.
fn type_error_of(err: &scipp_layers::context::ContextError) -> (String, Option<String>) {
    let remote = err
        .remote()
        .unwrap_or_else(|| panic!("not a remote error: {err}"));
    (
        remote.boxed_type().to_owned(),
        exception_line(remote.traceback()),
    )
}

#[tokio::test]
async fn an_unexpected_keyword_argument_is_pythons_type_error() {
    let chan = client_of().await;
    let err = chan
        .rpc::<_, i64>(
            examples::NS,
            "add",
            &BTreeMap::from([("a", 1), ("b", 2), ("c", 3)]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        type_error_of(&err),
        (
            "TypeError".to_owned(),
            Some("TypeError: add() got an unexpected keyword argument 'c'".to_owned())
        )
    );

    // a context endpoint that takes no keyword
    let err = chan
        .open_context(examples::NS, "echo_point")
        .kwargs(&BTreeMap::from([("x", 1)]))
        .start::<rmpv::Value>()
        .await
        .unwrap_err();
    assert_eq!(
        type_error_of(&err),
        (
            "TypeError".to_owned(),
            Some("TypeError: echo_point() got an unexpected keyword argument 'x'".to_owned())
        )
    );

    // the channel goes on, and the right call still works
    let sum: i64 = chan
        .rpc(examples::NS, "add", &BTreeMap::from([("a", 2), ("b", 3)]))
        .await
        .unwrap();
    assert_eq!(sum, 5);
}

#[tokio::test]
async fn a_missing_keyword_argument_is_pythons_type_error() {
    let chan = client_of().await;
    let err = chan
        .rpc::<_, i64>(examples::NS, "add", &BTreeMap::from([("a", 1)]))
        .await
        .unwrap_err();
    assert_eq!(
        type_error_of(&err),
        (
            "TypeError".to_owned(),
            Some("TypeError: add() missing 1 required positional argument: 'b'".to_owned())
        )
    );
}

#[tokio::test]
async fn map_and_flattened_kwargs_take_any_keyword() {
    let chan = client_of().await;
    let kwargs = BTreeMap::from([("a", 1), ("b", 2), ("c", 3)]);
    let sum: i64 = chan.rpc(examples::NS, "kw_map", &kwargs).await.unwrap();
    assert_eq!(sum, 6);
    let packed: i64 = chan.rpc(examples::NS, "kw_flatten", &kwargs).await.unwrap();
    assert_eq!(packed, 105);
}
