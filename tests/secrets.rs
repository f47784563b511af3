//! Secret URLs (the chain's RPC node, the Kubo nodes) stay out of the errors that end up in a
//! job's last error, the logs and `jobfleet jobs show`: hosted providers put API keys in them.

mod support;

use std::time::Duration;

use jobfleet::chain::{Chain, ChainSettings};
use jobfleet::config::{SecretUrl, Settings};
use jobfleet::jobs::JobError;
use support::kubo;

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
