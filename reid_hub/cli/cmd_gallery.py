"""`reid-hub gallery ACTION`: enroll, search, identify, identify-package, list, calibrate, recalibrate, configure,
export, import."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..scoring.decisions import PolicySettings
from .args import on_off, positive_int, probability


def _cmd_gallery(args: argparse.Namespace) -> int:
    from ..data.imaging import load_image
    from ..gallery import evidence, export_gallery, identify, import_gallery, open_gallery, recalibrate
    from ..gallery.recalibration import calibrate_open_set
    from ..models.loading import from_pretrained

    model = from_pretrained(args.model)
    if args.action == "import":
        g = import_gallery(args.archive, args.gallery, model)
        print(f"imported {len(g)} images of {len(g.individuals())} individuals into {args.gallery}")
        return 0
    g = open_gallery(args.gallery, model, create=args.action == "enroll")
    if args.action == "enroll":
        if not args.images or not args.name:
            raise ConfigError("enroll needs --name and image files")
        imgs = [load_image(p) for p in args.images]
        iid = g.add_individual(args.name, species=args.species or "")
        g.enroll(iid, model.embed(imgs), sources=[str(p) for p in args.images], images=imgs)
        print(f"enrolled {len(imgs)} images as {iid} ({args.name})")
    elif args.action == "search":
        if not args.images:
            raise ConfigError("search needs an image file")
        for path, res in zip(args.images, g.search(model.embed([load_image(p) for p in args.images]), k=args.k)):
            print(f"{path}: {'NEW individual' if res.is_new else 'known'} (threshold {res.threshold})")
            for m in res.matches:
                print(f"  {m.score:.3f}  {m.individual_id}  {m.display_name}  [{m.species}]")
    elif args.action == "list":
        for ind in g.individuals():
            print(f"{ind['id']}  {ind['display_name']}  [{ind['species']}]  {ind['images']} images")
    elif args.action == "identify":
        if not args.images:
            raise ConfigError("identify needs an image file")
        for path in args.images:
            img = load_image(path)
            res = identify(g, model.embed([img]), img, species=args.species, k=args.k, shortlist=args.shortlist)
            print(json.dumps({"image": str(path), **res.to_dict()}, indent=2))
            if args.evidence and res.matches and res.matches[0].matcher:
                out = Path(args.evidence)
                target = out / f"{Path(path).stem}-evidence.png" if out.suffix.lower() != ".png" else out
                target.parent.mkdir(parents=True, exist_ok=True)  # a folder that does not exist yet is made
                evidence(g, img, res.matches[0].image_id, query_features=res.query_features).save(target)
                print(f"evidence: {target}")
    elif args.action == "identify-package":
        from ..gallery.package_identification import identify_package

        if len(args.images) != 1:
            raise ConfigError("identify-package takes one Camtrap DP package (its datapackage.json or folder)")
        src = Path(args.images[0]).resolve()
        out = args.out or f"identified-{(src.parent if src.suffix == '.json' else src).name}"
        print(json.dumps(identify_package(g, model, args.images[0], out, k=args.k), indent=2))
    elif args.action == "calibrate":
        print(json.dumps(calibrate_open_set(g), indent=2))
    elif args.action == "recalibrate":
        from tqdm.auto import tqdm

        with tqdm(total=100, desc="recalibrate", unit="%", leave=False) as bar:
            def progress(fraction: float, message: str) -> None:
                bar.set_postfix_str(message)
                bar.update(round(100 * fraction) - bar.n)
            report = recalibrate(g, kind=args.calibration, shortlist=args.shortlist, progress=progress)
        print(json.dumps(report, indent=2, default=float))
    elif args.action == "configure":
        from ..gallery import set_matcher

        if args.matcher:
            set_matcher(g, args.matcher, species=args.species)
        changes = {k: v for k, v in (("shortlist", args.shortlist), ("accept", args.accept),
                                     ("auto_accept", args.auto_accept), ("new_share", args.new_share)) if v is not None}
        if args.precision is not None:
            current = g.settings
            if args.species:
                changes["decision_precision_by_species"] = {**current.decision_precision_by_species,
                                                            args.species: args.precision}
            else:
                changes["decision_precision"] = args.precision
        PolicySettings(changes.get("decision_precision", g.settings.decision_precision),
                       changes.get("decision_precision_by_species", g.settings.decision_precision_by_species),
                       changes.get("new_share", g.settings.new_share))  # ConfigError (exit 2) before anything is stored
        settings = g.update_settings(**changes)
        print(json.dumps({k: getattr(settings, k) for k in ("matcher", "matcher_by_species", "shortlist", "accept",
                                                            "auto_accept", "decision_precision",
                                                            "decision_precision_by_species", "new_share")}, indent=2))
    elif args.action == "export":
        if args.format == "camtrap-dp":
            from ..gallery.camtrap import export_camtrap_dp

            print(f"wrote {export_camtrap_dp(g, args.archive or 'camtrap-dp.zip')}")
        elif args.format == "sightings":
            from ..gallery.camtrap import export_sightings_csv

            print(f"wrote {export_sightings_csv(g, args.archive or 'sightings.csv')}")
        else:
            if not args.archive:
                raise ConfigError("export needs --archive FILE.tar.gz")
            print(f"wrote {export_gallery(g, args.archive)}")
    return 0


def add_parsers(sub: Any, runtime: argparse.ArgumentParser, default_model: str) -> None:
    """Add the gallery command to the `reid-hub` parser."""
    DEFAULT_MODEL = default_model
    s = sub.add_parser("gallery", help="manage a gallery: enroll, search, identify, list, calibrate, recalibrate, "
                                       "configure, export, import", parents=[runtime])
    s.add_argument("action", choices=["enroll", "search", "identify", "identify-package", "list", "calibrate",
                                      "recalibrate", "configure", "export", "import"])
    s.add_argument("images", nargs="*")
    s.add_argument("--gallery", required=True, help="gallery folder")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--name", help="display name (enroll)")
    s.add_argument("--species", help="species (enroll; identify: search only this species)")
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--archive", help="export/import file: .tar.gz archive, or camtrap-dp .zip / folder, sightings .csv")
    s.add_argument("--format", choices=("archive", "camtrap-dp", "sightings"), default="archive", help="export format")
    s.add_argument("--shortlist", type=positive_int, help="global candidates verified by local matches "
                   "(identify, recalibrate, configure)")
    s.add_argument("--evidence", help="identify: write the best match's evidence PNG here (file or folder)")
    s.add_argument("--out", help="identify-package: output folder (the package is written to OUT/package; default "
                                 "identified-NAME)")
    s.add_argument("--calibration", choices=("isotonic", "logistic"), default="isotonic", help="recalibrate: fit")
    s.add_argument("--matcher", help="configure: local matcher of the gallery (or of --species)")
    s.add_argument("--accept", type=probability, help="configure: a floor on P(same individual) under the decision "
                   "policy's accept (none by default)")
    s.add_argument("--auto-accept", type=on_off, help="configure: on / off (off: every decision is reviewed; on: "
                   "accept and new are taken where the held-out precision reaches the target)")
    s.add_argument("--precision", type=probability, help="configure: the precision an automatic decision must show on "
                   "held-out animals (default 0.95; with --species, for that species)")
    s.add_argument("--new-share", type=probability, help="configure: the share of queries assumed to be animals not "
                   "in the gallery (default 0.3)")
    s.set_defaults(func=_cmd_gallery)

