"""Monitoring of a deployed model: drift against the reference profile and live performance once labels arrive.

- ``drift`` (a package): ``DriftAccumulator`` (streaming: bin counts, moments and category counts of the
  current partition chunk by chunk) -> ``result(settings, importances)``, a JSON-safe verdict per feature, for
  the score distribution and for the interval; ``drift_from_parquet``; ``profile_frame`` (a reference profile
  of any frame, without a model config); ``read_profile`` (a checked ``reference_profile.json``);
  ``feature_rows`` (one flat row per feature, for tables). Inside: ``statistics``, ``profiles``,
  ``accumulator``, ``judging``, ``wording``.
- ``performance``: ``live_metrics`` (stored predictions joined with arrived labels) and ``performance_check``
  (decay when the metric dropped more than ``max_drop`` below the champion's test metric).
- ``policy``: the retrain policy: ``decide`` (persistence over intervals, cooldown after a retrain),
  ``decide_on_decay``, and ``retrain_on`` (the serving version's history, the
  rule, once per interval), taken alike by the monitoring DAG and the replay.
- ``job``: the monitoring DAG's work over the lake and the registry (reports, the retrain record).

Pure functions over numpy, pandas and pyarrow except ``job``: no Airflow, no MLflow. Settings come from the
model config's ``monitoring:`` section (``sluice.config.MonitoringConfig``).
"""
