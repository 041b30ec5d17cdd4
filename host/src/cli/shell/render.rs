//! Pure rendering for the shell, in ZooKeeper 3.8 zkCli's exact shapes: Stat blocks
//! (StatPrinter, with java.util.Date's `toString`, always in UTC), ACL lines (jute's
//! `'scheme,'id` then `: perms`), child lists, watch events (WatchedEvent.toString) and the
//! error texts of CliWrapperException / KeeperException.

use std::fmt::Write as _;

use crate::client::ClientError;
use crate::proto::{keeper_state, perms, Acl, ErrorCode, Stat};

const MS_PER_SECOND: i64 = 1000;
const SECONDS_PER_DAY: i64 = 86_400;
const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `java.util.Date(ms).toString()` in UTC: `Thu Nov 26 01:45:11 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    let seconds = ms.div_euclid(MS_PER_SECOND);
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // Day 0 (1970-01-01) was a Thursday.
    let weekday = DAY_NAMES[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTH_NAMES[usize::try_from(month - 1).unwrap_or(0)];
    format!(
        "{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1..=12, day 1..=31).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// StatPrinter's eleven lines, each ending in a newline.
pub fn stat(stat: &Stat) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cZxid = 0x{:x}", stat.czxid);
    let _ = writeln!(out, "ctime = {}", java_date(stat.ctime));
    let _ = writeln!(out, "mZxid = 0x{:x}", stat.mzxid);
    let _ = writeln!(out, "mtime = {}", java_date(stat.mtime));
    let _ = writeln!(out, "pZxid = 0x{:x}", stat.pzxid);
    let _ = writeln!(out, "cversion = {}", stat.cversion);
    let _ = writeln!(out, "dataVersion = {}", stat.version);
    let _ = writeln!(out, "aclVersion = {}", stat.aversion);
    let _ = writeln!(out, "ephemeralOwner = 0x{:x}", stat.ephemeral_owner);
    let _ = writeln!(out, "dataLength = {}", stat.data_length);
    let _ = writeln!(out, "numChildren = {}", stat.num_children);
    out
}

/// ZKUtil.getPermString: the letters in `cdrwa` order.
pub fn perm_string(bits: i32) -> String {
    [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, letter)| *letter)
    .collect()
}

/// getAcl's lines: jute's Id.toString (`'scheme,'id` and a newline), then `: perms`.
pub fn acl(entries: &[Acl]) -> String {
    let mut out = String::new();
    for entry in entries {
        let _ = writeln!(out, "'{},'{}", entry.id.scheme, entry.id.id);
        let _ = writeln!(out, ": {}", perm_string(entry.perms));
    }
    out
}

/// `ls`'s one line: the children sorted, `[a, b]`.
pub fn children(mut names: Vec<String>) -> String {
    names.sort();
    format!("[{}]", names.join(", "))
}

/// Java's `List.toString`, for getEphemerals (in the server's order).
pub fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

fn state_name(state: i32) -> String {
    match state {
        keeper_state::DISCONNECTED => "Disconnected".into(),
        keeper_state::SYNC_CONNECTED => "SyncConnected".into(),
        keeper_state::AUTH_FAILED => "AuthFailed".into(),
        keeper_state::CONNECTED_READ_ONLY => "ConnectedReadOnly".into(),
        keeper_state::EXPIRED => "Expired".into(),
        keeper_state::CLOSED => "Closed".into(),
        other => format!("Unknown({other})"),
    }
}

fn event_type_name(event_type: i32) -> String {
    match event_type {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        other => format!("Unknown({other})"),
    }
}

/// WatchedEvent.toString (3.8); a connection event has no path, which Java prints as null.
pub fn event(event_type: i32, state: i32, path: &str) -> String {
    let path = if path.is_empty() { "null" } else { path };
    format!(
        "WatchedEvent state:{} type:{} path:{path}",
        state_name(state),
        event_type_name(event_type)
    )
}

/// What zkCli's watcher prints for an event: two `printMessage` calls, each a newline first.
pub fn watcher_message(event_type: i32, state: i32, path: &str) -> String {
    format!("\nWATCHER::\n\n{}", event(event_type, state, path))
}

/// KeeperException.getCodeMessage.
fn code_message(code: ErrorCode) -> String {
    use ErrorCode::*;
    match code {
        Ok => "ok".into(),
        NotEmpty => "Directory not empty".into(),
        SessionExpired => "Session expired".into(),
        InvalidCallback => "Invalid callback".into(),
        SessionMoved => "Session moved".into(),
        NotReadOnly => "Not a read-only call".into(),
        EphemeralOnLocalSession => "Ephemeral node on local session".into(),
        NoWatcher => "No such watcher".into(),
        ReconfigDisabled => "Reconfig is disabled".into(),
        SessionClosedRequireSaslAuth => {
            "Session closed because client failed to authenticate".into()
        }
        QuotaExceeded => "Quota has exceeded".into(),
        ThrottledOp => "Op throttled due to high load".into(),
        ApiError => "APIError".into(),
        InvalidAcl => "InvalidACL".into(),
        UnknownSession | RequestTimeout => format!("Unknown error {}", code.code()),
        other => format!("{other:?}"),
    }
}

/// KeeperException.getMessage: `KeeperErrorCode = NoNode for /a`.
pub fn keeper_message(code: ErrorCode, path: Option<&str>) -> String {
    match path {
        Some(path) => format!("KeeperErrorCode = {} for {path}", code_message(code)),
        None => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// CliWrapperException's message for a failed call on `path`.
pub fn wrapped_error(code: ErrorCode, path: &str) -> String {
    use ErrorCode::*;
    match code {
        NoNode => format!("Node does not exist: {path}"),
        NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        NodeExists => format!("Node already exists: {path}"),
        NotEmpty => format!("Node not empty: {path}"),
        NotReadOnly => format!("Not a read-only call: {path}"),
        InvalidAcl => format!("Acl is not valid : {path}"),
        NoAuth => format!("Insufficient permission : {path}"),
        BadArguments => format!("Arguments are not valid : {path}"),
        BadVersion => format!("version No is not valid : {path}"),
        ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .into()
        }
        NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with the \
                              leader of last commmitted config - try invoking reconfiguration \
                              after new servers are connected and synced"
            .into(),
        QuotaExceeded => format!("Quota has exceeded : {path}"),
        other => keeper_message(other, Some(path)),
    }
}

/// The message for any client failure on `path`: server codes as CliWrapperException, a
/// lost or timed-out connection as the ConnectionLoss zkCli would report.
pub fn client_error(error: &ClientError, path: &str) -> String {
    match error {
        ClientError::Server(code) => wrapped_error(*code, path),
        ClientError::UnknownCode(code) => {
            format!("KeeperErrorCode = Unknown error {code} for {path}")
        }
        _ => keeper_message(ErrorCode::ConnectionLoss, Some(path)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;
    use crate::proto::Id;

    #[test]
    fn dates_render_like_java_util_date_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_795_657_511_000), "Thu Nov 26 01:45:11 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn stat_block_matches_stat_printer() {
        let text = stat(&Stat {
            czxid: 4,
            mzxid: 0x11,
            ctime: 0,
            mtime: 0,
            version: 1,
            cversion: 3,
            aversion: 0,
            ephemeral_owner: 0x1000a2b,
            data_length: 2,
            num_children: 3,
            pzxid: 0xc,
        });
        assert_eq!(
            text,
            "cZxid = 0x4\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x11\n\
             mtime = Thu Jan 01 00:00:00 UTC 1970\npZxid = 0xc\ncversion = 3\n\
             dataVersion = 1\naclVersion = 0\nephemeralOwner = 0x1000a2b\n\
             dataLength = 2\nnumChildren = 3\n"
        );
    }

    #[test]
    fn acls_render_like_get_acl() {
        let entries = [
            Acl {
                perms: perms::ALL,
                id: Id::anyone(),
            },
            Acl {
                perms: perms::READ | perms::WRITE,
                id: Id::new("digest", "u:x"),
            },
        ];
        assert_eq!(
            acl(&entries),
            "'world,'anyone\n: cdrwa\n'digest,'u:x\n: rw\n"
        );
        assert_eq!(perm_string(0), "");
    }

    #[test]
    fn children_sort_and_events_name_their_codes() {
        assert_eq!(children(vec!["b".into(), "a".into()]), "[a, b]");
        assert_eq!(children(vec![]), "[]");
        assert_eq!(
            event(3, 3, "/a"),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
        );
        assert_eq!(
            watcher_message(-1, 3, ""),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null"
        );
    }

    #[test]
    fn errors_read_like_cli_wrapper_exception() {
        assert_eq!(
            wrapped_error(ErrorCode::NoNode, "/x"),
            "Node does not exist: /x"
        );
        assert_eq!(
            wrapped_error(ErrorCode::BadVersion, "/a"),
            "version No is not valid : /a"
        );
        assert_eq!(
            wrapped_error(ErrorCode::NoWatcher, "/a"),
            "KeeperErrorCode = No such watcher for /a"
        );
        assert_eq!(
            client_error(&ClientError::ConnectionLoss("x".into()), "/a"),
            "KeeperErrorCode = ConnectionLoss for /a"
        );
    }
}
