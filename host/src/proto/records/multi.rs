//! multi (14) and multiRead (22): a run of (MultiHeader, record) pairs ended by the
//! MultiHeader {-1, done, -1}. A multi holds only writes (create*, delete, setData, check)
//! and a multiRead only getData/getChildren; ZooKeeper refuses a mix as a marshalling error,
//! and so do we. Every pair consumes at least one MultiHeader, so the loops are bounded by
//! the frame size.

use bytes::{BufMut, BytesMut};

use super::header::MultiHeader;
use super::{
    put_create_request, read_create_request, MultiOp, MultiReadOp, MultiResult, PathWatchRequest,
};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_buffer_opt, put_ustring, put_ustring_vec, Reader, Record};
use crate::proto::types::{op, Stat};

fn is_read_op(code: i32) -> bool {
    code == op::GET_DATA || code == op::GET_CHILDREN
}

fn is_write_op(code: i32) -> bool {
    matches!(
        code,
        op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK
    )
}

fn misplaced(code: i32, container: &str) -> DecodeError {
    let kind = if is_read_op(code) || is_write_op(code) {
        "misplaced"
    } else {
        "invalid"
    };
    DecodeError::Malformed(format!("{kind} op {code} inside {container}"))
}

pub(crate) fn read_multi_ops(reader: &mut Reader<'_>) -> Result<Vec<MultiOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let header: MultiHeader = reader.read_record()?;
        if header.done {
            return Ok(ops);
        }
        let sub_op = match header.op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => MultiOp::Create {
                op: header.op,
                request: read_create_request(reader, header.op)?,
            },
            op::DELETE => MultiOp::Delete(reader.read_record()?),
            op::SET_DATA => MultiOp::SetData(reader.read_record()?),
            op::CHECK => MultiOp::Check(reader.read_record()?),
            other => return Err(misplaced(other, "multi")),
        };
        ops.push(sub_op);
    }
}

pub(crate) fn put_multi_ops(out: &mut BytesMut, ops: &[MultiOp]) {
    for sub_op in ops {
        match sub_op {
            MultiOp::Create { op, request } => {
                MultiHeader::op(*op).write(out);
                put_create_request(out, request, *op);
            }
            MultiOp::Delete(request) => put_sub_op(out, op::DELETE, request),
            MultiOp::SetData(request) => put_sub_op(out, op::SET_DATA, request),
            MultiOp::Check(request) => put_sub_op(out, op::CHECK, request),
        }
    }
    MultiHeader::END.write(out);
}

fn put_sub_op(out: &mut BytesMut, code: i32, record: &impl Record) {
    MultiHeader::op(code).write(out);
    record.write(out);
}

/// multiRead sub-ops are GetDataRequest / GetChildrenRequest; their watch flag is ignored
/// (ZooKeeper never sets a watch from a multiRead).
pub(crate) fn read_multi_read_ops(
    reader: &mut Reader<'_>,
) -> Result<Vec<MultiReadOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let header: MultiHeader = reader.read_record()?;
        if header.done {
            return Ok(ops);
        }
        let request: PathWatchRequest = match header.op {
            op::GET_DATA | op::GET_CHILDREN => reader.read_record()?,
            other => return Err(misplaced(other, "multiRead")),
        };
        ops.push(if header.op == op::GET_DATA {
            MultiReadOp::GetData(request.path)
        } else {
            MultiReadOp::GetChildren(request.path)
        });
    }
}

pub(crate) fn put_multi_read_ops(out: &mut BytesMut, ops: &[MultiReadOp]) {
    for sub_op in ops {
        let (code, path) = match sub_op {
            MultiReadOp::GetData(path) => (op::GET_DATA, path),
            MultiReadOp::GetChildren(path) => (op::GET_CHILDREN, path),
        };
        put_sub_op(
            out,
            code,
            &PathWatchRequest {
                path: path.clone(),
                watch: false,
            },
        );
    }
    MultiHeader::END.write(out);
}

/// Writes results as ZooKeeper's MultiResponse does; an error result carries its code both in
/// the header and in the ErrorResponse after it.
pub(crate) fn put_multi_results(out: &mut BytesMut, results: &[MultiResult]) {
    for result in results {
        let ok = |code| MultiHeader {
            op: code,
            done: false,
            err: 0,
        };
        match result {
            MultiResult::Create { path } => {
                ok(op::CREATE).write(out);
                put_ustring(out, path);
            }
            MultiResult::Create2 { path, stat } => {
                ok(op::CREATE2).write(out);
                put_ustring(out, path);
                stat.write(out);
            }
            MultiResult::Delete => ok(op::DELETE).write(out),
            MultiResult::Check => ok(op::CHECK).write(out),
            MultiResult::SetData { stat } => {
                ok(op::SET_DATA).write(out);
                stat.write(out);
            }
            MultiResult::GetData { data, stat } => {
                ok(op::GET_DATA).write(out);
                put_buffer_opt(out, data.as_deref());
                stat.write(out);
            }
            MultiResult::GetChildren { children } => {
                ok(op::GET_CHILDREN).write(out);
                put_ustring_vec(out, children);
            }
            MultiResult::Error(code) => {
                MultiHeader {
                    op: op::ERROR,
                    done: false,
                    err: *code,
                }
                .write(out);
                out.put_i32(*code);
            }
        }
    }
    MultiHeader::END.write(out);
}

pub(crate) fn read_multi_results(reader: &mut Reader<'_>) -> Result<Vec<MultiResult>, DecodeError> {
    let mut results = Vec::new();
    loop {
        let header: MultiHeader = reader.read_record()?;
        if header.done {
            return Ok(results);
        }
        results.push(read_multi_result(reader, header.op)?);
    }
}

fn read_multi_result(reader: &mut Reader<'_>, code: i32) -> Result<MultiResult, DecodeError> {
    Ok(match code {
        op::CREATE => MultiResult::Create {
            path: reader.read_ustring()?,
        },
        op::CREATE2 => MultiResult::Create2 {
            path: reader.read_ustring()?,
            stat: reader.read_record()?,
        },
        op::DELETE => MultiResult::Delete,
        op::CHECK => MultiResult::Check,
        op::SET_DATA => MultiResult::SetData {
            stat: reader.read_record::<Stat>()?,
        },
        op::GET_DATA => MultiResult::GetData {
            data: reader.read_buffer_opt()?,
            stat: reader.read_record()?,
        },
        op::GET_CHILDREN => MultiResult::GetChildren {
            children: reader.read_ustring_vec()?,
        },
        op::ERROR => MultiResult::Error(reader.read_i32()?),
        other => {
            return Err(DecodeError::Malformed(format!(
                "invalid result type {other} in multi"
            )))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;
    use crate::proto::records::{CheckVersionRequest, DeleteRequest};
    use crate::proto::types::ErrorCode;

    #[test]
    fn read_op_inside_multi_is_malformed() {
        let mut out = BytesMut::new();
        put_multi_read_ops(&mut out, &[MultiReadOp::GetData("/a".into())]);
        let error = read_multi_ops(&mut Reader::new(&out)).unwrap_err();
        assert!(matches!(error, DecodeError::Malformed(_)));
    }

    #[test]
    fn write_op_inside_multi_read_is_malformed() {
        let mut out = BytesMut::new();
        put_multi_ops(
            &mut out,
            &[MultiOp::Delete(DeleteRequest {
                path: "/a".into(),
                version: 1,
            })],
        );
        let error = read_multi_read_ops(&mut Reader::new(&out)).unwrap_err();
        assert!(matches!(error, DecodeError::Malformed(_)));
    }

    #[test]
    fn failed_multi_results_bytes() {
        let results = [
            MultiResult::Error(0),
            MultiResult::Error(ErrorCode::NoNode.code()),
            MultiResult::Error(ErrorCode::RuntimeInconsistency.code()),
        ];
        let mut out = BytesMut::new();
        put_multi_results(&mut out, &results);
        let expected: &[u8] = &[
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, // error, ok
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b, 0xff, 0xff, 0xff, 0x9b, // -101
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfe, // -2
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // end
        ];
        assert_eq!(&out[..], expected);
        assert_eq!(read_multi_results(&mut Reader::new(&out)).unwrap(), results);
    }

    #[test]
    fn unterminated_multi_is_truncated() {
        let mut out = BytesMut::new();
        put_multi_ops(&mut out, &[MultiOp::Check(CheckVersionRequest::default())]);
        out.truncate(out.len() - 1);
        let error = read_multi_ops(&mut Reader::new(&out)).unwrap_err();
        assert!(matches!(error, DecodeError::Truncated { .. }));
    }
}
