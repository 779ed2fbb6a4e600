"""The bridge to Airflow: the only package of ``sluice`` that imports airflow (a test enforces it).

Hooks wrap clients, operators are thin wrappers over the plain-Python jobs in the core package, and
anything that waits defers to a trigger.
"""
