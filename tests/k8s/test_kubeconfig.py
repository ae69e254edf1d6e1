"""Every kubeconfig flyk writes is read back by the real kubectl (/usr/bin/kubectl)."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from flyk.errors import ConfigError
from flyk.k8s import kubeconfig as kc
from flyk.k8s.pki import ClusterPKI

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")

# Entries someone else put there: an exec-plugin user, file-path certificates, a namespace.
FOREIGN = """\
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: prod
  cluster:
    server: https://prod.example.com:6443
    certificate-authority: /etc/prod/ca.crt
    proxy-url: http://proxy.example.com:3128
users:
- name: prod-admin
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: aws
      args: [eks, get-token, --cluster-name, prod]
      env:
      - name: AWS_PROFILE
        value: prod
      interactiveMode: Never
      provideClusterInfo: false
- name: files-user
  user:
    client-certificate: /etc/prod/admin.crt
    client-key: /etc/prod/admin.key
contexts:
- name: prod
  context:
    cluster: prod
    user: prod-admin
    namespace: payments
current-context: prod
"""


@pytest.fixture(scope="module")
def pki() -> ClusterPKI:
    return ClusterPKI.generate("demo")


def entry_for(pki: ClusterPKI, cluster: str = "demo", server: str = "") -> kc.KubeconfigEntry:
    admin = pki.admin_credentials()
    return kc.KubeconfigEntry(
        cluster=cluster,
        server=server or f"https://flyk-{cluster}-personal.fly.dev:6443",
        ca_pem=pki.server_ca.cert_pem,
        client_cert_pem=admin.cert_pem,
        client_key_pem=admin.key_pem,
    )


def kubectl(*args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(
        [KUBECTL, "config", *args], capture_output=True, text=True, env=full_env, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def view(path_or_chain: str, **extra: str) -> dict[str, Any]:
    text = kubectl("view", "--raw", "-o", "json", env={"KUBECONFIG": path_or_chain, **extra})
    data: dict[str, Any] = json.loads(text)
    return data


def named(view_doc: dict[str, Any], section: str) -> dict[str, Any]:
    return {item["name"]: item for item in view_doc.get(section) or []}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_file_is_created_0600_and_kubectl_uses_it(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "new" / "config"
    result = kc.merge(entry_for(pki), explicit=target)
    assert result.files == (target,) and result.current_context_file == target
    assert mode(target) == 0o600
    seen = view(str(target))
    assert seen["current-context"] == "flyk-demo"
    assert named(seen, "clusters")["flyk-demo"]["cluster"]["server"].endswith(":6443")
    assert "flyk-demo" in kubectl("get-contexts", "-o", "name", env={"KUBECONFIG": str(target)})


def test_default_path_is_home_kube_config(pki: ClusterPKI, isolated_env: Path) -> None:
    kc.merge(entry_for(pki))
    default = isolated_env / ".kube" / "config"
    assert mode(default) == 0o600
    assert kubectl("current-context", env={"HOME": str(isolated_env)}).strip() == "flyk-demo"


def test_foreign_entries_come_out_unchanged(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    before = view(str(target))
    kc.merge(entry_for(pki), explicit=target)
    after = view(str(target))
    for section in ("clusters", "users", "contexts"):
        for name, item in named(before, section).items():
            assert named(after, section)[name] == item
    assert after["preferences"] == before["preferences"]
    assert after["current-context"] == "flyk-demo"
    kubectl("use-context", "prod", env={"KUBECONFIG": str(target)})
    assert view(str(target))["current-context"] == "prod"


# Scalars YAML 1.1 would type (a timestamp, an octal, yes/no, a float) in someone's entries.
TYPED_SCALARS = """\
apiVersion: v1
kind: Config
clusters:
- name: legacy
  cluster:
    server: https://legacy.example.com
    insecure-skip-tls-verify: true
users:
- name: oidc
  user:
    auth-provider:
      name: oidc
      config:
        expiry: 2024-01-01T00:00:00Z
        issued: 2023-12-31
        idp-issuer-url: https://idp.example.com
contexts:
- name: legacy
  context:
    cluster: legacy
    user: oidc
current-context: legacy
"""


def test_typed_looking_scalars_of_others_come_out_as_kubectl_read_them(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    target = tmp_path / "config"
    target.write_text(TYPED_SCALARS)
    before = view(str(target))
    kc.merge(entry_for(pki), explicit=target)
    after = view(str(target))
    for section in ("clusters", "users", "contexts"):
        assert (
            named(after, section)["legacy" if section != "users" else "oidc"]
            == named(before, section)["legacy" if section != "users" else "oidc"]
        )
    written = target.read_text()
    for line in ("expiry: 2024-01-01T00:00:00Z", "issued: 2023-12-31", "verify: true"):
        assert line in written


def test_a_scalar_kubectl_cannot_read_is_still_written_back_as_it_was(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    """`namespace: 0123` is the owner's to fix (kubectl refuses it); flyk neither turns it
    into 83 nor drops it."""
    target = tmp_path / "config"
    target.write_text(
        TYPED_SCALARS.replace("    user: oidc\n", "    user: oidc\n    namespace: 0123\n")
    )
    kc.merge(entry_for(pki), explicit=target)
    assert "    namespace: 0123\n" in target.read_text()


def test_no_switch_context_keeps_the_current_one(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    result = kc.merge(entry_for(pki), explicit=target, switch_context=False)
    assert result.current_context_file is None
    assert view(str(target))["current-context"] == "prod"
    kubectl("use-context", "flyk-demo", env={"KUBECONFIG": str(target)})


def test_existing_flyk_entry_is_updated_field_by_field(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    kc.merge(entry_for(pki, server="https://old:6443"), explicit=target)
    doc = yaml.safe_load(target.read_text())
    doc["contexts"][0]["context"]["namespace"] = "team-a"  # the user's own additions survive
    doc["clusters"][0]["cluster"]["tls-server-name"] = "flyk-demo-personal.fly.dev"
    doc["users"][0]["user"]["token"] = "stale"  # a competing credential is dropped
    target.write_text(yaml.safe_dump(doc))
    kc.merge(entry_for(pki, server="https://new:6443"), explicit=target)
    seen = view(str(target))
    assert named(seen, "clusters")["flyk-demo"]["cluster"]["server"] == "https://new:6443"
    assert named(seen, "clusters")["flyk-demo"]["cluster"]["tls-server-name"]
    assert named(seen, "contexts")["flyk-demo"]["context"]["namespace"] == "team-a"
    assert "token" not in named(seen, "users")["flyk-demo"]["user"]
    assert len(seen["clusters"]) == 1


def test_kubeconfig_chain_new_entries_go_where_kubectl_puts_them(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    first, second, third = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    second.write_text(FOREIGN)
    chain = os.pathsep.join(map(str, (first, second, third)))
    # What kubectl itself does with a new entry, on a copy of the same layout.
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(second, twin / "b")
    twin_chain = os.pathsep.join(str(twin / n) for n in "abc")
    kubectl("set-cluster", "probe", "--server=https://x", env={"KUBECONFIG": twin_chain})
    kubectl_home = next(
        n for n in "abc" if (twin / n).exists() and "probe" in (twin / n).read_text()
    )

    result = kc.merge(entry_for(pki), environ={"KUBECONFIG": chain})
    assert result.files == (tmp_path / kubectl_home,)
    assert not first.exists() and not third.exists()
    seen = view(chain)
    assert seen["current-context"] == "flyk-demo"
    assert "prod" in named(seen, "clusters")


def test_current_context_goes_where_kubectl_use_context_puts_it(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    """The first existing file takes current-context even when a later one set it: checked
    against what the real kubectl does with the same files."""
    first_text = (
        "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: https://a}\n"
    )
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for directory in (ours, theirs):
        directory.mkdir()
        (directory / "a").write_text(first_text)
        (directory / "b").write_text(FOREIGN)  # current-context: prod
    kc.merge(entry_for(pki), environ={"KUBECONFIG": f"{ours}/a{os.pathsep}{ours}/b"})
    chain = f"{theirs}/a{os.pathsep}{theirs}/b"
    kubectl("set-context", "flyk-demo", "--cluster=a", env={"KUBECONFIG": chain})
    kubectl("use-context", "flyk-demo", env={"KUBECONFIG": chain})
    for name in ("a", "b"):
        mine = yaml.safe_load((ours / name).read_text()).get("current-context")
        kubectls = yaml.safe_load((theirs / name).read_text()).get("current-context")
        assert mine == kubectls, name
    assert kubectl("current-context", env={"KUBECONFIG": f"{ours}/a{os.pathsep}{ours}/b"}) == (
        "flyk-demo\n"
    )


def test_chain_with_no_existing_file_writes_the_last_one(pki: ClusterPKI, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    chain = f"{first}{os.pathsep}{second}"
    kc.merge(entry_for(pki), environ={"KUBECONFIG": chain})
    assert second.exists() and not first.exists() and mode(second) == 0o600
    assert kubectl("current-context", env={"KUBECONFIG": chain}).strip() == "flyk-demo"


def test_chain_updates_entries_in_the_file_that_holds_them(pki: ClusterPKI, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(FOREIGN)
    kc.merge(entry_for(pki, server="https://old:6443"), explicit=second)
    second_before = view(str(second))
    chain = f"{first}{os.pathsep}{second}"
    result = kc.merge(entry_for(pki, server="https://new:6443"), environ={"KUBECONFIG": chain})
    # The entries live in b; current-context is set in a, the first file that sets one.
    assert set(result.files) == {first, second}
    assert named(view(str(second)), "clusters")["flyk-demo"]["cluster"]["server"] == (
        "https://new:6443"
    )
    assert "flyk-demo" not in named(view(str(first)), "clusters")
    assert view(str(first))["current-context"] == "flyk-demo"
    assert second_before["current-context"] == "flyk-demo"
    assert kubectl("current-context", env={"KUBECONFIG": chain}).strip() == "flyk-demo"
    kubectl("use-context", "prod", env={"KUBECONFIG": chain})


def test_remove_cleans_every_file_and_clears_current_context(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text(FOREIGN)
    kc.merge(entry_for(pki), explicit=second)
    kc.merge(entry_for(pki), explicit=first)
    chain = f"{first}{os.pathsep}{second}"
    before = view(str(first))
    result = kc.remove("flyk-demo", environ={"KUBECONFIG": chain})
    assert set(result.files) == {first, second} and result.current_context_cleared
    seen = view(chain)
    assert seen["current-context"] == ""
    for section in ("clusters", "users", "contexts"):
        assert "flyk-demo" not in named(seen, section)
        for name, item in named(before, section).items():
            if name != "flyk-demo":
                assert named(seen, section)[name] == item


def test_remove_leaves_another_current_context_alone(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    kc.merge(entry_for(pki), explicit=target, switch_context=False)
    result = kc.remove("flyk-demo", explicit=target)
    assert not result.current_context_cleared
    assert view(str(target))["current-context"] == "prod"


def test_remove_of_an_absent_entry_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    before = target.read_bytes()
    assert kc.remove("flyk-ghost", explicit=target).files == ()
    assert target.read_bytes() == before


def test_symlink_stays_a_symlink_and_existing_file_is_narrowed_to_0600(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(FOREIGN)
    real.chmod(0o644)
    link = tmp_path / "config"
    link.symlink_to(real)
    kc.merge(entry_for(pki), explicit=link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert mode(real) == 0o600
    assert view(str(link))["current-context"] == "flyk-demo"


def test_standalone_render_is_a_complete_kubeconfig(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "alone.yaml"
    target.write_text(entry_for(pki).render())
    seen = view(str(target))
    assert seen["current-context"] == "flyk-demo"
    assert named(seen, "users")["flyk-demo"]["user"]["client-key-data"]


@pytest.mark.parametrize(
    "content",
    [
        "clusters: [unclosed\n",
        "- just\n- a list\n",
        "clusters: 42\n",
        "contexts:\n- context: {}\n",
        "users:\n- name: x\n  user: oops\n",
        "current-context: [a]\n",
    ],
    ids=["yaml", "list", "clusters-int", "nameless", "user-str", "current-list"],
)
def test_malformed_kubeconfig_is_refused_and_left_byte_identical(
    pki: ClusterPKI, tmp_path: Path, content: str
) -> None:
    target = tmp_path / "config"
    target.write_text(content)
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="malformed") as info:
        kc.merge(entry_for(pki), explicit=target)
    assert str(target) in info.value.message
    with pytest.raises(ConfigError):
        kc.remove("flyk-demo", explicit=target)
    with pytest.raises(ConfigError):
        kc.check_writable(explicit=target)
    assert target.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lock"))]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_kubeconfig_is_refused(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    target.chmod(0)
    with pytest.raises(ConfigError, match="cannot read"):
        kc.merge(entry_for(pki), explicit=target)
    target.chmod(0o600)
    assert target.read_text() == FOREIGN


def test_non_utf8_kubeconfig_is_refused(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        kc.merge(entry_for(pki), explicit=target)
    assert target.read_bytes() == b"\xff\xfe\x00garbage"


def test_empty_file_is_a_valid_empty_kubeconfig(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text("")
    kc.merge(entry_for(pki), explicit=target)
    assert view(str(target))["current-context"] == "flyk-demo"


def test_parallel_threads_never_lose_an_entry(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    names = [f"c{i}" for i in range(12)]
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            kc.merge(entry_for(pki, cluster=name), explicit=target)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    contexts = set(named(view(str(target)), "contexts"))
    assert {f"flyk-{n}" for n in names} | {"prod"} == contexts
    assert not (tmp_path / "config.lock").exists()


def _merge_in_process(args: tuple[str, str, bytes, bytes, bytes]) -> None:
    path, name, ca, cert, key = args
    kc.merge(kc.KubeconfigEntry(name, f"https://{name}:6443", ca, cert, key), explicit=path)


def test_parallel_processes_never_corrupt_the_file(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    admin = pki.admin_credentials()
    jobs = [
        (str(target), f"p{i}", pki.server_ca.cert_pem, admin.cert_pem, admin.key_pem)
        for i in range(8)
    ]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_merge_in_process, jobs)
    contexts = set(named(view(str(target)), "contexts"))
    assert contexts == {f"flyk-p{i}" for i in range(8)}
    assert mode(target) == 0o600


def test_a_held_client_go_lock_is_waited_for_then_reported(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    (tmp_path / "config.lock").write_text("")
    with pytest.raises(ConfigError, match=r"config\.lock exists"):
        with kc.locked([target], timeout=0.2):
            pass
    assert target.read_text() == FOREIGN


def test_check_writable_reports_a_held_lock_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(FOREIGN)
    assert kc.check_writable(explicit=target) == [target]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]
    (tmp_path / "config.lock").write_text("")
    with pytest.raises(ConfigError, match=r"config\.lock exists"):
        kc.check_writable(explicit=target)


def test_unwritable_places_are_config_errors_naming_the_path(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"cannot write kubeconfig /proc/flyk-x\.yaml"):
        kc.check_writable(explicit="/proc/flyk-x.yaml")
    with pytest.raises(ConfigError, match=r"cannot write kubeconfig /proc/flyk-x\.yaml"):
        kc.merge(entry_for(pki), explicit="/proc/flyk-x.yaml")
    blocker = tmp_path / "file"
    blocker.write_text("")
    for call in (kc.check_writable, lambda explicit: kc.merge(entry_for(pki), explicit=explicit)):
        with pytest.raises(ConfigError, match=r"kubeconfig \S+/file/sub/config: "):
            call(explicit=blocker / "sub" / "config")


def test_a_symlinked_kubeconfig_is_locked_by_the_name_kubectl_locks(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(FOREIGN)
    link = tmp_path / "config"
    link.symlink_to(real)
    env = {**os.environ, "KUBECONFIG": str(link)}
    change = [KUBECTL, "config", "set-context", "prod", "--namespace=other"]
    with kc.locked([link]):
        # kubectl (client-go) takes `<path as given>.lock`: it must find flyk holding it.
        blocked = subprocess.run(change, capture_output=True, text=True, env=env, check=False)
        assert blocked.returncode != 0 and "config.lock" in blocked.stderr
        # and a writer reaching the same file by its real name is held off too
        with pytest.raises(ConfigError, match=r"kubeconfig\.lock exists"):
            with kc.locked([real], timeout=0.1):
                pass
    assert real.read_text() == FOREIGN
    subprocess.run(change, capture_output=True, env=env, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "dotfiles"]


def test_resolve_chain_follows_kubectl(tmp_path: Path) -> None:
    home = {"HOME": str(tmp_path)}
    assert kc.resolve_chain(None, home) == [tmp_path / ".kube" / "config"]
    env = {**home, "KUBECONFIG": f"{tmp_path}/a{os.pathsep}{os.pathsep}{tmp_path}/a{os.pathsep}b"}
    assert kc.resolve_chain(None, env) == [tmp_path / "a", Path("b")]
    assert kc.resolve_chain(tmp_path / "x", env) == [tmp_path / "x"]


def test_files_and_directories_outside_the_write_are_never_created(
    pki: ClusterPKI, tmp_path: Path
) -> None:
    existing, ghost = tmp_path / "config", tmp_path / "nowhere" / "config"
    existing.write_text(FOREIGN)
    chain = f"{ghost}{os.pathsep}{existing}"
    kc.merge(entry_for(pki), environ={"KUBECONFIG": chain})
    kc.remove("flyk-demo", environ={"KUBECONFIG": chain})
    kc.remove("flyk-demo", environ={"KUBECONFIG": str(tmp_path / "also-nowhere" / "config")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]


# -- a standalone file (`--output FILE`) ----------------------------------------------------


def test_standalone_file_holds_only_this_cluster(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "out" / "demo.yaml"
    result = kc.write_standalone(entry_for(pki), target)
    assert result.standalone and result.files == (target,)
    assert mode(target) == 0o600
    seen = view(str(target))
    assert seen["current-context"] == "flyk-demo"
    for section in ("clusters", "users", "contexts"):
        assert list(named(seen, section)) == ["flyk-demo"]
    # its own entries again (a second `kubeconfig NAME --output FILE`): replaced, still alone
    kc.write_standalone(entry_for(pki, server="https://elsewhere:6443"), target)
    clusters = named(view(str(target)), "clusters")
    assert list(clusters) == ["flyk-demo"]
    assert clusters["flyk-demo"]["cluster"]["server"] == "https://elsewhere:6443"


@pytest.mark.parametrize(
    "content",
    [
        FOREIGN,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\n",
        "apiVersion: v1\nkind: Config\ncontexts:\n- name: flyk-other\n  context: {}\n",
    ],
    ids=["foreign-entries", "foreign-current-context", "another-flyk-cluster"],
)
def test_standalone_refuses_a_file_holding_anything_else(
    pki: ClusterPKI, tmp_path: Path, content: str
) -> None:
    target = tmp_path / "config"
    target.write_text(content)
    before = target.read_bytes()
    with pytest.raises(ConfigError, match="already holds other kubeconfig entries") as info:
        kc.write_standalone(entry_for(pki), target)
    assert "\n" not in info.value.message
    assert info.value.hint and f"--kubeconfig {target}" in info.value.hint
    with pytest.raises(ConfigError):
        kc.check_standalone(target, "flyk-demo")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]


def test_standalone_takes_an_empty_file(pki: ClusterPKI, tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text("")
    kc.write_standalone(entry_for(pki), target)
    assert view(str(target))["current-context"] == "flyk-demo"


def test_malformed_hint_does_not_suggest_the_flag_already_given(
    pki: ClusterPKI, tmp_path: Path, isolated_env: Path
) -> None:
    target = tmp_path / "config"
    target.write_text("clusters: {oops\n")
    with pytest.raises(ConfigError) as chosen:
        kc.merge(entry_for(pki), explicit=target)
    assert chosen.value.hint and "--kubeconfig" not in chosen.value.hint
    assert "another file" in chosen.value.hint
    with pytest.raises(ConfigError) as standalone:
        kc.check_standalone(target, "flyk-demo")
    assert standalone.value.hint and "--output" not in standalone.value.hint
    default = isolated_env / ".kube" / "config"
    default.parent.mkdir()
    default.write_text("clusters: {oops\n")
    with pytest.raises(ConfigError) as implicit:
        kc.merge(entry_for(pki))
    assert implicit.value.hint and "--kubeconfig" in implicit.value.hint


@pytest.mark.parametrize("how", ["KUBECONFIG", "--kubeconfig"])
def test_a_tilde_in_the_path_is_a_directory_named_tilde_as_for_kubectl(
    pki: ClusterPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """kubectl expands no `~` in KUBECONFIG or --kubeconfig (the shell does, when unquoted)."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    env = {"HOME": str(home), "KUBECONFIG": "~/t.yaml"} if how == "KUBECONFIG" else {}
    explicit = "~/t.yaml" if how == "--kubeconfig" else None
    kc.merge(entry_for(pki), explicit=explicit, environ=env)
    assert (tmp_path / "~" / "t.yaml").is_file() and not (home / "t.yaml").exists()
    shown = kubectl("view", env={**os.environ, "HOME": str(home), "KUBECONFIG": "~/t.yaml"})
    assert "flyk-demo" in shown
