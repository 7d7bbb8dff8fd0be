"""The pool wait of a run executed the way the daemon launches one: `execute_job` with the
multiprocess executor, in its own process, with pipelines/pool_wait.py loaded by the code location.

Dagster's multiprocess executor loops without sleeping while its only step waits for a pool slot.
With marquee's wait it sleeps, and when the run holding the slot dies mid-wait, the waiting run
reaps it and goes on by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.instance import DUCKDB_POOL, ensure_instance_config, ensure_pool_slots
from pipelines.reaper import owner_tags

pytestmark = pytest.mark.pipeline  # runs dbt or the pipeline: left out of `make test-fast`

ROOT = Path(__file__).resolve().parent.parent

JOB_FILE = textwrap.dedent('''
    import dagster as dg

    import pipelines.pool_wait  # noqa: F401  (what loading pipelines.definitions does in a run worker)


    @dg.op(pool="duckdb")
    def write_duckdb():
        return 1


    @dg.job(executor_def=dg.multiprocess_executor)
    def pooled_job():
        write_duckdb()


    if __name__ == "__main__":
        with dg.DagsterInstance.get() as instance:
            result = dg.execute_job(dg.reconstructable(pooled_job), instance=instance, raise_on_error=False)
            print("RUN", result.run_id, result.success)
''')


def test_a_multiprocess_run_waits_cheaply_and_reaps_a_holder_that_dies_mid_wait(tmp_path):
    home = tmp_path / "dagster_home"
    ensure_instance_config(home)
    job_file = tmp_path / "pooled_job.py"
    job_file.write_text(JOB_FILE)
    owner = subprocess.Popen(["sleep", "300"])
    proc = None
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            ensure_pool_slots(instance)
            holder = str(uuid.uuid4())
            instance.add_run(DagsterRun(job_name="holder", run_id=holder, status=dg.DagsterRunStatus.STARTED,
                                        tags=owner_tags(owner.pid)))
            assert instance.event_log_storage.claim_concurrency_slot(DUCKDB_POOL, holder, "w").is_claimed

            env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
            env.update({"DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), "MARQUEE_POOL_WAIT_SECONDS": "120"})
            log = tmp_path / "job.log"
            proc = subprocess.Popen([sys.executable, str(job_file)], cwd=ROOT, env=env, stdout=log.open("w"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
            ps = psutil.Process(proc.pid)

            def waiting() -> bool:
                info = instance.event_log_storage.get_concurrency_info(DUCKDB_POOL)
                return any(p.run_id != holder for p in info.pending_steps)

            deadline = time.monotonic() + 120
            while not waiting():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the run never queued for the pool"
                time.sleep(0.1)
            t0, cpu0 = time.monotonic(), sum(ps.cpu_times()[:2])
            time.sleep(5)
            cpu, wall = sum(ps.cpu_times()[:2]) - cpu0, time.monotonic() - t0
            assert waiting()
            # Dagster's loop alone spends the whole 5 s on the CPU here.
            assert cpu < 0.15 * wall, (cpu, wall)
            # the live holder is left alone
            assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED

            owner.kill()  # the holder dies mid-wait ...
            owner.wait()
            code = proc.wait(timeout=60)  # ... and the waiting run reaps it and runs
            output = log.read_text()
            assert code == 0, output[-3000:]
            run_line = [line for line in output.splitlines() if line.startswith("RUN ")]
            assert run_line and run_line[-1].endswith(" True"), output[-3000:]
            assert instance.get_run_by_id(holder).status == dg.DagsterRunStatus.FAILURE
            info = instance.event_log_storage.get_concurrency_info(DUCKDB_POOL)
            assert [s for s in info.claimed_slots if s.run_id] == [] and info.pending_steps == []
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait()
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch):
    monkeypatch.delenv("MARQUEE_POOL_WAIT_SECONDS", raising=False)
