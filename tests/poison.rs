//! Hostile bytes in every list and sorted set of the store: entries that are not UTF-8, random,
//! truncated, empty, huge, or whose headers claim absurd attempts. None may stall a queue, run
//! when it has no attempt left, vanish, or break a listing; each ends in dead with a reason and
//! a time, and every valid job around them runs exactly once.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobfleet::jobs::{HandlerSet, Job, JobArgs, JobContext, JobError, Registry};
use jobfleet::queue::payload::{Header, undecodable_id};
use jobfleet::queue::{JobState, NewJob, QueueClient, now_ms};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::TestRedis;
use support::app::{WorkerOpts, client, eventually, registry, spec_dir, start_worker};

/// Runs of the `tally` kind: (test tag, job id) -> how many times it ran.
static RUNS: Mutex<Option<HashMap<(String, String), u32>>> = Mutex::new(None);

fn runs(tag: &str) -> HashMap<String, u32> {
    RUNS.lock()
        .unwrap()
        .iter()
        .flatten()
        .filter(|((t, _), _)| t == tag)
        .map(|((_, id), n)| (id.clone(), *n))
        .collect()
}

#[derive(Debug, Serialize, Deserialize)]
struct Tally {
    tag: String,
}

impl JobArgs for Tally {
    const KIND: &'static str = "tally";
}

impl<S: Send + Sync + 'static> Job<S> for Tally {
    async fn run(self, ctx: JobContext<S>) -> Result<(), JobError> {
        let mut runs = RUNS.lock().unwrap();
        *runs
            .get_or_insert_with(HashMap::new)
            .entry((self.tag, ctx.id))
            .or_default() += 1;
        Ok(())
    }
}

struct Setup {
    _redis: TestRedis,
    _specs: tempfile::TempDir,
    url: String,
    c: QueueClient,
    registry: Arc<Registry>,
}

async fn setup() -> Setup {
    let redis = TestRedis::start();
    let url = redis.url();
    let c = client(&url).await;
    let specs = spec_dir(&[("tally", "default", "5s", 3, "10ms")]);
    let registry = registry(specs.path(), HandlerSet::new().register::<Tally>());
    Setup {
        _redis: redis,
        _specs: specs,
        url,
        c,
        registry,
    }
}

/// `n` valid jobs of `tag`; returns their ids.
async fn valid(c: &QueueClient, tag: &str, n: usize) -> HashSet<String> {
    let jobs =
        (0..n).map(|_| NewJob::new("tally", "default", json!({ "tag": tag })).max_attempts(3));
    c.enqueue_bulk(jobs.collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// A stored job with this header and a valid envelope of the `tally` kind.
fn entry(attempts: u32, max_attempts: u32, id: &str, tag: &str) -> Vec<u8> {
    let body = json!({"id": id, "kind": "tally", "queue": "default", "args": {"tag": tag},
        "max_attempts": max_attempts, "created_at": now_ms()});
    Header {
        attempts,
        max_attempts,
        id: id.into(),
        ..Header::default()
    }
    .encode(&body.to_string())
    .into_bytes()
}

/// Deterministic noise (xorshift), so a failure can be reproduced.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Entries that cannot be decoded, by name. Each must end in dead with a reason.
fn undecodable(tag: &str) -> Vec<(&'static str, Vec<u8>)> {
    let good = entry(0, 3, &format!("{tag}-t"), tag);
    let mut not_utf8_body = entry(0, 3, &format!("{tag}-u"), tag);
    let quote = not_utf8_body.len() - 3;
    not_utf8_body.insert(quote, 0xff);
    vec![
        ("body not UTF-8", not_utf8_body),
        ("id not UTF-8", b"jf|0|3|a\xffb|0|0:0:\n{}".to_vec()),
        ("random", noise(7, 300)),
        (
            "random after a prefix",
            [b"jf|".as_slice(), &noise(11, 64)].concat(),
        ),
        ("truncated header", good[..10].to_vec()),
        ("truncated body", good[..good.len() - 5].to_vec()),
        ("empty", Vec::new()),
        ("huge", noise(13, 1 << 20)),
        (
            "attempts overflow u32",
            b"jf|4294967296|3|ov|0|0:0:\n{}".to_vec(),
        ),
        (
            "digits beyond any integer",
            b"jf|99999999999999999999999|3|ov2|0|0:0:\n{}".to_vec(),
        ),
        (
            "length past the end",
            b"jf|0|3|len|0|999999:0:\n{}".to_vec(),
        ),
        ("negative failed at", b"jf|0|3|neg|-5|0:0:\n{}".to_vec()),
    ]
}

/// Entries whose header says no attempt is left: they must not run.
fn used_up(tag: &str) -> Vec<(String, Vec<u8>)> {
    [(u32::MAX, 3), (1_000_000, 3), (0, 0), (3, 3)]
        .iter()
        .enumerate()
        .map(|(i, &(a, m))| {
            let id = format!("{tag}-used-{i}");
            (id.clone(), entry(a, m, &id, tag))
        })
        .collect()
}

async fn push(c: &QueueClient, key: &str, entries: &[Vec<u8>]) {
    let _: () = c.connection().rpush(key, entries).await.unwrap();
}

async fn dead(c: &QueueClient) -> Vec<jobfleet::queue::admin::JobInfo> {
    c.list("default", JobState::Dead, 0, 1000)
        .await
        .unwrap()
        .jobs
}

/// Every dead entry has a reason and a time, and every undecodable entry is in dead, found
/// by its name, with its bytes kept exactly as the body of the dead entry.
async fn check_dead(c: &QueueClient, bad: &[(&str, Vec<u8>)], used: &[(String, Vec<u8>)]) {
    let dead = dead(c).await;
    assert_eq!(dead.len(), bad.len() + used.len(), "dead: {dead:#?}");
    for j in &dead {
        assert!(
            j.error.as_deref().is_some_and(|e| !e.is_empty()),
            "no reason: {j:?}"
        );
        assert!(j.failed_at.is_some_and(|t| t > 0), "no failure time: {j:?}");
        assert!(j.score.is_some_and(|t| t > 0), "no time of death: {j:?}");
        assert_ne!(j.id, "?");
    }
    for (name, bytes) in bad {
        let found = dead.iter().find(|j| match Header::decode(bytes) {
            Ok((h, _)) => j.id == h.id,
            Err(_) => j.id == undecodable_id(bytes),
        });
        let j = found.unwrap_or_else(|| panic!("{name} is not in dead"));
        let error = j.error.as_deref().unwrap();
        assert!(
            error.starts_with("undecodable payload: "),
            "{name}: {error}"
        );
        let (_, body) = Header::decode(&j.stored).expect("a dead entry has a valid header");
        let kept = match Header::decode(bytes) {
            Ok((_, original_body)) => original_body,
            Err(_) => bytes.as_slice(),
        };
        assert_eq!(body, kept, "{name}: bytes not kept as they were");
    }
    for (id, _) in used {
        let j = dead
            .iter()
            .find(|j| &j.id == id)
            .expect("used-up job in dead");
        assert!(
            j.error.as_deref().unwrap().contains("no attempts left"),
            "{j:?}"
        );
    }
}

#[tokio::test]
async fn hostile_entries_in_pending_stall_nothing_and_go_to_dead_with_a_reason() {
    let s = setup().await;
    let tag = "pending";
    let mut ids = valid(&s.c, tag, 150).await;
    let bad = undecodable(tag);
    let used = used_up(tag);
    let k = s.c.keys().queue("default");
    push(
        &s.c,
        &k.pending(),
        &bad.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
    )
    .await;
    push(
        &s.c,
        &k.pending(),
        &used.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
    )
    .await;
    ids.extend(valid(&s.c, tag, 150).await);

    // Listings show every entry, the bad ones escaped and with the reason, instead of failing.
    let pending =
        s.c.list("default", JobState::Pending, 0, 1000)
            .await
            .unwrap()
            .jobs;
    assert_eq!(pending.len(), 300 + bad.len() + used.len());
    let not_utf8 = pending.iter().find(|j| j.id == format!("{tag}-u")).unwrap();
    let at = bad[0].1.iter().position(|&b| b == 0xff).unwrap();
    assert_eq!(
        not_utf8.undecodable.as_deref(),
        Some(format!("not UTF-8 at byte {at}").as_str())
    );
    assert!(not_utf8.raw.as_deref().unwrap().contains("\\xff"));
    s.c.stats("default").await.unwrap();

    let w = start_worker(&s.c, s.registry.clone(), &s.url, WorkerOpts::default());
    let settled = eventually(Duration::from_secs(30), || async {
        let st = s.c.stats("default").await.unwrap();
        st.processed == 300 && st.dead == (bad.len() + used.len()) as u64 && st.active == 0
    })
    .await;
    w.stop().await;
    assert!(settled, "stats: {:?}", s.c.stats("default").await.unwrap());
    let ran = runs(tag);
    assert_eq!(
        ran.keys().cloned().collect::<HashSet<_>>(),
        ids,
        "only the valid jobs ran"
    );
    assert!(ran.values().all(|&n| n == 1), "each ran once");
    check_dead(&s.c, &bad, &used).await;
    let j = s.c.show(&format!("{tag}-u")).await.unwrap();
    assert_eq!(
        j.error.as_deref(),
        Some(format!("undecodable payload: not UTF-8 at byte {at}").as_str())
    );
}

#[tokio::test]
async fn hostile_entries_in_the_sets_and_a_dead_workers_list_are_reaped_with_a_reason() {
    let s = setup().await;
    let tag = "sets";
    let mut ids = valid(&s.c, tag, 50).await;
    let bad = undecodable(tag);
    let used = used_up(tag);
    let k = s.c.keys().queue("default");
    let mut con = s.c.connection();
    // Due entries in the scheduled and retry sets, to be promoted like any other.
    let due = now_ms() - 1000;
    let (half, rest) = bad.split_at(bad.len() / 2);
    for (set, part) in [(k.scheduled(), half), (k.retry(), rest)] {
        let pairs: Vec<(i64, Vec<u8>)> = part.iter().map(|(_, b)| (due, b.clone())).collect();
        let _: () = con.zadd_multiple(&set, &pairs).await.unwrap();
    }
    // A worker that died holding used-up jobs, valid jobs and garbage, under a name that is
    // not UTF-8 either: its lease expired long ago.
    let ghost = b"ghost-\xfe".to_vec();
    let held: Vec<Vec<u8>> = used.iter().map(|(_, b)| b.clone()).collect();
    let garbage = vec![noise(3, 100), b"jf|1|2|x".to_vec(), Vec::new()];
    let valid_held: Vec<Vec<u8>> = (0..5)
        .map(|i| entry(0, 3, &format!("{tag}-held-{i}"), tag))
        .collect();
    ids.extend((0..5).map(|i| format!("{tag}-held-{i}")));
    let list = k.inflight_bytes(&ghost);
    let _: () = con
        .rpush(&list, [held.clone(), garbage.clone(), valid_held].concat())
        .await
        .unwrap();
    let _: () = con.zadd(k.leases(), &ghost, 1).await.unwrap();
    // Members that are not UTF-8 in the global sets must not break the commands that read them.
    let _: () = con
        .sadd(s.c.keys().queues(), b"\xffbad".to_vec())
        .await
        .unwrap();
    let _: () = con
        .zadd(s.c.keys().workers(), b"\xfew".to_vec(), now_ms())
        .await
        .unwrap();
    let _: () = con.sadd(s.c.keys().queues(), "default").await.unwrap();
    assert_eq!(s.c.queue_names().await.unwrap(), ["default"]);
    assert!(
        s.c.workers(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    // Garbage already in dead must not break listings or repairs of the dead set.
    let _: () = con.zadd(k.dead(), noise(5, 40), now_ms()).await.unwrap();

    let reaped = s.c.reap("default", 10).await.unwrap();
    assert_eq!(
        (reaped.requeued, reaped.killed),
        (5, (held.len() + garbage.len()) as u64)
    );
    assert_eq!(
        reaped.workers,
        vec![String::from_utf8_lossy(&ghost).into_owned()]
    );
    let reaper_dead = dead(&s.c).await;
    for g in &garbage {
        let j = reaper_dead
            .iter()
            .find(|j| j.id == undecodable_id(g))
            .unwrap_or_else(|| {
                panic!(
                    "{} not in {:?}",
                    undecodable_id(g),
                    reaper_dead
                        .iter()
                        .map(|j| jobfleet::queue::payload::escape_bytes(
                            &j.stored[..j.stored.len().min(150)]
                        ))
                        .collect::<Vec<_>>()
                )
            });
        assert!(
            j.error.as_deref().unwrap().contains("found by the reaper"),
            "{j:?}"
        );
        assert!(j.failed_at.is_some() && j.score.is_some());
        assert_eq!(Header::decode(&j.stored).unwrap().1, g.as_slice());
    }
    for (id, _) in &used {
        let j = reaper_dead
            .iter()
            .find(|j| &j.id == id)
            .expect("used-up in dead");
        assert!(
            j.error.as_deref().unwrap().contains("lease expired"),
            "{j:?}"
        );
        assert!(j.attempts >= j.max_attempts);
    }

    let w = start_worker(&s.c, s.registry.clone(), &s.url, WorkerOpts::default());
    let expected_dead = (bad.len() + held.len() + garbage.len() + 1) as u64;
    let settled = eventually(Duration::from_secs(30), || async {
        let st = s.c.stats("default").await.unwrap();
        st.processed == 55
            && st.dead == expected_dead
            && st.active == 0
            && st.scheduled + st.retry == 0
    })
    .await;
    assert!(settled, "stats: {:?}", s.c.stats("default").await.unwrap());
    assert_eq!(runs(tag).keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(runs(tag).values().all(|&n| n == 1));
    assert_eq!(runs(tag).len(), 55, "no undecodable or used-up job ran");
    // Retrying the whole dead set brings every entry back: an operator's retry gives the
    // used-up jobs fresh attempts, so those with any allowed run now, once; the undecodable
    // entries die again with their reason.
    let report = s.c.retry_dead("default", None, false).await.unwrap();
    assert_eq!(report.matched, expected_dead);
    let revived: Vec<String> = used
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| !id.ends_with("-2"))
        .collect();
    let again = eventually(Duration::from_secs(30), || async {
        let st = s.c.stats("default").await.unwrap();
        st.processed == 55 + revived.len() as u64
            && st.dead == expected_dead - revived.len() as u64
            && st.pending == 0
    })
    .await;
    w.stop().await;
    assert!(again, "stats: {:?}", s.c.stats("default").await.unwrap());
    ids.extend(revived);
    assert_eq!(runs(tag).keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(runs(tag).values().all(|&n| n == 1));
    for j in dead(&s.c).await {
        assert!(j.error.is_some() && j.failed_at.is_some(), "{j:?}");
        // Found by the name listings give it, and deleted by it.
        assert_eq!(s.c.show(&j.id).await.unwrap().id, j.id);
    }
    let any = dead(&s.c).await.remove(0);
    assert_eq!(s.c.delete(&any.id).await.unwrap(), JobState::Dead);
}
