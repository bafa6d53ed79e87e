"""The web app: the REST API with the Gradio UI mounted at /ui. `reid-hub serve` and the Space's app.py run `main`.

In a Space (SPACE_ID set) it listens on 0.0.0.0:7860; elsewhere on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import pandas as pd
from PIL import Image, ImageDraw

from ..data.imaging import load_image
from ..errors import ReidHubError
from ..models.loading import DEFAULT_MODEL, from_pretrained
from ..video import ClusterConfig
from .api import create_api
from .clips import ClipRequest, cluster_clip
from .demo import build_demo_gallery, demo_examples, demo_store_dir
from .service import ReidService, ServiceConfig

log = logging.getLogger(__name__)


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


def build_ui(svc: ReidService) -> gr.Blocks:
    """The Gradio Blocks UI: identify by image (verified, calibrated, with evidence), enroll, and clip ->
    persistent IDs."""

    def client(request: Optional[gr.Request]) -> str:
        return getattr(getattr(request, "client", None), "host", None) or "ui"

    def search(img: Optional[Image.Image], k: float, species: str, request: gr.Request = None):
        if img is None:
            return [], "Upload a query image first.", None
        query = img.convert("RGB")
        try:
            svc.limiter.check(client(request))
            res = svc.identify(query, k=int(k), species=species.strip() or None)
        except ReidHubError as exc:
            return [], f"**Error:** {exc}", None
        items = []
        for m in res["matches"]:
            t = svc.thumbnail(m["image_id"])
            if t is not None:
                p = "" if m["probability"] is None else f"P={m['probability']:.2f}, "
                items.append((t, f"{m['display_name']} ({p}score {m['global_score']:.3f})"))
        top = res["matches"][0] if res["matches"] else None
        verdict = verdict_text(res)
        if not res["calibrated"]:
            verdict += " _(the gallery is not calibrated yet: global score only; recalibrate to get probabilities)_"
        table = "\n".join(
            f"| {i + 1} | {m['display_name']} | `{m['individual_id']}` | {m['species']} | {m['global_score']:.3f} | "
            f"{'-' if m['local_score'] is None else int(m['local_score'])} | "
            f"{'-' if m['probability'] is None else format(m['probability'], '.2f')} |"
            for i, m in enumerate(res["matches"]))
        picture = None
        if top and top["matcher"]:
            try:
                picture = svc.evidence_image(query, top["image_id"])
            except ReidHubError:
                picture = None
        return items, (f"{verdict}\n\n| rank | name | id | species | score | verified matches | P(same) |\n"
                       f"|---|---|---|---|---|---|---|\n{table}"), picture

    def enroll(img: Optional[Image.Image], name: str, species: str, token: str):
        if img is None or not name.strip():
            return "Give an image and a name."
        try:
            svc.authorize(token)
            iid, image_id = svc.enroll_new(name.strip(), species.strip(), img.convert("RGB"), "ui")
        except ReidHubError as exc:
            return f"**Error:** {exc}"
        return f"Enrolled **{name}** as `{iid}` (image {image_id})."

    def clip(video_file: Any, detections_file: Any, crops_zip: Any, k: float, video_name: str, encounter: str,
             token: str, request: gr.Request = None, progress: gr.Progress = gr.Progress()):
        import tempfile

        if crops_zip is None and (video_file is None or detections_file is None):
            return pd.DataFrame(), None, ("Upload a video and its detections (MegaDetector JSON, MOT, COCO or CSV), "
                                          "or a crop-video: a zip of a crop table (frame, path[, camera]) and its crops.")
        try:
            svc.authorize(token)
            svc.limiter.check(client(request))
            kk = int(k) if k and k > 0 else None
            with tempfile.TemporaryDirectory() as tmp:
                progress(0.05, desc="decoding, embedding and clustering")
                upload = crops_zip if crops_zip is not None else video_file
                name = video_name.strip() or Path(str(upload)).name
                req = ClipRequest(name, crops=Path(crops_zip) if crops_zip is not None else None,
                                  video=None if crops_zip is not None else Path(video_file),
                                  detections=None if crops_zip is not None else Path(detections_file),
                                  config=ClusterConfig(k=kk), min_score=0.0 if crops_zip is not None else 0.5,
                                  cache_dir=Path(tmp) / "cache")
                result, source = cluster_clip(svc.model, req, Path(tmp), svc.clip_limits)
                progress(0.85, desc="matching the animals to the gallery")
                placed = svc.place_clip(result, source, name, encounter=encounter.strip() or None)
                res = placed["assignments"]  # the same dicts the API answers
                det = result.detections
                names = {int(a["cluster"]): a["display_name"] for a in res}
                if source is None:  # crops: one representative crop per animal, named
                    reps = result.representatives(1)
                    img = Image.new("RGB", (160 * max(1, len(reps)), 140), (30, 30, 30))
                    draw = ImageDraw.Draw(img)
                    for i, (c, rows) in enumerate(sorted(reps.items())):
                        crop = load_image(det.at[int(rows[0]), "path"]).convert("RGB")
                        crop.thumbnail((150, 110))
                        img.paste(crop, (160 * i + 5, 5))
                        draw.text((160 * i + 5, 120), names.get(int(c), "?"), fill=(255, 255, 0))
                    where = "one crop per animal"
                else:
                    busiest = int(det.groupby("frame").size().idxmax())
                    _, img = next(source.iter_frames([busiest]))
                    draw = ImageDraw.Draw(img)
                    for r in det[det["frame"] == busiest].itertuples():
                        draw.rectangle([r.x, r.y, r.x + r.w, r.y + r.h], outline=(255, 64, 64), width=4)
                        draw.text((r.x + 4, r.y + 4), names.get(int(r.label), "?"), fill=(255, 255, 0))
                    where = f"frame {busiest}"
        except ReidHubError as exc:
            return pd.DataFrame(), None, f"**Error:** {exc}"
        table = pd.DataFrame([{"cluster": a["cluster"], "detections": int((det["label"] == int(a["cluster"])).sum()),
                               "persistent id": a["individual_id"], "name": a["display_name"], "new": a["is_new"],
                               "score": None if a["score"] is None else round(a["score"], 3),
                               "images added": a["images_added"]} for a in res])
        est = result.k_estimate
        k_note = "" if est is None else f" (k={result.k} estimated, runner-up {est.runner_up}, confidence {est.confidence:.2f})"
        return table, img, (f"{len(det)} detections in {det['frame'].nunique()} frames, {result.k} animals{k_note}; "
                            f"{sum(a['is_new'] for a in res)} new individual(s). Preview: {where}.")

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

    def session_of(request: Optional[gr.Request]) -> str:
        return str(getattr(request, "session_hash", "") or "")

    def my_enroll(img: Optional[Image.Image], name: str, request: gr.Request = None):
        """Enroll into the visitor's own temporary gallery (no token: nobody else sees it)."""
        if img is None or not name.strip():
            return "Give a photo and a name."
        try:
            got = svc.session_enroll(session_of(request), img.convert("RGB"), name.strip())
        except ReidHubError as exc:
            return f"**Error:** {exc}"
        n_ind, n_img = got["individuals"], got["images"]
        return (f"Added a photo of **{name.strip()}**. Your private gallery: {n_ind} individual(s), {n_img} photo(s) "
                f"(at most {svc.sessions.max_images}; removed after an hour of inactivity).")

    def my_search(img: Optional[Image.Image], request: gr.Request = None):
        if img is None:
            return "Upload a photo to search your gallery.", None
        try:
            svc.limiter.check(client(request))
            res, pic = svc.session_identify(session_of(request), img.convert("RGB"))
        except ReidHubError as exc:
            return f"**Error:** {exc}", None
        rows = "\n".join(f"| {m.display_name} | {m.global_score:.3f} | "
                         f"{'-' if m.probability is None else format(m.probability, '.2f')} |" for m in res.matches)
        return (f"**{res.decision}**" + ("" if res.probability is None else f", P(same) = {res.probability:.2f}")
                + f"\n\n| individual | score | P(same) |\n|---|---|---|\n{rows}"), pic

    def header_text() -> str:
        o = svc.overview()
        inds, n_img, species = o["individuals"], o["images"], o["species"]
        of = f" of {len(species)} species ({', '.join(species)})" if species else ""
        mode = " The shared gallery is read-only here." if svc.cfg.public and svc.cfg.token is None else ""
        return (f"# reid-hub\nModel `{svc.model.config.name}` ({svc.model.embedding_dim}-d) and a gallery of "
                f"{inds} individuals{of}, {n_img} images. Upload a photo to find who it is.{mode}")

    with gr.Blocks(title="reid-hub: who is this animal?") as ui:
        header = gr.Markdown(header_text(), elem_id="header")
        ui.load(header_text, [], header)  # live counts: recomputed on every page load
        with gr.Tab("Search"):
            with gr.Row():
                q = gr.Image(type="pil", label="Query image", elem_id="query-image")
                with gr.Column():
                    k = gr.Slider(1, 20, value=5, step=1, label="Individuals to show")
                    sp = gr.Textbox(label="Species (optional: search only this species)")
                    go = gr.Button("Search", variant="primary", elem_id="search-button")
            examples = demo_examples(svc.cfg.gallery_dir)
            if examples:
                gr.Examples([[str(p)] for p in examples], inputs=[q], label="Examples: click one, then Search "
                            "(the last animal is not in the gallery)", examples_per_page=8, elem_id="examples")
            verdict = gr.Markdown(elem_id="search-verdict")
            results = gr.Gallery(label="Top matches", columns=5, height="auto", elem_id="search-results")
            evidence = gr.Image(label="Evidence: verified keypoint matches with the best candidate",
                                elem_id="search-evidence", interactive=False)
            go.click(search, [q, k, sp], [results, verdict, evidence])
        with gr.Tab("My photos"):
            gr.Markdown("Your own private gallery for this browser session: enroll a few photos of an animal, "
                        "then search with another one. Nothing here reaches the shared gallery.")
            with gr.Row():
                m_img = gr.Image(type="pil", label="Photo", elem_id="my-image")
                with gr.Column():
                    m_name = gr.Textbox(label="Name of this animal", elem_id="my-name")
                    m_add = gr.Button("Add to my gallery", elem_id="my-add")
                    m_find = gr.Button("Search my gallery", variant="primary", elem_id="my-search")
            m_out = gr.Markdown(elem_id="my-result")
            m_evidence = gr.Image(label="Evidence", interactive=False, elem_id="my-evidence")
            m_add.click(my_enroll, [m_img, m_name], m_out)
            m_find.click(my_search, [m_img], [m_out, m_evidence])
        with gr.Tab("Enroll"):
            e_img = gr.Image(type="pil", label="Image of the individual", elem_id="enroll-image")
            e_name = gr.Textbox(label="Name", elem_id="enroll-name")
            e_species = gr.Textbox(label="Species")
            e_token = gr.Textbox(label="Token (required when the service has one)", type="password")
            e_btn = gr.Button("Enroll", variant="primary", elem_id="enroll-button")
            e_out = gr.Markdown(elem_id="enroll-result")
            e_btn.click(enroll, [e_img, e_name, e_species, e_token], e_out)
        with gr.Tab("Clip"):
            c_video = gr.File(label="Video (mp4/avi/mov)", type="filepath")
            c_det = gr.File(label="Detections: MegaDetector JSON, MOT txt, COCO JSON or CSV (frame,x,y,w,h)",
                            type="filepath")
            c_crops = gr.File(label="... or a crop-video: zip of a crop table (frame, path[, camera]) and its crops",
                              type="filepath")
            c_k = gr.Number(value=0, precision=0, label="Number of animals (0: estimate)")
            c_name = gr.Textbox(label="Clip name (default: file name)")
            c_enc = gr.Textbox(label="Encounter (clips that show the same animals at the same time, e.g. the cameras "
                                     "of one recording)")
            c_token = gr.Textbox(label="Token (required when the service has one)", type="password")
            c_btn = gr.Button("Identify and assign persistent IDs", variant="primary")
            c_msg = gr.Markdown()
            c_table = gr.Dataframe(label="Clusters -> persistent IDs")
            c_prev = gr.Image(label="Annotated preview")
            c_btn.click(clip, [c_video, c_det, c_crops, c_k, c_name, c_enc, c_token], [c_table, c_prev, c_msg])
        writable = svc.cfg.token is not None or not svc.cfg.public  # a public service without a token is read-only
        with gr.Tab("Review", visible=writable, elem_id="review-tab"):
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
        with gr.Tab("Questions", visible=writable and svc.cfg.discovery_dir is not None, elem_id="questions-tab"):
            q_pair = gr.State(None)
            q_token, q_load = token_row("questions", "Next question", "q-load")
            q_info = gr.Markdown(elem_id="questions-info")
            q_pic = gr.Image(label="The two images with their verified keypoint matches", interactive=False,
                             elem_id="questions-evidence")
            with gr.Row():
                q_buttons = {a: gr.Button(label, elem_id=f"q-{a}", variant="primary" if a == "same" else "secondary")
                             for a, label in (("same", "Same (s)"), ("different", "Different (d)"),
                                              ("skip", "Skip (k)"), ("undo", "Undo (u)"))}
            q_outs = [q_pic, q_info, q_pair]
            q_load.click(question_show, [], q_outs)
            for action, btn in q_buttons.items():
                btn.click(lambda pair, t, _a=action: question_act(pair, _a, t), [q_pair, q_token], q_outs)
    return ui


#: answering pair questions from the keyboard: s same, d different, k skip, u undo (never while typing)
KEYBOARD = """<script>
document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable))) return;
  const id = {s: "q-same", d: "q-different", k: "q-skip", u: "q-undo"}[e.key.toLowerCase()];
  const btn = id && document.getElementById(id);
  if (!btn || btn.offsetParent === null) return;
  e.preventDefault();
  btn.click();
});
</script>"""


def token_row(prefix: str, load_label: str, load_id: str) -> tuple[gr.Textbox, gr.Button]:
    """A row with the token box (`<prefix>-token`) and the button that loads the next item to decide."""
    with gr.Row():
        token = gr.Textbox(label="Token (required when the service has one)", type="password",
                           elem_id=f"{prefix}-token")
        load = gr.Button(load_label, elem_id=load_id)
    return token, load


def create_app(cfg: ServiceConfig, model: Any = None):
    """FastAPI app with the REST API and the Gradio UI at /ui (/ redirects there)."""
    from fastapi.responses import RedirectResponse

    api = create_api(cfg, model)
    svc = api.state.service

    @api.get("/", include_in_schema=False)
    def root():
        return RedirectResponse("/ui")

    examples = Path(cfg.gallery_dir) / "examples"  # the demo's example queries: the browser must be able to show them
    return gr.mount_gradio_app(api, build_ui(svc), path="/ui", root_path="/ui", head=KEYBOARD,
                               allowed_paths=[str(examples)] if examples.is_dir() else None)


def main(argv: Optional[list[str]] = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=os.environ.get("REID_HUB_MODEL", DEFAULT_MODEL))
    ap.add_argument("--gallery", default=os.environ.get("REID_HUB_GALLERY", str(demo_store_dir())),
                    help="gallery folder (default: the demo gallery, built on first start)")
    ap.add_argument("--host", default="0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    ap.add_argument("--token", default=os.environ.get("REID_HUB_TOKEN"))
    ap.add_argument("--discovery", default=os.environ.get("REID_HUB_DISCOVERY"),
                    help="an output folder of reid-hub discover: its pair questions are served (Questions tab)")
    ap.add_argument("--public", action="store_true", help="exposed to anyone: without --token the shared gallery "
                    "is read-only (always so in a Space, where SPACE_ID is set)")
    args = ap.parse_args(argv)
    model = from_pretrained(args.model)
    if Path(args.gallery).resolve() == demo_store_dir().resolve():  # a user's own gallery starts empty: never seeded with demo data
        build_demo_gallery(model, args.gallery).close()
    public = bool(os.environ.get("SPACE_ID")) or args.public
    app = create_app(ServiceConfig(model=args.model, gallery_dir=args.gallery, token=args.token, public=public,
                                      discovery_dir=args.discovery), model)
    print(f"reid-hub serving on http://{args.host}:{args.port}/ui (API docs at /docs)", flush=True)  # the user's line
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
