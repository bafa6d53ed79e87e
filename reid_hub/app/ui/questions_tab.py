"""The Questions tab: the served discovery's next pair question and a person's answer (keyboard: s d k u)."""
from __future__ import annotations

import io
from typing import Optional

import gradio as gr
from PIL import Image

from ...errors import ReidHubError
from ..service import ReidService
from .widgets import action_buttons, token_row


def questions_tab(svc: ReidService, visible: bool) -> None:
    """Ask the served discovery's best pair question and record the answer."""

    def question_show():
        """The best question of the served discovery: both images with their matches, and what it asks."""
        try:
            got = svc.discovery_questions(1)
        except ReidHubError as exc:
            return None, f"**{type(exc).__name__}:** {exc}", None
        head = f"{got['individuals']} individuals so far, {got['answers']} answers."
        if not got["questions"]:
            return None, f"No question left. {head}", None
        q = got["questions"][0]
        pic = Image.open(io.BytesIO(svc.discovery_evidence(q["a_row"], q["b_row"])))
        return pic, (f"**Same individual?** `{q['a']}` and `{q['b']}` (P(same) = {q['p_same']:.2f}, "
                     f"{'two groups to merge' if q['kind'] == 'merge' else 'one group to confirm'}).  \n"
                     f"Keys: **s** same, **d** different, **k** skip, **u** undo.  \n{head}"), (q["a_row"], q["b_row"])

    def question_act(pair: Optional[tuple[int, int]], action: str, token: str):
        if pair is None and action != "undo":
            return question_show()
        try:
            actor = svc.authorize(token)
            a, b = pair if pair is not None else (0, 0)
            out = svc.discovery_answer(int(a), int(b), action, actor)
        except ReidHubError as exc:
            pic, text, cur = question_show()
            return pic, f"**{type(exc).__name__}:** {exc}  \n{text}", cur
        pic, text, cur = question_show()
        return pic, f"Answered **{action}**: {out['individuals']} individuals now.  \n{text}", cur

    with gr.Tab("Questions", visible=visible, elem_id="questions-tab"):
        q_pair = gr.State(None)
        q_token, q_load = token_row("questions", "Next question", "q-load")
        q_info = gr.Markdown(elem_id="questions-info")
        q_pic = gr.Image(label="The two images with their verified keypoint matches", interactive=False,
                         elem_id="questions-evidence")
        q_buttons = action_buttons("q", (("same", "Same (s)"), ("different", "Different (d)"), ("skip", "Skip (k)"),
                                         ("undo", "Undo (u)")), primary="same")
        q_outs = [q_pic, q_info, q_pair]
        q_load.click(question_show, [], q_outs)
        for action, btn in q_buttons.items():
            btn.click(lambda pair, t, _a=action: question_act(pair, _a, t), [q_pair, q_token], q_outs)


__all__ = ["questions_tab"]
