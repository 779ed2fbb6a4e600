"""Drift of a current partition against the reference profile saved at training: pure, vectorized, streaming.

The reference side is the small profile of ``sluice.training.profile`` (quantile bins, mean, std, n per numeric
feature; category shares per categorical feature; the same for the training scores). The current side is
reduced chunk by chunk into the same shape -- bin counts (``np.searchsorted`` on the profile's edges, the
profile's own convention), sums and sums of squares, category counts -- so memory is that of one chunk
whatever the partition size (:class:`DriftAccumulator`, :func:`drift_from_parquet`).

Per numeric feature (and for the scores):

- ``psi`` over the reference bins (shares floored at ``PSI_EPS``);
- a Welch t-test of the mean (``effect`` = |mean shift| / reference std) and a chi-square test of homogeneity
  of the bin counts; the feature's p-value is the smaller of the two, doubled (Bonferroni within the feature);
- drifted when the adjusted p-value is below ``alpha`` and the mean moved by at least ``effect_size_floor``
  reference standard deviations, or the PSI is at least ``psi_threshold`` (``prediction_psi_threshold`` for
  the scores). The p-value alone never decides: on a million rows a 0.05 sd shift is "significant" and trivial.

Per categorical feature: the chi-square test over the reference categories plus ``__other__`` (every value
the profile does not list), ``psi`` over the same cells, ``effect`` = the largest absolute change of a cell's
share, and ``unseen_share`` = the share of values the profile does not list. Drifted when the adjusted p-value
is below ``alpha`` and a share moved by at least ``share_shift_floor``, the unseen share exceeds the
reference's ``__other__`` share by at least ``unseen_share_threshold``, or the PSI is at least
``psi_threshold``.

The p-values of all features and the scores are adjusted together (Holm, or Benjamini-Hochberg). The
interval drifts when the drifted features carry at least ``min_drifted_weight`` of the feature importance
(permutation importances clipped at 0 and normalised; equal weights without them), when the scores drifted,
or when a categorical feature drifted by its unseen values whatever its weight: an importance measured on the
training categories says nothing about values the model never saw.
The retraining decision over intervals (persistence, cooldown) is :mod:`sluice.monitoring.policy`'s.

Every result is JSON-safe (no NaN or infinity: undefined numbers are ``None``) and says why in words, e.g.
``"loan_to_income: mean shifted +0.31 sd (p=1e-40), PSI 0.090"``.

Where it lives: :mod:`.statistics` (PSI, chi-square, Welch, adjustment, importance weights), :mod:`.profiles`
(the features a model checks, profiles of any frame, reading a profile file), :mod:`.accumulator` (the
streamed current side and each feature's statistics), :mod:`.judging` (the verdicts) and :mod:`.wording`
(reasons, labels, report rows). The verdict of an interval is a :class:`DriftResult`; ``result()`` gives its
JSON form.
"""

from __future__ import annotations

from sluice.monitoring.drift.accumulator import (
    BATCH_ROWS,
    MAX_TRACKED_UNSEEN,
    MIN_REFERENCE_INTERVALS,
    TOP_UNSEEN,
    DriftAccumulator,
    drift_from_parquet,
)
from sluice.monitoring.drift.judging import DriftResult
from sluice.monitoring.drift.profiles import MIN_ID_ROWS, checked_features, infer_columns, profile_frame, read_profile
from sluice.monitoring.drift.statistics import (
    PSI_EPS,
    adjust_pvalues,
    chi2_homogeneity,
    feature_weights,
    psi,
    welch_test,
)
from sluice.monitoring.drift.wording import ROW_KEYS, feature_rows

__all__ = [
    "BATCH_ROWS",
    "MAX_TRACKED_UNSEEN",
    "MIN_ID_ROWS",
    "MIN_REFERENCE_INTERVALS",
    "PSI_EPS",
    "ROW_KEYS",
    "TOP_UNSEEN",
    "DriftAccumulator",
    "DriftResult",
    "adjust_pvalues",
    "checked_features",
    "chi2_homogeneity",
    "drift_from_parquet",
    "feature_rows",
    "feature_weights",
    "infer_columns",
    "profile_frame",
    "psi",
    "read_profile",
    "welch_test",
]
