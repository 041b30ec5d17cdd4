//! Id, ACL and Stat: the data records every opcode family embeds.

use bytes::{BufMut, BytesMut};

use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_ustring, put_vec, Reader, Record, LENGTH_PREFIX_BYTES};
use crate::proto::types::{Acl, Id, Stat};

/// A Stat is always 68 bytes: six longs and five ints.
pub const STAT_BYTES: usize = 68;
/// The smallest ACL entry: perms plus two empty ustrings.
const ACL_BYTES_MIN: usize = 4 + 2 * LENGTH_PREFIX_BYTES;

impl Record for Id {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.scheme);
        put_ustring(out, &self.id);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Id {
            scheme: reader.read_ustring()?,
            id: reader.read_ustring()?,
        })
    }
}

impl Record for Acl {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.perms);
        self.id.write(out);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: reader.read_i32()?,
            id: reader.read_record()?,
        })
    }
}

impl Record for Stat {
    fn write(&self, out: &mut BytesMut) {
        out.put_i64(self.czxid);
        out.put_i64(self.mzxid);
        out.put_i64(self.ctime);
        out.put_i64(self.mtime);
        out.put_i32(self.version);
        out.put_i32(self.cversion);
        out.put_i32(self.aversion);
        out.put_i64(self.ephemeral_owner);
        out.put_i32(self.data_length);
        out.put_i32(self.num_children);
        out.put_i64(self.pzxid);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: reader.read_i64()?,
            mzxid: reader.read_i64()?,
            ctime: reader.read_i64()?,
            mtime: reader.read_i64()?,
            version: reader.read_i32()?,
            cversion: reader.read_i32()?,
            aversion: reader.read_i32()?,
            ephemeral_owner: reader.read_i64()?,
            data_length: reader.read_i32()?,
            num_children: reader.read_i32()?,
            pzxid: reader.read_i64()?,
        })
    }
}

/// A `vector<ACL>`; null reads as empty (the tree then answers InvalidACL where it must).
pub(crate) fn read_acl_vec(reader: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    reader.read_vec(ACL_BYTES_MIN, Reader::read_record)
}

pub(crate) fn put_acl_vec(out: &mut BytesMut, acl: &[Acl]) {
    put_vec(out, acl, Record::write);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut out = BytesMut::new();
        stat.write(&mut out);
        assert_eq!(out.len(), STAT_BYTES);
        assert_eq!(&out[..8], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&out[32..36], &[0, 0, 0, 5]);
        assert_eq!(&out[60..], &[0, 0, 0, 0, 0, 0, 0, 11]);
        assert_eq!(Reader::new(&out).read_record::<Stat>().unwrap(), stat);
    }

    #[test]
    fn open_acl_bytes() {
        let mut out = BytesMut::new();
        put_acl_vec(&mut out, &Acl::open_unsafe());
        let expected: &[u8] = b"\0\0\0\x01\0\0\0\x1f\0\0\0\x05world\0\0\0\x06anyone";
        assert_eq!(&out[..], expected);
        assert_eq!(
            read_acl_vec(&mut Reader::new(&out)).unwrap(),
            Acl::open_unsafe()
        );
    }
}
