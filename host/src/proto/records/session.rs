//! Session-level requests: auth (100), reconfig (16), and whoAmI's ClientInfo (107). sasl
//! (102) is a bare buffer both ways and is read by the codec.

use bytes::{BufMut, BytesMut};

use super::{AuthPacket, ClientInfo, ReconfigRequest};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_buffer, put_ustring, put_ustring_opt, Reader, Record};

impl Record for AuthPacket {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.auth_type);
        put_ustring(out, &self.scheme);
        put_buffer(out, &self.auth);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AuthPacket {
            auth_type: reader.read_i32()?,
            scheme: reader.read_ustring()?,
            auth: reader.read_buffer()?,
        })
    }
}

/// The three server lists are null when not given (ZooKeeper's incremental vs bulk reconfig
/// tells them apart), so they stay `Option`.
impl Record for ReconfigRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring_opt(out, self.joining_servers.as_deref());
        put_ustring_opt(out, self.leaving_servers.as_deref());
        put_ustring_opt(out, self.new_members.as_deref());
        out.put_i64(self.cur_config_id);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReconfigRequest {
            joining_servers: reader.read_ustring_opt()?,
            leaving_servers: reader.read_ustring_opt()?,
            new_members: reader.read_ustring_opt()?,
            cur_config_id: reader.read_i64()?,
        })
    }
}

impl Record for ClientInfo {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.auth_scheme);
        put_ustring(out, &self.user);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClientInfo {
            auth_scheme: reader.read_ustring()?,
            user: reader.read_ustring()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn reconfig_keeps_nulls() {
        let request = ReconfigRequest {
            joining_servers: Some("server.4=h:2888:3888;2181".into()),
            leaving_servers: None,
            new_members: Some(String::new()),
            cur_config_id: -1,
        };
        let mut out = BytesMut::new();
        request.write(&mut out);
        assert_eq!(
            Reader::new(&out).read_record::<ReconfigRequest>().unwrap(),
            request
        );
    }

    #[test]
    fn digest_auth_packet_bytes() {
        let packet = AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: b"u:p".to_vec(),
        };
        let mut out = BytesMut::new();
        packet.write(&mut out);
        assert_eq!(&out[..], b"\0\0\0\0\0\0\0\x06digest\0\0\0\x03u:p");
    }
}
