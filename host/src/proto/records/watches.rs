//! Watch management: setWatches (101) / setWatches2 (105) sent on reconnect, addWatch (106),
//! checkWatches (17), removeWatches (18), and the WatcherEvent body of a notification.

use bytes::{BufMut, BytesMut};

use super::{AddWatchRequest, SetWatches, WatcherEvent, WatchesRequest};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_ustring, put_ustring_vec, Reader, Record};

/// Reads SetWatches, or SetWatches2 when `with_persistent` (op 105): two more lists.
pub(crate) fn read_set_watches(
    reader: &mut Reader<'_>,
    with_persistent: bool,
) -> Result<SetWatches, DecodeError> {
    let mut watches = SetWatches {
        relative_zxid: reader.read_i64()?,
        data_watches: reader.read_ustring_vec()?,
        exist_watches: reader.read_ustring_vec()?,
        child_watches: reader.read_ustring_vec()?,
        ..SetWatches::default()
    };
    if with_persistent {
        watches.persistent_watches = reader.read_ustring_vec()?;
        watches.persistent_recursive_watches = reader.read_ustring_vec()?;
    }
    Ok(watches)
}

/// Writes SetWatches, or SetWatches2 when `with_persistent`; without it the persistent lists
/// are not sent (the caller picks op 105 whenever they are non-empty, see `Request::op`).
pub(crate) fn put_set_watches(out: &mut BytesMut, watches: &SetWatches, with_persistent: bool) {
    out.put_i64(watches.relative_zxid);
    put_ustring_vec(out, &watches.data_watches);
    put_ustring_vec(out, &watches.exist_watches);
    put_ustring_vec(out, &watches.child_watches);
    if with_persistent {
        put_ustring_vec(out, &watches.persistent_watches);
        put_ustring_vec(out, &watches.persistent_recursive_watches);
    }
}

impl Record for WatchesRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        out.put_i32(self.watcher_type);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WatchesRequest {
            path: reader.read_ustring()?,
            watcher_type: reader.read_i32()?,
        })
    }
}

impl Record for AddWatchRequest {
    fn write(&self, out: &mut BytesMut) {
        put_ustring(out, &self.path);
        out.put_i32(self.mode);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AddWatchRequest {
            path: reader.read_ustring()?,
            mode: reader.read_i32()?,
        })
    }
}

impl Record for WatcherEvent {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.event_type);
        out.put_i32(self.state);
        put_ustring(out, &self.path);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WatcherEvent {
            event_type: reader.read_i32()?,
            state: reader.read_i32()?,
            path: reader.read_ustring()?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn set_watches_v1_omits_persistent_lists() {
        let watches = SetWatches {
            relative_zxid: 7,
            data_watches: vec!["/d".into()],
            exist_watches: vec![],
            child_watches: vec!["/c".into()],
            persistent_watches: vec!["/p".into()],
            persistent_recursive_watches: vec![],
        };
        let mut v1 = BytesMut::new();
        put_set_watches(&mut v1, &watches, false);
        assert_eq!(v1.len(), 8 + 4 + 6 + 4 + 4 + 6);
        let decoded = read_set_watches(&mut Reader::new(&v1), false).unwrap();
        assert_eq!(
            decoded,
            SetWatches {
                persistent_watches: vec![],
                ..watches.clone()
            }
        );
        let mut v2 = BytesMut::new();
        put_set_watches(&mut v2, &watches, true);
        assert_eq!(
            read_set_watches(&mut Reader::new(&v2), true).unwrap(),
            watches
        );
    }
}
