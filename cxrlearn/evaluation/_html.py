"""HTML rendering of the report dictionary: one file, nothing outside it.

Inline CSS, figures as PNG ``data:`` URIs, no script, no link, no font or
style sheet from elsewhere: the page opens on a hospital PC without a
network.
"""

import html
import json

from ._intervals import METRICS

__all__ = ["report_to_html", "write_html_report"]

_METRIC_NAMES = {
    "roc_auc": "ROC-AUC",
    "average_precision": "Average precision",
    "sensitivity": "Sensitivity (recall)",
    "specificity": "Specificity",
    "accuracy": "Accuracy",
    "ppv": "PPV (precision)",
    "npv": "NPV",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
margin:0 auto;max-width:1100px;padding:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #d0d7de;
padding-bottom:.2em;margin-top:1.8em}.meta{color:#57606a}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d0d7de;
padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f6f8fa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.summary{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #d0d7de;
border-radius:6px;padding:.6em 1em;min-width:10em}.card b{font-size:1.5em;display:block}
img.fig{max-width:100%;border:1px solid #eaeef2}.errors{display:flex;flex-wrap:wrap;
gap:1em}.errors figure{margin:0;border:1px solid #d0d7de;padding:.4em}
figcaption{font-size:.85em;max-width:340px;word-break:break-all}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.5em .8em;border-radius:6px}
.warning{background:#ffebe9;border-color:#cf222e}
code{background:#f6f8fa;padding:0 .2em}
"""


def _e(value):
    return html.escape(str(value), quote=True)


def _fmt(value, digits=3):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _ci(entry):
    return f"{_fmt(entry.get('low'))} &ndash; {_fmt(entry.get('high'))}"


def _table(header, rows, numeric=()):
    out = ["<table>" + ("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
                        if header else "")]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _count(entry):
    count = entry.get("count")
    return f"{count[0]}/{count[1]}" if count else ""


def _metrics_html(report):
    level = f"{report['confidence_level']:.0%}"
    parts = []
    if report["task"] == "binary":
        rows = []
        for name in METRICS:
            m = report["metrics"][name]
            rows.append([_e(_METRIC_NAMES[name]), _fmt(m["estimate"]), _ci(m),
                         _e(_count(m)), _e(m["method"])])
            if name == "roc_auc":
                d = report["roc_auc_delong"]
                rows.append(["ROC-AUC (DeLong)", _fmt(d["estimate"]), _ci(d), "",
                             _e(d["method"])])
        parts.append(_table(["metric", "estimate", f"{level} CI", "count", "interval"],
                            rows, numeric=(1, 2, 3)))
        point = report["model"]["operating_point"]
        parts.append(
            "<p>Sensitivity, specificity, accuracy, PPV and NPV are those of the "
            "model's own labels (<code>predict</code>) at its operating point: "
            + (f"threshold <b>{_fmt(point['threshold'], 4)}</b> on "
               if point["threshold"] is not None else "no threshold: ")
            + f"<code>{_e(point['applies_to'])}</code>; positive class "
            f"<b>{_e(point['pos_label'])}</b>.</p>")
        parts.append(_prevalence_html(report, level))
        ops = report.get("operating_points") or []
        if ops:
            rows = [[_fmt(p["target_sensitivity"], 2),
                     f"{_fmt(p['threshold']['estimate'], 4)} ({_ci(p['threshold'])})",
                     f"{_fmt(p['sensitivity']['estimate'])}",
                     f"{_fmt(p['specificity']['estimate'])} ({_ci(p['specificity'])})"]
                    for p in ops]
            parts.append("<h3>Operating points for target sensitivities</h3>" + _table(
                ["target sensitivity", f"threshold ({level} CI)", "sensitivity reached",
                 f"specificity ({level} CI)"], rows, numeric=(0, 1, 2, 3)))
            parts.append(
                "<p>Chosen on these images, with the threshold re-chosen in every "
                "bootstrap resample (so the intervals include the choice). Choose a "
                "threshold on validation data and confirm it on separate test data: a "
                "threshold tuned on the images it is evaluated on is optimistic.</p>")
    else:
        m = report["metrics"]["accuracy"]
        parts.append(_table(["metric", "estimate", f"{level} CI", "count", "interval"],
                            [["Accuracy", _fmt(m["estimate"]), _ci(m), _e(_count(m)),
                              _e(m["method"])]], numeric=(1, 2, 3)))
        rows = []
        for c, per in report["per_class"].items():
            for name in METRICS:
                entry = per[name]
                rows.append([_e(c), _e(_METRIC_NAMES[name]), _fmt(entry["estimate"]),
                             _ci(entry), _e(_count(entry))])
        parts.append("<h3>Per class (one-vs-rest)</h3>" + _table(
            ["class", "metric", "estimate", f"{level} CI", "count"], rows,
            numeric=(2, 3, 4)))
    return "".join(parts)


def _prevalence_html(report, level):
    rows = report.get("at_prevalence") or []
    if not rows:
        return ""
    pos = report["model"]["operating_point"]["pos_label"]
    here = report["data"]["prevalence"].get(str(pos))
    table = _table(
        [f"prevalence of {pos}",
         f"accuracy ({level} CI)", f"PPV ({level} CI)", f"NPV ({level} CI)"],
        [[_fmt(r["prevalence"], 2)] + [f"{_fmt(r[k]['estimate'])} ({_ci(r[k])})"
                                      for k in ("accuracy", "ppv", "npv")] for r in rows],
        numeric=(0, 1, 2, 3))
    return (
        "<h3>At another prevalence</h3>" + table
        + f"<p>{here:.0%} of these images are {_e(pos)}. Sensitivity and specificity "
        "are measured within each class and carry over to patients mixed otherwise; "
        "accuracy, PPV and NPV do not. The rows give them, by Bayes' rule, at the "
        "prevalence of another hospital, assuming only the mix of the classes changes, "
        "not the films within each (the intervals come from the same resamples).</p>")


def _figure_html(report, key, alt):
    uri = report.get("figures", {}).get(key)
    if not uri:
        return ""
    return f'<p><img class="fig" alt="{_e(alt)}" src="{uri}"></p>'


def _calibration_html(report):
    cal = report["calibration"]
    if report["task"] == "binary":
        text = (f"Brier score <b>{_fmt(cal['brier_score'])}</b>, expected calibration "
                f"error <b>{_fmt(cal['expected_calibration_error'])}</b> "
                f"({cal['n_bins']} equal-width bins).")
    else:
        briers = ", ".join(f"{_e(c)} {_fmt(v['brier_score'])}"
                           for c, v in cal["per_class"].items())
        text = (f"One-vs-rest Brier scores: {briers}; top-label expected calibration "
                f"error <b>{_fmt(cal['top_label_expected_calibration_error'])}</b>.")
    return (f"<p>{text} A well-calibrated model's dots lie on the diagonal: of the "
            f"images given a probability near 0.8, about 80% have the disease. Dots "
            f"below the diagonal mean the model is over-confident there.</p>")


def _errors_html(report):
    errors = report.get("errors") or []
    if not errors:
        if report.get("settings", {}).get("n_errors") == 0:
            return "<p>Not requested (<code>n_errors=0</code>).</p>"
        return "<p>No errors.</p>"
    info = report.get("explanations") or {}
    figs = []
    for e in errors:
        caption = (f"true <b>{_e(e['true'])}</b>, predicted <b>{_e(e['predicted'])}</b> "
                   f"(p={_fmt(e['probability_of_predicted'])})<br>{_e(e['path'])}")
        thumb = e.get("thumbnail")
        img = f'<img alt="error thumbnail" src="{thumb}"><br>' if thumb else ""
        figs.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
    note = (f"<p>Left: the image as the network sees it; right: {_e(info.get('method'))} "
            f"overlay ({_e(info.get('note'))}): where the network looked to give the "
            f"label it gave.</p>")
    return note + '<div class="errors">' + "".join(figs) + "</div>"


def _data_html(report):
    d = report["data"]
    rows = [[_e(c), str(n), _fmt(d["prevalence"][c]),
             str(d.get("patients_per_class", {}).get(c, ""))]
            for c, n in d["images_per_class"].items()]
    parts = [f"<p>Source: <code>{_e(d.get('source') or 'not given')}</code>. "
             f"{d['n_files']} files, {d['n_images']} images evaluated"
             + (f", {d['n_patients']} patients" if "n_patients" in d else "")
             + ".</p>",
             _table(["class", "images", "prevalence", "patients"], rows,
                    numeric=(1, 2, 3))]
    sizes = d["original_sizes"]
    if sizes.get("n_known"):
        w, h = sizes["width"], sizes["height"]
        common = ", ".join(f"{a}&times;{b} ({n})" for a, b, n in sizes["most_common"])
        parts.append(
            f"<p>Original sizes (width &times; height, from the file headers): width "
            f"{w['min']}&ndash;{w['max']} px (median {w['median']:.0f}), height "
            f"{h['min']}&ndash;{h['max']} px (median {h['median']:.0f}); "
            f"{sizes['n_distinct']} distinct sizes; most common: {common}.</p>")
    if d["skipped"]:
        parts.append(f'<p class="note">{len(d["skipped"])} unreadable file(s) skipped:</p>'
                     + _table(["file", "reason"], [[_e(s["path"]), _e(s["reason"])]
                                                   for s in d["skipped"]]))
    else:
        parts.append("<p>No unreadable file.</p>")
    return "".join(parts)


def _dict_rows(mapping):
    return [[f"<code>{_e(k)}</code>", _e(json.dumps(v) if not isinstance(v, str) else v)]
            for k, v in mapping.items()]


def _model_html(report):
    m = report["model"]
    point = m["operating_point"]
    parts = [f"<p><b>{_e(m['type'])}</b></p>",
             "<h3>Threshold</h3>",
             _table(None, [["threshold", _fmt(point["threshold"], 4)
                            if point["threshold"] is not None else "none"],
                               ["applies to", _e(point["applies_to"])],
                               ["positive class", _e(point["pos_label"])],
                               ["how it was chosen", _e(point.get("chosen_by"))]]),
             "<h3>Training</h3>",
             _table(None, _dict_rows(m["training"])),
             "<h3>Network parameters</h3>", _table(["parameter", "value"],
                                                   _dict_rows(m["parameters"]))]
    for name, params in (m.get("loader") or {}).items():
        parts += [f"<h3>{_e(name)} parameters</h3>",
                  _table(["parameter", "value"], _dict_rows(params))]
    for name, params in (m.get("wrappers") or {}).items():
        parts += [f"<h3>{_e(name)} parameters</h3>",
                  _table(["parameter", "value"], _dict_rows(params))]
    parts += ["<h3>Software (that made this report)</h3>", _table(["package", "version"],
                                          [[_e(k), _e(v)] for k, v in m["versions"].items()])]
    return "".join(parts)


def _summary_html(report):
    cards = []
    keys = ["roc_auc", "sensitivity", "specificity"] if report["task"] == "binary" \
        else ["accuracy"]
    for key in keys:
        m = report["metrics"][key]
        cards.append(f'<div class="card">{_e(_METRIC_NAMES[key])}<b>{_fmt(m["estimate"])}'
                     f'</b>{report["confidence_level"]:.0%} CI {_ci(m)}</div>')
    return _trained_on_html(report) + '<div class="summary">' + "".join(cards) + "</div>"


def _trained_on_html(report):
    """A warning when the model was trained on some of the evaluated images."""
    d = report["data"]
    n = d.get("n_trained_on")
    if not n:
        return ""
    return (f'<p class="note warning"><b>{n} of the {d["n_images"]} images were used to '
            "train this model</b> (as they are, or the same films at another size or "
            "encoding). Its scores on them flatter it: evaluate on images of "
            "patients it was not trained on (e.g. <code>cxrlearn train "
            "--no-train-on-val</code> keeps a val folder out of training).</p>")


def report_to_html(report):
    """Render a report dictionary as one self-contained HTML page.

    Parameters
    ----------
    report : dict
        From :func:`evaluation_report` (or its JSON, read back).

    Returns
    -------
    html : str
        The page: inline CSS, figures as PNG ``data:`` URIs, no script and
        no reference to anything outside the file.

    Examples
    --------
    >>> from cxrlearn.evaluation import report_to_html
    >>> report = {"title": "Demo", "created": "2026-01-01T00:00:00+00:00",
    ...           "task": "multiclass", "classes": ["a", "b", "c"],
    ...           "confidence_level": 0.95, "settings": {"n_resamples": 10},
    ...           "metrics": {"accuracy": {"estimate": 0.5, "low": 0.4, "high": 0.6,
    ...                                    "method": "bootstrap", "count": [5, 10]}},
    ...           "per_class": {}, "confusion_matrix": {}, "errors": [],
    ...           "calibration": {"per_class": {},
    ...                           "top_label_expected_calibration_error": 0.1},
    ...           "data": {"n_files": 10, "n_images": 10, "images_per_class": {},
    ...                    "prevalence": {}, "original_sizes": {}, "skipped": []},
    ...           "model": {"type": "X", "operating_point": {"threshold": None,
    ...                     "applies_to": "argmax", "pos_label": None},
    ...                     "training": {}, "parameters": {}, "versions": {}}}
    >>> page = report_to_html(report)
    >>> page.startswith("<!DOCTYPE html>"), "http" in page
    (True, False)
    """
    level = f"{report['confidence_level']:.0%}"
    m = report["model"]
    sections = [
        ("Summary", _summary_html(report)),
        (f"Metrics with {level} confidence intervals", _metrics_html(report)),
        ("ROC and precision-recall curves",
         _figure_html(report, "curves", "ROC and precision-recall curves")
         + f"<p>Shaded: pointwise {level} bootstrap bands. Dots: the operating "
           "point of the model's own labels.</p>"),
        ("Confusion matrix and calibration",
         _figure_html(report, "confusion_calibration", "confusion matrix and calibration")
         + _calibration_html(report)),
        ("Score distributions", _figure_html(report, "score_distributions",
                                             "score distributions per class")),
        ("Most confident errors", _errors_html(report)),
        ("Data", _data_html(report)),
        ("Model", _model_html(report)),
        ("Methods", _methods_html(report)),
    ]
    body = "".join(f"<section><h2>{_e(t)}</h2>{content}</section>"
                   for t, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(report['title'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(report['title'])}</h1><p class=\"meta\">{_e(m['type'])} &middot; "
        f"created {_e(report['created'])} &middot; {_e(report['data'].get('source') or '')}"
        f"</p>{body}</body></html>\n"
    )


def _methods_html(report):
    s = report["settings"]
    level = f"{report['confidence_level']:.0%}"
    return (
        f"<p>{level} intervals: percentile bootstrap with {s['n_resamples']} resamples, "
        f"stratified by class (each resample keeps the number of "
        f"{_e(s.get('resampled', 'images'))} of each class); resampling "
        f"{_e(s.get('resampled', 'images'))}"
        + (" keeps all of a patient's images together, so correlated images of one "
           "patient do not count as independent evidence" if s.get("resampled") ==
           "patients" else "")
        + ". ROC-AUC also has DeLong's interval (images taken as independent). Curve "
        "bands are pointwise. Labels and the threshold are the model's own.</p>"
    )


def write_html_report(report, path):
    """Write a report as one self-contained HTML file, atomically.

    Parameters
    ----------
    report : dict
        From :func:`evaluation_report`.
    path : str or os.PathLike
        The HTML file; written through a temporary file and a rename, so an
        interrupted write leaves any previous file intact.

    Returns
    -------
    path : pathlib.Path
        The file written.

    See Also
    --------
    evaluation_report : Build the report.
    """
    from pathlib import Path

    from ..io import atomic_write

    text = report_to_html(report)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
