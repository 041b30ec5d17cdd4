//! The client port's read path on arbitrary bytes: `take_frame` cuts frames off the stream
//! as a connection does (the first may be a four-letter word), the first payload is decoded as
//! a ConnectRequest and every later one as a request. Nothing may panic, and whatever decodes
//! must re-encode to bytes that decode to the same record (the client-side encoders are the
//! mirror of the server-side decoders).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zkw::proto::{
    decode_connect_request, decode_request, encode_connect_request, encode_request, take_frame,
    Frame, FRAME_BYTES_MAX_DEFAULT, FRAME_LENGTH_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let mut buffer = BytesMut::from(data);
    let mut first = true;
    while let Ok(Some(frame)) = take_frame(&mut buffer, FRAME_BYTES_MAX_DEFAULT, first) {
        match frame {
            // A four-letter word is answered and the connection closed.
            Frame::FourLetter(_) => return,
            Frame::Payload(payload) if first => {
                let Ok(request) = decode_connect_request(&payload) else {
                    return;
                };
                let mut out = BytesMut::new();
                encode_connect_request(&request, &mut out);
                let again = decode_connect_request(&out[FRAME_LENGTH_BYTES..]);
                assert_eq!(again.as_ref(), Ok(&request), "ConnectRequest round trip");
            }
            Frame::Payload(payload) => {
                // An unknown op closes the connection, as any decode error does.
                let Ok((header, request)) = decode_request(&payload) else {
                    return;
                };
                let mut out = BytesMut::new();
                encode_request(&header, &request, &mut out);
                let again = decode_request(&out[FRAME_LENGTH_BYTES..]);
                assert_eq!(again, Ok((header, request)), "request round trip");
            }
        }
        first = false;
    }
});
