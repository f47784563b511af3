//! The configuration's layers, validation and secrets, against the repository's `config/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn sources(vars: &[(&str, &str)], env: Option<&str>) -> Sources {
    Sources {
        config_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config"),
        env: env.map(str::to_owned),
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[test]
fn layers_apply_in_order() {
    let s = Settings::load_from(&sources(
        &[
            ("JOBFLEET__WORKER__CONCURRENCY", "7"),
            ("REDIS_URL", "redis://h:1/2"),
        ],
        Some("test"),
    ))
    .unwrap();
    assert_eq!(s.worker.concurrency, 7);
    assert_eq!(s.worker.lease, Duration::from_secs(5)); // from test.toml
    assert_eq!(s.redis.url.expose(), "redis://h:1/2");
    assert_eq!(s.dead.max_age, Duration::from_secs(180 * 86_400));
}

#[test]
fn bad_values_name_the_key() {
    let err = Settings::load_from(&sources(&[("JOBFLEET__WORKER__CONCURRENCY", "0")], None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("worker.concurrency"), "{err}");
    let err = Settings::load_from(&sources(&[("JOBFLEET__WORKER__LEASE", "soon")], None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("lease"), "{err}");
    let err = Settings::load_from(&sources(
        &[("JOBFLEET__REDIS__CONNECT_TIMEOUT", "0s")],
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("redis.connect_timeout"), "{err}");
    let err = Settings::load_from(&sources(&[], Some("nowhere")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("nowhere"), "{err}");
    let err = Settings::load_from(&sources(&[("JOBFLEET__IPFS__ENDPOINTS", "ftp://x")], None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ipfs.endpoints"), "{err}");
}

#[test]
fn ipfs_endpoints_come_in_order() {
    let s = Settings::load_from(&sources(
        &[(
            "JOBFLEET__IPFS__ENDPOINTS",
            "http://10.0.0.1:5001,http://10.0.0.2:5001",
        )],
        None,
    ))
    .unwrap();
    let endpoints: Vec<&str> = s.ipfs.endpoints.iter().map(SecretUrl::expose).collect();
    assert_eq!(endpoints, ["http://10.0.0.1:5001", "http://10.0.0.2:5001"]);
    assert_eq!(s.ipfs.snapshot_retention, Duration::from_secs(90 * 86_400));
}

#[test]
fn notify_settings_name_the_bad_key_and_hide_secrets() {
    let err = Settings::load_from(&sources(
        &[("JOBFLEET__NOTIFY__DISCORD_WEBHOOK_URL", "discord.com/x")],
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("notify.discord_webhook_url"), "{err}");
    let err = Settings::load_from(&sources(
        &[
            ("JOBFLEET__NOTIFY__SMTP__HOST", "mail"),
            ("JOBFLEET__NOTIFY__SMTP__FROM", "nobody"),
        ],
        None,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("notify.smtp.from"), "{err}");
    let s = Settings::load_from(&sources(
        &[
            ("JOBFLEET__NOTIFY__SMTP__USERNAME", "bot"),
            ("JOBFLEET__NOTIFY__SMTP__PASSWORD", "hunter2"),
            ("JOBFLEET__NOTIFY__SMTP__TLS", "tls"),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(s.notify.smtp.tls, SmtpTls::Tls);
    assert_eq!(s.notify.smtp.password.expose(), "hunter2");
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn a_bad_value_says_its_cause_once() {
    let err = Settings::load_from(&sources(&[("JOBFLEET__WORKER__CONCURRENCY", "abc")], None))
        .unwrap_err();
    // The whole chain as anyhow's `{:#}` prints it, repeats included.
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    assert!(text.contains("worker.concurrency"), "{text}");
    assert_eq!(text.matches("invalid type").count(), 1, "{text}");
}

#[test]
fn a_relative_jobs_dir_is_taken_from_above_the_config_folder() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let s = Settings::load_from(&sources(&[], None)).unwrap();
    assert_eq!(s.jobs.dir, root.join("jobs"));
    let s = Settings::load_from(&sources(&[("JOBFLEET__JOBS__DIR", "/opt/specs")], None)).unwrap();
    assert_eq!(s.jobs.dir, PathBuf::from("/opt/specs"));
    let project_root = |dir: PathBuf| {
        Sources {
            config_dir: dir,
            env: None,
            vars: Vec::new(),
        }
        .project_root()
    };
    assert_eq!(project_root(root.join("config")), Some(root.clone()));
    assert_eq!(project_root(root.join("no-such-folder")), None);
    // `config/..` is the root itself, so what is above it is the root's parent.
    assert_eq!(
        project_root(root.join("config").join("..")),
        root.parent().map(Path::to_path_buf)
    );
}

#[test]
fn environment_values_keep_their_text() {
    let s = Settings::load_from(&sources(
        &[
            ("JOBFLEET__REDIS__NAMESPACE", "00123"),
            ("JOBFLEET__NOTIFY__SMTP__USERNAME", "1e2"),
            ("JOBFLEET__NOTIFY__SMTP__PASSWORD", "007"),
            ("JOBFLEET__NOTIFY__SMTP__PORT", "2525"),
            ("JOBFLEET__WORKER__STRICT", "true"),
            (
                "JOBFLEET__SCHEDULER__DISABLED",
                "sync_balances, prune_snapshots",
            ),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(s.redis.namespace, "00123");
    assert_eq!(s.notify.smtp.username, "1e2");
    assert_eq!(s.notify.smtp.password.expose(), "007");
    // Numbers, booleans and lists are still read from their text.
    assert_eq!(s.notify.smtp.port, 2525);
    assert!(s.worker.strict);
    assert_eq!(s.scheduler.disabled, ["sync_balances", "prune_snapshots"]);
    let s = Settings::load_from(&sources(&[("JOBFLEET__SCHEDULER__DISABLED", "")], None)).unwrap();
    assert!(s.scheduler.disabled.is_empty());
}

#[test]
fn secret_urls_stay_out_of_debug_and_errors() {
    let key = "0123456789abcdefKEY";
    let s = Settings::load_from(&sources(
        &[
            (
                "JOBFLEET__CHAIN__RPC_URL",
                &format!("https://mainnet.example/v3/{key}"),
            ),
            (
                "JOBFLEET__IPFS__ENDPOINTS",
                &format!("https://ipfs:{key}@kubo.example:5001"),
            ),
            (
                "DATABASE_URL",
                &format!("postgres://u@db/jobfleet?password={key}"),
            ),
        ],
        None,
    ))
    .unwrap();
    assert_eq!(
        s.chain.rpc_url.expose(),
        format!("https://mainnet.example/v3/{key}")
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains(key), "{shown}");
    assert!(shown.contains("https://mainnet.example/***"), "{shown}");
    for (var, value) in [
        ("JOBFLEET__CHAIN__RPC_URL", format!("https://[v3/{key}")),
        (
            "JOBFLEET__IPFS__ENDPOINTS",
            format!("ftp://kubo.example/{key}"),
        ),
        ("REDIS_URL", format!("redis://h:port/0?password={key}")),
    ] {
        let err = Settings::load_from(&sources(&[(var, &value)], None))
            .unwrap_err()
            .to_string();
        assert!(!err.contains(key), "{err}");
    }
}

#[test]
fn private_webhooks_are_off_in_every_environment_unless_set() {
    // Production wants an explicit chain id; the setting under test is independent of it.
    let chain = [("JOBFLEET__CHAIN__CHAIN_ID", "1")];
    for env in [None, Some("development"), Some("test"), Some("production")] {
        let s = Settings::load_from(&sources(&chain, env)).unwrap();
        assert!(!s.notify.allow_private_webhooks, "{env:?}");
    }
    let on = [("JOBFLEET__NOTIFY__ALLOW_PRIVATE_WEBHOOKS", "true")];
    let s = Settings::load_from(&sources(&on, None)).unwrap();
    assert!(s.notify.allow_private_webhooks);
}

#[test]
fn retention_defaults_are_days_and_a_bad_one_names_its_key() {
    let s = Settings::load_from(&sources(&[], None)).unwrap();
    let days = |n: u64| Duration::from_secs(n * 86_400);
    let r = &s.retention;
    assert_eq!(
        (
            r.notifications,
            r.outbox_confirmed,
            r.outbox_failed,
            r.chain_events,
            r.platform_stats
        ),
        (days(30), days(90), days(180), days(90), days(400))
    );
    let s = Settings::load_from(&sources(
        &[("JOBFLEET__RETENTION__CHAIN_EVENTS", "7d")],
        None,
    ))
    .unwrap();
    assert_eq!(s.retention.chain_events, days(7));
    for key in [
        "notifications",
        "outbox_confirmed",
        "outbox_failed",
        "chain_events",
        "platform_stats",
    ] {
        let var = format!("JOBFLEET__RETENTION__{}", key.to_uppercase());
        // Shorter than a day would cut off deliveries still being retried.
        let err = Settings::load_from(&sources(&[(&var, "23h")], None))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("retention.{key}: must be at least 1day")),
            "{err}"
        );
        let err = Settings::load_from(&sources(&[(&var, "a month")], None))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{err}");
    }
}
