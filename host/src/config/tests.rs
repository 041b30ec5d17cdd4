//! Tests for the whole config module: defaults, both syntaxes, every error path that names a
//! file, line and key, the ensemble and `myid`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "zkw-config-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_text(name: &str, text: &str) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let dir = TempDir::new();
    let path = dir.write(name, &with_required_keys(name, text));
    Config::load(&path)
}

/// `text` with the keys ZooKeeper requires (dataDir; initLimit and syncLimit of an ensemble)
/// appended where it has none; the lines before keep their numbers. A zkw.toml with tables
/// must set its own.
fn with_required_keys(name: &str, text: &str) -> String {
    let mut text = text.to_owned();
    for (key, value) in [
        ("dataDir", "\"./data\""),
        ("initLimit", "10"),
        ("syncLimit", "5"),
    ] {
        if text.contains(key) {
            continue;
        }
        if name.ends_with(".toml") {
            // After a table the key would land in it: no TOML test is an ensemble.
            if key == "dataDir" {
                text.push_str(&format!("\n{key} = {value}\n"));
            }
        } else {
            text.push_str(&format!("\n{key}={}\n", value.trim_matches('"')));
        }
    }
    text
}

#[test]
fn a_file_without_a_required_key_is_refused() {
    let dir = TempDir::new();
    let path = dir.write("zoo.cfg", "tickTime=2000\nclientPort=2181\n");
    let error = Config::load(&path).unwrap_err().to_string();
    assert_eq!(error, format!("{}: dataDir is not set", path.display()));
    // An ensemble needs its limits; one server (or one voter) does not.
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    std::fs::write(dir.0.join("data").join("myid"), "1\n").unwrap();
    let data_dir = format!("dataDir={}\n", dir.0.join("data").display());
    let two = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n";
    for (extra, missing) in [("", "initLimit"), ("initLimit=10\n", "syncLimit")] {
        let path = dir.write("ensemble.cfg", &format!("{data_dir}{two}{extra}"));
        let error = Config::load(&path).unwrap_err().to_string();
        assert_eq!(error, format!("{}: {missing} is not set", path.display()));
    }
    let one = "server.1=127.0.0.1:2888:3888\n";
    let path = dir.write("one.cfg", &format!("{data_dir}{one}"));
    assert!(Config::load(&path).is_ok());
}

fn load_ok(text: &str) -> Config {
    let (config, warnings) = load_text("zoo.cfg", text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    config
}

fn load_error(text: &str) -> String {
    load_text("zoo.cfg", text).unwrap_err().to_string()
}

#[test]
fn defaults_are_standalone_on_2181_in_data() {
    let config = Config::default();
    assert_eq!(config.tick_time_ms, 2000);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.client_port, 2181);
    assert_eq!(config.min_session_timeout_ms, 4000);
    assert_eq!(config.max_session_timeout_ms, 40000);
    assert_eq!(config.max_client_connections, 60);
    assert!(config.four_letter_whitelist.allows(FourLetterWord::Srvr));
    assert!(!config.four_letter_whitelist.allows(FourLetterWord::Ruok));
    assert_eq!(config.admin, AdminConfig::default());
    assert_eq!(config.admin.server_port, 8080);
    assert_eq!(config.metrics.http_port, 7000);
    assert_eq!(config.jute_max_buffer_bytes, 0xfffff);
    assert!(
        config.standalone_enabled && !config.reconfig_enabled && !config.extended_types_enabled
    );
    assert_eq!(config.snap_count, 100_000);
    assert_eq!(config.commit_log_count, COMMIT_LOG_COUNT_DEFAULT);
    assert_eq!(config.container_check_interval_ms, 60_000);
    assert_eq!(config.max_watches_per_session, 100_000);
    assert_eq!(
        (
            config.autopurge_snap_retain_count,
            config.autopurge_purge_interval_hours
        ),
        (3, 0)
    );
    assert!(!config.is_distributed());
    assert_eq!(config.log_dir(), Path::new("./data"));
}

/// ZooKeeper's own sample (Debian package). Other tools on a dev machine may edit it, so only
/// "it loads" is asserted here; the sample's values are checked on the shipped copy below.
#[test]
fn zookeeper_sample_config_loads() {
    let sample = Path::new("/etc/zookeeper/conf_example/zoo.cfg");
    if sample.exists() {
        let (config, _warnings) = Config::load(sample).unwrap();
        assert!(config.tick_time_ms >= TICK_TIME_MS_MIN);
    }
}

#[test]
fn shipped_zoo_cfg_has_the_sample_values() {
    let config = load_ok(include_str!("../../../conf/zoo.cfg"));
    assert_eq!(config.tick_time_ms, 2000);
    assert_eq!(config.init_limit_ticks, 10);
    assert_eq!(config.sync_limit_ticks, 5);
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.client_port, 2181);
    assert!(config.servers.is_empty());
}

/// The sample's exact text as ZooKeeper 3.8 ships it (comments trimmed), with its odd spots:
/// trailing spaces on comment lines and an absolute /tmp dataDir.
#[test]
fn zookeeper_sample_text_loads() {
    let text = "# The number of milliseconds of each tick\ntickTime=2000\n\
                # The number of ticks that the initial \n# synchronization phase can take\n\
                initLimit=10\nsyncLimit=5\ndataDir=/tmp/zookeeper\nclientPort=2181\n\
                #maxClientCnxns=60\n#autopurge.snapRetainCount=3\n#autopurge.purgeInterval=1\n\
                #metricsProvider.httpPort=7000\n";
    let config = load_ok(text);
    assert_eq!((config.tick_time_ms, config.client_port), (2000, 2181));
    assert_eq!(config.data_dir, PathBuf::from("/tmp/zookeeper"));
}

#[test]
fn shipped_configs_agree() {
    let dir = TempDir::new();
    let cfg = dir.write("zoo.cfg", include_str!("../../../conf/zoo.cfg"));
    let toml = dir.write("zkw.toml", include_str!("../../../conf/zkw.toml"));
    let (mut from_cfg, cfg_warnings) = Config::load(&cfg).unwrap();
    let (mut from_toml, toml_warnings) = Config::load(&toml).unwrap();
    assert!(cfg_warnings.is_empty() && toml_warnings.is_empty());
    from_cfg.source = None;
    from_toml.source = None;
    assert_eq!(from_cfg, from_toml);
    assert_eq!(from_cfg, Config::default());
}

#[test]
fn every_simple_key_is_applied() {
    let config = load_ok(
        "tickTime=1000\ninitLimit=3\nsyncLimit=2\ndataDir=/var/zk\ndataLogDir=/var/zklog\n\
         clientPort=2182\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nminSessionTimeout=1500\n\
         maxSessionTimeout=9000\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=24\n\
         admin.enableServer=false\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=9090\n\
         admin.commandURL=/cmd\nadmin.idleTimeout=5000\n\
         metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=7001\n\
         metricsProvider.exportJvmInfo=false\njute.maxbuffer=0x100000\nextendedTypesEnabled=true\n\
         standaloneEnabled=false\nreconfigEnabled=true\nsnapCount=5000\n\
         znode.container.checkIntervalMs=1000\nelectionAlg=3\n\
         syncEnabled=false\nquorumListenOnAllIPs=true\nlocalSessionsEnabled=true\n\
         localSessionsUpgradingEnabled=TRUE\nDigestAuthenticationProvider.superDigest=super:abc=\n\
         zkw.maxWatchesPerSession=5\n",
    );
    assert_eq!(config.tick_time_ms, 1000);
    assert_eq!((config.init_limit_ticks, config.sync_limit_ticks), (3, 2));
    assert_eq!(config.data_dir, PathBuf::from("/var/zk"));
    assert_eq!(config.log_dir(), Path::new("/var/zklog"));
    assert_eq!(config.client_port, 2182);
    assert_eq!(
        config.client_port_address,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(config.max_client_connections, 0);
    assert_eq!(
        (config.min_session_timeout_ms, config.max_session_timeout_ms),
        (1500, 9000)
    );
    assert_eq!(
        (
            config.autopurge_snap_retain_count,
            config.autopurge_purge_interval_hours
        ),
        (5, 24)
    );
    let admin = &config.admin;
    assert!(!admin.enable_server);
    assert_eq!(
        (admin.server_address.as_str(), admin.server_port),
        ("127.0.0.1", 9090)
    );
    assert_eq!(
        (admin.command_url.as_str(), admin.idle_timeout_ms),
        ("/cmd", 5000)
    );
    assert!(config
        .metrics
        .provider_class_name
        .as_deref()
        .unwrap()
        .ends_with("Provider"));
    assert_eq!(
        (config.metrics.http_host.as_str(), config.metrics.http_port),
        ("127.0.0.1", 7001)
    );
    assert!(!config.metrics.export_jvm_info);
    assert_eq!(config.jute_max_buffer_bytes, 0x100000);
    assert!(config.extended_types_enabled && !config.standalone_enabled && config.reconfig_enabled);
    assert_eq!(
        (config.snap_count, config.container_check_interval_ms),
        (5000, 1000)
    );
    assert!(!config.sync_enabled && config.quorum_listen_on_all_ips);
    assert!(config.local_sessions_enabled && config.local_sessions_upgrading_enabled);
    assert_eq!(config.super_digest.as_deref(), Some("super:abc="));
    assert_eq!(config.max_watches_per_session, 5);
}

#[test]
fn zookeeper_prefixed_system_property_keys() {
    let config = load_ok(
        "zookeeper.extendedTypesEnabled=true\nzookeeper.snapCount=10\nzookeeper.commitLogCount=7\n\
         zookeeper.DigestAuthenticationProvider.superDigest=super:x\n\
         zookeeper.4lw.commands.whitelist=ruok\n",
    );
    assert!(config.extended_types_enabled);
    assert_eq!(config.snap_count, 10);
    assert_eq!(config.commit_log_count, 7);
    assert_eq!(config.super_digest.as_deref(), Some("super:x"));
    assert!(config.four_letter_whitelist.allows(FourLetterWord::Ruok));
}

#[test]
fn session_timeouts_follow_tick_time_when_unset() {
    let config = load_ok("tickTime=3000\n");
    assert_eq!(
        (config.min_session_timeout_ms, config.max_session_timeout_ms),
        (6000, 60000)
    );
    let config = load_ok("tickTime=3000\nminSessionTimeout=100\n");
    assert_eq!(
        (config.min_session_timeout_ms, config.max_session_timeout_ms),
        (100, 60000)
    );
}

#[test]
fn bad_values_name_file_line_and_key() {
    let dir = TempDir::new();
    let path = dir.write("zoo.cfg", "# c\ndataDir=/tmp/x\n\n\n\n\ntickTime=abc\n");
    let error = Config::load(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "{}:7: tickTime: \"abc\" is not a whole number",
            path.display()
        )
    );
}

#[test]
fn range_errors() {
    assert!(
        load_error("clientPort=70000").contains(":1: clientPort: 70000 is not between 1 and 65535")
    );
    assert!(load_error("clientPort=0").contains("clientPort: 0 is not between"));
    assert!(load_error("tickTime=-5").contains("tickTime: -5 is not between"));
    assert!(load_error("tickTime=99999999999999999999").contains("is not between"));
    assert!(load_error("tickTime=600000").contains("tickTime: 600000 is not between 1 and 60000"));
    assert!(load_error("maxSessionTimeout=100000000").contains("maxSessionTimeout"));
    assert!(load_error("jute.maxbuffer=10").contains("jute.maxbuffer: 10 is not between"));
    assert!(load_error("jute.maxbuffer=lots").contains("is not a whole number"));
    assert!(load_error("snapCount=1").contains("snapCount: 1 is not between 2"));
    assert!(load_error("standaloneEnabled=yes")
        .contains("standaloneEnabled: \"yes\" is not true or false"));
    assert!(load_error("clientPortAddress=not-an-ip").contains("is not an IP address"));
    assert!(load_error("electionAlg=1").contains("electionAlg: 1 is not supported"));
    assert!(load_error("peerType=leader").contains("peerType: \"leader\""));
    assert!(load_error("admin.commandURL=commands").contains("must start with /"));
    assert!(load_error("dataDir=").contains("dataDir: is empty"));
    assert!(load_error("group.1=1:2").contains("hierarchical quorums"));
    assert!(load_error("DigestAuthenticationProvider.superDigest=nocolon").contains("superDigest"));
    assert!(load_error("zkw.maxWatchesPerSession=0")
        .contains(":1: zkw.maxWatchesPerSession: 0 is not between 1 and"));
    assert!(!load_error("DigestAuthenticationProvider.superDigest=nocolon").contains("nocolon"));
}

#[test]
fn admin_auth_is_off_unless_asked() {
    assert!(!Config::default().admin.auth_required);
    assert!(load_ok("admin.authRequired=true\n").admin.auth_required);
}

#[test]
fn redacted_text_hides_every_secret_and_keeps_the_rest() {
    let dir = TempDir::new();
    let text = "tickTime=2000\nDigestAuthenticationProvider.superDigest=super:abc=\n\
                ssl.keyStore.password secret1\nssl.quorum.trustStore.password: sec\\\n  ret2\n\
                clientPort=2181\n";
    let path = dir.write("zoo.cfg", text);
    let shown = redacted_text(&path).unwrap();
    for secret in ["super:abc=", "secret1", "sec", "ret2"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(shown.contains("tickTime=2000\n") && shown.contains("clientPort=2181\n"));
    assert!(shown.contains(&format!(
        "DigestAuthenticationProvider.superDigest={REDACTED}\n"
    )));
    let toml = dir.write(
        "zkw.toml",
        "[ssl]\nkeyStore.password = \"hunter2\"\ntickTime = 2000\n",
    );
    let shown = redacted_text(&toml).unwrap();
    assert!(
        !shown.contains("hunter2") && shown.contains("tickTime = 2000"),
        "{shown}"
    );
}

#[test]
fn recipe_keys() {
    let config = load_ok("zkw.recipe.adminIdentity=digest:ops:abc=\nzkw.recipe.txnFuelMax=5000\n");
    assert_eq!(config.recipe_admin_digest.as_deref(), Some("ops:abc="));
    assert_eq!(config.recipe_txn_fuel_max, 5000);
    assert_eq!(
        Config::default().recipe_txn_fuel_max,
        RECIPE_TXN_FUEL_DEFAULT
    );
    let error = load_error("zkw.recipe.adminIdentity=ops:abc=");
    assert!(error.contains(":1: zkw.recipe.adminIdentity:"), "{error}");
    assert!(load_error("zkw.recipe.txnFuelMax=0").contains("zkw.recipe.txnFuelMax: 0"));
}

#[test]
fn min_session_timeout_above_max_is_refused() {
    let error = load_error("tickTime=2000\nminSessionTimeout=50000\nmaxSessionTimeout=40000\n");
    assert!(
        error.contains(":2: minSessionTimeout: minSessionTimeout (50000 ms) is larger"),
        "{error}"
    );
    // An explicit min above the default max (20 ticks) is refused too, as ZooKeeper does.
    assert!(load_error("minSessionTimeout=50000").contains("larger than maxSessionTimeout"));
}

#[test]
fn unknown_keys_and_duplicates_warn() {
    let (config, warnings) = load_text(
        "zoo.cfg",
        "tickTime=1000\nfooBar=1\nportUnification=true\ntickTime=1500\n",
    )
    .unwrap();
    assert_eq!(config.tick_time_ms, 1500);
    let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts
        .iter()
        .any(|text| text.ends_with(":1: tickTime: set again on line 4; the later value wins")));
    assert!(texts
        .iter()
        .any(|text| text.ends_with(":2: fooBar: unknown key; ignored")));
    assert!(texts
        .iter()
        .any(|text| text.contains(":3: portUnification: a ZooKeeper key zkw does not use")));
}

#[test]
fn snap_retain_count_below_three_is_raised_with_a_warning() {
    let (config, warnings) = load_text("zoo.cfg", "autopurge.snapRetainCount=1\n").unwrap();
    assert_eq!(config.autopurge_snap_retain_count, 3);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn whitelist_forms() {
    let all = load_ok("4lw.commands.whitelist=*\n");
    assert_eq!(all.four_letter_whitelist, FourLetterWhitelist::All);
    let some = load_ok("4lw.commands.whitelist= ruok , stat,,mntr\n");
    let expected = [
        FourLetterWord::Mntr,
        FourLetterWord::Ruok,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
    ];
    assert_eq!(
        some.four_letter_whitelist,
        FourLetterWhitelist::Only(expected.into())
    );
    let read_only = load_ok("readonlymode.enabled=true\n");
    assert!(read_only.four_letter_whitelist.allows(FourLetterWord::Isro));
    let read_only_listed = load_ok("readonlymode.enabled=true\n4lw.commands.whitelist=ruok\n");
    assert!(read_only_listed
        .four_letter_whitelist
        .allows(FourLetterWord::Isro));
    let (_, warnings) = load_text("zoo.cfg", "4lw.commands.whitelist=ruok,nope\n").unwrap();
    assert!(warnings[0].message.contains("\"nope\""));
}

#[test]
fn properties_syntax_details_reach_the_config() {
    let config = load_ok("  tickTime : 2500   \ndataDir /srv/zk\\\n   data\nclientPort\t=\t2190\n");
    assert_eq!(config.tick_time_ms, 2500);
    assert_eq!(config.data_dir, PathBuf::from("/srv/zkdata"));
    assert_eq!(config.client_port, 2190);
}

#[test]
fn relative_data_dir_stays_relative_to_the_current_dir() {
    let (config, warnings) = load_text("zoo.cfg", "dataDir=zkdata\n").unwrap();
    assert_eq!(config.data_dir, PathBuf::from("zkdata"));
    assert!(warnings[0].message.contains("relative"), "{warnings:?}");
    assert_eq!(
        load_ok("dataDir=./zkdata\n").data_dir,
        PathBuf::from("./zkdata")
    );
}

#[test]
fn toml_config_same_keys() {
    let text = "tickTime = 1000\ndataDir = \"/var/zk\"\nclientPort = 2183\n\
                \"4lw.commands.whitelist\" = \"*\"\nadmin.enableServer = false\n\
                [metricsProvider]\nhttpPort = 7007\n";
    let (config, warnings) = load_text("zkw.toml", text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.tick_time_ms, 1000);
    assert_eq!(config.data_dir, PathBuf::from("/var/zk"));
    assert_eq!(config.client_port, 2183);
    assert_eq!(config.four_letter_whitelist, FourLetterWhitelist::All);
    assert!(!config.admin.enable_server);
    assert_eq!(config.metrics.http_port, 7007);
}

#[test]
fn toml_errors_name_line_and_key() {
    let error = load_text("zkw.toml", "tickTime = 2000\nclientPort = \"x\"\n").unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("zkw.toml:2: clientPort: \"x\" is not a whole number"),
        "{error}"
    );
    let error = load_text("zkw.toml", "tickTime = 2000\n[[oops\n").unwrap_err();
    assert!(
        matches!(error, ConfigError::Syntax { line: 2, .. }),
        "{error}"
    );
}

#[test]
fn missing_file_is_a_read_error() {
    let error = Config::load(Path::new("/nonexistent/zkw/zoo.cfg")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error
        .to_string()
        .starts_with("/nonexistent/zkw/zoo.cfg: cannot read"));
}

#[test]
fn server_line_forms() {
    let parse = |value: &str| servers::parse_server("server.3", value, false);
    let plain = parse("zk1:2888:3888").unwrap();
    assert_eq!(
        plain,
        ServerEntry {
            id: 3,
            host: "zk1".into(),
            quorum_port: 2888,
            election_port: 3888,
            role: PeerRole::Participant,
            client_address: None,
            client_port: None,
        }
    );
    assert_eq!(
        parse("zk1:2888:3888:observer").unwrap().role,
        PeerRole::Observer
    );
    assert_eq!(
        parse("zk1:2888:3888:participant").unwrap().role,
        PeerRole::Participant
    );
    let with_port = parse("zk1:2888:3888;2181").unwrap();
    assert_eq!(
        (with_port.client_address, with_port.client_port),
        (None, Some(2181))
    );
    let with_host = parse("zk1:2888:3888:observer;0.0.0.0:2182").unwrap();
    assert_eq!(with_host.client_address.as_deref(), Some("0.0.0.0"));
    assert_eq!(with_host.client_port, Some(2182));
    let v6 = parse("[::1]:2888:3888;[::1]:2181").unwrap();
    assert_eq!(
        (v6.host.as_str(), v6.client_address.as_deref()),
        ("::1", Some("::1"))
    );
    for bad in [
        "zk1:2888",
        "zk1",
        ":2888:3888",
        "zk1:2888:3888:boss",
        "zk1:x:3888",
        "a:1:2;3;4",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert!(parse("a:1:2|b:1:2").unwrap_err().contains("multiAddress"));
    assert!(servers::parse_server("server.256", "a:1:2", false).is_err());
    assert!(servers::parse_server("server.0", "a:1:2", false).is_err());
    assert!(servers::parse_server("server.255", "a:1:2", true).is_err());
    assert!(servers::parse_server("server.x", "a:1:2", false).is_err());
}

fn ensemble(dir: &TempDir, extra: &str) -> String {
    format!(
        "dataDir={}\nclientPort=2181\nserver.1=127.0.0.1:2888:3888\n\
         server.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890:observer\n{extra}\
         \ninitLimit=10\nsyncLimit=5\n",
        dir.0.display()
    )
}

#[test]
fn ensemble_reads_my_id() {
    let dir = TempDir::new();
    dir.write("myid", "2\n");
    let path = dir.write("zoo.cfg", &ensemble(&dir, ""));
    let (config, _) = Config::load(&path).unwrap();
    assert_eq!(config.my_id, Some(2));
    assert_eq!(config.servers.len(), 3);
    assert!(config.is_distributed());
    assert_eq!(config.peer_type, PeerRole::Participant);
}

#[test]
fn ensemble_my_id_errors_name_the_file() {
    let dir = TempDir::new();
    let path = dir.write("zoo.cfg", &ensemble(&dir, ""));
    let my_id = dir.0.join("myid").display().to_string();
    let missing = Config::load(&path).unwrap_err().to_string();
    assert!(
        missing.starts_with(&my_id) && missing.contains("missing"),
        "{missing}"
    );
    dir.write("myid", "two\n");
    let invalid = Config::load(&path).unwrap_err().to_string();
    assert!(
        invalid.starts_with(&my_id) && invalid.contains("\"two\""),
        "{invalid}"
    );
    dir.write("myid", "7\n");
    let mismatch = Config::load(&path).unwrap_err().to_string();
    assert!(
        mismatch.starts_with(&my_id) && mismatch.contains("server.7"),
        "{mismatch}"
    );
}

#[test]
fn single_server_line_without_my_id_is_standalone() {
    let dir = TempDir::new();
    let text = format!(
        "dataDir={}\nserver.1=127.0.0.1:2888:3888\n",
        dir.0.display()
    );
    let (config, _) = load_text("zoo.cfg", &text).unwrap();
    assert_eq!(config.my_id, None);
    assert!(!config.is_distributed());
}

#[test]
fn own_server_line_client_port_fills_client_port() {
    let dir = TempDir::new();
    dir.write("myid", "1");
    let text = format!(
        "dataDir={}\nserver.1=127.0.0.1:2888:3888;127.0.0.1:2191\nserver.2=h:2888:3888;2192\n\
         peerType=observer\ninitLimit=10\nsyncLimit=5\n",
        dir.0.display()
    );
    let path = dir.write("zoo.cfg", &text);
    let (config, warnings) = Config::load(&path).unwrap();
    assert_eq!(config.client_port, 2191);
    assert_eq!(
        config.client_port_address,
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(config.peer_type, PeerRole::Participant);
    assert!(
        warnings.iter().any(|warning| warning.key == "peerType"),
        "{warnings:?}"
    );
    let conflicting = dir.write("conflict.cfg", &format!("{text}clientPort=2000\n"));
    let error = Config::load(&conflicting).unwrap_err().to_string();
    assert!(
        error.contains(":2: server.1: client port 2191 differs from clientPort=2000"),
        "{error}"
    );
}

#[test]
fn dynamic_config_file_holds_the_servers() {
    let dir = TempDir::new();
    dir.write("myid", "1");
    let dynamic = dir.write(
        "zoo.cfg.dynamic",
        "server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\nversion=100000000\n",
    );
    let text = format!(
        "dataDir={}\ndynamicConfigFile={}\ninitLimit=10\nsyncLimit=5\n",
        dir.0.display(),
        dynamic.display()
    );
    let path = dir.write("zoo.cfg", &text);
    let (config, _) = Config::load(&path).unwrap();
    assert_eq!(config.servers.len(), 2);
    assert_eq!(config.my_id, Some(1));
    let mixed = dir.write("mixed.cfg", &format!("{text}server.3=h:1:2\n"));
    let error = Config::load(&mixed).unwrap_err().to_string();
    assert!(
        error.contains(":5: server.3: must be in the dynamicConfigFile"),
        "{error}"
    );
    dir.write("zoo.cfg.dynamic", "server.1=bad\n");
    let error = Config::load(&path).unwrap_err().to_string();
    assert!(error.contains("zoo.cfg.dynamic:1: server.1:"), "{error}");
}

#[test]
fn latin1_files_still_load() {
    let dir = TempDir::new();
    let path = dir.0.join("zoo.cfg");
    std::fs::write(&path, b"# caf\xe9\ntickTime=1234\ndataDir=./data\n").unwrap();
    assert_eq!(Config::load(&path).unwrap().0.tick_time_ms, 1234);
}

#[test]
fn reconfig_server_strings_parse_and_render_as_zookeeper_writes_them() {
    let server =
        parse_server_line("server.4=127.0.0.1:2891:3891:participant;127.0.0.1:2184").unwrap();
    assert_eq!(
        (server.id, server.quorum_port, server.election_port),
        (4, 2891, 3891)
    );
    assert_eq!(server.spec(), "127.0.0.1:2891:3891;127.0.0.1:2184");
    assert_eq!(
        server.line_value(PeerRole::Observer),
        "127.0.0.1:2891:3891:observer;127.0.0.1:2184"
    );
    let bare_port = parse_server_line(" server.5 = h:1:2:observer;2185 ").unwrap();
    assert_eq!(bare_port.role, PeerRole::Observer);
    assert_eq!(bare_port.spec(), "h:1:2;0.0.0.0:2185");
    let v6 = parse_server_line("server.6=[::1]:1:2;[::1]:3").unwrap();
    assert_eq!(v6.spec(), "[::1]:1:2;[::1]:3");
    for bad in [
        "server.4=127.0.0.1:2891:3891",
        "server.4",
        "srv.4=h:1:2;3",
        "server.x=h:1:2;3",
        "server.4=h:1;3",
        "server.4=h:1:2:voter;3",
        "server.4=h:1:99999;3",
        "server.0=h:1:2;3",
    ] {
        assert!(parse_server_line(bad).is_err(), "{bad}");
    }
}

// --- TLS keys (config::tls) ---

/// PEM-shaped stand-ins: the config only checks what a file holds, `tls` parses it.
const KEY_STORE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
                             -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const TRUST_STORE_PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

/// Loads `text` with `{KEY}` and `{TRUST}` replaced by paths of PEM stand-ins.
fn load_tls(text: &str) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let dir = TempDir::new();
    let key_store = dir.write("server.pem", KEY_STORE_PEM);
    let trust_store = dir.write("ca.pem", TRUST_STORE_PEM);
    let encrypted = dir.write(
        "encrypted.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n\
         -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let text = text
        .replace("{KEY}", &key_store.display().to_string())
        .replace("{TRUST}", &trust_store.display().to_string())
        .replace("{ENCRYPTED}", &encrypted.display().to_string())
        .replace("{DIR}", &dir.0.display().to_string());
    let path = dir.write("zoo.cfg", &with_required_keys("zoo.cfg", &text));
    Config::load(&path)
}

fn tls_error(text: &str) -> String {
    load_tls(text).unwrap_err().to_string()
}

#[test]
fn tls_keys_reach_the_config() {
    let (config, warnings) = load_tls(
        "secureClientPort=2281\nssl.keyStore.location={KEY}\nssl.keyStore.type=PEM\n\
         ssl.keyStore.password=secret\nzookeeper.ssl.trustStore.location={TRUST}\n\
         ssl.trustStore.type=pem\nssl.enabledProtocols=TLSv1.3\n\
         ssl.ciphersuites=TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384\n\
         ssl.handshakeDetectionTimeoutMillis=2500\n\
         sslQuorum=true\nssl.quorum.keyStore.location={KEY}\n\
         zookeeper.ssl.quorum.trustStore.location={TRUST}\nssl.quorum.hostnameVerification=false\n\
         ssl.quorum.protocol=TLSv1.2\n",
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let tls = &config.tls;
    assert_eq!(config.secure_client_port, Some(2281));
    let key_store = tls.client.key_store.as_ref().unwrap();
    assert_eq!(
        (key_store.key.as_str(), key_store.line),
        ("ssl.keyStore.location", 2)
    );
    assert!(tls.client.trust_store.is_some());
    // A trust store without ssl.clientAuth means need, as ZooKeeper's ClientAuth default.
    assert_eq!(tls.client.client_auth, ClientAuth::Need);
    assert_eq!(tls.client.protocols, vec![TlsVersion::Tls13]);
    assert_eq!(tls.client.cipher_suites.len(), 2);
    assert_eq!(tls.client.handshake_timeout_ms, 2500);
    assert!(tls.quorum_enabled);
    assert_eq!(tls.quorum.client_auth, ClientAuth::Need);
    assert!(!tls.quorum.hostname_verification && tls.client.hostname_verification);
    assert_eq!(tls.quorum.protocols, vec![TlsVersion::Tls12]);
}

#[test]
fn tls_defaults_without_a_trust_store() {
    let (config, _) = load_tls("secureClientPort=2281\nssl.keyStore.location={KEY}\n").unwrap();
    assert_eq!(config.tls.client.client_auth, ClientAuth::None);
    assert_eq!(
        config.tls.client.protocols,
        vec![TlsVersion::Tls12, TlsVersion::Tls13]
    );
    assert!(!config.tls.quorum_enabled);
    let want = load_tls(
        "ssl.keyStore.location={KEY}\nssl.trustStore.location={TRUST}\nssl.clientAuth=WANT\n",
    )
    .unwrap()
    .0;
    assert_eq!(want.tls.client.client_auth, ClientAuth::Want);
}

#[test]
fn tls_errors_name_key_and_line() {
    let cases = [
        (
            "tickTime=2000\nsecureClientPort=2281\n",
            ":2: secureClientPort: needs ssl.keyStore.location",
        ),
        (
            "ssl.keyStore.location={KEY}\nssl.keyStore.type=JKS\n",
            ":2: ssl.keyStore.type: type \"JKS\" is not supported; zkw reads PEM only",
        ),
        (
            "ssl.trustStore.location={TRUST}\nssl.trustStore.type=PKCS12\n",
            ":2: ssl.trustStore.type: type \"PKCS12\" is not supported",
        ),
        (
            "\nssl.keyStore.location={DIR}/store.p12\n",
            ":2: ssl.keyStore.location: looks like a Java key store",
        ),
        (
            "ssl.keyStore.location={DIR}/missing.pem\n",
            ":1: ssl.keyStore.location: cannot read",
        ),
        (
            "ssl.keyStore.location={TRUST}\n",
            ":1: ssl.keyStore.location: has no PEM private key",
        ),
        (
            "ssl.keyStore.location={ENCRYPTED}\nssl.keyStore.password=secret\n",
            ":1: ssl.keyStore.location: holds an encrypted private key",
        ),
        (
            "zookeeper.ssl.quorum.trustStore.location={DIR}/nowhere.pem\n",
            ":1: zookeeper.ssl.quorum.trustStore.location: cannot read",
        ),
        (
            "ssl.keyStore.location={KEY}\nssl.enabledProtocols=TLSv1.2,TLSv1.1\n",
            ":2: ssl.enabledProtocols: \"TLSv1.1\" is not supported",
        ),
        (
            "ssl.ciphersuites=TLS_RSA_WITH_AES_128_CBC_SHA\n",
            ":1: ssl.ciphersuites: \"TLS_RSA_WITH_AES_128_CBC_SHA\" is not supported; zkw offers",
        ),
        (
            "ssl.clientAuth=maybe\n",
            ":1: ssl.clientAuth: \"maybe\" is not none, want or need",
        ),
        (
            "ssl.keyStore.location={KEY}\nssl.clientAuth=need\n",
            ":2: ssl.clientAuth: needs ssl.trustStore.location",
        ),
        (
            "tickTime=2000\nsslQuorum=true\nssl.quorum.keyStore.location={KEY}\n",
            ":2: sslQuorum: true needs ssl.quorum.keyStore.location and ssl.quorum.trustStore",
        ),
        (
            "sslQuorum=yes\n",
            ":1: sslQuorum: \"yes\" is not true or false",
        ),
    ];
    for (text, expected) in cases {
        let error = tls_error(text);
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}

#[test]
fn unused_tls_keys_only_warn() {
    let (_, warnings) = load_tls("ssl.sslProvider=JDK\nserverCnxnFactory=x.Netty\n").unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings
        .iter()
        .all(|warning| warning.message.contains("a ZooKeeper key zkw does not use")));
}

#[test]
fn quorum_auth_keys_are_read_and_checked_together() {
    let config = load_ok(
        "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n\
         quorum.auth.learnerRequireSasl=true\nquorum.auth.secretFile=/etc/zkw/quorum.secret\n\
         snapshotChunkBytes=4096\n",
    );
    let auth = &config.quorum_auth;
    assert!(auth.enable_sasl && auth.server_require_sasl && auth.learner_require_sasl);
    assert_eq!(
        auth.secret_file,
        Some(PathBuf::from("/etc/zkw/quorum.secret"))
    );
    assert_eq!(config.snapshot_chunk_bytes, 4096);
    let cases = [
        (
            "quorum.auth.serverRequireSasl=true\n",
            ":1: quorum.auth.serverRequireSasl: needs quorum.auth.enableSasl=true",
        ),
        (
            "quorum.auth.enableSasl=true\n",
            ":1: quorum.auth.enableSasl: needs quorum.auth.secretFile",
        ),
        (
            "quorum.auth.enableSasl=maybe\n",
            ":1: quorum.auth.enableSasl: \"maybe\" is not true or false",
        ),
        (
            "snapshotChunkBytes=0\n",
            ":1: snapshotChunkBytes: 0 is not between 1 and",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.contains(expected), "{text:?}: {error}");
    }
}
