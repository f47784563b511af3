//! The security of what the fleet reaches and what it shows.
//!
//! The guard on users' webhooks: no private addresses (unless switched on explicitly), and no
//! way around it through a proxy of the environment; the proxy case runs a real `jobfleet
//! worker` process, as the proxy variables are read from the process's environment. Secret
//! URLs (the chain's RPC node, the Kubo nodes) stay out of the errors that end up in a job's
//! last error, the logs and `jobfleet jobs show`: hosted providers put API keys in them.

mod support;

use std::time::Duration;

use jobfleet::chain::{Chain, ChainSettings};
use jobfleet::config::{SecretUrl, Settings};
use jobfleet::jobs::JobError;
use jobfleet::notify::Channel;
use sqlx::PgPool;
use support::notify::*;
use support::{app, kubo};

#[sqlx::test]
async fn users_webhooks_cannot_reach_private_addresses(pool: PgPool) {
    let server = hook_answering(200, "", None).await;
    let env = env(pool, |s| s.notify.allow_private_webhooks = false).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;

    let e = env.send(id, Channel::Webhook, 1).await.unwrap_err();
    assert!(matches!(&e, JobError::Fatal(_)), "{e}");
    assert!(
        e.to_string().contains("127.0.0.1 is not a public address"),
        "{e}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(env.deliveries(id, Channel::Webhook).await[0].1, "failed");
}

#[sqlx::test]
async fn nat64_and_ipv4_compatible_literals_of_loopback_are_refused(pool: PgPool) {
    let server = hook_answering(200, "", None).await;
    let port = server.address().port();
    let env = env(pool, |s| s.notify.allow_private_webhooks = false).await;
    for (n, host) in ["[64:ff9b::7f00:1]", "[::127.0.0.1]", "[fec0::1]"]
        .into_iter()
        .enumerate()
    {
        let user = user(&env.pool, &format!("u{n}"), None).await;
        endpoint(&env.pool, user, &format!("http://{host}:{port}/hook")).await;
        let id = notify(&env.pool, user, &balance_changed(), &format!("b:{n}")).await;
        let e = env.send(id, Channel::Webhook, 1).await.unwrap_err();
        assert!(matches!(&e, JobError::Fatal(_)), "{host}: {e}");
        assert!(e.to_string().contains("is not a public address"), "{e}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[sqlx::test]
async fn a_proxy_in_the_environment_does_not_carry_users_webhooks(pool: PgPool) {
    // The internal service a user points a webhook at, by name so that only the resolver can
    // tell it is inside.
    let internal = hook_answering(200, "internal admin answer", None).await;
    let port = internal.address().port();
    let proxy = ProxyStandIn::start().await;
    let env = env(pool, |s| s.notify.allow_private_webhooks = false).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("http://localhost:{port}/hook")).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;
    env.dispatch().await;

    let mut worker = env.worker_process(&proxy.env());
    let rows = first_delivery(&env, &worker, id).await;
    worker.terminate_cleanly();
    assert_eq!(proxy.seen(), Vec::<String>::new());
    assert!(internal.received_requests().await.unwrap().is_empty());
    let (_, status, code, error, excerpt) = &rows[0];
    assert_ne!(status, "sent", "{rows:?}");
    assert_eq!((code, excerpt), (&None, &None), "{rows:?}");
    assert!(
        error.as_deref().unwrap().contains("no public address"),
        "{rows:?}"
    );
}

#[sqlx::test]
async fn private_webhooks_need_the_setting_and_a_worker_with_it_says_so(pool: PgPool) {
    let server = hook_answering(200, "ok", None).await;
    let env = env(pool, |_| {}).await;
    let bob = user(&env.pool, "bob", None).await;
    endpoint(&env.pool, bob, &format!("{}/hook", server.uri())).await;
    let id = notify(&env.pool, bob, &balance_changed(), "balance:bob:123").await;
    env.dispatch().await;

    let warning = "notify.allow_private_webhooks is on";
    let mut worker = env.worker_process(&[("JOBFLEET__NOTIFY__ALLOW_PRIVATE_WEBHOOKS", "true")]);
    let rows = first_delivery(&env, &worker, id).await;
    assert_eq!(rows[0].1, "sent", "{rows:?}");
    let said = app::eventually(Duration::from_secs(10), || async {
        worker.output().contains(warning)
    })
    .await;
    worker.terminate_cleanly();
    assert!(said, "{}", worker.output());
    assert!(worker.output().contains("WARN"), "{}", worker.output());

    // Without the variable the test environment's settings keep the guard on, and say nothing.
    let mut quiet = env.worker_process(&[]);
    std::thread::sleep(Duration::from_millis(500));
    quiet.terminate_cleanly();
    assert!(!quiet.output().contains(warning), "{}", quiet.output());
}

/// The delivery log of a notification's webhook once the worker process wrote its first row;
/// the worker's output when it does not within 15 s.
async fn first_delivery(env: &Env, worker: &support::process::Process, id: i64) -> Vec<Delivery> {
    let found = app::eventually(Duration::from_secs(15), || async {
        !env.deliveries(id, Channel::Webhook).await.is_empty()
    })
    .await;
    assert!(found, "no delivery; the worker said:\n{}", worker.output());
    env.deliveries(id, Channel::Webhook).await
}

const KEY: &str = "k3y0123456789abcdef";

fn chain_settings(rpc_url: String) -> ChainSettings {
    let mut settings: Settings = support::app::settings("redis://127.0.0.1:1");
    settings.chain.rpc_url = SecretUrl::new(rpc_url);
    settings.chain.request_timeout = Duration::from_secs(2);
    settings.chain
}

#[tokio::test]
async fn a_node_that_cannot_be_reached_is_named_without_its_key() {
    let dead = kubo::dead_endpoint();
    let chain = Chain::new(&chain_settings(format!("{dead}/v3/{KEY}"))).unwrap();
    let err = chain.chain_id().await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("/***"), "{text}");
    // What the queue stores as the job's last error, and so what `jobs show` prints.
    let stored = err.into_job_error().to_string();
    assert!(!stored.contains(KEY), "{stored}");
    assert!(!format!("{chain:?}").contains(KEY), "{chain:?}");
}

#[tokio::test]
async fn kubo_errors_name_the_endpoint_without_its_credentials() {
    let dead = kubo::dead_endpoint().replace("http://", &format!("http://ipfs:{KEY}@"));
    let node = kubo::start().await;
    let keyed = node
        .url()
        .replace("http://", &format!("http://ipfs:{KEY}@"))
        + &format!("/{KEY}");
    let cid = kubo::independent_cid(b"nothing").parse().unwrap();

    let err = kubo::client(std::slice::from_ref(&dead))
        .cat(&cid)
        .await
        .unwrap_err();
    let text = JobError::retry(err).to_string();
    assert!(!text.contains(KEY), "{text}");
    assert!(text.contains("http://***@127.0.0.1:"), "{text}");

    // The node answers 404 under a path it does not serve: a refusal naming the endpoint.
    let err = kubo::client(&[keyed]).cat(&cid).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("HTTP 404"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    assert!(!format!("{:?}", kubo::client(&[dead])).contains(KEY));
}
