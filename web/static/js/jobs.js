/* Waiting for a job's verdict: long-poll GET /jobs/<id>?wait=WAIT_S, back off between answers
 * that are not final yet, ride out short outages, and give up by the rules below. */

import { API, WAIT_S, Slots, parseJson } from "./util.js";
import { retryAfterSeconds } from "./limits.js";
import { describeFailure, fail, showFailedJob, showJob, showResult } from "./render.js";

const BACKOFF_S = [0.25, 0.5, 1, 2, 4];    // pause between non-final answers (last value repeats)
const MAX_POLL_FAILURES = 6;               // consecutive network/5xx failures before giving up
const POLL_GIVE_UP_MS = 15 * 60 * 1000;    // stop waiting for a job after this long
const MAX_POLLS = 3;                       // concurrent long-polls (browsers allow ~6 per host)

const pollSlots = new Slots(MAX_POLLS);

// Waits for item.job (already created) to become final, showing each answer on the card.
export function waitForJob(item) {
  poll(item, 0, 0, Date.now());
}

// attempt: how many non-final answers so far (drives the backoff); failures: consecutive errors.
function poll(item, attempt, failures, since) {
  if (item.removed) return;
  pollSlots.take(() => {
    if (item.removed) { pollSlots.give(); return; }
    const url = API + "/jobs/" + encodeURIComponent(item.job.id) + "?wait=" + WAIT_S;
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    const guard = window.setTimeout(() => { if (controller) controller.abort(); },
      (WAIT_S + 20) * 1000);
    let status = 0;
    let headers = null;
    fetch(url, {
      headers: { "Accept": "application/json" },
      cache: "no-store",
      credentials: "same-origin",
      signal: controller ? controller.signal : undefined
    }).then((res) => {
      status = res.status;
      headers = res.headers;
      return res.text();
    }).then((text) => {
      window.clearTimeout(guard);
      pollSlots.give();
      handlePoll(item, status, parseJson(text), headers, attempt, failures, since);
    }, () => {
      window.clearTimeout(guard);
      pollSlots.give();
      handlePoll(item, 0, null, null, attempt, failures, since);
    });
  });
}

function later(item, seconds, fn) {
  if (item.removed) return;
  item.timer = window.setTimeout(() => { item.timer = null; fn(); }, seconds * 1000);
}

function handlePoll(item, status, body, headers, attempt, failures, since) {
  if (item.removed) return;
  if (status === 200 && body && body.status) {
    if (body.status === "done") {
      if (body.result) { showResult(item, body.result); } else {
        fail(item, "The job finished but the server sent no result.", false);
      }
      return;
    }
    if (body.status === "failed") { showFailedJob(item, body); return; }
    showJob(item, body);
    if (Date.now() - since > POLL_GIVE_UP_MS) {
      fail(item, "Gave up waiting — the job is still " + body.status + ". Try again later.", false);
      return;
    }
    const pause = BACKOFF_S[Math.min(attempt, BACKOFF_S.length - 1)];
    later(item, pause, () => { poll(item, attempt + 1, 0, since); });
    return;
  }
  if (status === 429) {
    const wait = retryAfterSeconds(body, headers && headers.get("Retry-After"));
    item.refs.status.textContent = "Checking too often — next check in " + wait + " s";
    later(item, wait, () => { poll(item, attempt, failures, since); });
    return;
  }
  const transient = status === 0 || status >= 500 || (status === 200 && !body);
  if (transient && failures + 1 < MAX_POLL_FAILURES) {
    const backoff = BACKOFF_S[Math.min(failures + 2, BACKOFF_S.length - 1)];
    item.refs.status.textContent = (status === 0 ? "Connection lost" : "Server busy") +
      " — retrying in " + backoff + " s";
    later(item, backoff, () => { poll(item, attempt, failures + 1, since); });
    return;
  }
  fail(item, describeFailure(status === 200 ? 502 : status, body, item.file.name), false);
}
