"""The Sluice pages served by the Airflow API server (a plugin FastAPI app under ``/sluice``).

``guard`` puts every route behind Airflow's own auth manager, checks the Host and sets the security
headers; ``lake`` serves the evidence zones of the lake; ``view`` is the operator's page per model.
Only GET routes exist: nothing here changes state, so there is nothing to forge a request for.
"""
