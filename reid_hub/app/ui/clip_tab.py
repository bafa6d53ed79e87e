"""The Clip tab: a video with its detections, or a crop-video -> its animals -> persistent gallery IDs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image, ImageDraw

from ...data.imaging import load_image
from ...errors import ReidHubError
from ...video import ClusterConfig
from ..clips import ClipRequest
from ..service import ReidService
from .widgets import client


def clip_tab(svc: ReidService) -> None:
    """Identify the animals of a clip and give them persistent IDs, with an annotated preview."""

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
                result, source = svc.cluster_clip(req, Path(tmp))
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


__all__ = ["clip_tab"]
