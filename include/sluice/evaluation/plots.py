"""The classical evaluation views of a candidate on its test rows, as PNG bytes for the MLflow run's artifacts.

Classification: ROC and precision-recall curves (the champion's drawn too when there is one), a calibration
(reliability) curve, and the confusion matrix at the threshold the metrics use (score >= 0.5). Regression:
predicted against actual. Rendered with matplotlib's Agg canvas (no display, no global pyplot state).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

THRESHOLD = 0.5  # the threshold of f1 / precision / recall / accuracy in sluice.evaluation.metrics


def _figure(title: str) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 4.2), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(title)
    return fig, ax


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def evaluation_plots(task: str, y: Any, candidate: Any, champion: Any | None = None) -> dict[str, bytes]:
    """``{file name: png}`` for the test rows ``y`` scored by the candidate (and the champion, if any)."""
    y, cand = np.asarray(y), np.asarray(candidate, dtype=float)
    champ = None if champion is None else np.asarray(champion, dtype=float)
    if task != "classification":
        fig, ax = _figure("Predicted vs actual (test rows)")
        ax.scatter(y, cand, s=4, alpha=0.4)
        lo, hi = float(np.nanmin([y.min(), cand.min()])), float(np.nanmax([y.max(), cand.max()]))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        return {"predicted_vs_actual.png": _png(fig)}
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_curve

    y = y.astype(int)
    out: dict[str, bytes] = {}
    two_classes = len(np.unique(y)) == 2
    sides = [("candidate", cand)] + ([("champion", champ)] if champ is not None else [])

    def curves(title: str, draw: Callable[[Any, str, np.ndarray], None]) -> Any:
        fig, ax = _figure(title)
        for name, s in sides if two_classes else []:
            draw(ax, name, s)
        return fig, ax

    def roc(ax: Any, name: str, s: np.ndarray) -> None:
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")

    def pr(ax: Any, name: str, s: np.ndarray) -> None:
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, label=f"{name} (area {auc(recall, precision):.3f})")

    def calibration(ax: Any, name: str, s: np.ndarray) -> None:
        frac, mean = calibration_curve(y, np.clip(s, 0, 1), n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", markersize=3, label=name)

    fig, ax = curves("ROC curve (test rows)", roc)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    out["roc_curve.png"] = _png(fig)

    fig, ax = curves("Precision-recall curve (test rows)", pr)
    ax.axhline(float(y.mean()), color="grey", linestyle="--", linewidth=0.8, label=f"base rate {y.mean():.3f}")
    ax.set(xlabel="recall", ylabel="precision")
    ax.legend(loc="upper right")
    out["precision_recall_curve.png"] = _png(fig)

    fig, ax = curves("Calibration (test rows, 10 quantile bins)", calibration)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed share of positives")
    ax.legend(loc="upper left")
    out["calibration_curve.png"] = _png(fig)

    cm = confusion_matrix(y, (cand >= THRESHOLD).astype(int), labels=[0, 1])
    fig, ax = _figure(f"Confusion matrix, candidate, threshold {THRESHOLD:g}")
    ax.imshow(cm, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        ax.text(j, i, f"{n:,}", ha="center", va="center", color="white" if n > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], labels=["predicted 0", "predicted 1"])
    ax.set_yticks([0, 1], labels=["actual 0", "actual 1"])
    out["confusion_matrix.png"] = _png(fig)
    return out
