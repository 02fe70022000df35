"""`dfd-research COMMAND` (or `python -m research`): measurements and reports on models."""

from __future__ import annotations

from training.cli import dispatch

COMMANDS = {"robustness": "research.robustness", "probe": "research.probe",
            "contact-sheet": "research.contact_sheet", "card-update": "research.card_update",
            "prior-match": "research.prior_match", "shortcuts": "research.shortcuts",
            "stability": "research.stability", "aligned-trace": "research.aligned_trace",
            "ff-pairing": "research.ff_pairing"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dfd-research`."""
    return dispatch("dfd-research", COMMANDS, argv)
