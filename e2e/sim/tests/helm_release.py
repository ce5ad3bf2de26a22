"""Drive Helm 4 (helm-python-sdk) against a barge-sim cluster.

usage: helm_release.py KUBECONFIG CHART_DIR RELEASE
Renders the chart offline, installs it, upgrades it with new values, and prints one JSON
document with what each step returned; uninstall is a separate step:
       helm_release.py KUBECONFIG CHART_DIR RELEASE uninstall
"""

import json
import sys

import helm_python


def main() -> None:
    kubeconfig, chart_dir, release = sys.argv[1:4]
    step = sys.argv[4] if len(sys.argv) > 4 else "install"
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace="default") as cfg:
        if step == "uninstall":
            cfg.uninstall(release)
            print(json.dumps({"uninstalled": release}))
            return
        chart = helm_python.Chart.load(chart_dir)
        rendered = chart.render({"greeting": "hi"}, name=release, namespace="default")
        installed = cfg.install(chart, release, {"greeting": "hi"}, timeout=60)
        upgraded = cfg.upgrade(chart, release, {"greeting": "hey", "gadgetSize": 5}, timeout=60)
        listed = cfg.list()
        print(json.dumps({
            "rendered": rendered,
            "installed": installed,
            "upgraded": upgraded,
            "listed": listed,
        }, default=str))


if __name__ == "__main__":
    main()
