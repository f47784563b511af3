//! The HTTP API against a real `jobfleet web` process and its own Redis: its status codes
//! (401, 403, 201, 200, 422, 404), idempotent ids, bulk results, the OpenAPI document and a
//! revoked token.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestRedis;
use support::web::{Board, token};

/// The API as a producer calls it.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API call");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_with_the_status_codes_it_documents() {
    let redis = TestRedis::start();
    let url = redis.url();
    let producer = token(&url, "producer", "enqueue,read");
    let reader = token(&url, "reader", "read");
    let ops = token(&url, "ops", "operate");
    let board = Board::start(&url, &[]).await;
    let api = Api {
        http: board.http(),
        base: board.base(),
    };
    let j = "/api/v1/jobs";

    assert_eq!(
        api.get("/api/v1/queues", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/api/v1/queues", Some("jft_0000")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.post(j, &reader, json!({"kind": "noop"})).await.0,
        StatusCode::FORBIDDEN
    );

    let (st, body) = api
        .post(j, &producer, json!({"kind": "noop", "id": "order-7"}))
        .await;
    assert_eq!(
        (st, body["id"].clone()),
        (StatusCode::CREATED, json!("order-7")),
        "{body}"
    );
    let (st, again) = api
        .post(j, &producer, json!({"kind": "noop", "id": "order-7"}))
        .await;
    assert_eq!(
        (st, again["created"].clone()),
        (StatusCode::OK, json!(false)),
        "a retried request stores nothing new"
    );
    for (bad, why) in [
        (json!({"kind": "no_such_kind"}), "unknown job kind"),
        (
            json!({"kind": "sleep", "args": {"ms": "long"}}),
            "args do not decode",
        ),
        (json!({"kind": "noop", "queue": "nowhere"}), "unknown queue"),
        (json!({"kind": "noop", "in": "soon"}), "not a duration"),
        (json!({"kind": "noop", "extra": 1}), "unknown field"),
    ] {
        let (st, body) = api.post(j, &producer, bad.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains(why),
            "{bad}: {body}"
        );
    }
    let (st, delayed) = api
        .post(j, &producer, json!({"kind": "noop", "in": 60}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let delayed_id = delayed["id"].as_str().unwrap().to_owned();

    let (st, job) = api.get(&format!("{j}/order-7"), Some(&reader)).await;
    assert_eq!(
        (st, job["state"].clone(), job["kind"].clone()),
        (StatusCode::OK, json!("pending"), json!("noop"))
    );
    assert_eq!(
        api.get(&format!("{j}/nope"), Some(&reader)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("{j}/order-7"), &producer).await.0,
        StatusCode::FORBIDDEN
    );
    let (st, retried) = api
        .post(&format!("{j}/{delayed_id}/retry"), &ops, json!({}))
        .await;
    assert_eq!(
        (st, retried["previous_state"].clone()),
        (StatusCode::OK, json!("scheduled"))
    );
    let (st, _) = api
        .post(&format!("{j}/order-7/retry"), &ops, json!({}))
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a pending job is not retried"
    );
    let (st, deleted) = api.delete(&format!("{j}/order-7"), &ops).await;
    assert_eq!(
        (st, deleted["previous_state"].clone()),
        (StatusCode::OK, json!("pending"))
    );
    assert_eq!(
        api.delete(&format!("{j}/order-7"), &ops).await.0,
        StatusCode::NOT_FOUND
    );

    let jobs = json!({"jobs": [
        {"kind": "noop", "id": "b-1"}, {"kind": "nope"}, {"kind": "noop", "id": "b-1"}, {"kind": "noop", "args": []}
    ]});
    let (st, bulk) = api.post(&format!("{j}/bulk"), &producer, jobs).await;
    assert_eq!(st, StatusCode::OK, "{bulk}");
    let statuses: Vec<u64> = bulk["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 422, 200, 422], "{bulk}");
    let counts = (
        bulk["created"].clone(),
        bulk["existing"].clone(),
        bulk["failed"].clone(),
    );
    assert_eq!(counts, (json!(1), json!(1), json!(2)));

    let (st, queues) = api.get("/api/v1/queues", Some(&reader)).await;
    assert_eq!(st, StatusCode::OK);
    let default = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "default")
        .expect("default listed");
    assert_eq!(default["pending"], json!(2), "{queues}");

    let (st, doc) = api.get("/api/v1/openapi.json", Some(&reader)).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    assert!(doc["paths"]["/api/v1/jobs/bulk"]["post"].is_object());
    assert_eq!(
        api.get("/api/v1/openapi.json", None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A revoked token stops working at once.
    let out = support::cli::jobfleet(&url)
        .args(["web", "token", "revoke", "reader"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        api.get("/api/v1/queues", Some(&reader)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
