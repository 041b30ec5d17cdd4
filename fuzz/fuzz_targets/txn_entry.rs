//! The replicated log entry's decoder (`txn::codec::decode_entry`, every format version) on
//! arbitrary bytes: it must never panic, and an entry that decodes must encode to bytes that
//! decode to the same entry, and encode again to the very same bytes (the codec is
//! deterministic: every replica writes what every other one reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zkw::txn::codec::{decode_entry, encode_entry};

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = decode_entry(data) else {
        return;
    };
    let mut encoded = Vec::new();
    encode_entry(&entry, &mut encoded);
    let again = decode_entry(&encoded);
    assert_eq!(again.as_ref(), Ok(&entry), "entry round trip");
    let mut encoded_again = Vec::new();
    encode_entry(&entry, &mut encoded_again);
    assert_eq!(encoded, encoded_again, "encoding is deterministic");
});
