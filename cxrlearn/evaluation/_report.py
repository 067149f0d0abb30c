"""The evaluation report: a dictionary (JSON) and one self-contained HTML file.

Everything a hospital reads before trusting a model on its own X-rays:
metrics with 95% intervals, ROC and precision-recall curves with bootstrap
bands and the operating point, the confusion matrix, calibration, score
distributions, the most confident errors with Grad-CAM overlays, and what
the data and the model were. Figures are drawn with scikit-learn's displays
on matplotlib (Agg) and embedded as PNG ``data:`` URIs: the HTML file
references nothing outside itself and opens without a network.
"""

import base64
import datetime
import io
import math
import os
import platform
import sys
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params

from ._intervals import (
    METRICS,
    _curve_bands,
    _run_bootstrap,
    bootstrap_metrics,
    bootstrap_operating_points,
    delong_roc_auc,
)
from ._leakage import trained_on
from ._operating_point import operating_point
from ._prevalence import _check_prevalences, bootstrap_at_prevalence

__all__ = ["evaluation_report"]

#: Version of the report dictionary's layout.
REPORT_FORMAT = 1

# Parameters that describe the machine, not the model.
_NOISE_PARAMS = {"verbose", "n_jobs", "callbacks", "checkpoint_dir", "memory"}
_FIGURE_DPI = 100


# ------------------------------------------------------------ the model


def _walk(model):
    """``(wrappers, steps before the network, network)`` of a fitted model.

    Follows what predicts for the model: ``FrozenEstimator.estimator``,
    ``best_estimator_``, a meta-estimator's ``estimator_`` and the final
    step of a Pipeline.
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline

    wrappers, current = [], model
    for _ in range(50):
        if isinstance(current, FrozenEstimator):
            wrappers.append(current)
            current = current.estimator
        elif isinstance(current, Pipeline):
            return wrappers, current[:-1], current[-1]
        elif hasattr(current, "best_estimator_"):
            wrappers.append(current)
            current = current.best_estimator_
        elif hasattr(current, "estimator_"):
            wrappers.append(current)
            current = current.estimator_
        else:
            break
    return wrappers, None, current


def _simple(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (Integral, Real)):
        return _num(value)
    if isinstance(value, (tuple, list)) and all(
        v is None or isinstance(v, (bool, str, Integral, Real)) for v in value
    ):
        return [_simple(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _simple(v) for k, v in value.items()}
    return type(value).__name__


def _params(estimator):
    try:
        params = estimator.get_params(deep=False)
    except Exception:  # not a scikit-learn estimator
        return {}
    return {k: _simple(v) for k, v in sorted(params.items()) if k not in _NOISE_PARAMS}


def _versions():
    import sklearn

    from .. import __version__

    versions = {"cxrlearn": __version__, "scikit-learn": sklearn.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    for name in ("keras", "tensorflow"):
        module = sys.modules.get(name)
        if module is not None:  # only report what this process loaded
            versions[name] = getattr(module, "__version__", "unknown")
    return versions


def _epochs(network):
    """How many networks a fitted network trained, for how many epochs each."""
    history = dict(getattr(network, "history_", None) or {})
    # a seed ensemble records the epochs of each network in turn (history_["network"])
    networks = len(set(history.pop("network", []))) or 1
    return {
        "networks": networks,
        "epochs_trained": len(history.get("loss", [])) // networks or None,
        "last_epoch": {k: _num(v[-1]) for k, v in history.items() if v} or None,
    }


def _describe_model(model, point, threshold_info):
    wrappers, loader, network = _walk(model)
    chain = [type(w).__name__ for w in wrappers]
    if loader is not None:
        chain.append("Pipeline(" + ", ".join(
            [type(step).__name__ for _, step in loader.steps] + [type(network).__name__]
        ) + ")")
    else:
        chain.append(type(network).__name__)
    training = {
        "classes": [_plain(c) for c in getattr(model, "classes_", [])],
        "input_shape": list(getattr(network, "input_shape_", []) or []) or None,
        **_epochs(network),
        "training_images_per_class": getattr(network, "class_counts_", None)
        or "not recorded by the model",
    }
    companion = getattr(network, "companion_", None)
    if companion is not None:  # PneumoniaCNN(companion=...): its own recipe and epochs
        training["companion"] = {"weight": _num(network.companion_weight), **_epochs(companion),
                                 "parameters": _params(companion)}
    keras_model = getattr(network, "model_", None)
    if keras_model is not None and hasattr(keras_model, "count_params"):
        training["n_parameters"] = int(keras_model.count_params())
    threshold = dict(point)
    if threshold_info:
        threshold["chosen_by"] = f"{threshold_info} ({point.get('chosen_by')})"
    return {
        "type": " > ".join(chain),
        "network": type(network).__name__,
        "parameters": _params(network),
        "loader": {type(step).__name__: _params(step) for _, step in loader.steps}
        if loader is not None else None,
        "wrappers": {type(w).__name__: _params(w) for w in wrappers} or None,
        "training": training,
        "operating_point": threshold,
        "versions": _versions(),
    }


def _network_view(model, paths):
    """The images as the network sees them: the pipeline's loading steps, and
    the network's own equalisation (``PneumoniaCNN(equalize=True)``)."""
    from ..explain._gradcam import _as_seen

    _, loader, cnn = _walk(model)
    if loader is None:
        raise TypeError("the model is not a Pipeline that loads image files")
    images = loader.transform(np.asarray(paths, dtype=object))
    return np.asarray(_as_seen(cnn, images), dtype=float)


# ------------------------------------------------------------- the data


def _original_size(path):
    """``(width, height)`` from the file header, without decoding pixels."""
    try:
        with open(path, "rb") as fh:
            is_dicom = fh.read(132)[128:132] == b"DICM"
        if is_dicom or str(path).lower().endswith((".dcm", ".dicom")):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True)
            return int(ds.Columns), int(ds.Rows)
        from PIL import Image

        with Image.open(path) as im:
            return tuple(int(v) for v in im.size)
    except Exception:  # reported as unknown; unreadable files are listed apart
        return None


def _size_summary(paths):
    sizes = [_original_size(p) for p in paths]
    known = np.array([s for s in sizes if s is not None], dtype=float).reshape(-1, 2)
    if not len(known):
        return {"n_known": 0}
    pairs, counts = np.unique(known.astype(int), axis=0, return_counts=True)
    top = np.argsort(-counts, kind="stable")[:5]
    return {
        "n_known": int(len(known)),
        "width": {"min": int(known[:, 0].min()), "median": float(np.median(known[:, 0])),
                  "max": int(known[:, 0].max())},
        "height": {"min": int(known[:, 1].min()),
                   "median": float(np.median(known[:, 1])), "max": int(known[:, 1].max())},
        "n_distinct": int(len(pairs)),
        "most_common": [[int(pairs[i][0]), int(pairs[i][1]), int(counts[i])] for i in top],
    }


def _describe_data(paths, labels, classes, groups, skipped, data_name):
    counts = {str(c): int(np.sum(labels == c)) for c in classes}
    n = len(labels)
    data = {
        "source": data_name,
        "n_files": n + len(skipped),
        "n_images": n,
        "images_per_class": counts,
        "prevalence": {c: _num(k / n) for c, k in counts.items()},
        "original_sizes": _size_summary(paths),
        "skipped": [{"path": str(p), "reason": r} for p, r in skipped],
    }
    if groups is not None:
        data["n_patients"] = int(len(np.unique(groups.astype(str))))
        data["patients_per_class"] = {
            str(c): int(len(np.unique(groups[labels == c].astype(str)))) for c in classes
        }
    return data


# ---------------------------------------------------------- the numbers


def _num(value):
    """A JSON number: float or int, NaN as None."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (Integral, np.integer)):
        return int(value)
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _interval(iv, **extra):
    return {"estimate": _num(iv[0]), "low": _num(iv[1]), "high": _num(iv[2]), **extra}


def _calibration(is_pos, prob, n_bins=10):
    """Reliability bins, Brier score and expected calibration error (ECE)."""
    from sklearn.metrics import brier_score_loss

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        members = index == b
        k = int(members.sum())
        if not k:
            continue
        mean_p, frac = float(prob[members].mean()), float(is_pos[members].mean())
        ece += k / len(prob) * abs(frac - mean_p)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": k,
                     "mean_predicted": mean_p, "fraction_positive": frac})
    return {"brier_score": float(brier_score_loss(is_pos, prob)),
            "expected_calibration_error": float(ece), "n_bins": n_bins,
            "binning": "uniform", "bins": bins}


def _top_label_ece(labels, proba, classes, n_bins=10):
    confidence = proba.max(axis=1)
    correct = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] == labels
    return _calibration(correct, confidence, n_bins)["expected_calibration_error"]


def _rate_counts(is_pos, flagged):
    tp = int(np.sum(is_pos & flagged))
    fn = int(np.sum(is_pos & ~flagged))
    fp = int(np.sum(~is_pos & flagged))
    tn = int(np.sum(~is_pos & ~flagged))
    return {"sensitivity": [tp, tp + fn], "specificity": [tn, tn + fp],
            "accuracy": [tp + tn, tp + tn + fp + fn], "ppv": [tp, tp + fp],
            "npv": [tn, tn + fn]}


def _binary_numbers(report, labels, proba, pred, classes, groups, opts):
    point = report["model"]["operating_point"]
    pos = point["pos_label"]
    col = classes.index(pos)
    score = proba[:, col]
    is_pos = labels == pos
    common = dict(groups=groups, n_resamples=opts["n_resamples"],
                  confidence_level=opts["confidence_level"],
                  random_state=opts["random_state"])
    boot = bootstrap_metrics(labels, score, y_pred=pred, pos_label=pos, **common)
    counts = _rate_counts(is_pos, pred == pos)
    unit = "patients" if groups is not None else "images"
    method = f"bootstrap ({opts['n_resamples']} resamples of {unit}, stratified)"
    report["metrics"] = {
        name: _interval(boot[name], method=method, count=counts.get(name))
        for name in METRICS
    }
    delong = delong_roc_auc(labels, score, pos_label=pos,
                            confidence_level=opts["confidence_level"])
    report["roc_auc_delong"] = {
        "estimate": delong.auc, "low": delong.low, "high": delong.high,
        "standard_error": delong.standard_error,
        "method": "DeLong (images taken as independent)",
    }
    bayes = f"{method}, by Bayes' rule from sensitivity and specificity"
    report["at_prevalence"] = [
        {"prevalence": row["prevalence"],
         **{name: _interval(row[name], method=bayes) for name in ("accuracy", "ppv", "npv")}}
        for row in bootstrap_at_prevalence(boot, opts["prevalences"])
    ]
    report["operating_points"] = bootstrap_operating_points(
        labels, score, opts["target_sensitivities"], pos_label=pos, **common
    )
    report["calibration"] = _calibration(is_pos, score)
    bands = _curve_bands(is_pos, score, **common)
    return {"score": score, "is_pos": is_pos, "pos": pos, "bands": bands}


def _multiclass_numbers(report, labels, proba, pred, classes, groups, opts):
    common = dict(groups=groups, n_resamples=opts["n_resamples"],
                  confidence_level=opts["confidence_level"],
                  random_state=opts["random_state"])
    per_class, bands, calibration = {}, {}, {}
    for i, c in enumerate(classes):
        is_c = labels == c
        boot = bootstrap_metrics(is_c, proba[:, i], y_pred=pred == c, pos_label=True,
                                 **common)
        counts = _rate_counts(is_c, pred == c)
        per_class[str(c)] = {m: _interval(boot[m], count=counts.get(m)) for m in METRICS}
        bands[str(c)] = _curve_bands(is_c, proba[:, i], **common)
        calibration[str(c)] = _calibration(is_c, proba[:, i])
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[_plain(v)] for v in labels])
    correct = (pred == labels).astype(float)
    samples, _, _ = _run_bootstrap(codes, groups, opts["n_resamples"],
                                   opts["random_state"],
                                   lambda w: {"accuracy": w @ correct / w.sum(axis=1)})
    alpha = 100 * (1 - opts["confidence_level"]) / 2
    low, high = np.percentile(samples["accuracy"], [alpha, 100 - alpha])
    unit = "patients" if groups is not None else "images"
    report["metrics"] = {"accuracy": {
        "estimate": float(correct.mean()), "low": float(low), "high": float(high),
        "method": f"bootstrap ({opts['n_resamples']} resamples of {unit}, stratified)",
        "count": [int(correct.sum()), len(correct)]}}
    report["per_class"] = per_class
    report["calibration"] = {
        "per_class": calibration,
        "top_label_expected_calibration_error": _top_label_ece(labels, proba, classes),
    }
    return {"bands": bands}


def _confident_errors(labels, proba, pred, classes, paths, n_errors):
    wrong = np.flatnonzero(pred != labels)
    index = {c: i for i, c in enumerate(classes)}
    confidence = np.array([proba[i, index[pred[i]]] for i in wrong])
    order = wrong[np.argsort(-confidence, kind="stable")][:n_errors]
    return [{"path": str(paths[i]), "true": _plain(labels[i]),
             "predicted": _plain(pred[i]),
             "probability_of_predicted": float(proba[i, index[pred[i]]])}
            for i in order]


# ------------------------------------------------------------- figures


def _require_matplotlib():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "the report's figures need matplotlib: pip install 'cxrlearn[plot]' "
            "(or pass figures=False for the numbers alone)"
        ) from exc
    return matplotlib


def _figure(ncols=1, width=5.0, height=4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), dpi=_FIGURE_DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _data_uri(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_FIGURE_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(rgb):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _binary_figures(report, labels, pred, numbers):
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import (
        ConfusionMatrixDisplay,
        PrecisionRecallDisplay,
        RocCurveDisplay,
    )

    score, is_pos, pos, bands = (numbers[k] for k in ("score", "is_pos", "pos", "bands"))
    level = f"{report['confidence_level']:.0%}"
    m = report["metrics"]
    sens, spec, ppv = (m[k]["estimate"] for k in ("sensitivity", "specificity", "ppv"))
    figures = {}

    fig, (ax_roc, ax_pr) = _figure(2)
    labels = np.asarray(labels, dtype=object)
    RocCurveDisplay.from_predictions(labels, score, pos_label=pos, ax=ax_roc, name="model",
                                     plot_chance_level=True)
    ax_roc.fill_between(bands["grid"], bands["roc_low"], bands["roc_high"], step="post",
                        alpha=0.25, color="C0", label=f"{level} bootstrap band")
    ax_roc.plot([1 - spec], [sens], "o", color="C3", markersize=9,
                label=f"operating point (sens {sens:.3f}, spec {spec:.3f})")
    ax_roc.set_title(f"ROC curve ({pos} positive)")
    ax_roc.legend(loc="lower right", fontsize=8)
    PrecisionRecallDisplay.from_predictions(labels, score, pos_label=pos, ax=ax_pr,
                                            name="model", plot_chance_level=True)
    ax_pr.fill_between(bands["grid"], bands["pr_low"], bands["pr_high"], step="post",
                       alpha=0.25, color="C0", label=f"{level} bootstrap band")
    if ppv is not None:
        ax_pr.plot([sens], [ppv], "o", color="C3", markersize=9,
                   label=f"operating point (recall {sens:.3f}, PPV {ppv:.3f})")
    ax_pr.set_title("Precision-recall curve")
    ax_pr.legend(loc="lower left", fontsize=8)
    figures["curves"] = _data_uri(fig)

    fig, (ax_cm, ax_cal) = _figure(2)
    ConfusionMatrixDisplay.from_predictions(
        labels, pred, labels=report["classes"], ax=ax_cm, colorbar=False, cmap="Blues"
    )
    ax_cm.set_title("Confusion matrix (rows: true class)")
    cal = report["calibration"]
    CalibrationDisplay.from_predictions(labels, score, n_bins=cal["n_bins"], ax=ax_cal,
                                        pos_label=pos, name="model")
    ax_cal.set_title(f"Calibration: Brier {cal['brier_score']:.3f}, "
                     f"ECE {cal['expected_calibration_error']:.3f}")
    ax_cal.legend(loc="upper left", fontsize=8)
    figures["confusion_calibration"] = _data_uri(fig)

    fig, (ax,) = _figure(1, width=7.0, height=3.6)
    bins = np.linspace(0, 1, 41)
    for value, name, color in ((False, "not " + str(pos), "C0"), (True, str(pos), "C3")):
        ax.hist(score[is_pos == value], bins=bins, alpha=0.55, color=color,
                label=f"true {name} (n={int(np.sum(is_pos == value))})")
    threshold = report["model"]["operating_point"]["threshold"]
    if threshold is not None and 0 <= threshold <= 1 and \
            report["model"]["operating_point"]["applies_to"].startswith("predict_proba"):
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3g}")
    ax.set_xlabel(f"predicted probability of {pos}")
    ax.set_ylabel("images")
    ax.set_title("Score distributions per true class")
    ax.legend(fontsize=8)
    figures["score_distributions"] = _data_uri(fig)
    return figures


def _multiclass_figures(report, labels, proba, pred, numbers):
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import (
        ConfusionMatrixDisplay,
        PrecisionRecallDisplay,
        RocCurveDisplay,
    )

    classes = report["classes"]
    level = f"{report['confidence_level']:.0%}"
    figures = {}
    fig, (ax_roc, ax_pr) = _figure(2)
    for i, c in enumerate(classes):
        color = f"C{i}"
        is_c = labels == c
        band = numbers["bands"][str(c)]
        per = report["per_class"][str(c)]
        # colours set afterwards: curve_kwargs is only in scikit-learn >= 1.7
        RocCurveDisplay.from_predictions(
            is_c, proba[:, i], ax=ax_roc, name=str(c),
            plot_chance_level=i == len(classes) - 1).line_.set_color(color)
        ax_roc.fill_between(band["grid"], band["roc_low"], band["roc_high"], step="post",
                            alpha=0.15, color=color)
        ax_roc.plot([1 - per["specificity"]["estimate"]], [per["sensitivity"]["estimate"]],
                    "o", color=color, markersize=8, markeredgecolor="k")
        PrecisionRecallDisplay.from_predictions(
            is_c, proba[:, i], ax=ax_pr, name=str(c)).line_.set_color(color)
        ax_pr.fill_between(band["grid"], band["pr_low"], band["pr_high"], step="post",
                           alpha=0.15, color=color)
        if per["ppv"]["estimate"] is not None:
            ax_pr.plot([per["sensitivity"]["estimate"]], [per["ppv"]["estimate"]], "o",
                       color=color, markersize=8, markeredgecolor="k")
    ax_roc.set(title=f"One-vs-rest ROC curves ({level} bands; dots: predictions)",
               xlabel="False positive rate", ylabel="True positive rate")
    ax_roc.legend(loc="lower right", fontsize=8)
    ax_pr.set(title="One-vs-rest precision-recall curves", xlabel="Recall",
              ylabel="Precision")
    ax_pr.legend(loc="lower left", fontsize=8)
    figures["curves"] = _data_uri(fig)

    fig, (ax_cm, ax_cal) = _figure(2)
    ConfusionMatrixDisplay.from_predictions(labels, pred, labels=classes, ax=ax_cm,
                                            colorbar=False, cmap="Blues")
    ax_cm.set_title("Confusion matrix (rows: true class)")
    for i, c in enumerate(classes):
        CalibrationDisplay.from_predictions(labels == c, proba[:, i], n_bins=10,
                                            ax=ax_cal, name=str(c), color=f"C{i}")
    ece = report["calibration"]["top_label_expected_calibration_error"]
    ax_cal.set(title=f"One-vs-rest calibration (top-label ECE {ece:.3f})",
               xlabel="Mean predicted probability", ylabel="Fraction of the class")
    ax_cal.legend(loc="upper left", fontsize=8)
    figures["confusion_calibration"] = _data_uri(fig)

    fig, axes = _figure(len(classes), width=3.6, height=3.2)
    bins = np.linspace(0, 1, 26)
    for i, (ax, c) in enumerate(zip(axes, classes)):
        ax.hist(proba[labels != c, i], bins=bins, alpha=0.55, color="C7", label="other")
        ax.hist(proba[labels == c, i], bins=bins, alpha=0.55, color=f"C{i}",
                label=f"true {c}")
        ax.set_xlabel(f"probability of {c}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("images")
    figures["score_distributions"] = _data_uri(fig)
    return figures


def _error_thumbnails(model, errors, size=160):
    """Network's-view thumbnails of the errors, side by side with Grad-CAM."""
    from PIL import Image

    if not errors:
        return {"method": "Grad-CAM", "available": False, "note": "no error shown"}
    paths = [e["path"] for e in errors]
    try:
        images = _network_view(model, paths)
    except Exception as exc:  # a model that does not load files itself
        for e in errors:
            e["thumbnail"] = None
        return {"method": "Grad-CAM", "available": False,
                "note": f"no images: {type(exc).__name__}: {exc}"}
    note, heatmaps = "heatmaps of the predicted class", None
    try:
        from ..explain import grad_cam, overlay

        heatmaps = grad_cam(model, np.asarray(paths, dtype=object))
    except Exception as exc:  # shown without overlay, with the reason
        note = f"Grad-CAM unavailable: {type(exc).__name__}: {exc}"
    for e, image, k in zip(errors, images, range(len(errors))):
        gray = np.clip(image, 0, 1)
        gray = gray[..., 0] if gray.ndim == 3 and gray.shape[2] == 1 else gray
        rgb = np.uint8(np.round(255 * (np.repeat(gray[..., None], 3, 2)
                                       if gray.ndim == 2 else gray)))
        panels = [rgb]
        if heatmaps is not None:
            panels.append(overlay(image, heatmaps[k], alpha=0.4))
        scale = max(1, round(size / max(rgb.shape[:2])))
        panels = [np.asarray(Image.fromarray(p).resize(
            (p.shape[1] * scale, p.shape[0] * scale), Image.NEAREST if scale > 1
            else Image.BILINEAR)) for p in panels]
        gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
        joined = panels[0] if len(panels) == 1 else np.concatenate(
            [panels[0], gap, panels[1]], axis=1)
        e["thumbnail"] = _png_uri(joined)
    return {"method": "Grad-CAM", "available": heatmaps is not None, "note": note}


# -------------------------------------------------------------- the report


@validate_params(
    {
        "model": "no_validation",
        "paths": ["array-like"],
        "labels": ["array-like"],
        "groups": ["array-like", None],
        "n_resamples": [Interval(Integral, 1, None, closed="left")],
        "confidence_level": [Interval(Real, 0, 1, closed="neither")],
        "n_errors": [Interval(Integral, 0, None, closed="left")],
        "target_sensitivities": ["array-like"],
        "prevalences": ["array-like"],
        "threshold_info": [str, None],
        "data_name": [str, None],
        "title": [str, None],
        "figures": ["boolean"],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def evaluation_report(
    model,
    paths,
    labels,
    *,
    groups=None,
    n_resamples=2000,
    confidence_level=0.95,
    n_errors=8,
    target_sensitivities=(0.9, 0.95, 0.98),
    prevalences=(0.1, 0.2, 0.3, 0.5),
    threshold_info=None,
    data_name=None,
    title=None,
    figures=True,
    n_jobs=None,
    random_state=0,
):
    """Evaluate a fitted pipeline on labelled image files: a report dictionary.

    The files are first checked with :func:`cxrlearn.datasets.scan_images`;
    unreadable ones are skipped and named in the data section. Labels at
    the operating point are ``model.predict``'s, probabilities
    ``model.predict_proba``'s; the threshold and how it was chosen are read
    from the model (:func:`operating_point`).

    Parameters
    ----------
    model : classifier
        A fitted classifier that takes image file paths, e.g. an
        ``[ImageLoader, PneumoniaCNN]`` pipeline from
        :func:`cxrlearn.io.load_model`, possibly inside an
        :class:`~cxrlearn.OperatingPointClassifier`.
    paths : array-like of shape (n_files,)
        Image files (PNG, JPEG, DICOM).
    labels : array-like of shape (n_files,)
        Their true labels, among ``model.classes_``.
    groups : array-like of shape (n_files,), default=None
        Patient ids (e.g. :func:`cxrlearn.datasets.patient_ids`): intervals
        resample patients, not images.
    n_resamples : int, default=2000
        Bootstrap resamples for the intervals and curve bands.
    confidence_level : float in (0, 1), default=0.95
        Coverage of every interval.
    n_errors : int, default=8
        How many of the most confident errors to show (0: none; no
        Grad-CAM is computed then).
    target_sensitivities : array-like of float, default=(0.9, 0.95, 0.98)
        Two classes: the operating points tabulated with
        :func:`bootstrap_operating_points`.
    prevalences : array-like of float, default=(0.1, 0.2, 0.3, 0.5)
        Two classes: shares of the positive class at which accuracy, PPV
        and NPV are also given (:func:`bootstrap_at_prevalence`), for a
        hospital whose patients are not mixed as these images are. Each in
        (0, 1); empty for none.
    threshold_info : str, default=None
        How the threshold was chosen, in your words, shown beside what the
        model records.
    data_name : str, default=None
        Where the images come from (e.g. the folder), for the data section.
    title : str, default=None
        Title of the report.
    figures : bool, default=True
        Draw the figures and thumbnails (needs matplotlib, the ``plot``
        extra); False gives the numbers alone.
    n_jobs : int, default=None
        Threads that check the files.
    random_state : int, RandomState instance or None, default=0
        Seeds the bootstrap; the default makes reports reproducible.

    Returns
    -------
    report : dict
        JSON-serialisable (NaN as None): ``task`` (``"binary"`` or
        ``"multiclass"``), ``classes``, ``metrics`` (each ``{"estimate",
        "low", "high", "method", "count"}``), for two classes
        ``roc_auc_delong``, ``operating_points``, ``at_prevalence`` (a list
        of ``{"prevalence", "accuracy", "ppv", "npv"}``) and ``calibration``
        (``brier_score``, ``expected_calibration_error``, ``bins``), for
        more ``per_class`` one-vs-rest intervals; ``confusion_matrix``,
        ``errors`` (the most confident errors, with ``thumbnail`` data
        URIs), ``explanations``, ``data`` (with ``n_trained_on``: how many of
        the images the network was trained on, by :func:`trained_on`; None
        when the model cannot tell), ``model``, ``figures`` (PNG data URIs)
        and ``settings``. :func:`report_to_html` renders it.

    Raises
    ------
    ValueError
        If the lengths differ, a label is not one of the model's classes,
        or no file can be read.

    See Also
    --------
    write_html_report : Write the report as one self-contained HTML file.
    report_to_html : The same page as a string.
    bootstrap_metrics, delong_roc_auc : The intervals.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.pipeline import make_pipeline
    >>> from cxrlearn import ImageLoader, PneumoniaCNN
    >>> from cxrlearn.datasets import write_synthetic_xray_directory
    >>> from cxrlearn.evaluation import evaluation_report
    >>> paths, labels = write_synthetic_xray_directory(tempfile.mkdtemp(), 40,
    ...                                                image_size=24, random_state=0)
    >>> model = make_pipeline(
    ...     ImageLoader(image_size=16, color_mode="grayscale"),
    ...     PneumoniaCNN(conv_filters=(4,), dense_units=(8,), epochs=1, random_state=0),
    ... ).fit(paths, labels)
    >>> report = evaluation_report(model, paths, labels, n_resamples=100,
    ...                            figures=False)
    >>> report["task"], report["data"]["n_images"]
    ('binary', 40)
    >>> sorted(report["metrics"])  # doctest: +NORMALIZE_WHITESPACE
    ['accuracy', 'average_precision', 'npv', 'ppv', 'roc_auc', 'sensitivity',
     'specificity']
    >>> auc = report["metrics"]["roc_auc"]
    >>> bool(auc["low"] <= auc["estimate"] <= auc["high"])
    True
    """
    from sklearn.utils.validation import check_consistent_length, column_or_1d

    from ..datasets import scan_images

    paths = np.asarray(column_or_1d(np.asarray(paths, dtype=object)), dtype=object)
    labels = column_or_1d(labels)
    check_consistent_length(paths, labels)
    if groups is not None:
        groups = np.asarray(column_or_1d(groups), dtype=object)
        check_consistent_length(paths, groups)
    classes = [_plain(c) for c in model.classes_]
    unknown = sorted({_plain(v) for v in np.unique(labels)} - set(classes), key=str)
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the model ({classes}).")
    prevalences = _check_prevalences(prevalences, "prevalences").ravel()  # before scoring
    if figures:
        _require_matplotlib()

    scan = scan_images([os.fspath(p) for p in paths], n_jobs=n_jobs)
    bad = {p for p, _ in scan.bad}
    keep = np.array([os.fspath(p) not in bad for p in paths])
    if not keep.any():
        raise ValueError(f"none of the {len(paths)} image files can be read.")
    paths, labels = paths[keep], labels[keep]
    groups = None if groups is None else groups[keep]

    proba = np.asarray(model.predict_proba(paths), dtype=float)
    pred = np.asarray(model.predict(paths))
    if len(np.unique(labels)) < 2:
        raise ValueError("the images hold a single class; the report needs all classes.")
    seen = trained_on(model, paths)
    binary = len(classes) == 2
    point = operating_point(model) if binary else {
        "pos_label": None, "threshold": None,
        "applies_to": "most probable class (argmax of predict_proba)",
        "chosen_by": "none: the most probable class"}
    opts = dict(n_resamples=n_resamples, confidence_level=float(confidence_level),
                random_state=random_state, target_sensitivities=target_sensitivities,
                prevalences=prevalences)
    from sklearn.metrics import confusion_matrix

    report = {
        "cxrlearn_report": REPORT_FORMAT,
        "title": title or "cxrlearn evaluation report",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "task": "binary" if binary else "multiclass",
        "classes": classes,
        "confidence_level": float(confidence_level),
        "settings": {"n_resamples": n_resamples, "n_errors": n_errors,
                     "resampled": "patients" if groups is not None else "images",
                     "random_state": random_state if isinstance(random_state, int)
                     else None},
        "model": _describe_model(model, point, threshold_info),
        "data": {**_describe_data(paths, labels, classes, groups, scan.bad, data_name),
                 "n_trained_on": None if seen is None else int(seen.sum())},
        "confusion_matrix": {"labels": classes, "counts": confusion_matrix(
            labels, pred, labels=classes).tolist()},
    }
    if binary:
        numbers = _binary_numbers(report, labels, proba, pred, classes, groups, opts)
    else:
        numbers = _multiclass_numbers(report, labels, proba, pred, classes, groups, opts)
    report["errors"] = _confident_errors(labels, proba, pred, classes, paths, n_errors)
    report["figures"] = {}
    if figures:
        draw = _binary_figures if binary else _multiclass_figures
        args = (report, labels, pred, numbers) if binary else \
            (report, labels, proba, pred, numbers)
        report["figures"] = draw(*args)
        report["explanations"] = _error_thumbnails(model, report["errors"])
    else:
        report["explanations"] = {"method": "Grad-CAM", "available": False,
                                  "note": "figures=False"}
    return _clean(report)


def _clean(obj):
    """Plain JSON types throughout; NaN and infinities become None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (Integral, Real, np.number)):
        return _num(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
