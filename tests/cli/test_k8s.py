"""`flyk ext k8s …` end to end, in-process, on the embedded local backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from flyk import config
from flyk.api import FlyClient
from flyk.local import LocalBackend, Timing
from tests.cli.helpers import Flyk, no_retries


def kubectl(*args: str, kubeconfig: Path | None = None) -> str:
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    result = subprocess.run(
        ["/usr/bin/kubectl", "config", *args], capture_output=True, text=True, env=env, check=True
    )
    return result.stdout


def test_readme_main_job_create_then_list(flyk: Flyk, isolated_env: Path) -> None:
    created = flyk("ext", "k8s", "create", "demo")
    assert created.exit_code == 0, created.stderr
    assert "Using the local backend" in created.stderr
    assert "Control plane healthy" in created.stderr
    assert "context flyk-demo merged into" in created.stderr and created.stdout == ""
    assert created.stderr.count("flyk-demo merged") == 1  # said once, by the last step
    listed = flyk("ext", "k8s", "list")
    assert listed.exit_code == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "ORG", "REGION", "STATE"]
    assert row.split()[:4] == ["demo", "personal", "iad", "started"]
    assert kubectl("current-context").strip() == "flyk-demo"
    config = isolated_env / ".kube" / "config"
    assert config.stat().st_mode & 0o777 == 0o600


def test_create_json_for_ci(flyk: Flyk) -> None:
    result = flyk("ext", "k8s", "create", "ci-1", "-r", "ams", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    # the local backend's published loopback port for the app (on Fly: <app>.fly.dev:6443)
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", data["api_endpoint"])
    assert data["simulated"] is True  # no control-plane binary in this test's cache
    assert data["region"] == "ams" and data["context"] == "flyk-ci-1"
    listed = json.loads(flyk("ext", "k8s", "ls", "--json").stdout)
    assert [c["name"] for c in listed] == ["ci-1"]


def test_name_option_and_aliases(flyk: Flyk, tmp_path: Path) -> None:
    target = tmp_path / "own.yaml"
    assert flyk("ext", "k8s", "create", "-n", "alias", "--output", str(target)).exit_code == 0
    assert kubectl("current-context", kubeconfig=target).strip() == "flyk-alias"
    shown = flyk("ext", "k8s", "show", "alias")
    assert shown.exit_code == 0 and "simulated" in shown.stdout
    saved = flyk("ext", "k8s", "save-kubeconfig", "alias", "--print")
    assert saved.exit_code == 0 and "flyk-alias" in saved.stdout
    assert flyk("ext", "k8s", "destroy", "alias", "--yes").exit_code == 0
    assert flyk("extensions", "kubernetes", "list", "--json").stdout.strip() == "[]"


def test_dry_run_prints_the_plan_and_creates_nothing(flyk: Flyk, isolated_env: Path) -> None:
    result = flyk(
        "ext", "k8s", "create", "demo", "--dry-run", "--json", "--kubelet-token", "s3cr3t"
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert [r["kind"] for r in plan["resources"]][:2] == ["app", "volume"]
    assert "s3cr3t" not in result.stdout + result.stderr
    assert flyk("ext", "k8s", "list", "--json").stdout.strip() == "[]"
    assert not (isolated_env / ".kube" / "config").exists()
    human = flyk("ext", "k8s", "create", "demo", "--dry-run")
    assert "nothing is created" in human.stdout and "--tls-san=" in human.stdout


def test_dry_run_names_the_file_of_the_chain_the_entry_would_go_to(
    flyk: Flyk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing, existing, later = tmp_path / "missing", tmp_path / "a.yaml", tmp_path / "b.yaml"
    existing.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, (missing, existing, later))))
    plan = json.loads(flyk("ext", "k8s", "create", "demo", "--dry-run", "--json").stdout)
    # kubectl puts a new entry in the first file of the chain that exists.
    assert plan["kubeconfig"]["file"] == str(existing)
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    assert "flyk-demo" in existing.read_text() and not missing.exists() and not later.exists()


def test_second_create_exits_5(flyk: Flyk) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    again = flyk("ext", "k8s", "create", "demo")
    assert again.exit_code == 5 and "already exists" in again.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("create", "Bad_Name"), "invalid cluster name"),
        (("create",), "needs a name"),
        (("create", "demo", "-r", "zzz"), "unknown region"),
        (("create", "demo", "--timeout", "soon"), "cannot read --timeout 'soon'"),
        (("create", "demo", "--timeout", "0"), "--timeout must be more than 0"),
        (("create", "demo", "--vm-memory", "100"), "memory"),
        (("create", "a", "-n", "b"), "two names"),
        (("create", "demo", "--timeout", "9" * 20), "--timeout is at most 24h"),
        (("create", "demo", "--timeout", "99999999999999999999", "--dry-run"), "at most 24h"),
        (("create", "demo", "--vm-memory", "9" * 400), "more than any machine has"),
        (("create", "demo", "--volume-size", "100000"), "100000 is not between 1 and 500"),
        (("create", "demo", "--output", "a", "--kubeconfig", "b"), "give one"),
    ],
)
def test_bad_input_exits_2(flyk: Flyk, args: tuple[str, ...], needle: str) -> None:
    result = flyk("ext", "k8s", *args)
    assert result.exit_code == 2 and needle in result.stderr
    assert "unexpected" not in result.stderr
    assert flyk("ext", "k8s", "list", "--json").stdout.strip() == "[]"


def test_malformed_kubeconfig_is_refused_and_kept(flyk: Flyk, tmp_path: Path) -> None:
    target = tmp_path / "broken"
    target.write_bytes(b"apiVersion: v1\nclusters: [\n")
    result = flyk("ext", "k8s", "create", "demo", "--kubeconfig", str(target))
    assert result.exit_code == 2 and "malformed" in result.stderr and str(target) in result.stderr
    assert "pass --kubeconfig" not in result.stderr  # it was passed already
    assert target.read_bytes() == b"apiVersion: v1\nclusters: [\n"
    assert flyk("ext", "k8s", "list", "--json").stdout.strip() == "[]"


def test_capacity_error_exits_8_with_alternatives(flyk: Flyk, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "db", timing=Timing.instant())
    backend.capacity.set("jnb", 0)
    result = flyk(
        "ext", "k8s", "create", "big", "-r", "jnb",
        transport=backend.transport(), client_options=no_retries(),
    )  # fmt: skip
    assert result.exit_code == 8, result.stderr
    assert "jnb" in result.stderr and "Retry with -r" in result.stderr
    listed = flyk("ext", "k8s", "list", "--json", transport=backend.transport())
    assert listed.stdout.strip() == "[]"


def test_delete_needs_yes_when_not_interactive(flyk: Flyk) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    refused = flyk("ext", "k8s", "delete", "demo")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert json.loads(flyk("ext", "k8s", "list", "--json").stdout)[0]["name"] == "demo"
    deleted = flyk("ext", "k8s", "rm", "demo", "-y")
    assert deleted.exit_code == 0, deleted.stderr
    assert "current-context cleared" in deleted.stderr
    assert "flyk-demo" not in kubectl("get-contexts")


def test_delete_keep_volumes_reports_what_it_kept_not_a_warning(flyk: Flyk) -> None:
    assert flyk("ext", "k8s", "create", "kv").exit_code == 0
    result = flyk("ext", "k8s", "delete", "kv", "--yes", "--keep-volumes")
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr and "left behind" not in result.stderr
    assert "Cluster kv deleted, but for what --keep-volumes kept: volume vol_" in result.stderr
    assert "resume with flyk ext k8s create kv" in result.stderr
    rebuilt = flyk("ext", "k8s", "kubeconfig", "kv")
    assert (
        rebuilt.exit_code == 3 and "a delete removed it, e.g. with --keep-volumes" in rebuilt.stderr
    )
    data = json.loads(flyk("ext", "k8s", "delete", "kv", "--yes", "--keep-volumes", "-j").stdout)
    assert data["left_behind"] == [] and len(data["kept"]) == 1
    assert data["found_on_platform"] is True


def test_delete_of_a_missing_cluster_exits_3(flyk: Flyk) -> None:
    result = flyk("ext", "k8s", "delete", "ghost", "--yes")
    assert result.exit_code == 3 and "no cluster ghost" in result.stderr


def test_delete_refuses_a_malformed_kubeconfig_before_destroying_anything(
    flyk: Flyk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    monkeypatch.setenv("KUBECONFIG", f"{good}{os.pathsep}{bad}")
    good.write_text("")  # the first that exists takes new entries
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    bad.write_text("clusters: {oops\n")
    refused = flyk("ext", "k8s", "delete", "demo", "--yes")
    assert refused.exit_code == 2 and "malformed" in refused.stderr
    assert "--output" not in refused.stderr and "pass --kubeconfig with the file" in refused.stderr
    assert json.loads(flyk("ext", "k8s", "list", "--json").stdout)[0]["name"] == "demo"
    assert "flyk-demo" in kubectl("get-contexts", kubeconfig=good)
    bad.unlink()
    deleted = flyk("ext", "k8s", "delete", "demo", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert "flyk-demo" not in kubectl("get-contexts", kubeconfig=good)


def test_delete_of_a_cluster_gone_from_the_platform_removes_its_stale_entries(
    flyk: Flyk, tmp_path: Path
) -> None:
    kept, other = tmp_path / "kept", tmp_path / "other"
    assert flyk("ext", "k8s", "create", "demo", "--kubeconfig", str(kept)).exit_code == 0
    # Deleted with another kubeconfig: the cluster is gone, its entries in `kept` are not.
    assert flyk("ext", "k8s", "delete", "demo", "--kubeconfig", str(other), "-y").exit_code == 0
    assert "flyk-demo" in kubectl("get-contexts", kubeconfig=kept)
    asked = flyk("ext", "k8s", "delete", "demo", "--kubeconfig", str(kept))
    assert asked.exit_code == 2 and "--yes" in asked.stderr
    cleaned = flyk("ext", "k8s", "delete", "demo", "--kubeconfig", str(kept), "-y", "--json")
    assert cleaned.exit_code == 0, cleaned.stderr
    data = json.loads(cleaned.stdout)
    assert data["found_on_platform"] is False and data["kubeconfig_files"] == [str(kept)]
    assert data["current_context_cleared"] is True
    assert "flyk-demo" not in kubectl("get-contexts", kubeconfig=kept)
    again = flyk("ext", "k8s", "delete", "demo", "--kubeconfig", str(kept), "-y")
    assert again.exit_code == 3 and "no cluster demo" in again.stderr


def test_kubeconfig_print_json_is_what_kubectl_shows(flyk: Flyk, tmp_path: Path) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    printed = flyk("ext", "k8s", "kubeconfig", "demo", "--print", "--json")
    assert printed.exit_code == 0, printed.stderr
    data = json.loads(printed.stdout)
    target = tmp_path / "printed.json"
    target.write_text(printed.stdout)
    assert json.loads(kubectl("view", "--raw", "-o", "json", kubeconfig=target)) == data
    assert data["current-context"] == "flyk-demo" and data["kind"] == "Config"


def test_a_kubeconfig_that_cannot_be_written_exits_2_before_anything_is_made(
    flyk: Flyk, isolated_env: Path
) -> None:
    kube = isolated_env / ".kube"
    kube.mkdir()
    (kube / "config.lock").write_text("")
    held = flyk("ext", "k8s", "create", "lk")
    assert held.exit_code == 2 and "config.lock exists" in held.stderr
    nowhere = flyk("ext", "k8s", "create", "lk", "--kubeconfig", "/proc/flyk-x.yaml")
    assert nowhere.exit_code == 2
    assert "cannot write kubeconfig /proc/flyk-x.yaml" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr + held.stderr
    assert flyk("ext", "k8s", "list", "--json").stdout.strip() == "[]"


def test_status_json(flyk: Flyk) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    data = json.loads(flyk("ext", "k8s", "status", "demo", "--json").stdout)
    assert data["state"] == "started" and data["api_server"]["reachable"] is False
    assert data["checks"] == [{"name": "api-readyz", "status": "passing"}]


def test_kubeconfig_rebuild_merges_into_the_default_file(flyk: Flyk, isolated_env: Path) -> None:
    assert flyk("ext", "k8s", "create", "demo", "--no-switch-context").exit_code == 0
    config = isolated_env / ".kube" / "config"
    config.unlink()
    rebuilt = flyk("ext", "k8s", "kubeconfig", "demo")
    assert rebuilt.exit_code == 0, rebuilt.stderr
    assert kubectl("current-context").strip() == "flyk-demo"
    conflict = flyk("ext", "k8s", "kubeconfig", "demo", "--print", "--output", "x")
    assert conflict.exit_code == 2


def test_ctrl_c_exits_130_and_rolls_back(flyk: Flyk, tmp_path: Path) -> None:
    from tests.k8s.conftest import InterruptingTransport

    backend = LocalBackend(tmp_path / "db", timing=Timing.instant())
    transport = InterruptingTransport(backend.transport(), "POST", r"/machines$")
    result = flyk("ext", "k8s", "create", "demo", transport=transport)
    assert result.exit_code == 130
    assert "interrupted; what this run created has been removed" in result.stderr
    listed = flyk("ext", "k8s", "list", "--json", transport=backend.transport())
    assert listed.stdout.strip() == "[]"


def test_kubelet_api_url_follows_the_target(flyk: Flyk, tmp_path: Path) -> None:
    def api_url(result_stdout: str) -> str:
        machine = json.loads(result_stdout)["resources"][-1]
        return str(machine["config"]["env"]["FLYK_API_URL"])

    local = flyk("ext", "k8s", "create", "demo", "--dry-run", "--json")
    assert api_url(local.stdout) == "http://local.flyk"
    served = LocalBackend(tmp_path / "db", timing=Timing.instant()).serve()
    try:
        result = flyk(
            "ext", "k8s", "create", "demo", "--dry-run", "--json",
            env={"FLY_FLAPS_BASE_URL": served.url},
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        assert api_url(result.stdout) == served.url
        # A Fly.io target (a token, the default API URL), answered here by a local backend:
        # the dry run's checks read the platform.
        fly = flyk(
            "ext", "k8s", "create", "demo", "-r", "iad", "--dry-run", "--json",
            env={"FLY_API_TOKEN": "fo1_not_a_real_token"},
            transport=LocalBackend(tmp_path / "fly", timing=Timing.instant()).transport(),
        )  # fmt: skip
        assert fly.exit_code == 0, fly.stderr
        assert api_url(fly.stdout) == "http://_api.internal:4280"
        assert "fo1_not_a_real_token" not in fly.stdout + fly.stderr
    finally:
        served.close()


def test_kubelet_is_mounted_and_says_what_it_needs(flyk: Flyk) -> None:
    assert "virtual node" in flyk("ext", "k8s", "kubelet", "--help").stdout
    result = flyk("ext", "k8s", "kubelet")
    assert result.exit_code == 2 and "--cluster" in result.stderr


def test_parallel_create_processes_share_one_kubeconfig(isolated_env: Path) -> None:
    """Separate `flyk` processes, one local backend database, one ~/.kube/config."""
    import sys

    names = ["p1", "p2", "p3"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flyk", "ext", "k8s", "create", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for name in names
    ]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for proc in procs:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
    contexts = set(kubectl("get-contexts", "-o", "name").split())
    assert contexts == {f"flyk-{n}" for n in names}
    assert (isolated_env / ".kube" / "config").stat().st_mode & 0o777 == 0o600


FOREIGN_KUBECONFIG = b"""\
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: 'https://prod.example.com:6443'}
contexts:
- name: prod
  context: {cluster: prod, user: prod}
users:
- name: prod
  user: {token: abc}
current-context: prod
"""


def test_output_writes_a_standalone_file_and_refuses_a_foreign_one(
    flyk: Flyk, tmp_path: Path, isolated_env: Path
) -> None:
    foreign = tmp_path / "shared.yaml"
    foreign.write_bytes(FOREIGN_KUBECONFIG)
    refused = flyk("ext", "k8s", "create", "demo", "--output", str(foreign))
    assert refused.exit_code == 2, refused.stderr
    assert "already holds other kubeconfig entries" in refused.stderr
    assert f"--kubeconfig {foreign}" in refused.stderr
    assert foreign.read_bytes() == FOREIGN_KUBECONFIG
    assert flyk("ext", "k8s", "list", "--json").stdout.strip() == "[]"  # nothing was created

    own = tmp_path / "demo.yaml"
    created = flyk("ext", "k8s", "create", "demo", "--output", str(own))
    assert created.exit_code == 0, created.stderr
    assert f"written to {own} (a file of its own)" in created.stderr
    assert kubectl("get-contexts", "-o", "name", kubeconfig=own).split() == ["flyk-demo"]
    assert (own.stat().st_mode & 0o777) == 0o600
    assert not (isolated_env / ".kube").exists()

    again = flyk("ext", "k8s", "kubeconfig", "demo", "--output", str(own))
    assert again.exit_code == 0, again.stderr
    assert kubectl("get-contexts", "-o", "name", kubeconfig=own).split() == ["flyk-demo"]
    rebuilt = flyk("ext", "k8s", "kubeconfig", "demo", "--output", str(foreign))
    assert rebuilt.exit_code == 2 and "--kubeconfig" in rebuilt.stderr
    assert foreign.read_bytes() == FOREIGN_KUBECONFIG
    merged = flyk("ext", "k8s", "kubeconfig", "demo", "--kubeconfig", str(foreign))
    assert merged.exit_code == 0, merged.stderr
    assert set(kubectl("get-contexts", "-o", "name", kubeconfig=foreign).split()) == {
        "prod",
        "flyk-demo",
    }


def test_create_and_delete_leave_only_the_config_in_the_kube_dir(
    flyk: Flyk, isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    assert flyk("ext", "k8s", "delete", "demo", "--yes").exit_code == 0
    assert sorted(p.name for p in (isolated_env / ".kube").iterdir()) == ["config"]
    # a KUBECONFIG chain: nothing beside the files, written or not
    other = tmp_path / "chain"
    other.mkdir()
    (other / "a").write_bytes(FOREIGN_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", f"{other / 'a'}{os.pathsep}{other / 'b'}")
    assert flyk("ext", "k8s", "create", "two").exit_code == 0
    assert flyk("ext", "k8s", "delete", "two", "--yes").exit_code == 0
    assert sorted(p.name for p in other.iterdir()) == ["a"]
    assert sorted(p.name for p in (isolated_env / ".kube").iterdir()) == ["config"]


def test_keep_on_failure_says_how_to_resume_and_create_resumes(flyk: Flyk, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "db", timing=Timing.instant())
    backend.faults.add("server_error", method="POST", path=r"/machines$", times=None)
    failed = flyk(
        "ext", "k8s", "create", "demo", "--keep-on-failure",
        transport=backend.transport(), client_options=no_retries(),
    )  # fmt: skip
    assert failed.exit_code != 0
    assert (
        "resume with flyk ext k8s create demo (same flags), "
        "or clean up with flyk ext k8s delete demo --yes"
    ) in " ".join(failed.stderr.split())
    backend.faults.clear()
    listed = flyk("ext", "k8s", "list", "--json", transport=backend.transport())
    assert [(c["name"], c["state"]) for c in json.loads(listed.stdout)] == [("demo", "incomplete")]
    table = flyk("ext", "k8s", "list", transport=backend.transport())
    assert table.stdout.splitlines()[1].split()[:4] == ["demo", "personal", "iad", "incomplete"]
    rebuilt = flyk("ext", "k8s", "kubeconfig", "demo", transport=backend.transport())
    assert rebuilt.exit_code == 3 and "incomplete" in rebuilt.stderr
    assert "resume with flyk ext k8s create demo" in " ".join(rebuilt.stderr.split())
    planned = flyk(
        "ext", "k8s", "create", "demo", "--dry-run", "--json", transport=backend.transport()
    )
    assert planned.exit_code == 0, planned.stderr
    assert "volume" in json.loads(planned.stdout)["resumes"]
    resumed = flyk("ext", "k8s", "create", "demo", transport=backend.transport())
    assert resumed.exit_code == 0, resumed.stderr
    assert "Resuming the incomplete cluster demo" in resumed.stderr
    assert kubectl("current-context").strip() == "flyk-demo"
    again = flyk("ext", "k8s", "create", "demo", transport=backend.transport())
    assert again.exit_code == 5 and "already exists" in again.stderr


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["create", "dry-run"])
def test_unknown_org_exits_3_like_apps_list(flyk: Flyk, dry_run: tuple[str, ...]) -> None:
    apps = flyk("apps", "list", "-o", "nope")
    result = flyk("ext", "k8s", "create", "demo", "-o", "nope", *dry_run)
    assert result.exit_code == apps.exit_code == 3, result.stderr
    assert "unknown organization 'nope'" in result.stderr
    assert "flyk auth whoami" in result.stderr


def test_dry_run_of_an_existing_cluster_exits_5_and_changes_nothing(
    flyk: Flyk, isolated_env: Path
) -> None:
    assert flyk("ext", "k8s", "create", "demo").exit_code == 0
    config = isolated_env / ".kube" / "config"
    before = config.read_bytes()
    result = flyk("ext", "k8s", "create", "demo", "--dry-run")
    assert result.exit_code == 5 and "already exists" in result.stderr
    assert config.read_bytes() == before


@pytest.mark.served
def test_a_served_local_backend_gets_the_honest_notice(flyk: Flyk, tmp_path: Path) -> None:
    """`flyk local serve` behind FLY_FLAPS_BASE_URL, with no control-plane binary built,
    records the control plane without running it: create must not claim the cluster is ready
    and says how to get the real one; status must not try an API server that cannot exist."""
    served = LocalBackend(tmp_path / "db", timing=Timing.instant()).serve()
    env = {"FLY_FLAPS_BASE_URL": served.url}
    try:
        created = flyk("ext", "k8s", "create", "demo", env=env)
        assert created.exit_code == 0, created.stderr
        assert "is ready" not in created.stderr
        assert "control-plane binary is not built" in created.stderr
        assert "flyk ext k8s build" in created.stderr
        status = flyk("ext", "k8s", "status", "demo", "--json", env=env)
        assert status.exit_code == 0, status.stderr
        assert "simulated" in json.loads(status.stdout)["api_server"]["detail"]
    finally:
        served.close()


def test_help_wording(flyk: Flyk) -> None:
    create = flyk("ext", "k8s", "create", "--help").stdout
    assert "[NAME]" in create and "[[NAME]]" not in create
    delete = " ".join(flyk("ext", "k8s", "delete", "--help").stdout.split())
    assert "file to merge into" not in delete
    assert "remove the cluster's entries from" in delete


def test_create_again_on_another_kubeconfig_writes_the_entry_and_says_so(
    flyk: Flyk, tmp_path: Path
) -> None:
    made = tmp_path / "p3.yaml"
    assert flyk("ext", "k8s", "create", "p3", "--private", "--output", str(made)).exit_code == 0
    other = tmp_path / "other.yaml"
    wrong = flyk("ext", "k8s", "create", "p3", "--kubeconfig", str(made))
    assert wrong.exit_code == 5 and "private (--private) API" in wrong.stderr
    plan = flyk("ext", "k8s", "create", "p3", "--private", "--kubeconfig", str(other), "--dry-run")
    assert plan.exit_code == 0 and "already exists and is healthy" in plan.stdout
    assert "Machine config" not in plan.stdout and not other.exists()
    again = flyk("ext", "k8s", "create", "p3", "--private", "--kubeconfig", str(other))
    assert again.exit_code == 0, again.stderr
    assert "nothing on Fly was changed" in again.stderr and "had no entry" in again.stderr
    # On the local backend the API is the loopback port the backend publishes for the app.
    assert "server: https://127.0.0.1:" in kubectl("view", kubeconfig=other)


def test_a_larger_vm_size_takes_its_own_memory(flyk: Flyk) -> None:
    plan = flyk("ext", "k8s", "create", "vz", "--vm-size", "performance-2x", "--dry-run")
    assert plan.exit_code == 0, plan.stderr
    assert "performance 2 CPU, 4096 MB" in plan.stdout
    small = flyk("ext", "k8s", "create", "vz", "--vm-size", "performance-2x", "--vm-memory", "1gb")
    assert small.exit_code == 2 and "change --vm-memory" in small.stderr


def test_ctrl_c_during_delete_exits_130_naming_what_is_left(flyk: Flyk, tmp_path: Path) -> None:
    from tests.k8s.conftest import InterruptingTransport

    backend = LocalBackend(tmp_path / "db", timing=Timing.instant())
    assert flyk("ext", "k8s", "create", "demo", transport=backend.transport()).exit_code == 0
    transport = InterruptingTransport(backend.transport(), "DELETE", r"/apps/flyk-demo-personal$")
    result = flyk("ext", "k8s", "delete", "demo", "--yes", transport=transport)
    assert result.exit_code == 130, result.stderr
    assert "cluster demo is partly deleted" in result.stderr
    assert "flyk ext k8s delete demo --yes" in result.stderr
    again = flyk("ext", "k8s", "delete", "demo", "--yes", transport=backend.transport())
    assert again.exit_code == 0, again.stderr


def test_an_entry_that_is_another_clusters_is_never_replaced_or_removed(
    flyk: Flyk, isolated_env: Path
) -> None:
    """`flyk-demo` points at a cluster of the same name on another target."""
    other = isolated_env / "other.db"
    assert flyk("ext", "k8s", "create", "demo", env={"FLYK_LOCAL_DB": str(other)}).exit_code == 0
    config = isolated_env / ".kube" / "config"
    before = config.read_bytes()
    assert (
        flyk("ext", "k8s", "create", "demo", "--output", str(isolated_env / "own.yaml")).exit_code
        == 0
    )
    rebuilt = flyk("ext", "k8s", "kubeconfig", "demo")
    assert rebuilt.exit_code == 5 and rebuilt.stdout == ""
    error, hint = rebuilt.stderr.splitlines()[-2:]
    assert re.fullmatch(
        f"Error: kubeconfig {re.escape(str(config))} already has an entry flyk-demo for another "
        r"cluster \(server https://127\.0\.0\.1:\d+\); flyk leaves it as it is",
        error,
    )
    assert "kubectl config delete-context flyk-demo" in hint
    deleted = flyk("ext", "k8s", "delete", "demo", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert "kept context flyk-demo in ~/.kube/config: it points at another cluster" in (
        deleted.stderr
    )
    assert config.read_bytes() == before


def test_a_cluster_outside_personal_gets_a_context_with_its_org(flyk: Flyk) -> None:
    from flyk import config

    LocalBackend(config.local_db_path(), orgs=("acme",))
    created = flyk("ext", "k8s", "create", "same", "-o", "acme", "--json")
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["context"] == "flyk-same@acme"
    assert kubectl("current-context").strip() == "flyk-same@acme"


def test_list_without_org_lists_every_org_and_its_help_says_so(flyk: Flyk) -> None:
    from flyk import config

    LocalBackend(config.local_db_path(), orgs=("acme",))
    assert flyk("ext", "k8s", "create", "one").exit_code == 0
    assert flyk("ext", "k8s", "create", "two", "-o", "acme").exit_code == 0
    listed = json.loads(flyk("ext", "k8s", "list", "--json").stdout)
    assert [(c["name"], c["org"]) for c in listed] == [("two", "acme"), ("one", "personal")]
    only = json.loads(flyk("ext", "k8s", "list", "-o", "acme", "--json").stdout)
    assert [c["name"] for c in only] == ["two"]
    help_text = " ".join(flyk("ext", "k8s", "list", "--help").stdout.split())
    assert "Only this organization (default: every organization the token can use)" in help_text
    assert "default: personal" not in help_text


@pytest.mark.parametrize("contents", ["empty", "a machine", "a secret"])
@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)], ids=["create", "dry-run"])
def test_a_user_app_with_the_clusters_app_name_is_a_name_conflict(
    flyk: Flyk, contents: str, dry_run: tuple[str, ...]
) -> None:
    """Only an app carrying flyk's cluster markers is a cluster: any other app of that name is
    the user's, never adopted as an incomplete cluster, and no hint points at a delete."""
    assert flyk("--local", "apps", "create", "flyk-demo-personal").exit_code == 0
    if contents == "a machine":
        ran = flyk("--local", "m", "run", "nginx", "-a", "flyk-demo-personal", "--detach")
        assert ran.exit_code == 0, ran.stderr
    if contents == "a secret":
        with FlyClient(
            base_url="http://local.flyk",
            transport=LocalBackend(path=config.local_db_path()).transport(),
        ) as client:
            client.secrets.set("flyk-demo-personal", {"DATABASE_URL": "x"})
    before = flyk("--local", "m", "ls", "-a", "flyk-demo-personal", "-q").stdout
    result = flyk("--local", "ext", "k8s", "create", "demo", *dry_run)
    assert result.exit_code == 5, result.stderr
    assert result.stderr.splitlines()[-2:] == [
        "Error: cluster name demo is taken: app flyk-demo-personal exists in organization "
        "personal and is not a flyk cluster (it carries no cluster markers); nothing was "
        "changed",
        "       Choose another cluster name; flyk leaves app flyk-demo-personal alone.",
    ]
    assert "delete" not in result.stderr and "kubeconfig" not in result.stderr
    for command in (["kubeconfig", "demo"], ["status", "demo"], ["delete", "demo", "--yes"]):
        refused = flyk("--local", "ext", "k8s", *command)
        assert refused.exit_code == 3, (command, refused.stderr)
        assert refused.stderr.startswith("Error: no cluster demo in organization personal")
    assert flyk("--local", "ext", "k8s", "list", "-j").stdout.strip() == "[]"
    assert flyk("--local", "m", "ls", "-a", "flyk-demo-personal", "-q").stdout == before
    assert "flyk-demo-personal" in flyk("--local", "apps", "list", "-q").stdout


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--image", ""], "Error: invalid --image: it is empty"),
        (
            ["--image", "Bad::image"],
            "Error: invalid --image: 'Bad::image' is not an image reference",
        ),
        (
            ["--kubernetes-version", "bogus tag!"],
            "Error: --kubernetes-version 'bogus tag!' cannot be an image tag: it takes letters, "
            "digits, '_', '.' and '-' (not first)",
        ),
        (
            ["--k3s-version", "-v1"],
            "Error: --kubernetes-version '-v1' cannot be an image tag: it takes letters, "
            "digits, '_', '.' and '-' (not first)",
        ),
        (["--kubernetes-version", ""], "Error: --kubernetes-version is empty"),
    ],
)
def test_a_control_plane_image_or_version_that_cannot_be_one_is_refused(
    flyk: Flyk, args: list[str], first_line: str
) -> None:
    result = flyk("--local", "ext", "k8s", "create", "demo", "--dry-run", *args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.splitlines()[0] == first_line
    assert flyk("--local", "ext", "k8s", "list", "-j").stdout.strip() == "[]"


def test_a_kubernetes_version_with_build_metadata_is_taken(flyk: Flyk) -> None:
    result = flyk(
        "--local", "ext", "k8s", "create", "demo", "--dry-run", "-j",
        "--kubernetes-version", "v1.37.2+flyk1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "-control-plane:v1.37.2-flyk1-flyk" in result.stdout  # "+" is not a tag's


def test_status_counts_the_claims_volumes_and_delete_says_how_to_remove_kept_ones(
    flyk: Flyk,
) -> None:
    """The volumes the kubelet's provisioner makes in namespace apps (named by the claim's
    uid, records.claim_volume_name) are found on the platform, not in a local file."""
    from flyk.k8s import records

    assert flyk("ext", "k8s", "create", "pv").exit_code == 0
    client = FlyClient(transport=LocalBackend(config.local_db_path()).transport())
    app = "flyk-pv-default-0123abcd"
    client.apps.create(app, "personal")
    client.secrets.set(app, {"FLYK_CLUSTER": "pv", "FLYK_ORG": "personal"})
    volume = client.volumes.create(
        app, records.claim_volume_name("5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"), "iad", 1
    )
    status = json.loads(flyk("ext", "k8s", "status", "pv", "--json").stdout)
    assert status["claim_volumes"] == 1
    kept = flyk("ext", "k8s", "delete", "pv", "--yes", "--keep-volumes")
    assert kept.exit_code == 0, kept.stderr
    assert f"volume {volume.id} in app {app}" in kept.stderr
    assert "flyk volumes destroy <id> -a <app>" in kept.stderr
    assert [v.id for v in client.volumes.list(app)] == [volume.id]
    assert flyk("ext", "k8s", "delete", "pv", "--yes").exit_code == 0
    assert [a.name for a in client.apps.list("personal")] == []
