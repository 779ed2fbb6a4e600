"""The training core of the continuous-training step, in plain Python over the lake.

``snapshot`` freezes the training set (published feature partitions joined with the labels that have
arrived) and describes it in a content-addressed manifest; ``suite`` is the Great Expectations gate on
that set; ``model`` builds, fits and measures the seeded scikit-learn pipeline; ``profile`` writes the
reference distributions that drift monitoring compares production against. Nothing here imports
Airflow or MLflow: the operators and the tracking layer call these functions.
"""
