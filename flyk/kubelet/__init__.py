"""The virtual kubelet run as `flyk ext k8s kubelet`: every Pod bound to it runs as a Machine.

`run(config)` is what the CLI calls; `Kubelet(config, fly=...)` is the same thing with
start/stop for tests. lightkube is imported by the submodules only, so importing this
package stays cheap until `run` is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flyk.kubelet.config import Intervals, KubeletConfig, Taint, namespace_app_name

if TYPE_CHECKING:
    import threading

__all__ = ["Intervals", "KubeletConfig", "Taint", "namespace_app_name", "run"]


def run(config: KubeletConfig, *, stop: threading.Event | None = None) -> None:
    from flyk.kubelet.runner import run as run_kubelet

    run_kubelet(config, stop=stop)
