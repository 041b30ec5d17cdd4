//! The quorum port's message decoder (`consensus::network::decode_message`, postcard) on
//! arbitrary bytes, as a `PeerRequest` (what a server reads from whoever connects) and as a
//! `PeerResponse` (what it reads back). Nothing may panic; a message that decodes re-encodes
//! to bytes that decode and encode to the same bytes again. The txn bodies of forwarded
//! writes are decoded too, as the leader's state machine will.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkw::consensus::network::{decode_message, PeerRequest, PeerResponse};
use zkw::txn::codec::decode_entry;

/// Encodes `message`, decodes that, and checks that encoding the result gives the same bytes.
fn check_round_trip<T>(message: &T)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de>,
{
    let encoded = postcard::to_stdvec(message).expect("a decoded message encodes");
    let again: T = decode_message(&encoded).expect("an encoded message decodes");
    let encoded_again = postcard::to_stdvec(&again).expect("a decoded message encodes");
    assert_eq!(encoded, encoded_again, "peer message round trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode_message::<PeerRequest>(data) {
        check_round_trip(&request);
        if let PeerRequest::Forward(commands) = &request {
            for command in commands {
                let _ = decode_entry(&command.body);
            }
        }
    }
    if let Ok(response) = decode_message::<PeerResponse>(data) {
        check_round_trip(&response);
    }
});
