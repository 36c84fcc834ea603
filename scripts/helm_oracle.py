#!/usr/bin/env python3
"""Independent oracle for `airlock chart images`: renders a chart archive with the real Helm
engine (Helm v4.2.3's Go library, bundled by PyPI helm-python-sdk 0.2.2) and prints, as JSON,
the sorted set of every string field named `image` in the rendered manifests, as written.

usage: helm_oracle.py CHART.tgz [VALUES.yaml]
Release `rel`, namespace `ns`; NOTES.txt is skipped. Exit 1 with the error if Helm fails.
"""
import json
import os
import re
import sys
import tempfile

os.environ["HOME"] = tempfile.mkdtemp()
import helm_python as helm  # noqa: E402
import yaml  # noqa: E402


def images(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "image" and isinstance(v, str):
                out.add(v)
            else:
                images(v, out)
    elif isinstance(node, list):
        for v in node:
            images(v, out)


def main():
    chart = helm.Chart.load_archive(open(sys.argv[1], "rb").read())
    values = {}
    if len(sys.argv) > 2:
        values = yaml.safe_load(open(sys.argv[2])) or {}
    try:
        rendered = chart.render(values, name="rel", namespace="ns")
    except Exception as e:  # the engine's error, for the comparison to report
        print(json.dumps({"error": str(e)}))
        return
    out = set()
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in re.split(r"(?:^|\s*\n)---\s*", text.strip()):
            if doc.strip():
                images(yaml.safe_load(doc), out)
    print(json.dumps({"images": sorted(out)}))


main()
