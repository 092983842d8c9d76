"""The loop view: Loopline's pages inside the Airflow UI, served by the Airflow API server.

Mounted by the plugin at /loopline (see loopline_plugin.py), so there is no second server
and no second login: every route asks Airflow's auth manager who is calling (the UI's
session cookie or a bearer token), and shows only the pipelines whose nightly DAG the caller
may read. An anonymous page request is sent to Airflow's login page; the JSON API answers 401.

The data comes from loopline.monitoring.history (PostgreSQL); the charts are drawn in the
browser by Apache ECharts, served from this plugin (no CDN).
"""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.templating import Jinja2Templates

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

HERE = Path(__file__).parent
NIGHTLY_SUFFIX = "_nightly"
ASSETS = {  # what /static serves: the charting library and the page's own script, nothing else
    "echarts.min.js": HERE / "static" / "node_modules" / "echarts" / "dist" / "echarts.min.js",
    "pipeline.js": HERE / "static" / "pipeline.js",
    "loop.css": HERE / "static" / "loop.css",
}

app = FastAPI(title="Loopline loop view", docs_url=None, redoc_url=None, openapi_url=None)
templates = Jinja2Templates(directory=HERE / "templates")
Caller = Annotated[Any, Depends(get_user)]


class LoginRequired(Exception):
    """An anonymous request for a page: answered with a redirect to Airflow's login."""


async def page_caller(request: Request,
                      bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)) -> Any:
    """The caller of a page; without a valid session, off to the login page and back."""
    try:
        return await get_user(request, None, bearer)
    except HTTPException as refused:
        if refused.status_code in (401, 403):
            raise LoginRequired from refused
        raise


PageCaller = Annotated[Any, Depends(page_caller)]


@app.exception_handler(LoginRequired)
async def _to_login(request: Request, _: LoginRequired) -> Response:
    return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=302)


def readable_pipelines(user: Any) -> list[str]:
    """The pipelines whose nightly DAG Airflow knows and `user` may read, by name. A DAG whose
    file is gone (stale) keeps its pipeline's page: the history is still worth reading."""
    from sqlalchemy import select

    from airflow.models.dag import DagModel, DagTag
    from airflow.utils.session import create_session

    allowed = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    with create_session() as session:
        dag_ids = session.scalars(
            select(DagModel.dag_id).join(DagTag, DagTag.dag_id == DagModel.dag_id)
            .where(DagTag.name == "nightly", DagModel.dag_id.in_(allowed))).all()
    return sorted({dag_id.removesuffix(NIGHTLY_SUFFIX) for dag_id in dag_ids if dag_id.endswith(NIGHTLY_SUFFIX)})


def _readable(user: Any, pipeline: str) -> None:
    if pipeline not in readable_pipelines(user):
        raise HTTPException(404, f"no pipeline {pipeline!r} that you may read")


def last_run(dag_id: str) -> dict | None:
    """The DAG's run that started last (or, if none has, the next one queued): dates, state, run id."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)
                              .order_by(DagRun.start_date.desc().nulls_last(), DagRun.run_after).limit(1)).first()
        if run is None:
            return None
        start, end = run.data_interval_start, run.data_interval_end
        return {"run_id": run.run_id, "state": str(run.state), "dates": f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}"
                if start and end else "", "url": Links().airflow_run(dag_id, run.run_id)}


class Links:
    """Where the view links to: the Airflow UI and the MLflow UI, as this machine serves them."""

    def __init__(self) -> None:
        from airflow.configuration import conf

        self.airflow = conf.get("api", "base_url", fallback="").rstrip("/")
        self.mlflow = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")

    def airflow_dag(self, dag_id: str) -> str:
        return f"{self.airflow}/dags/{dag_id}"

    def airflow_run(self, dag_id: str, run_id: str) -> str:
        return f"{self.airflow}/dags/{dag_id}/runs/{quote(run_id, safe='')}"

    def mlflow_model(self, model_name: str) -> str:
        return f"{self.mlflow}/#/models/{quote(model_name, safe='')}"


def _db_url() -> str:
    from loopline.core.config import require_env

    return require_env("LOOPLINE_DB_URL")


def overview_rows(user: Any) -> list[dict]:
    """One line per readable pipeline: its history summary plus its last Airflow run."""
    from loopline.monitoring.history import overview

    return [{**overview(_db_url(), pipeline), "last_run": last_run(f"{pipeline}{NIGHTLY_SUFFIX}")}
            for pipeline in readable_pipelines(user)]


@app.get("/", include_in_schema=False)
def overview_page(request: Request, user: PageCaller) -> Response:
    return templates.TemplateResponse(request, "overview.html", {"rows": overview_rows(user), "links": Links(),
                                                                     "root": ""})


@app.get("/api/overview")
def overview_api(user: Caller) -> JSONResponse:
    return JSONResponse(overview_rows(user))


@app.get("/pipelines/{pipeline}", include_in_schema=False)
def pipeline_page(request: Request, pipeline: str, user: PageCaller) -> Response:
    from loopline.monitoring.history import pipeline_history

    _readable(user, pipeline)
    return templates.TemplateResponse(request, "pipeline.html", {
        "pipeline": pipeline, "history": pipeline_history(_db_url(), pipeline), "links": Links(),
        "root": "../"})


@app.get("/api/pipelines/{pipeline}")
def pipeline_api(pipeline: str, user: Caller) -> JSONResponse:
    from loopline.monitoring.history import pipeline_history

    _readable(user, pipeline)
    return JSONResponse(pipeline_history(_db_url(), pipeline))


# A stored report is shown as it is, but may run nothing and fetch nothing.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@app.get("/pipelines/{pipeline}/reports/drift/{interval_first}", include_in_schema=False)
def drift_report(pipeline: str, interval_first: date, user: PageCaller) -> Response:
    from loopline.core.storage import read_stored
    from loopline.monitoring.history import drift_report_uri

    _readable(user, pipeline)
    uri = drift_report_uri(_db_url(), pipeline, interval_first)
    if not uri:
        raise HTTPException(404, f"{pipeline} has no drift report for the interval starting {interval_first}")
    return HTMLResponse(read_stored(uri), headers={"Content-Security-Policy": REPORT_POLICY})


@app.get("/pipelines/{pipeline}/reports/contract/{dataset}/{interval_first}/{path:path}", include_in_schema=False)
def contract_report(pipeline: str, dataset: str, interval_first: date, path: str, user: PageCaller) -> Response:
    """A validation's GX Data Docs site, as stored, with its assets served here and its outcome
    stated first (the site's root redirects to its validation page)."""
    from loopline.contracts.reports import STATIC_FOLDER, site_root
    from loopline.core.storage import StorageError, read_stored
    from loopline.monitoring.history import contract_outcome
    from loopline_airflow.loop_view.data_docs import POLICY, media_type, offline_page, site_static_file

    _readable(user, pipeline)
    record = contract_outcome(_db_url(), pipeline, dataset, interval_first)
    if record is None or not record["report_uri"]:
        raise HTTPException(404, f"{pipeline} has no contract report of {dataset} for {interval_first}")
    root = site_root(record["report_uri"])
    page = record["report_uri"].removeprefix(f"{root}/")
    if not path:
        return RedirectResponse(page, status_code=302)
    if ".." in path.split("/"):
        raise HTTPException(404, "no such file in the report")
    if path.startswith(f"{STATIC_FOLDER}/"):
        asset_file = site_static_file(path.removeprefix(f"{STATIC_FOLDER}/"))
        if asset_file is None:
            raise HTTPException(404, f"no {path} in the report")
        return FileResponse(asset_file, headers={"Content-Security-Policy": POLICY,
                                                 "Cache-Control": "private, max-age=86400"})
    try:
        content = read_stored(f"{root}/{path}")
    except (OSError, StorageError) as missing:
        raise HTTPException(404, f"no {path} in the report") from missing
    headers = {"Content-Security-Policy": POLICY}
    if path != page:
        return Response(content, media_type=media_type(path), headers=headers)
    view_root = "../" * (6 + path.count("/"))  # from the page's folder up past pipelines/<p>/reports/contract/<d>/<day>/
    banner = templates.get_template("contract_outcome.html").render(record=record, pipeline=pipeline,
                                                                    view_root=view_root)
    return HTMLResponse(offline_page(content.decode(), page, view_root, banner), headers=headers)


@app.get("/static/vendor/{path:path}", include_in_schema=False)
def vendor_asset(path: str, user: PageCaller) -> FileResponse:
    """A file of the npm packages the contract reports use (see data_docs.CDN_FILES)."""
    from loopline_airflow.loop_view.data_docs import vendor_file

    found = vendor_file(path)
    if found is None:
        raise HTTPException(404, f"no asset {path!r}")
    return FileResponse(found, headers={"Cache-Control": "private, max-age=86400"})


@app.get("/static/{name}", include_in_schema=False)
def asset(name: str, user: PageCaller) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name!r}")
    return FileResponse(ASSETS[name], headers={"Cache-Control": "private, max-age=3600"})
