"""The Sluice plugin of the Airflow UI: registration only; the code lives in ``sluice.airflow.ui``.

- ``/sluice/lake/<key>`` serves the evidence zones of the lake (quarantine records, Data Docs, drift
  reports) through the API server, whether the lake is a folder or S3;
- ``/sluice/ui/`` is the operator's view of each model, linked from the Airflow navigation;
- backfills outside a DAG's start_date/end_date are refused (``sluice.airflow.backfill_guard``);
- every route is behind Airflow's own login (the UI's cookie or a Bearer token), checks the Host and
  is served under a strict Content-Security-Policy.

Extra links are declared on their operators (``sluice.airflow.links``), never globally.
Imports stay light: the scheduler and the API server import this module.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from sluice.airflow.backfill_guard import MIDDLEWARE as BACKFILL_GUARD
from sluice.airflow.ui.app import build_app

sluice_app = build_app()


class SluicePlugin(AirflowPlugin):
    name = "sluice"
    fastapi_apps = [{"app": sluice_app, "url_prefix": "/sluice", "name": "Sluice"}]
    fastapi_root_middlewares = [BACKFILL_GUARD]  # refuses backfills outside the DAG's start/end
    external_views = [
        {
            "name": "Sluice models",
            "href": "/sluice/ui/",
            "destination": "nav",
            "nav_top_level": True,
            "url_route": "sluice",  # the UI shows the page inside its frame at /plugin/sluice
        }
    ]
