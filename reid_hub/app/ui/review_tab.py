"""The Review tab: the next proposal with its evidence, and a person's confirm / reject / new / undo."""
from __future__ import annotations

from typing import Optional

import gradio as gr

from ...errors import ReidHubError
from ..service import ReidService
from .widgets import token_row


def review_tab(svc: ReidService, visible: bool) -> None:
    """Show proposals one at a time and take decisions (hidden where the gallery is read-only)."""

    def review_show(pid: Optional[int]):
        """The proposal `pid` (or the oldest pending one): query, current candidate, evidence, text."""
        got = svc.review_next(None if pid is None else int(pid))
        if got is None:
            return None, None, None, "No proposal is waiting for review.", None
        p, total, query, cand = got["proposal"], got["pending"], got["query"], got["candidate"]
        thumb, pic = got["thumbnail"], got["evidence"]
        prob = "-" if not cand or cand.get("probability") is None else f"{cand['probability']:.2f}"
        text = (f"**Proposal #{p.id}** ({p.status}) from `{p.source or p.video or 'upload'}`, {p.n} image(s); "
                f"suggested: **{p.suggestion}**.  \n"
                + (f"Candidate: **{cand['display_name']}** (`{cand['individual_id']}`), P(same) = {prob}."
                   if cand else "No candidate left: name a new individual.")
                + (f"  \n{total} pending." if total is not None else ""))
        return query, thumb, pic, text, p.id

    def review_act(pid: Optional[int], action: str, name: str, token: str):
        if pid is None:
            return (*review_show(None)[:3], "Load a proposal first.", None)
        try:
            actor = svc.authorize(token)
            out = svc.decide(int(pid), action, actor, display_name=name.strip() or None)
        except ReidHubError as exc:
            q, t, e, text, _ = review_show(int(pid))
            return q, t, e, f"**{type(exc).__name__}:** {exc}  \n{text}", pid
        if action in ("reject", "undo") and out["status"] == "pending":
            q, t, e, text, _ = review_show(int(pid))
            return q, t, e, f"{action} done.  \n{text}", pid
        q, t, e, text, nxt = review_show(None)
        done = out.get("outcome") or {}
        return q, t, e, f"Proposal #{pid}: **{action}** -> `{done.get('individual_id', '')}`.  \n{text}", nxt

    with gr.Tab("Review", visible=visible, elem_id="review-tab"):
        r_pid = gr.State(None)
        r_token, r_load = token_row("review", "Load next proposal", "review-load")
        r_info = gr.Markdown(elem_id="review-info")
        with gr.Row():
            r_query = gr.Image(label="Query", interactive=False, elem_id="review-query", height=260)
            r_cand = gr.Image(label="Candidate", interactive=False, elem_id="review-candidate", height=260)
        r_evidence = gr.Image(label="Evidence (verified keypoint matches)", interactive=False,
                              elem_id="review-evidence")
        with gr.Row():
            r_confirm = gr.Button("Confirm match", variant="primary", elem_id="review-confirm")
            r_reject = gr.Button("Not this one", elem_id="review-reject")
            r_name = gr.Textbox(label="New individual's name", elem_id="review-name")
            r_new = gr.Button("New individual", elem_id="review-new")
            r_undo = gr.Button("Undo", elem_id="review-undo")
        outs = [r_query, r_cand, r_evidence, r_info, r_pid]
        r_load.click(lambda: review_show(None), [], outs)
        r_confirm.click(lambda pid, n, t: review_act(pid, "confirm", n, t), [r_pid, r_name, r_token], outs)
        r_reject.click(lambda pid, n, t: review_act(pid, "reject", n, t), [r_pid, r_name, r_token], outs)
        r_new.click(lambda pid, n, t: review_act(pid, "new", n, t), [r_pid, r_name, r_token], outs)
        r_undo.click(lambda pid, n, t: review_act(pid, "undo", n, t), [r_pid, r_name, r_token], outs)


__all__ = ["review_tab"]
