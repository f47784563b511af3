//! Discussion snapshots from the command line (`jobfleet snapshots show|verify`) and the Kubo
//! RPC stand-in's answers, against a real PostgreSQL and the stand-in.

mod support;

use chrono::Utc;
use jobfleet::ipfs::cid::MAX_BLOCK;
use jobfleet::jobs::snapshot_discussions::snapshot_window;
use sqlx::PgPool;
use support::discussions::{cli, market, people, rows, say, window};
use support::kubo::{self, independent_cid};

#[sqlx::test]
async fn show_and_verify_from_the_command_line(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    say(&pool, m, 1, "hello", "2026-11-29T10:00:00Z").await;
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    let cid = rows(&pool).await[0].cid.clone();
    let url = node.url();

    let (code, out, err) = cli(&pool, &url, &["snapshots", "show", &m.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&cid) && out.contains("2026-11-29 00:00"),
        "{out}"
    );
    let (code, out, _) = cli(
        &pool,
        &url,
        &["snapshots", "show", &m.to_string(), "--json"],
    )
    .await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["cid"], cid.as_str());

    let (code, out, err) = cli(&pool, &url, &["snapshots", "verify", &cid]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok"), "{out}");

    // The node serving other bytes under the CID: verification fails.
    node.node
        .tamper(&cid, b"{\"kind\":\"discussion_snapshot\"}".to_vec());
    let (code, out, _) = cli(&pool, &url, &["snapshots", "verify", &cid, "--json"]).await;
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["snapshot"]["problem"]
            .as_str()
            .unwrap()
            .contains("hashes to")
    );

    // A bad CID argument: one line, usage exit code.
    let (code, _, err) = cli(&pool, &url, &["snapshots", "verify", "bafy-nonsense"]).await;
    assert_eq!(code, 2);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not a CID"), "{err}");
}

#[sqlx::test]
async fn verify_checks_every_part_of_a_split_day(pool: PgPool) {
    people(&pool).await;
    let m = market(&pool, "ACTIVE").await;
    sqlx::query(
        "INSERT INTO discussions (market_id, author_id, content, created_at)
         SELECT $1, 1, repeat('x', 4000) || i, '2026-11-29T00:00:00Z'::timestamptz + i * interval '1 second'
         FROM generate_series(1, 100) i",
    )
    .bind(m)
    .execute(&pool)
    .await
    .unwrap();
    let node = kubo::start().await;
    let client = kubo::client(&[node.url()]);
    snapshot_window(&pool, &client, window(), Utc::now())
        .await
        .unwrap();
    let row = rows(&pool).await.remove(0);
    assert!(row.part_cids.len() >= 2);
    let (code, out, err) = cli(&pool, &node.url(), &["snapshots", "verify", &row.cid]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok")).count(),
        row.part_cids.len() + 1
    );

    node.node.tamper(&row.part_cids[1], b"tampered".to_vec());
    let (code, out, _) = cli(&pool, &node.url(), &["snapshots", "verify", &row.cid]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("FAILED    {}", row.part_cids[1])),
        "{out}"
    );
}

#[tokio::test]
async fn the_stand_in_answers_like_kubo() {
    let node = kubo::start().await;
    jobfleet::install_tls_provider();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", node.url());

    let get = http.get(url("/api/v0/add")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let missing = http.post(url("/api/v0/nothing")).send().await.unwrap();
    assert_eq!(missing.status(), 404);

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"hello".to_vec()).file_name("hello.txt"),
    );
    let added = http
        .post(url("/api/v0/add?cid-version=1&pin=true"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&added.text().await.unwrap()).unwrap();
    let cid = independent_cid(b"hello");
    assert_eq!(
        body,
        serde_json::json!({"Name": "hello.txt", "Hash": cid, "Size": "5"})
    );

    let cat = http
        .post(url(&format!("/api/v0/cat?arg={cid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cat.bytes().await.unwrap().as_ref(), b"hello");
    let rm = http
        .post(url(&format!("/api/v0/pin/rm?arg={cid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(rm.status(), 200);
    assert_eq!(
        rm.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"Pins": [cid]})
    );
    let again = http
        .post(url(&format!("/api/v0/pin/rm?arg={cid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 500);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"Message": "not pinned or pinned indirectly", "Code": 0, "Type": "error"})
    );
    let unknown = independent_cid(b"never added");
    let cat = http
        .post(url(&format!("/api/v0/cat?arg={unknown}")))
        .send()
        .await
        .unwrap();
    assert_eq!(cat.status(), 500);
    let err: serde_json::Value = cat.json().await.unwrap();
    assert!(
        err["Message"].as_str().unwrap().contains("not found"),
        "{err}"
    );

    // Over one block: the stand-in says it does not chunk rather than inventing a CID.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'x'; MAX_BLOCK + 1]),
    );
    let big = http
        .post(url("/api/v0/add?cid-version=1"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 500);
    node.stop().await.unwrap();
}
