"""Evaluation: confidence intervals, paired comparisons and the report.

* Intervals: :func:`delong_roc_auc` and :func:`delong_roc_test` (DeLong's
  analytic interval and paired test of ROC-AUC), :func:`bootstrap_metrics`
  and :func:`paired_bootstrap` (stratified bootstrap, by patient when
  ``groups`` are given, of ROC-AUC, average precision, and sensitivity,
  specificity, accuracy, PPV and NPV at the operating point), and
  :func:`bootstrap_operating_points` (thresholds for target sensitivities);
  :func:`at_prevalence` and :func:`bootstrap_at_prevalence` (accuracy, PPV
  and NPV at another prevalence of disease).
* The report: :func:`evaluation_report` (a JSON-serialisable dictionary)
  and :func:`write_html_report` (one self-contained HTML file), the
  ``cxrlearn report`` command; :func:`operating_point` reads a fitted
  classifier's threshold; :func:`trained_on` finds the images a model was
  trained on (whose scores flatter it).

Importing this package imports neither TensorFlow nor matplotlib.
"""

from ._html import report_to_html, write_html_report
from ._intervals import (
    BootstrapResult,
    DeLongResult,
    DeLongTestResult,
    MetricInterval,
    bootstrap_metrics,
    bootstrap_operating_points,
    delong_roc_auc,
    delong_roc_test,
    paired_bootstrap,
)
from ._leakage import trained_on
from ._operating_point import operating_point
from ._prevalence import at_prevalence, bootstrap_at_prevalence
from ._report import evaluation_report

__all__ = [
    "BootstrapResult",
    "DeLongResult",
    "DeLongTestResult",
    "MetricInterval",
    "at_prevalence",
    "bootstrap_at_prevalence",
    "bootstrap_metrics",
    "bootstrap_operating_points",
    "delong_roc_auc",
    "delong_roc_test",
    "evaluation_report",
    "operating_point",
    "paired_bootstrap",
    "report_to_html",
    "trained_on",
    "write_html_report",
]
