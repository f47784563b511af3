// A producer in another language: a Node 20 service that enqueues jobfleet jobs through the
// HTTP API with plain fetch (no dependencies), then reads their state back until they are done.
//
//   JOBFLEET_API=http://127.0.0.1:9470 JOBFLEET_TOKEN=jft_... node producer.mjs
//
// The token needs the enqueue and read scopes:
//   jobfleet web token create orders-api --scope enqueue,read
//
// It enqueues one notification job (dispatch_notifications, which turns pending notification
// rows into deliveries) with an id of its own, so that sending it twice stores one job, then a
// bulk of BULK noop jobs, and waits until every job has completed (the worker must keep a
// history of completed jobs: worker.completed_history > 0). Exit code 0 when all completed.

const api = (process.env.JOBFLEET_API || "http://127.0.0.1:9470").replace(/\/$/, "");
const token = process.env.JOBFLEET_TOKEN;
const bulkSize = Number(process.env.BULK || 100);
const waitSeconds = Number(process.env.WAIT_SECONDS || 60);

if (!token) {
  console.error("set JOBFLEET_TOKEN (jobfleet web token create NAME --scope enqueue,read)");
  process.exit(2);
}

async function call(method, path, body) {
  const res = await fetch(api + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = { error: text }; }
  return { status: res.status, json };
}

function fail(what, res) {
  console.error(`${what}: HTTP ${res.status}: ${JSON.stringify(res.json)}`);
  process.exit(1);
}

// One job with the producer's own id: a retried request is answered 200 with the same job.
const id = `dispatch-${process.pid}-${Date.now()}`;
const first = await call("POST", "/api/v1/jobs", { kind: "dispatch_notifications", id });
if (first.status !== 201) fail("enqueue dispatch_notifications", first);
const again = await call("POST", "/api/v1/jobs", { kind: "dispatch_notifications", id });
if (again.status !== 200 || again.json.id !== id || again.json.created !== false) fail("enqueue the same id again", again);
console.log(`enqueued ${id} on ${first.json.queue} (a second request with the id stored nothing)`);

// A bulk: every job gets its own result.
const jobs = Array.from({ length: bulkSize }, (_, i) => ({ kind: "noop", args: {}, id: `noop-${process.pid}-${i}` }));
const bulk = await call("POST", "/api/v1/jobs/bulk", { jobs });
if (bulk.status !== 200 || bulk.json.created !== bulkSize) fail("bulk enqueue", bulk);
console.log(`bulk: ${bulk.json.created} created, ${bulk.json.existing} existing, ${bulk.json.failed} failed`);

// Read the states back until every job completed.
const ids = [id, ...bulk.json.results.map((r) => r.id)];
const deadline = Date.now() + waitSeconds * 1000;
let states = {};
for (;;) {
  states = {};
  for (const jobId of ids) {
    const res = await call("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}`);
    const state = res.status === 200 ? res.json.state : `http ${res.status}`;
    states[state] = (states[state] || 0) + 1;
    if (state === "dead") fail(`job ${jobId} died`, res);
  }
  if (states.completed === ids.length) break;
  if (Date.now() > deadline) {
    console.error(`not all completed within ${waitSeconds}s: ${JSON.stringify(states)}`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 250));
}
console.log(`all ${ids.length} jobs completed`);
