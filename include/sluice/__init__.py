"""Sluice: an MLOps platform on Apache Airflow 3, MLflow and Great Expectations.

The core package never imports airflow; ``sluice.airflow`` is the only bridge (a test enforces it).
"""

__version__ = "0.1.0"
