"""The fleet page inside Airflow's API server: a FastAPI app the plugin mounts (Airflow 3.0+).

Every route requires an authenticated Airflow user allowed to read the DAG's runs, through the
same security dependencies as Airflow's own REST API (a bearer token or the UI's session
cookie). Anonymous requests get 401, users without access to the DAG 403.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from cots_ssm.fleet.data import FleetSource, load_page
from cots_ssm.fleet.render import PageOptions, render_login_shell, render_page
from cots_ssm.fleet.urls import FLEET_URL_PREFIX, airflow_run_url
from cots_ssm.tasks import FLEET_RUN


def _read_access() -> Callable[..., Any]:
    """Airflow's dependency for "may read this DAG's runs" (the ``dag_id`` comes from the path)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN)


def _headers(nonce: str, seconds: float) -> dict[str, str]:
    # Host output is escaped when rendered; the policy is the second wall: no script but ours.
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        f"script-src 'nonce-{nonce}'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
        "Server-Timing": f"page;dur={seconds * 1000:.1f}",
    }


def create_app(source: FleetSource | None = None) -> FastAPI:
    """The FastAPI app of the fleet page; ``source`` replaces the Airflow DB and SSM in tests."""
    app = FastAPI(title="Fleet view", docs_url=None, redoc_url=None, openapi_url=None)
    read_access = _read_access()

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> Response:
        """A browser that is not logged in gets a page saying so (and nothing of the run)."""
        if error.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            nonce = secrets.token_urlsafe(16)
            body = render_login_shell(nonce, str(error.detail))
            return HTMLResponse(body, status_code=401, headers=_headers(nonce, 0.0))
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.get(
        "/dags/{dag_id}/runs/{run_id}",
        response_class=HTMLResponse,
        dependencies=[Depends(read_access)],
    )
    def fleet_page(
        request: Request,
        dag_id: str,
        run_id: str,
        instance: str = Query(default="", max_length=64),
        status: str = Query(default="", max_length=32),
        q: str = Query(default="", max_length=200),
        run_task: str = Query(default=FLEET_RUN.send_task_id, max_length=250),
        wait_task: str = Query(default=FLEET_RUN.wait_task_id, max_length=250),
    ) -> HTMLResponse:
        started = time.perf_counter()
        page = load_page(dag_id, run_id, run_task_id=run_task, wait_task_id=wait_task, source=source)
        if page is None:
            raise HTTPException(status_code=404, detail=f"no run {run_id!r} of DAG {dag_id!r}")
        nonce = secrets.token_urlsafe(16)
        options = PageOptions(
            instance=instance, status=status, text=q, back_url=airflow_run_url(dag_id, run_id), nonce=nonce
        )
        body = render_page(page, options)
        return HTMLResponse(body, headers=_headers(nonce, time.perf_counter() - started))

    return app


__all__ = ["FLEET_URL_PREFIX", "create_app"]
