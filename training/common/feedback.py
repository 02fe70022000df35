"""Agreement between verdicts and the feedback users sent on them (`dfd feedback export`).

Feedback comes mostly from people who think a verdict is wrong, so agreement here is far below
the model's accuracy and is no estimate of it: read it as "how often the disputed verdict was
right after all", per model version, to compare versions and to pick images to label.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

# What each assessment says about the label, for judging it against the feedback.
ASSESSMENT_LABEL = {"likely_real": "Real", "likely_fake": "Fake"}


def read_feedback(path: str | Path) -> list[dict]:
    """The entries of a JSONL export; a line that is not an entry stops with its number."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["label"] not in ("Real", "Fake") or "version" not in row["model"]:
                raise ValueError("label or model version missing")
            row["verdict"]["label"]  # noqa: B018 - checks the field is there
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a feedback entry ({exc})") from None
        rows.append(row)
    return rows


def agreement(rows: list[dict]) -> dict[str, dict]:
    """Per model version: entries, how many verdict labels and decided assessments the
    feedback agrees with, and how often the assessment had said "can't tell"."""
    out: dict[str, dict] = defaultdict(lambda: {"n": 0, "label_agrees": 0, "decided": 0,
                                                 "assessment_agrees": 0, "uncertain": 0,
                                                 "said_fake": 0})
    for row in rows:
        v = out[row["model"]["version"]]
        v["n"] += 1
        v["said_fake"] += row["label"] == "Fake"
        v["label_agrees"] += row["verdict"]["label"] == row["label"]
        said = ASSESSMENT_LABEL.get(row["verdict"].get("assessment"))
        if said:
            v["decided"] += 1
            v["assessment_agrees"] += said == row["label"]
        v["uncertain"] += row["verdict"].get("assessment") == "uncertain"
    for v in out.values():
        v["label_agreement"] = round(v["label_agrees"] / v["n"], 4)
        v["assessment_agreement"] = round(v["assessment_agrees"] / v["decided"], 4) \
            if v["decided"] else None
    return dict(out)


def print_agreement(table: dict[str, dict]) -> None:
    """The agreement table in words."""
    print("feedback   (agreement of each model version's verdicts with what users said)")
    print(f"{'version':<14} {'n':>5} {'label agrees':>13} {'assessment agrees':>18} "
          f"{'uncertain':>9} {'users: fake':>11}")
    for version, v in sorted(table.items()):
        assess = f"{v['assessment_agreement']:.1%} of {v['decided']}" \
            if v["assessment_agreement"] is not None else "n/a"
        print(f"{version:<14} {v['n']:>5} {v['label_agreement']:>13.1%} {assess:>18} "
              f"{v['uncertain']:>9} {v['said_fake']:>11}")
