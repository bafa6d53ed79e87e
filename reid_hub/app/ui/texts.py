"""What the UI says about a result, in words: the decision and how sure it is, and the gallery's header."""
from __future__ import annotations

from typing import Any

from ..service import ReidService


def verdict_text(res: dict[str, Any]) -> str:
    """What an identification means, in words: the decision, how sure the gallery is, and who decides."""
    top = res["matches"][0] if res["matches"] else None
    name = top["display_name"] if top else ""
    p_text = "" if res["probability"] is None else f" P(same individual) = **{res['probability']:.2f}**."
    new_text = "" if res.get("p_new") is None else f" P(new animal) = {res['p_new']:.2f}."
    prec = res.get("decision_precision")
    bands = res.get("bands") or {}
    target = bands.get("target_precision")
    how = (f" Decided automatically: decisions like this were right {prec:.1%} of the time on this gallery's "
           f"held-out animals (target {target:.0%})." if prec is not None and target is not None else "")
    suggestion = bands.get("suggestion")
    if res["decision"] == "accept":
        text = f"**Match:** {name}.{p_text}{how}"
    elif res["decision"] == "new":
        text = (f"**New individual:** none of the gallery's animals{f' (nearest: {name})' if top else ''}."
                f"{p_text}{new_text}{how}")
    elif suggestion == "accept":
        text = (f"**Likely match:** {name}.{p_text} The decision policy would accept it; auto-accept is off, so a "
                "person confirms it before the gallery changes.")
    elif suggestion == "new":
        text = (f"**Likely a new animal** (nearest: {name}).{new_text} The decision policy would call it new; "
                "auto-accept is off, so a person confirms it.")
    elif res.get("p_new") is not None and res["p_new"] >= 0.5:
        text = (f"**Needs review: probably a new animal** (nearest: {name}).{p_text}{new_text} This gallery's "
                "held-out animals cannot yet show that such calls are right often enough to take them alone.")
    else:
        text = f"**Possible match, needs review:** {name}.{p_text}{new_text}" if top else "**Needs review.**"
        if bands.get("reason"):
            text += f" _({bands['reason']})_"
    return text


def header_text(svc: ReidService) -> str:
    """The page header: the model and what the gallery holds (recomputed on every page load)."""
    o = svc.overview()
    inds, n_img, species = o["individuals"], o["images"], o["species"]
    of = f" of {len(species)} species ({', '.join(species)})" if species else ""
    mode = " The shared gallery is read-only here." if svc.cfg.public and svc.cfg.token is None else ""
    return (f"# reid-hub\nModel `{svc.model.config.name}` ({svc.model.embedding_dim}-d) and a gallery of "
            f"{inds} individuals{of}, {n_img} images. Upload a photo to find who it is.{mode}")


__all__ = ["verdict_text", "header_text"]
