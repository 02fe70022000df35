"""Content Credentials (C2PA): read and validate an upload's manifest with c2pa-python.

CPU only and offline: remote manifests and OCSP are never fetched, so a hostile file cannot make
the worker call out to an address it names. A manifest that does not parse is reported as
"unreadable", never raised.
"""

from __future__ import annotations

import io
import json

# Validation codes (C2PA spec, "Validation") that mean the image bytes no longer match what was
# signed: a hard binding that fails.
HASH_FAILURES = ("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch",
                 "assertion.bmffHash.mismatch", "assertion.collectionHash.mismatch")
HASH_MATCHES = ("assertion.dataHash.match", "assertion.boxesHash.match",
                "assertion.bmffHash.match", "assertion.collectionHash.match")
SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
MAX_LISTED = 20  # actions and failure codes kept in a result: a manifest may list thousands
PEM_CERT = "-----BEGIN CERTIFICATE-----"
_context: dict = {}
_trust: dict = {}


def read_trust_anchors(path: str) -> str:
    """The PEM text of a trust-anchor file (DFD_C2PA_TRUST_ANCHORS); ValueError saying why not."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read(4 * 1024 * 1024)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path!r} ({exc})") from None
    if PEM_CERT not in text:
        raise ValueError(f"{path!r} holds no PEM certificate ({PEM_CERT} ...)")
    return text


def set_trust_anchors(pem: str | None) -> None:
    """Report signers whose certificate chain ends at one of these PEM certificates as trusted
    (None: no trust list, so every signer is untrusted). Set before the worker forks; each
    process builds its reader context from it on first use."""
    _trust["pem"] = pem
    _context.clear()


def _short(uri: str | None) -> str | None:
    # IPTC digital source types are URIs; their last path segment is the term people know.
    return uri.rstrip("/").rsplit("/", 1)[-1] if isinstance(uri, str) and uri else None


def _reader(data: bytes, mime: str):
    import c2pa

    if "ctx" not in _context:  # one per process: building it parses the settings
        pem = _trust.get("pem")
        _context["ctx"] = c2pa.Context.from_dict(
            {**SETTINGS, "trust": {"trust_anchors": pem}} if pem else SETTINGS)
    return c2pa.Reader.try_create(mime, io.BytesIO(data), None, _context["ctx"])


def read_c2pa(data: bytes, mime: str) -> dict:
    """The manifest of a JPEG/PNG in words: present, state, generator, signer, actions."""
    # Every manifest carries the JUMBF label "c2pa"; without it there is nothing to read, and the
    # native reader is not called for the great majority of uploads.
    if b"c2pa" not in data:
        return {"present": False, "state": "absent"}
    try:
        import c2pa  # noqa: F401 - the worker extra installs it; report, never fail, without
    except ImportError:
        return {"present": False, "state": "not_checked",
                "detail": "c2pa-python is not installed on this worker"}
    try:
        reader = _reader(data, mime)
        if reader is None:
            return {"present": False, "state": "absent"}
        with reader:
            store = json.loads(reader.json())
        return _describe(store)
    except Exception as exc:  # noqa: BLE001 - any parse failure of hostile input is "unreadable"
        return {"present": True, "state": "unreadable",
                "detail": f"the manifest cannot be read ({type(exc).__name__}: "
                          f"{str(exc)[:200]})"}


def _describe(store: dict) -> dict:
    active = (store.get("manifests") or {}).get(store.get("active_manifest") or "")
    if not isinstance(active, dict):
        return {"present": True, "state": "unreadable", "detail": "no active manifest"}
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [str(f.get("code")) for f in results.get("failure") or []]
    successes = {str(s.get("code")) for s in results.get("success") or []}
    sig = active.get("signature_info") or {}
    actions = _actions(active)
    ai = next((a["digital_source_type"] for a in actions if a["digital_source_type"] in (
        "trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia",
        "algorithmicMedia", "compositeSynthetic")), None)
    hash_valid = False if any(f in HASH_FAILURES for f in failures) else (
        True if successes & set(HASH_MATCHES) else None)
    signature_valid = "claimSignature.validated" in successes and not any(
        f.startswith(("claimSignature.", "signingCredential.invalid")) for f in failures)
    trusted = "signingCredential.untrusted" not in failures and \
        str(store.get("validation_state", "")).lower() == "trusted"
    real_failures = [f for f in failures if f != "signingCredential.untrusted"]
    state = "invalid" if real_failures or hash_valid is False or not signature_valid else (
        "trusted" if trusted else "valid")
    gen = (active.get("claim_generator_info") or [{}])[0] or {}
    generator = " ".join(str(gen.get(k)) for k in ("name", "version") if gen.get(k)) or \
        str(active.get("claim_generator") or "") or None
    return {"present": True, "state": state, "claim_generator": generator,
            "signer": {"issuer": sig.get("issuer"), "common_name": sig.get("common_name")},
            "signer_trusted": trusted, "signature_valid": signature_valid,
            "hash_valid": hash_valid, "failures": failures[:MAX_LISTED],
            "actions": actions, "digital_source_type": ai, "ai_generated": ai is not None}


def _actions(manifest: dict) -> list[dict]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in ((assertion.get("data") or {}).get("actions") or [])[:MAX_LISTED]:
            agent = act.get("softwareAgent")
            out.append({"action": str(act.get("action")),
                        "digital_source_type": _short(act.get("digitalSourceType")),
                        "software_agent": agent.get("name") if isinstance(agent, dict)
                        else (str(agent) if agent else None)})
    return out[:MAX_LISTED]
