//! Sample messages and payloads, the same for every codec: what the
//! benches, the conformance tests and `scipp codecs` measure.
//!
//! ```
//! use scipp::{sample, MsgpackCodec};
//! let msgs = sample::messages(&MsgpackCodec::new()).unwrap();
//! assert!(msgs.iter().any(|s| s.name == "Yield(64KiB)"));
//! ```

use crate::msg::*;
use crate::{Codec, PayloadError};
use serde::{Deserialize, Serialize};

/// A struct payload of about 200 bytes once encoded: a sensor reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Sensor name.
    pub sensor: String,
    /// Sequence number.
    pub seq: u64,
    /// Timestamp, seconds.
    pub ts: f64,
    /// Eight samples.
    pub values: Vec<f64>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Whether the reading passed its checks.
    pub ok: bool,
}

impl Reading {
    /// The sample value.
    pub fn sample() -> Self {
        Reading {
            sensor: "scipp-bench/thermocouple-07".into(),
            seq: 1_234_567,
            ts: 1_764_201_600.25,
            values: (0..8).map(|i| 20.0 + f64::from(i) * 0.125).collect(),
            tags: vec!["lab-3".into(), "rack-12".into(), "calibrated".into()],
            ok: true,
        }
    }
}

/// The 64 KiB bytes payload (`i % 251`, as in tractor's big-payload capture).
pub fn blob_64k() -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from((0..65_536u32).map(|i| (i % 251) as u8).collect::<Vec<_>>())
}

/// A named sample message.
#[derive(Debug, Clone)]
pub struct Sample {
    /// A short label, e.g. `"Yield(int)"`.
    pub name: &'static str,
    /// The message, payloads encoded by the codec it was made for.
    pub msg: Msg,
}

/// A cid as tractor makes them (a uuid4 string).
pub const CID: &str = "f3ae7fac-3352-4cf5-b26f-b29198be782c";

/// The client uid of the golden transcripts.
pub fn client_uid() -> Uid {
    Uid::new("scipp_client", "e6c23380-01c1-472d-a24d-7e06a1f1cbe5")
}

/// The server uid of the golden transcripts.
pub fn peer_uid() -> Uid {
    Uid::new("scipp_peer", "659aea7d-8870-4c70-8c64-345c54084a49")
}

/// One message of every kind, plus `Yield` with each sample payload.
///
/// # Errors
/// When the codec cannot encode a sample payload.
pub fn messages<C: Codec>(codec: &C) -> Result<Vec<Sample>, PayloadError> {
    let cid = Cid::from(CID);
    let yield_of = |pld| {
        Msg::Yield(Yield {
            cid: cid.clone(),
            pld,
        })
    };
    let kwargs: std::collections::BTreeMap<&str, i64> = [("a", 2), ("b", 3)].into();
    let bad_yield = Yield {
        cid: cid.clone(),
        pld: codec.encode_payload("not-an-int")?,
    };
    let mut mte = Error::new(peer_uid(), "MsgTypeError");
    mte.relay_path.push(peer_uid());
    mte.message = Some("remote task raised a 'MsgTypeError'\n".into());
    mte.tb_str =
        "Traceback (most recent call last):\n  ...\nMsgTypeError: invalid `Yield` msg payload"
            .into();
    mte.cid = Some(cid.clone());
    mte.bad_msg = Some(Box::new(Msg::Yield(bad_yield)));
    let mut aid = Aid::new(client_uid().name, client_uid().uuid);
    aid.pid = Some(4242);
    aid.is_registrar = Some(false);
    Ok(vec![
        Sample {
            name: "Aid",
            msg: aid.into(),
        },
        Sample {
            name: "Start",
            msg: Msg::from(Start {
                cid: cid.clone(),
                ns: "scipp_peer".into(),
                func: "add".into(),
                kwargs: codec.encode_payload(&kwargs)?,
                uid: client_uid(),
                pld_spec: Start::DEFAULT_PLD_SPEC.into(),
            }),
        },
        Sample {
            name: "StartAck",
            msg: Msg::StartAck(StartAck {
                cid: cid.clone(),
                functype: FuncType::Context,
            }),
        },
        Sample {
            name: "Started(str)",
            msg: Msg::Started(Started {
                cid: cid.clone(),
                pld: codec.encode_payload("hello")?,
            }),
        },
        Sample {
            name: "Yield(int)",
            msg: yield_of(codec.encode_payload(&42i64)?),
        },
        Sample {
            name: "Yield(struct)",
            msg: yield_of(codec.encode_payload(&Reading::sample())?),
        },
        Sample {
            name: "Yield(64KiB)",
            msg: yield_of(codec.encode_payload(&blob_64k())?),
        },
        Sample {
            name: "Stop",
            msg: Msg::Stop(Stop { cid: cid.clone() }),
        },
        Sample {
            name: "Return(int)",
            msg: Msg::Return(Return {
                cid: cid.clone(),
                pld: codec.encode_payload(&5i64)?,
            }),
        },
        Sample {
            name: "CancelAck",
            msg: Msg::CancelAck(CancelAck {
                cid: cid.clone(),
                pld: true,
            }),
        },
        Sample {
            name: "Error(MTE)",
            msg: mte.into(),
        },
    ])
}
