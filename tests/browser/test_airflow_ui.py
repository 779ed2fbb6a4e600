"""The operator's Airflow UI in a real browser, logged in through its own login form.

Every page is opened in headless Chromium against the embedded stack after a short run of the loop
(``conftest._populate``): the DAG list, a grid, a task log, each extra link (followed to its target), the
trigger forms of training and deployment, the Sluice view, and the human approval form. Each page must
answer without a 5xx (or a 401 once logged in), log no console error, and show the content named here.
Screenshots of every step land in ``$SLUICE_ARTIFACTS`` (default ``.sluice/artifacts/browser/``).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from uidata import (
    WAITING,
    judged,
    model_config,
    paused_attempt_settled,
    polls,
    retrain_on_champion_window,
    wait_deployments,
    wait_tasks,
)

pytestmark = pytest.mark.browser

STACK_SERVICES = ("mailsink", "mlflow", "airflow")
STACK_MODELS = {"loans.yaml": model_config()}
DIALOG = "//*[@role='dialog']"


def ti_path(dag_id: str, run_id: str, task_id: str, tab: str = "") -> str:
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}" + (f"/{tab}" if tab else "")


def test_dag_list(browser, populated) -> None:
    browser.open("dag-list", "/dags", "loans_features", "loans_training", "loans_deployment", "loans_monitoring")
    assert "Dags" in browser.body_text()


def test_grid_shows_the_runs(browser, populated) -> None:
    browser.open("features-grid", "/dags/loans_features", "wait_for_landing", "validate", "publish_features")
    browser.open("features-runs", "/dags/loans_features/runs", "backfill__", "Backfill", "Failed", "Success")
    browser.open("training-grid", "/dags/loans_training", "plan", "train", "evaluate", "gate", "promote")


def test_task_log_shows_what_the_operator_logged(browser, populated) -> None:
    browser.open("train-log", ti_path("loans_training", populated["training"], "train"), "MLflow run ", timeout=60)
    browser.open(
        "infra-validate-log",
        ti_path("loans_deployment", populated["deployment"], "infra_validate"),
        "infra validation PASS",
        timeout=60,
    )


@pytest.mark.parametrize(
    ("dag_id", "run_key", "task_id", "link", "expect"),
    [
        ("loans_features", "features", "validate", "Quarantine record", "loans"),
        ("loans_features", "features", "validate", "Data Docs", "loans"),
        ("loans_monitoring", "monitoring", "drift", "Drift report", "drift"),
    ],
)
def test_extra_link_opens_its_evidence(browser, populated, dag_id, run_key, task_id, link, expect) -> None:
    # Airflow 3.3 shows a task instance's extra links as buttons in its Details tab
    browser.open(f"{task_id}-task", ti_path(dag_id, populated[run_key], task_id, "details"), "Extra Links", link)
    href = browser.button(link).get_attribute("href")
    assert href and href.startswith(("http://", "https://", "/")), f"{link}: no usable target ({href!r})"
    browser.open(f"{task_id}-{link}", href)
    text = browser.body_text()
    assert expect in text.lower(), f"{link} ({href}) shows no {expect!r}: {text[:500]!r}"
    assert "Internal Server Error" not in text and "Unauthorized" not in text, text[:500]


def open_trigger_form(browser, dag_id: str, *params: str):
    browser.open(f"{dag_id}-page", f"/dags/{dag_id}", dag_id)
    browser.button("Trigger").click()
    browser.settle(f"{dag_id}-trigger-form", f"Trigger Dag - {dag_id}", "Run Parameters", *params)
    return browser.button("Trigger", within=DIALOG)


def test_training_can_be_triggered_with_its_defaults(browser, populated) -> None:
    button = open_trigger_form(browser, "loans_training", "window_days", "force")
    assert button.is_enabled() and button.get_attribute("disabled") is None, "Trigger is disabled with the defaults"


def test_deployment_trigger_form(browser, populated) -> None:
    button = open_trigger_form(browser, "loans_deployment", "action", "version")
    assert button.is_enabled() and button.get_attribute("disabled") is None, "Trigger is disabled with the defaults"


def _champion(stack) -> str:
    """The champion version, once the deployments the data setup started have ended."""
    from sluice.registry.mlflow_registry import CHAMPION, Registry

    settings, api = stack
    wait_deployments(api)
    champ = Registry(settings.mlflow_url).by_alias("loans", CHAMPION)
    assert champ is not None, "the data setup left no champion"
    return str(champ.version)


def _shows_version(text: str, version: str) -> bool:
    return "champion" in text.lower() and re.search(rf"\bv{re.escape(version)}\b", text) is not None


def test_sluice_view_is_in_the_navigation_and_shows_the_champion(browser, stack, populated) -> None:
    from selenium.webdriver.common.by import By

    version = _champion(stack)
    browser.open("home", "/dags", "loans_features")
    driver = browser.driver
    entries = "//a[contains(., 'Sluice')]"
    menu = [e for e in driver.find_elements(By.XPATH, "//button[normalize-space(.)='Plugins']") if e.is_displayed()]
    if menu and not any(e.is_displayed() for e in driver.find_elements(By.XPATH, entries)):
        menu[0].click()  # views that are not top level sit in the Plugins menu
    entry = browser.wait(
        lambda d: next((e for e in d.find_elements(By.XPATH, entries) if e.is_displayed()), False),
        "no 'Sluice' entry in the Airflow navigation",
    )
    entry.click()
    browser.wait(lambda d: "/plugin/" in d.current_url or "/sluice/ui" in d.current_url, "the nav entry went nowhere")
    if "/plugin/" in driver.current_url:  # an external view renders inside the UI's frame
        frame = browser.wait(lambda d: next(iter(d.find_elements(By.TAG_NAME, "iframe")), False), "no view frame")
        driver.switch_to.frame(frame)
    try:
        browser.wait(lambda d: _shows_version(browser.body_text(), version), f"no champion version {version}")
    finally:
        driver.switch_to.default_content()
    browser.settle("sluice-view-from-nav")

    browser.open("sluice-model-page", "/sluice/ui/models/loans", "loans")
    assert _shows_version(browser.body_text(), version), browser.body_text()[:1000]


# ---------------------------------------------------------------------------------------- approval (HITL)


def _make_inconclusive_candidate(stack) -> str:
    """Start a loans_training run whose gate decides INCONCLUSIVE; returns its run id once ``approve`` waits.

    The stack's gate has a non-inferiority margin of 0 and the champion (v1) was trained on the window this
    run trains on: same snapshot, same seed, same model, so the bootstrap interval is [0, 0], which straddles
    the margin (``model_config`` in uidata.py).
    """
    _, api = stack
    return wait_for_approval(stack, retrain_on_champion_window(api))


def wait_for_approval(stack, run_id: str) -> str:
    settings, api = stack
    states = wait_tasks(api, "loans_training", run_id, judged, timeout=900)
    assert states.get("approve") in WAITING, f"{run_id}: no approval is waiting: {states}"
    paused_attempt_settled(settings, run_id)  # not within the scheduler's race window (uidata.py)
    return run_id


def _versions_of_run(stack, run_id: str) -> dict[str, set[str]]:
    """{version: its aliases} for every registered loans version trained by the given Airflow run."""
    from sluice.registry.mlflow_registry import Registry

    settings, _ = stack
    client = Registry(settings.mlflow_url).client
    found = client.search_model_versions("name='loans'")
    return {
        str(v.version): set(client.get_model_version("loans", v.version).aliases)
        for v in found
        if v.tags.get("airflow.run_id") == run_id
    }


def hitl_detail(api, run_id: str) -> dict:
    return api.call(
        "GET", f"/dags/loans_training/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"
    )


def answer_in_browser(browser, api, run_id: str, option: str, why: str) -> None:
    """Open the task's Required Action tab, check it shows the gate's evidence, write ``why`` and click ``option``."""
    path = ti_path("loans_training", run_id, "approve", "required_actions")
    browser.open(f"approval-form-{option}", path, "Approve", "Reject", "INCONCLUSIVE", timeout=60)
    field = "//*[@name='element_why' or @id='element_why']"  # the UI's form names a param field element_<name>
    fields = [e for e in browser.driver.find_elements("xpath", field) if e.is_displayed()]
    assert fields, "the approval form has no 'why' field (it goes to the ledger with the user's name)"
    fields[0].send_keys(why)
    browser.button(option).click()
    browser.wait(lambda d: hitl_detail(api, run_id).get("response_received"), f"the answer {option!r} was not taken")
    browser.settle(f"approval-answered-{option}")


def _mails(stack, subject_part: str) -> list:
    from sluice.alerts.mailsink import read_outbox

    settings, _ = stack
    return [m for m in read_outbox(settings.outbox) if subject_part in m["Subject"]]


def test_inconclusive_candidates_are_approved_and_rejected_in_the_browser(browser, stack, populated) -> None:
    """A person answers the gate's INCONCLUSIVE in the UI: asked by mail, nothing moves while the run waits;
    approved, the candidate is promoted (challenger, tagged with the decision and the user) and the owners are
    told, with the person's words escaped; rejected, nothing moves. Both answers are in the alias ledger with the
    user and the run. (The deployment DAG is paused here so the champion the other tests show stays put; that a
    promoted challenger is deployed through the model Asset is the feedback-loop and delivery journeys' part.)"""
    from sluice.registry import ledger
    from sluice.registry.mlflow_registry import CHAMPION, Registry

    settings, api = stack
    registry = Registry(settings.mlflow_url)
    champion = _champion(stack)  # candidates are judged against a champion that no longer moves
    api.call("PATCH", "/dags/loans_deployment", json={"is_paused": True})  # promotion here ends at challenger
    approved = wait_for_approval(stack, populated["training"])  # the data setup's retrain is the first one
    (ask,) = _mails(stack, "APPROVAL NEEDED")
    assert ask["Date"] and ask["Message-ID"]
    assert "/dags/loans_training/runs/" in ask.get_body(("plain",)).get_content()
    assert "/tasks/approve/required_actions" in ask.get_body(("html",)).get_content()
    assert registry.by_alias("loans", CHAMPION).version == champion  # nothing moved while it waits

    answer_in_browser(browser, api, approved, "Approve", "same model, same data: <b>fine</b> to redeploy")
    wait_tasks(api, "loans_training", approved, lambda st: st.get("promote") in ("success", "failed"), timeout=300)
    rejected = _make_inconclusive_candidate(stack)
    answer_in_browser(browser, api, rejected, "Reject", "no gain, no need")
    wait_tasks(api, "loans_training", rejected, lambda st: st.get("approve") in ("success", "failed"), timeout=120)

    for run_id, user_choice in ((approved, "Approve"), (rejected, "Reject")):
        detail = hitl_detail(api, run_id)
        assert detail["chosen_options"] == [user_choice], detail
        who = detail.get("responded_by_user") or {}
        assert who.get("name") == "admin" or who.get("id") == "admin", detail

    promoted: dict[str, set[str]] = {}
    for _ in polls(120):  # the version is registered and gets its alias inside the promote task
        promoted = _versions_of_run(stack, approved)
        if any(aliases & {"challenger", "champion"} for aliases in promoted.values()):
            break
    assert any(aliases & {"challenger", "champion"} for aliases in promoted.values()), promoted
    (version,) = promoted
    tags = registry.client.get_model_version("loans", version).tags
    assert tags["gate.decision"] == "INCONCLUSIVE" and tags["approval.by"] == "airflow:admin", tags
    (decided,) = _mails(stack, "APPROVED by airflow:admin")
    assert "&lt;b&gt;fine&lt;/b&gt;" in decided.get_body(("html",)).get_content()
    assert "<b>fine" not in decided.get_body(("html",)).get_content()

    assert not any(_versions_of_run(stack, rejected).values()), "the rejected candidate holds an alias"
    states = wait_tasks(
        api, "loans_training", rejected, lambda st: st.get("promote") not in (None, "running", "queued", "scheduled")
    )
    assert states["promote"] != "success", states
    assert registry.by_alias("loans", CHAMPION).version == champion
    assert len(_mails(stack, "REJECTED by airflow:admin")) == 1

    entries = ledger.history(registry, "loans")
    decisions = [(e["decision"], e["who"], e["to"]) for e in entries if e.get("decision")]
    # a rejection moves nothing: the challenger is still the approved version (deployment is paused here)
    assert decisions == [("approved", "airflow:admin", version), ("rejected", "airflow:admin", version)], entries
    assert entries[-1]["why"].endswith("rejected by airflow:admin: no gain, no need")
    assert all(e.get("dag_id") for e in entries if e.get("decision"))
