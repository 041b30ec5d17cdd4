//! create (1), create2 (15), createContainer (19) and createTTL (21). All four share
//! CreateRequest; createTTL alone appends the ttl. Their responses (a path, or a path and a
//! Stat) are written by the codec.

use bytes::{BufMut, BytesMut};

use super::{put_acl_vec, read_acl_vec, CreateRequest};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_buffer_opt, put_ustring, Reader};
use crate::proto::types::op;

/// Reads a CreateRequest (or CreateTTLRequest when `op` is CREATE_TTL). Null data stays null
/// (ZooKeeper keeps it apart from empty data); a null ACL list reads as an empty list, which
/// the tree rejects with InvalidACL.
pub(crate) fn read_create_request(
    reader: &mut Reader<'_>,
    op: i32,
) -> Result<CreateRequest, DecodeError> {
    let path = reader.read_ustring()?;
    let data = reader.read_buffer_opt()?;
    let acl = read_acl_vec(reader)?;
    let flags = reader.read_i32()?;
    let ttl_ms = if op == op::CREATE_TTL {
        Some(reader.read_i64()?)
    } else {
        None
    };
    Ok(CreateRequest {
        path,
        data,
        acl,
        flags,
        ttl_ms,
    })
}

/// Writes the request for `op`: the ttl goes on the wire exactly when `op` is CREATE_TTL
/// (0 if the request has none), so encode and decode agree on the layout.
pub(crate) fn put_create_request(out: &mut BytesMut, request: &CreateRequest, op: i32) {
    put_ustring(out, &request.path);
    put_buffer_opt(out, request.data.as_deref());
    put_acl_vec(out, &request.acl);
    out.put_i32(request.flags);
    if op == op::CREATE_TTL {
        out.put_i64(request.ttl_ms.unwrap_or(0));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;
    use crate::proto::types::Acl;

    #[test]
    fn ttl_only_for_create_ttl() {
        let request = CreateRequest {
            path: "/t".into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 5,
            ttl_ms: Some(1000),
        };
        let mut plain = BytesMut::new();
        put_create_request(&mut plain, &request, op::CREATE2);
        let mut ttl = BytesMut::new();
        put_create_request(&mut ttl, &request, op::CREATE_TTL);
        assert_eq!(ttl.len(), plain.len() + 8);
        let decoded = read_create_request(&mut Reader::new(&ttl), op::CREATE_TTL).unwrap();
        assert_eq!(decoded, request);
        let decoded = read_create_request(&mut Reader::new(&plain), op::CREATE2).unwrap();
        assert_eq!(
            decoded,
            CreateRequest {
                ttl_ms: None,
                ..request
            }
        );
    }

    #[test]
    fn null_data_stays_null_and_null_acl_reads_as_empty() {
        let bytes = b"\0\0\0\x02/a\xff\xff\xff\xff\xff\xff\xff\xff\0\0\0\0";
        let decoded = read_create_request(&mut Reader::new(bytes), op::CREATE).unwrap();
        assert_eq!(
            decoded,
            CreateRequest {
                path: "/a".into(),
                ..CreateRequest::default()
            }
        );
    }
}
