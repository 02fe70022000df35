"""The fixed prose of docs/RELIABILITY.md (scripts/reliability_report.py adds the figures)."""

# After the table of hostile uploads.
DECISIONS = [
    "Decisions the corpus fixes:",
    "",
    "- **Type by content, not name.** A PNG named `.jpg` is accepted and stored with the "
    "suffix of what it really is (`.png`); the name must still end in `.jpg`, `.jpeg` or "
    "`.png`, so a real GIF named `.gif` or a JPEG named `.exe` is refused by name.",
    "- **Only JPEG and PNG are decoded** (Pillow's `formats=`); GIF, WebP, BMP and TIFF are "
    "refused (415) whatever they are called. A file with a PNG or JPEG signature whose header "
    "is broken is `corrupt_image` (400).",
    "- **Pixel cap** `DFD_MAX_PIXELS` (40 Mpx) is checked from the header before decoding, "
    "and Pillow's own bomb limit stops anything larger still.",
    "- **A JPEG/ZIP polyglot is accepted as the JPEG**: the trailing archive is never "
    "decoded, and uploads are never served back, so it is inert.",
    "- **A PNG whose data ends cleanly but early** is decoded as Pillow and browsers do "
    "(missing rows black); the pixel cap bounds its cost.",
    "- **Filenames are only shown back**: NUL removed, the last 200 characters kept; stored "
    "files always get random names (`[0-9a-f]{32}.jpg|png`).",
    "- **Transparent pixels are shown on white**, 16-bit samples scaled to 8 bits, EXIF "
    "orientation applied first, and an animated PNG judged by its first frame.",
    "- **The worker re-verifies** every file it reads with the same checks: an upload "
    "swapped after the web accepted it (text, GIF, over the cap, truncated) ends `failed` "
    "with the reason (`test_worker_reverifies_what_it_reads`).",
    "",
]

# The fault bullets that carry no figures, and the limits and security section.
FAULTS_AND_SECURITY = [
    "- **Bad model** (`test_worker_refuses_to_start_on_a_bad_model`): a missing directory, "
    "no card, a card that is not JSON, no model file, a truncated `.tflite`, a `.tflite` "
    "with a valid header and a garbage body, a `.keras` that is not an archive: "
    "`python -m worker` exits 2 with `dfd worker: cannot start: ...` naming the problem and "
    "`DFD_MODEL_PATH`, before Celery starts. (The garbage-body case used to pass the "
    "header check and start a worker whose tasks then failed to load the model, each "
    "leaving its job `queued` for good; the model is now loaded once in a throwaway "
    "process before the pool forks.)",
    "- **Vanished upload** (`test_job_whose_image_vanished_fails_with_a_reason`): the job "
    "ends `failed` with `the uploaded image is no longer in storage`, never stuck, and the "
    "worker logs the job id, the client and why.",
    "- **Task cannot be sent** (`test_failed_publish_is_a_503_and_leaves_nothing_behind`, "
    "`test_publishing_to_a_dead_broker_fails_fast`): the upload gets 503 JSON and leaves no "
    "record, ready entry or file; a send to a dead broker gives up in under 3 s.",
    "- **A later file's task cannot be sent** "
    "(`test_concurrency.py::test_a_multi_file_upload_is_all_or_nothing_when_a_later_send_"
    "fails`): all or nothing: every job of the request is removed again (records, files) "
    "before the 503; the task that did go out finds no record and does nothing.",
    "- **Two workers, one queue** (`test_concurrency.py::test_two_workers_run_each_of_200_"
    "jobs_exactly_once`): 200 jobs, two worker processes batching from the same queue: "
    "every job `attempts == 1`, `finishes == 1`. Claims are one Lua script that marks each "
    "job running with an owner (the Celery task id) and a lease (`DFD_TASK_TIME_LIMIT` + "
    "30 s); a job leased to another live owner is left alone when its own task arrives. "
    "With the old claim the same test failed (1 job of 200 ran twice, no fault injected; "
    "the issue saw 2 of 48). A lease that lapses (its "
    "task killed by the hard time limit, never redelivered) is given back by the sweep, "
    "which every worker process runs on a timer (`DFD_SWEEP_EVERY`, one across all "
    "workers), idle or busy: the job is queued again and its task sent again "
    "(`test_sweep.py`: on an idle worker, with no upload arriving, such a job ran again and "
    "one at its cap failed, within seconds with `DFD_SWEEP_EVERY=1`).",
    "- **A job that kills its worker every time** (`test_attempts.py`): each claim counts "
    "one attempt, and a job is claimed again only when its worker died on it (Celery "
    "redelivers the task) or ran out of time (the sweep sends it again once its lease "
    "lapsed). A job tried before runs alone, and a redelivered task gives its batch-mates "
    "back, each sent again in a task of its own (and by the sweep, if that send is lost with "
    "the process): on a real worker, in a batch of four stills with one whose pool child "
    "was SIGKILLed on it each time, that one failed at `DFD_MAX_ATTEMPTS=2` and the other "
    "three were done (2 attempts each). A claim or the sweep that finds a job with "
    "`DFD_MAX_ATTEMPTS` (3) "
    "attempts made fails it instead, in the same Lua step (`failed`, `tried N times "
    "(DFD_MAX_ATTEMPTS); each time the worker running it ran out of time "
    "(DFD_TASK_TIME_LIMIT) or died before it finished`), counted, its upload deleted and "
    "its webhook sent like any failure; a last attempt still running under a live lease is "
    "left alone. On a real worker a still whose pool child was SIGKILLed on it each time "
    "ended so after 2 attempts (`DFD_MAX_ATTEMPTS=2`), its webhook reporting it. Before, "
    "such a job was redelivered (a death) or sent again (a lapsed video) for ever, and its "
    "batch-mates failed with it. A \"Why?\" map (`dfd.explain`) is claimed the same way "
    "(`JobStore.claim_map`: owner, lease, attempts): one whose worker died or ran out of "
    "time on it `DFD_MAX_ATTEMPTS` times is recorded as failed with `the map was tried N "
    "times ...`, which the web's 500 (`explanation_failed`) says; the verdict stands (a "
    "real worker, its child SIGKILLed on the map twice).",
    "- **A worker dies between the verdict and its webhook** "
    "(`test_webhooks.py::test_a_webhook_owed_by_a_dead_worker_is_sent_by_the_sweep`): the "
    "step that records a job's final state (finish, a give-up at the cap, a reused result) "
    "also puts a job with a `callback_url` in the store's outbox of webhooks owed, and only "
    "the delivery's outcome (delivered, refused, failed after its retries) takes it out. "
    "The sweep sends the webhook task again for any still owed a lease "
    "(`DFD_TASK_TIME_LIMIT` + 30 s) after it fell due: on a real worker, a verdict recorded "
    "through the store with no task sent reached the receiver, signed, once. Delivery is "
    "at least once; the receiver de-duplicates on the job id (`id`, `X-DFD-Job`). A "
    "webhook whose delivery task keeps dying short of an outcome is sent again at most "
    "`DFD_MAX_ATTEMPTS` times, counted in its record by the same Lua step; at the cap that "
    "step settles it `abandoned` and takes it out of the outbox, logged and counted "
    "(`test_webhooks.py::test_a_webhook_that_never_settles_is_sent_again_at_most_max_attempts_"
    "times`, real redis-server); before, it was sent every lease until the job expired.",
    "- **Retried uploads** (`test_idempotency.py`): a request repeated with the same "
    "`Idempotency-Key` gets the first request's jobs (`Idempotent-Replayed: true`), never "
    "new ones; `dfd submit` sends one key per file and, behind a proxy that drops the "
    "first answer, makes exactly one job.",
    "- **Stale jobs** (`test_job_past_the_queue_deadline_is_flagged_stale`): a job still "
    "`queued` or `running` after `DFD_QUEUE_DEADLINE` carries `\"stale\": true` next to "
    "`age_s` in its status.",
    "",
    "## Limits and security",
    "",
    "- `test_limits.py`: exactly 5 uploads per window per client across two gunicorn "
    "processes (counters in Redis); the 6th and later get 429 with `Retry-After` equal to "
    "the time until the oldest upload leaves the window (checked by waiting: refused one "
    "second before, accepted after); each API key has its own limit; a spoofed "
    "`X-Forwarded-For` changes nothing unless `DFD_TRUSTED_PROXIES` is set, and then only "
    "the hop the proxy appended counts. Refused files cost none of the 5: refusals have "
    "their own allowance (`DFD_REFUSAL_LIMIT`), itself bounded; 8 uploads held open at once "
    "by `?wait=` get exactly 5 through (uploads are charged when accepted, atomically).",
    "- `test_security.py`: CSP (`script-src 'self'`, no `unsafe-inline`, `frame-ancestors "
    "'none'`), `nosniff`, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer` on "
    "pages, static files, JSON and errors; no route serves uploads (traversal attempts "
    "404); every API key compared with `hmac.compare_digest`; job ids from `secrets` (128 "
    "bits), no listing; no pickle/dill/joblib/`safe_mode=False` in the code; Celery "
    "accepts JSON only and the real worker refuses a pickled task message unread; a "
    "`.keras` file carrying a Lambda layer is refused (safe mode); logs name job ids and "
    "`client=key:<name>` or `client=ip:<addr>`, never the key or the file bytes.",
    "",
]

LIMITS = [
    "## Not proven here (known limits)",
    "",
    "- A Redis outage longer than the worker's 30 s ride-out leaves the jobs in flight "
    "`running` until their task messages are redelivered after the broker's visibility timeout "
    "(1 h), or until their lease lapses and a sweep sends them again if that comes first "
    "(not tested for these cases); they are flagged `stale` after `DFD_QUEUE_DEADLINE` "
    "meanwhile. The same holds for a "
    "whole worker host lost (not just a pool child).",
    "- `docker-compose.yml` runs Redis with `--appendfsync everysec`: a crash of the Redis "
    "host can lose the last second of writes (jobs accepted in that second). The test uses "
    "`always`; a clean Redis restart (SIGTERM) loses nothing with either.",
    "- A frozen (not dead) Redis makes requests wait for the socket timeouts before their 503 "
    "(about 5 s through the rate limiter, 15 s for a direct call); only a dead Redis was "
    "tested.",
    "- CPU-heavy but small JPEGs (e.g. thousands of progressive scans) are bounded only by "
    "the pixel cap and, on the worker, the task time limit; the web's check decodes them too.",
]
