"""Drive Helm 4 (helm-python-sdk) over Barge's chart for operator/tests/packaging.rs.

usage: packaging_helm.py STEP CHART_DIR RELEASE NAMESPACE [--values JSON] [--kubeconfig PATH]
  render      lints the chart (strict, subcharts included) and renders it offline with the
              values; prints {"lint": ..., "rendered": {template: manifest}, "crds": [...]}
  install     installs it into NAMESPACE (created if missing); prints {"release": ...}
  upgrade     upgrades the release to the chart at CHART_DIR; prints {"release": ...}
  uninstall   uninstalls the release (CHART_DIR is ignored); prints {"release": ...}
  dependency-update
              resolves CHART_DIR's dependencies (file:// repositories) into its charts/

A Helm error (a values schema refusal, a failed render or install) is printed as
{"error": {"type": ..., "message": ...}} with exit status 3, so the caller can tell a refusal
it expects from a broken driver (any other exit status).
"""

import argparse
import json
import sys

import helm_python

HELM_REFUSED = 3


def run(args: argparse.Namespace) -> dict:
    values = json.loads(args.values) if args.values is not None else None
    if args.step == "render":
        lint = helm_python.lint(
            args.chart, values, strict=True, namespace=args.namespace, with_subcharts=True
        )
        with helm_python.Chart.load(args.chart) as chart:
            rendered = chart.render(
                values, name=args.release, namespace=args.namespace, is_install=True
            )
            return {"lint": lint, "rendered": rendered, "crds": chart.crds}
    if args.step == "dependency-update":
        helm_python.dependency_update(args.chart)
        return {"dependencies": helm_python.dependency_list(args.chart)}
    if args.kubeconfig is None:
        sys.exit(f"{args.step} needs --kubeconfig")
    with helm_python.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace) as cfg:
        if args.step == "install":
            release = cfg.install(
                args.chart,
                args.release,
                values,
                namespace=args.namespace,
                create_namespace=True,
                timeout=60,
            )
        elif args.step == "upgrade":
            release = cfg.upgrade(
                args.chart, args.release, values, namespace=args.namespace, timeout=60
            )
        elif args.step == "uninstall":
            release = cfg.uninstall(args.release, timeout=60)
        else:
            sys.exit(f"unknown step {args.step!r}")
    return {"release": release}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "step", choices=["render", "install", "upgrade", "uninstall", "dependency-update"]
    )
    parser.add_argument("chart")
    parser.add_argument("release")
    parser.add_argument("namespace")
    parser.add_argument("--values", help="user-supplied values as JSON")
    parser.add_argument("--kubeconfig")
    args = parser.parse_args()
    try:
        out = run(args)
    except helm_python.HelmError as e:
        print(json.dumps({"error": {"type": type(e).__name__, "message": str(e)}}))
        sys.exit(HELM_REFUSED)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
