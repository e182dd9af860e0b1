#!/usr/bin/env python3
"""Checks bench/report.py's grading on made-up results: a target is met only when it holds in
every run, and a peer that is missing or failed is named as not measured, with the reason.
bench/run.sh runs it before every report (so CI's `--quick` run does too)."""
import json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(scenario, system, n, wall, status=0, stderr="", **extra):
    r = {"scenario": scenario, "system": system, "run": n, "wall": wall, "cpu": 0.1,
         "rss_kib": 10240, "status": status}
    if stderr:
        r["stderr"] = stderr
    r.update(extra)
    return r


def report(results, meta):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "results.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
        with open(os.path.join(d, "meta.jsonl"), "w") as f:
            f.writelines(json.dumps({"key": k, "value": v}) + "\n" for k, v in meta.items())
        return subprocess.run([sys.executable, os.path.join(HERE, "report.py"),
                               os.path.join(d, "results.jsonl"), os.path.join(d, "meta.jsonl"), d],
                              check=True, capture_output=True, text=True).stdout


def target_row(page, scenario):
    rows = [l for l in page.splitlines() if l.startswith(f"| {scenario} |")]
    assert len(rows) == 1, f"one target row for {scenario!r}, got {rows}"
    return rows[0]


def expect(cond, what, page):
    if not cond:
        sys.exit(f"test_report: {what}\n--- page ---\n{page}")


results = [
    # debian-base: every ctr run at least 3x strata's slowest: met.
    run("pull-debian-base", "strata", 1, 1.0), run("pull-debian-base", "strata", 2, 1.1),
    run("pull-debian-base", "ctr", 1, 3.4, daemon_kib=51200, daemon_rest_kib=30720),
    run("pull-debian-base", "ctr", 2, 3.5, daemon_kib=40960, daemon_rest_kib=30720),
    # python: the medians give 3.1x, strata's slowest run against ctr's fastest 2.5x.
    run("pull-python", "strata", 1, 1.0), run("pull-python", "strata", 2, 1.2),
    run("pull-python", "strata", 3, 1.0),
    run("pull-python", "ctr", 1, 3.1), run("pull-python", "ctr", 2, 3.0), run("pull-python", "ctr", 3, 3.3),
    # multi-all: ctr fails every run, docker is not run (the bench says why).
    run("pull-multi-all", "strata", 1, 2.0),
    run("pull-multi-all", "ctr", 1, 0.5, status=1,
        stderr="unpacking...\nctr: no processor for media-type application/vnd.in-toto+json\n"),
    # df: warm median under 200 ms, one run over it.
    run("df-warm", "strata", 1, 0.05), run("df-warm", "strata", 2, 0.05), run("df-warm", "strata", 3, 0.25),
    # containers: ctr is not installed.
    run("create", "strata", 1, 0.02),
]
meta = {"notmeasured.pull-multi-all.docker": "docker pull has no every-platform mode",
        "notmeasured.containers.ctr": "containerd or ctr is not installed", "df.images": "1000"}
page = report(results, meta)

row = target_row(page, "pull of debian-base")
expect("met (every run)" in row and "3.29× (3.09–3.50)" in row, "debian-base is met in every run", page)
row = target_row(page, "pull of python")
expect("not yet (the median meets it, not every run)" in row, "python is met on the median only", page)
expect("3.10× (2.50–3.30)" in row, "python's ratio range pairs the extremes", page)
row = target_row(page, "pull of multi-all")
expect("not measured: exit status 1: ctr: no processor for media-type" in row,
       "ctr's failure on multi-all is the target's result", page)
expect("- docker, multi-all: not measured: docker pull has no every-platform mode" in page,
       "docker's reason for multi-all is listed", page)
row = target_row(page, "`system df` on 1000 images, warm (page cache kept)")
expect("not yet (the median meets it" in row, "df's slowest run misses 200 ms", page)
row = target_row(page, "container create latency (warm)")
expect("not measured: containerd or ctr is not installed" in row, "a missing ctr is said", page)
expect("10.0 + 50.0 MiB (daemon at rest 30.0)" in page, "ctr's memory counts containerd's", page)
print("test_report: ok")
