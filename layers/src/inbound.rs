//! The item that moves up the receive path.

use crate::payload::MsgTypeError;
use scipp_codecs::msg::{Cid, Msg};

/// What each receive layer hands to the one above it: a message that passed
/// every check so far, or the [`MsgTypeError`] a lower layer turned a bad
/// frame or message into.
///
/// Bad input never ends the channel by itself: it travels up as
/// [`Inbound::Invalid`] until a policy layer decides what to do with it.
///
/// ```
/// use scipp_layers::Inbound;
/// use scipp_codecs::msg::{Cid, Msg, Stop};
/// let item = Inbound::from(Msg::Stop(Stop { cid: Cid::from("c1") }));
/// assert_eq!(item.cid().map(Cid::as_str), Some("c1"));
/// assert!(item.as_msg().is_some());
/// ```
#[derive(Debug, Clone)]
pub enum Inbound {
    /// A valid message.
    Msg(Msg),
    /// A frame or message a layer rejected, attributed to the peer.
    Invalid(MsgTypeError),
}

impl Inbound {
    /// The dialog this item belongs to, when known.
    pub fn cid(&self) -> Option<&Cid> {
        match self {
            Inbound::Msg(m) => m.cid(),
            Inbound::Invalid(e) => e.cid(),
        }
    }

    /// The message, if valid.
    pub fn as_msg(&self) -> Option<&Msg> {
        match self {
            Inbound::Msg(m) => Some(m),
            Inbound::Invalid(_) => None,
        }
    }

    /// The error, if invalid.
    pub fn as_invalid(&self) -> Option<&MsgTypeError> {
        match self {
            Inbound::Msg(_) => None,
            Inbound::Invalid(e) => Some(e),
        }
    }
}

impl From<Msg> for Inbound {
    fn from(m: Msg) -> Self {
        Inbound::Msg(m)
    }
}

impl From<MsgTypeError> for Inbound {
    fn from(e: MsgTypeError) -> Self {
        Inbound::Invalid(e)
    }
}
