//! Frame sequences, received and sent, through the message-type and
//! payload layers (see `scipp_fuzz::dialog`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| scipp_fuzz::dialog(
    scipp_codecs::msgpack::MsgpackCodec::new(),
    data
));
