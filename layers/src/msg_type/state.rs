//! The per-`cid` dialog state machine of spec §5.7.

use crate::cid_map::CidMap;
use scipp_codecs::msg::{Cid, FuncType, Msg};

/// Which side of a dialog this peer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Sent the `Start` (the caller).
    Parent,
    /// Received the `Start` (the endpoint).
    Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Parent: sent `Start`, waiting for `StartAck`.
    AwaitAck,
    /// Parent: a context endpoint acked; waiting for `Started`.
    AwaitStarted,
    /// Parent: plain RPC acked; waiting for `Return` (or `CancelAck`).
    AwaitResult,
    /// Parent: a legacy async generator: `Yield`s until `Stop`.
    OneWay,
    /// Parent: `Started` received; `peer_yielded` once the child streams,
    /// `stopped` once either side sent `Stop`.
    Open { peer_yielded: bool, stopped: bool },
    /// Child: got `Start`; `started` once we sent `Started`.
    Serving { started: bool },
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::AwaitAck => "awaiting StartAck",
            Phase::AwaitStarted => "awaiting Started",
            Phase::AwaitResult => "awaiting the RPC result",
            Phase::OneWay => "receiving an async-generator stream",
            Phase::Open {
                peer_yielded: true,
                stopped: false,
            } => "streaming",
            Phase::Open { .. } => "open",
            Phase::Serving { started: false } => "serving, before Started",
            Phase::Serving { started: true } => "serving",
        }
    }
}

/// Why a message is illegal: the state, and what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Illegal {
    pub(crate) state: &'static str,
    pub(crate) expected: &'static str,
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// The next message must be the peer's `Aid`.
    AwaitAid,
    /// Just got the `Aid`: a `SpawnSpec` may follow (spawn path).
    MaySpawnSpec,
    Done,
}

/// Every live dialog of one channel.
#[derive(Debug)]
pub(crate) struct DialogTable {
    handshake: Handshake,
    dialogs: CidMap<(Side, Phase)>,
    /// Bumped by every change of a dialog (opened, moved on, finished):
    /// while it stays the same, a message that was legal and changed
    /// nothing is legal again and changes nothing.
    generation: u64,
}

impl DialogTable {
    pub(crate) fn new(expect_handshake: bool) -> Self {
        DialogTable {
            handshake: if expect_handshake {
                Handshake::AwaitAid
            } else {
                Handshake::Done
            },
            dialogs: CidMap::default(),
            generation: 0,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn live(&self) -> usize {
        self.dialogs.len()
    }

    pub(crate) fn side(&self, cid: &Cid) -> Option<Side> {
        self.dialogs.get(cid).map(|(side, _)| *side)
    }

    /// Checks and records a message from the peer.
    pub(crate) fn on_rx(&mut self, msg: &Msg) -> Result<(), Illegal> {
        let handshake = self.handshake;
        match (msg, handshake) {
            (Msg::Aid(_), Handshake::AwaitAid) => {
                self.handshake = Handshake::MaySpawnSpec;
                return Ok(());
            }
            (Msg::SpawnSpec(_), Handshake::MaySpawnSpec) => {
                self.handshake = Handshake::Done;
                return Ok(());
            }
            (_, Handshake::AwaitAid) => {
                return Err(Illegal {
                    state: "handshake",
                    expected: "the peer's Aid first",
                })
            }
            (Msg::Aid(_) | Msg::SpawnSpec(_), _) => {
                return Err(Illegal {
                    state: "after the handshake",
                    expected: "no further Aid or SpawnSpec",
                })
            }
            _ => self.handshake = Handshake::Done,
        }
        if let Msg::Start(start) = msg {
            if self.dialogs.contains_key(&start.cid) {
                return Err(Illegal {
                    state: "cid in use",
                    expected: "a fresh cid per Start",
                });
            }
            self.dialogs.insert(
                start.cid.clone(),
                (Side::Child, Phase::Serving { started: false }),
            );
            self.generation += 1;
            return Ok(());
        }
        // Messages of unknown or finished dialogs, and cid-less errors, are
        // the router's business (tractor drops late ones with a warning).
        let Some(cid) = msg.cid() else { return Ok(()) };
        let Some((side, phase)) = self.dialogs.get_mut(cid) else {
            return Ok(());
        };
        let (side, before) = (*side, *phase);
        let illegal = |expected| {
            Err(Illegal {
                state: before.name(),
                expected,
            })
        };
        let done = match (side, before, msg) {
            (Side::Parent, _, Msg::Error(_)) => true,
            (Side::Child, _, Msg::Error(_)) => false,
            (_, Phase::AwaitAck, Msg::StartAck(ack)) => {
                *phase = match ack.functype {
                    FuncType::Context => Phase::AwaitStarted,
                    FuncType::AsyncFunc => Phase::AwaitResult,
                    FuncType::AsyncGen => Phase::OneWay,
                };
                false
            }
            (_, Phase::AwaitAck, _) => return illegal("StartAck or Error"),
            (_, Phase::AwaitStarted, Msg::Started(_)) => {
                *phase = Phase::Open {
                    peer_yielded: false,
                    stopped: false,
                };
                false
            }
            // A context endpoint that returned without calling started().
            (_, Phase::AwaitStarted, Msg::Return(_)) => true,
            (_, Phase::AwaitStarted, _) => return illegal("Started, Return or Error"),
            (_, Phase::AwaitResult, Msg::Return(_) | Msg::CancelAck(_)) => true,
            (_, Phase::AwaitResult, _) => return illegal("Return, CancelAck or Error"),
            (_, Phase::OneWay, Msg::Yield(_)) => false,
            (_, Phase::OneWay, Msg::Stop(_)) => true,
            (_, Phase::OneWay, _) => return illegal("Yield, Stop or Error"),
            (_, Phase::Open { stopped, .. }, Msg::Yield(_)) => {
                *phase = Phase::Open {
                    peer_yielded: true,
                    stopped,
                };
                false
            }
            (_, Phase::Open { peer_yielded, .. }, Msg::Stop(_)) => {
                *phase = Phase::Open {
                    peer_yielded,
                    stopped: true,
                };
                false
            }
            (
                _,
                Phase::Open {
                    peer_yielded,
                    stopped,
                },
                Msg::Return(_),
            ) if !peer_yielded || stopped => true,
            (
                _,
                Phase::Open {
                    peer_yielded: true, ..
                },
                Msg::Return(_),
            ) => {
                return illegal(
                    "Yield, Stop or Error: a Return needs the stream closed (Stop) first",
                )
            }
            (_, Phase::Open { .. }, _) => return illegal("Yield, Stop, Return or Error"),
            (_, Phase::Serving { started: true }, Msg::Yield(_) | Msg::Stop(_)) => false,
            (_, Phase::Serving { started: false }, Msg::Yield(_) | Msg::Stop(_)) => {
                return illegal("Error only: the parent cannot stream before our Started")
            }
            (_, Phase::Serving { .. }, _) => return illegal("Yield, Stop or Error"),
        };
        let changed = done || *phase != before;
        if done {
            self.dialogs.remove(cid);
        }
        if changed {
            self.generation += 1;
        }
        Ok(())
    }

    /// Checks and records a message we send.
    pub(crate) fn on_tx(&mut self, msg: &Msg) -> Result<(), Illegal> {
        if let Msg::Start(start) = msg {
            if self.dialogs.contains_key(&start.cid) {
                return Err(Illegal {
                    state: "cid in use",
                    expected: "a fresh cid per Start",
                });
            }
            self.dialogs
                .insert(start.cid.clone(), (Side::Parent, Phase::AwaitAck));
            self.generation += 1;
            return Ok(());
        }
        let Some(cid) = msg.cid() else { return Ok(()) };
        let Some((side, phase)) = self.dialogs.get_mut(cid) else {
            return Ok(());
        };
        let before = *phase;
        let illegal = |expected| {
            Err(Illegal {
                state: before.name(),
                expected,
            })
        };
        let done = match (*side, before, msg) {
            (Side::Parent, Phase::Open { peer_yielded, .. }, Msg::Stop(_)) => {
                *phase = Phase::Open {
                    peer_yielded,
                    stopped: true,
                };
                false
            }
            (Side::Parent, Phase::Open { .. }, Msg::Yield(_)) => false,
            (Side::Parent, _, Msg::Yield(_) | Msg::Stop(_)) => {
                return illegal("no stream before the child's Started")
            }
            (Side::Parent, _, Msg::Error(_)) => false,
            (Side::Parent, _, _) => return illegal("Yield, Stop or Error from the parent"),
            // A legacy async generator streams without a Started.
            (Side::Child, Phase::Serving { started: false }, Msg::StartAck(ack)) => {
                *phase = Phase::Serving {
                    started: ack.functype == FuncType::AsyncGen,
                };
                false
            }
            (Side::Child, Phase::Serving { started: false }, Msg::Started(_)) => {
                *phase = Phase::Serving { started: true };
                false
            }
            (Side::Child, Phase::Serving { started: true }, Msg::Started(_)) => {
                return illegal("one Started per context")
            }
            (Side::Child, Phase::Serving { started: true }, Msg::Yield(_) | Msg::Stop(_)) => false,
            (Side::Child, Phase::Serving { started: false }, Msg::Yield(_) | Msg::Stop(_)) => {
                return illegal("Started before any stream")
            }
            (Side::Child, _, Msg::Return(_) | Msg::Error(_) | Msg::CancelAck(_)) => true,
            (Side::Child, _, _) => {
                return illegal("StartAck, Started, Yield, Stop, Return or Error")
            }
        };
        let changed = done || *phase != before;
        if done {
            self.dialogs.remove(cid);
        }
        if changed {
            self.generation += 1;
        }
        Ok(())
    }
}
