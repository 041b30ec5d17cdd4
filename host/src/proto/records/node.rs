//! Requests that name one znode: delete (2), exists (3), getData (4), setData (5),
//! getChildren (8), getChildren2 (12), setACL (7) and check (13). getACL, sync,
//! getEphemerals and getAllChildrenNumber carry a bare path, read by the codec.

use bytes::{BufMut, BytesMut};

use super::{
    put_acl_vec, read_acl_vec, CheckVersionRequest, DeleteRequest, PathWatchRequest, SetAclRequest,
    SetDataRequest,
};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_bool, put_buffer_opt, put_ustring, Reader, Record};

impl Record for DeleteRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        out.put_i32(self.version);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DeleteRequest {
            path: reader.read_ustring()?,
            version: reader.read_i32()?,
        })
    }
}

impl Record for PathWatchRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        put_bool(out, self.watch);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PathWatchRequest {
            path: reader.read_ustring()?,
            watch: reader.read_bool()?,
        })
    }
}

impl Record for SetDataRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        put_buffer_opt(out, self.data.as_deref());
        out.put_i32(self.version);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SetDataRequest {
            path: reader.read_ustring()?,
            data: reader.read_buffer_opt()?,
            version: reader.read_i32()?,
        })
    }
}

impl Record for SetAclRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        put_acl_vec(out, &self.acl);
        out.put_i32(self.version);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SetAclRequest {
            path: reader.read_ustring()?,
            acl: read_acl_vec(reader)?,
            version: reader.read_i32()?,
        })
    }
}

impl Record for CheckVersionRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        out.put_i32(self.version);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CheckVersionRequest {
            path: reader.read_ustring()?,
            version: reader.read_i32()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    fn round_trip<T: Record + PartialEq + std::fmt::Debug>(record: &T) -> usize {
        let mut out = BytesMut::new();
        record.write(&mut out);
        let mut reader = Reader::new(&out);
        assert_eq!(&reader.read_record::<T>().unwrap(), record);
        assert!(reader.is_empty());
        out.len()
    }

    #[test]
    fn node_requests_round_trip() {
        assert_eq!(
            round_trip(&DeleteRequest {
                path: "/a".into(),
                version: -1
            }),
            10
        );
        assert_eq!(
            round_trip(&PathWatchRequest {
                path: "/a".into(),
                watch: true
            }),
            7
        );
        let set = SetDataRequest {
            path: "/a".into(),
            data: Some(vec![1, 2]),
            version: 3,
        };
        assert_eq!(round_trip(&set), 16);
        let acl = SetAclRequest {
            path: "/".into(),
            acl: vec![],
            version: 0,
        };
        assert_eq!(round_trip(&acl), 13);
        assert_eq!(
            round_trip(&CheckVersionRequest {
                path: "/".into(),
                version: 9
            }),
            9
        );
    }
}
