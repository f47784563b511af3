// The board in a real headless Chromium (Debian's, driven by playwright-core): sign in, see
// the queues, open a dead job, retry it and watch it leave the dead tab, pause the queue, look
// at the other pages, sign out. It writes a screenshot of each main page to SCREENSHOTS.
//
// Run by tests/web_browser.rs, which starts Redis, the board and the jobs, and passes:
//   BOARD_URL, BOARD_USER, BOARD_PASSWORD, QUEUE, DEAD_ID, SCREENSHOTS, CHROMIUM.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.BOARD_URL;
const queue = process.env.QUEUE;
const deadId = process.env.DEAD_ID;
const shots = process.env.SCREENSHOTS || "target/screenshots";
mkdirSync(shots, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  // A script or style the Content-Security-Policy blocks shows up as a console error.
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  await page.goto(`${base}/queues/${queue}`);
  check(page.url().includes("/login?next="), `an anonymous visit goes to the sign-in page (${page.url()})`);
  await shot("01-login");
  await page.fill("#username", process.env.BOARD_USER);
  await page.fill("#password", process.env.BOARD_PASSWORD);
  await Promise.all([page.waitForURL(`${base}/queues/${queue}`), page.click("#sign-in")]);

  await page.goto(`${base}/`);
  check(await page.locator(`#queues tr[data-queue="${queue}"]`).count() === 1, "the overview lists the queue");
  check(await page.locator("figure.chart svg rect").count() > 0, "the overview draws the chart");
  await shot("02-overview");

  await page.click(`#queues tr[data-queue="${queue}"] a[href$="state=dead"]`);
  await page.waitForURL(/state=dead/);
  check(await page.locator(`#job-list tr[data-id="${deadId}"]`).count() === 1, "the dead tab shows the dead job");
  await shot("03-queue-dead");

  await page.click(`#job-list tr[data-id="${deadId}"] a`);
  await page.waitForURL(new RegExp(`/jobs/${deadId}`));
  check((await page.textContent("#job-state")).trim() === "dead", "the job page says dead");
  await shot("04-job-dead");
  await Promise.all([page.waitForURL(/msg=/), page.click('button[data-action="retry"]')]);
  check((await page.textContent("#job-state")).trim() === "pending", "after retry the job is pending");
  await shot("05-job-retried");

  await page.goto(`${base}/queues/${queue}?state=dead`);
  check(await page.locator(`#job-list tr[data-id="${deadId}"]`).count() === 0, "the job left the dead tab");
  check(await page.locator("#no-jobs").isVisible(), "the dead tab is empty");

  await page.goto(`${base}/queues/${queue}`);
  await Promise.all([page.waitForURL(/msg=/), page.click("#pause-toggle")]);
  check(await page.locator("#queue-paused").isVisible(), "the queue shows as paused");
  await shot("06-queue-paused");

  await page.goto(`${base}/schedules`);
  check(await page.locator('#schedules tr[data-schedule="fleet-heartbeat"] ul.ticks li').count() === 3, "the schedule shows its last ticks");
  await shot("07-schedules");
  // The worker registers within a heartbeat; the page refreshes by hand here.
  for (let i = 0; i < 50 && await page.locator("section.worker table.inflight").count() === 0; i++) {
    await page.goto(`${base}/workers`);
    if (await page.locator("section.worker table.inflight").count() === 0) await page.waitForTimeout(200);
  }
  check(await page.locator("section.worker table.inflight td", { hasText: "sleep" }).count() === 1, "the worker shows its running job");
  await shot("08-workers");
  await page.goto(`${base}/audit`);
  await shot("09-audit");
  check((await page.textContent("#audit")).includes("retry"), "the audit log has the retry");

  await Promise.all([page.waitForURL(/\/login/), page.click("#signout")]);
  await page.goto(`${base}/`);
  check(page.url().includes("/login"), "after signing out the board asks to sign in again");
  check(errors.length === 0, `no console errors (CSP violations included): ${errors.join(" | ")}`);
  console.log(`board browser test passed; screenshots in ${shots}`);
} finally {
  await browser.close();
}
