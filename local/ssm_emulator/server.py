"""`EmulatorServer`: moto plus executing Run Command on one local port.

A werkzeug threaded WSGI server (in a daemon thread) serves moto's
`DomainDispatcherApplication` behind the emulator's middleware; a scheduler thread runs the
invocations. Starting it bootstraps the fleet (EC2 instances, all SSM-managed and Online) and the
alert topic with its SQS subscription.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from ssm_emulator import ssm
from ssm_emulator.bootstrap import create_alerts, internal_client, launch_instances, upload_output
from ssm_emulator.control import EmulatorControl
from ssm_emulator.control_api import build_routes
from ssm_emulator.executor import ProcessRunner, RunningProcess
from ssm_emulator.faults import FaultState
from ssm_emulator.instances import InstanceRegistry
from ssm_emulator.middleware import EmulatorMiddleware
from ssm_emulator.models import Invocation
from ssm_emulator.scheduler import Scheduler, base_environment
from ssm_emulator.service import RunCommandService

log = logging.getLogger(__name__)

TIME_SCALE_ENV = "SSM_EMULATOR_TIME_SCALE"


class _QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without one log line per request."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class EmulatorServer:
    """A local AWS endpoint whose SSM Run Command really runs the commands.

    :param port: TCP port on 127.0.0.1; 0 picks a free one. (default: 0)
    :param instances: EC2 instances to bootstrap, all SSM-managed and Online. (default: 3)
    :param tags: tags of the bootstrapped instances. (default: {"Role": "cots"})
    :param region: region of the instances, topic and queue. (default: "us-east-1")
    :param state_dir: where instance working directories and outputs live; None makes a
        temporary directory that stop() removes. (default: None)
    :param host: address to listen on. (default: "127.0.0.1")
    :param time_scale: factor applied to TimeoutSeconds (the delivery timeout) of new commands;
        None reads SSM_EMULATOR_TIME_SCALE, else 1. (default: None)
    """

    def __init__(
        self,
        port: int = 0,
        instances: int = 3,
        tags: dict[str, str] | None = None,
        region: str = "us-east-1",
        state_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        time_scale: float | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.instance_count = instances
        self.tags = dict(tags) if tags is not None else {"Role": "cots"}
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self._requested_state_dir = state_dir
        self._time_scale = (
            time_scale if time_scale is not None else float(os.environ.get(TIME_SCALE_ENV, "1"))
        )
        self.state_dir: Path = Path(state_dir) if state_dir else Path()
        self.instance_ids: list[str] = []
        self.topic_arn = ""
        self.queue_url = ""
        self._owns_state_dir = False
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._uploads: ThreadPoolExecutor | None = None
        self._s3: Any = None
        self._stop_lock = threading.Lock()
        self.faults = FaultState(default_time_scale=self._time_scale)
        self.registry = InstanceRegistry()
        self.service = RunCommandService(self.faults, self.registry)
        self.runner = ProcessRunner(self.state_dir)
        self.scheduler: Scheduler | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def endpoint_url(self) -> str:
        # A wildcard bind address is not one a client can connect to.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def control(self) -> EmulatorControl:
        return EmulatorControl(self.endpoint_url)

    def start(self) -> EmulatorServer:
        """Start serving, then bootstrap the instances, topic and queue. Idempotent."""
        if self.running:
            return self
        ssm.install()
        self._prepare_state_dir()
        app = EmulatorMiddleware(
            DomainDispatcherApplication(create_backend_app), self.service, self.faults, build_routes(self)
        )
        try:
            self._httpd = make_server(
                self.host, self.port, app, threaded=True, request_handler=_QuietRequestHandler
            )
        except (OSError, SystemExit) as error:  # werkzeug exits the process when it cannot bind
            if self._owns_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)
            raise OSError(f"the SSM emulator cannot listen on {self.host}:{self.port}") from error
        self.port = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="ssm-emulator-http", daemon=True
        )
        self._thread.start()
        self._uploads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ssm-emulator-s3")
        self.scheduler = Scheduler(
            lock=self.service.lock,
            active_commands=self.service.active_commands,
            runner=self.runner,
            faults=self.faults,
            registry=self.registry,
            base_env=base_environment(self.endpoint_url),
            on_finished=self._on_finished,
        )
        self.service.on_change = self.scheduler.wake
        self.scheduler.start()
        atexit.register(self.stop)
        try:
            self.instance_ids = self.add_instances(self.instance_count)
            self.topic_arn, self.queue_url = create_alerts(self.endpoint_url, self.region)
        except Exception:
            self.stop()
            raise
        log.info("SSM emulator ready at %s with %d instances", self.endpoint_url, len(self.instance_ids))
        return self

    def stop(self) -> None:
        """Kill every process group started, stop the threads and the server. Idempotent."""
        with self._stop_lock:
            httpd, self._httpd = self._httpd, None
            if httpd is None:
                return
            atexit.unregister(self.stop)
            if self.scheduler is not None:
                self.scheduler.stop()
            self.runner.kill_all()
            httpd.shutdown()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self._uploads is not None:
                self._uploads.shutdown(wait=False, cancel_futures=True)
            if self._owns_state_dir:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- fleet ---------------------------------------------------------------------------------
    def add_instances(self, n: int, tags: dict[str, str] | None = None, online: bool = True) -> list[str]:
        """Launch `n` more EC2 instances with `tags` (default: the server's), SSM-managed; return ids."""
        if not self.running:
            raise RuntimeError("start the emulator before adding instances")
        described = launch_instances(self.endpoint_url, self.region, n, self.tags if tags is None else tags)
        for instance in described:
            self.registry.register(self.account_id, self.region, instance, online=online)
            (self.state_dir / "instances" / instance["InstanceId"]).mkdir(parents=True, exist_ok=True)
        return [instance["InstanceId"] for instance in described]

    def offline_instances(self) -> list[str]:
        return [i.instance_id for i in self.registry.in_region(self.account_id, self.region) if not i.online]

    def wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()

    def info(self) -> dict[str, Any]:
        """The facts a client needs, as printed by the CLI and returned by GET /_emulator/info."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "account_id": self.account_id,
            "instance_ids": self.registry.ids(),
            "topic_arn": self.topic_arn,
            "queue_url": self.queue_url,
            "state_dir": str(self.state_dir),
            "pid": os.getpid(),
        }

    # -- internals -------------------------------------------------------------------------------
    def _prepare_state_dir(self) -> None:
        if self._requested_state_dir:
            self.state_dir = Path(self._requested_state_dir).resolve()
            self.state_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.state_dir = Path(tempfile.mkdtemp(prefix="ssm-emulator-"))
            self._owns_state_dir = True
        self.runner.state_dir = self.state_dir

    def _on_finished(self, invocation: Invocation, process: RunningProcess) -> None:
        bucket = invocation.command.output_s3_bucket_name
        if bucket and self._uploads is not None:
            self._uploads.submit(self._upload, invocation, process, bucket)

    def _upload(self, invocation: Invocation, process: RunningProcess, bucket: str) -> None:
        if self._s3 is None:
            self._s3 = internal_client("s3", self.endpoint_url, self.region)
        s3 = self._s3
        for stream, path in (("stdout", process.stdout_path), ("stderr", process.stderr_path)):
            try:
                body = path.read_bytes()
            except OSError:
                continue
            if not upload_output(s3, bucket, invocation.output_key(stream), body):
                log.warning("output bucket %s does not exist; %s output not uploaded", bucket, stream)
                return
