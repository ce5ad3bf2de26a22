"""Drive Helm 4 (helm-python-sdk) over Barge's chart for operator/tests/packaging.rs.

usage: packaging_helm.py CHART_DIR RELEASE NAMESPACE render
           lints the chart (strict), renders it offline with its default values, and prints
           {"lint": ..., "rendered": {template: manifest}, "crds": [{"name", "filename", "data"}]}
       packaging_helm.py CHART_DIR RELEASE NAMESPACE install KUBECONFIG
           installs it into NAMESPACE (created if missing) and prints {"installed": release}
"""

import json
import sys

import helm_python


def main() -> None:
    chart_dir, release, namespace, step = sys.argv[1:5]
    if step == "render":
        chart = helm_python.Chart.load(chart_dir)
        lint = helm_python.lint(chart_dir, strict=True, namespace=namespace)
        rendered = chart.render(name=release, namespace=namespace, is_install=True)
        print(json.dumps({"lint": lint, "rendered": rendered, "crds": chart.crds}, default=str))
    elif step == "install":
        kubeconfig = sys.argv[5]
        with helm_python.Config(kubeconfig_path=kubeconfig, namespace=namespace) as cfg:
            installed = cfg.install(
                chart_dir, release, namespace=namespace, create_namespace=True, timeout=60
            )
            print(json.dumps({"installed": installed}, default=str))
    else:
        sys.exit(f"unknown step {step!r}")


if __name__ == "__main__":
    main()
