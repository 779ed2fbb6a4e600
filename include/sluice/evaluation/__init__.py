"""Model evaluation: metrics as weighted kernels, the paired bootstrap, the promotion gate and its report.

- ``metrics``: ``compute_metrics``, ``slice_metrics``, ``higher_is_better`` (names from ``sluice.config.METRICS``).
- ``bootstrap``: ``paired_bootstrap`` -> ``BootstrapResult`` (candidate minus champion, oriented so that a
  positive difference always means "candidate better").
- ``gate``: ``evaluate_gate(GateConfig, GateInputs) -> GateDecision``, pure and typed.
- ``report``: ``render_text`` / ``render_html`` of a ``GateDecision`` for people.
"""
