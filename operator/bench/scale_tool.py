#!/usr/bin/env python3
"""Helpers of operator/bench/scale.sh: generate the bench objects, summarize package states
read from the apiserver, and pick counters out of the operator's /metrics text.

Subcommands:
  gen-base DIR NS DESTS DATA_GLOB        Datum `bench` + DESTS suspended Destinations -> DIR/base.yaml
  gen-packages DIR NS PKGS DESTS DATA_DIR PRIORITY CHUNK
                                          packages in chunk files DIR/pkgs-<priority>-<n>.yaml
  gen-active DIR NS DESTS PKGS URL RPS RECORDS DATA_DIR [HDFS_URL HDFS_DIR]
                                          unsuspended Destinations + packages -> DIR/active.yaml
  summarize REASON [PREFIX]               stdin: a DeliveryPackageList JSON; prints
                                          "total settled running waiting" where settled counts
                                          packages whose observedGeneration == generation and
                                          whose Waiting condition is True with REASON
  sent PREFIX OUT                         stdin: a DeliveryPackageList JSON; writes {name: records sent}
  progressing BEFORE AFTER                prints how many packages sent records between two `sent` files
  metric NAME LABEL_SUBSTRING             stdin: /metrics text; prints the sum of the matching series
"""

import json
import os
import sys


def destination(name, ns, url, suspend, rps):
    return (
        "apiVersion: courier.dev/v1alpha1\nkind: Destination\n"
        f"metadata: {{ name: {name}, namespace: {ns} }}\n"
        "spec:\n"
        f"  suspend: {'true' if suspend else 'false'}\n"
        f"  endpoint: {{ url: \"{url}\" }}\n"
        f"  rateLimit: {{ requestsPerSecond: {rps} }}\n"
        "  workers: { min: 1, max: 1, cooldownSeconds: 30 }\n"
    )


def package(name, ns, dest, path, priority, hdfs_url=None):
    source = (
        f"{{ hdfs: {{ url: \"{hdfs_url}\", paths: [\"{path}\"] }} }}" if hdfs_url
        else f"{{ file: {{ paths: [\"{path}\"] }} }}"
    )
    return (
        "apiVersion: courier.dev/v1alpha1\nkind: DeliveryPackage\n"
        f"metadata: {{ name: {name}, namespace: {ns} }}\n"
        "spec:\n"
        f"  destinationRef: {{ name: {dest} }}\n"
        "  datumRef: { name: bench }\n"
        f"  priority: {priority}\n"
        f"  source: {source}\n"
    )


DATUM = (
    "apiVersion: courier.dev/v1alpha1\nkind: Datum\n"
    "metadata: {{ name: bench, namespace: {ns} }}\n"
    "spec:\n  format: {{ type: JsonLines }}\n"
    "  request:\n    pathTemplate: /records\n"
    "    idempotencyKey: {{ header: Idempotency-Key, field: id }}\n"
)


def write_records(path, prefix, count):
    with open(path, "w") as f:
        for r in range(count):
            f.write(json.dumps({"id": f"{prefix}-{r}", "payload": "x" * 40}) + "\n")


def gen_base(out, ns, dests, data_dir):
    os.makedirs(data_dir, exist_ok=True)
    for i in range(10):
        write_records(os.path.join(data_dir, f"part-{i}.jsonl"), f"idle-{i}", 3)
    docs = [DATUM.format(ns=ns)]
    docs += [destination(f"dest-{d:03d}", ns, "http://127.0.0.1:9/", True, 10) for d in range(dests)]
    with open(os.path.join(out, "base.yaml"), "w") as f:
        f.write("---\n".join(docs))


def gen_packages(out, ns, pkgs, dests, data_dir, priority, chunk):
    docs = [
        package(f"pkg-{i:05d}", ns, f"dest-{i % dests:03d}", os.path.join(data_dir, f"part-{i % 10}.jsonl"), priority)
        for i in range(pkgs)
    ]
    for n, start in enumerate(range(0, len(docs), chunk)):
        with open(os.path.join(out, f"pkgs-{priority}-{n:03d}.yaml"), "w") as f:
            f.write("---\n".join(docs[start:start + chunk]))


def gen_active(out, ns, dests, pkgs, url, rps, records, data_dir, hdfs_url=None, hdfs_dir=None):
    """Files in data_dir; with hdfs_url the packages read them from hdfs_dir (put there by the
    caller), so that worker pods reach them."""
    os.makedirs(data_dir, exist_ok=True)
    docs = [destination(f"active-{d}", ns, url, False, rps) for d in range(dests)]
    for i in range(pkgs):
        path = os.path.join(data_dir, f"active-{i}.jsonl")
        write_records(path, f"active-{i}", records)
        source_path = f"{hdfs_dir}/active-{i}.jsonl" if hdfs_url else path
        docs.append(package(f"active-{i:02d}", ns, f"active-{i % dests}", source_path, 0, hdfs_url))
    with open(os.path.join(out, "active.yaml"), "w") as f:
        f.write("---\n".join(docs))


def summarize(reason, prefix):
    items = json.load(sys.stdin).get("items", [])
    total = settled = running = waiting = 0
    for p in items:
        if not p["metadata"]["name"].startswith(prefix):
            continue
        total += 1
        status = p.get("status") or {}
        phase = status.get("phase")
        running += phase == "Running"
        waiting += phase == "Waiting"
        fresh = status.get("observedGeneration") == p["metadata"].get("generation")
        cond = any(
            c.get("type") == "Waiting" and c.get("status") == "True" and c.get("reason") == reason
            for c in status.get("conditions") or []
        )
        settled += fresh and cond
    print(total, settled, running, waiting)


def sent(prefix, out):
    items = json.load(sys.stdin).get("items", [])
    counts = {
        p["metadata"]["name"]: ((p.get("status") or {}).get("progress") or {}).get("records", {}).get("sent", 0)
        for p in items
        if p["metadata"]["name"].startswith(prefix)
    }
    with open(out, "w") as f:
        json.dump(counts, f)


def progressing(before, after):
    with open(before) as f:
        a = json.load(f)
    with open(after) as f:
        b = json.load(f)
    print(sum(1 for name, n in b.items() if n != a.get(name, 0)))


def metric(name, label):
    total = 0.0
    for line in sys.stdin:
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    print(int(total))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "gen-base":
        gen_base(args[0], args[1], int(args[2]), args[3])
    elif cmd == "gen-packages":
        gen_packages(args[0], args[1], int(args[2]), int(args[3]), args[4], int(args[5]), int(args[6]))
    elif cmd == "gen-active":
        gen_active(args[0], args[1], int(args[2]), int(args[3]), args[4], int(args[5]), int(args[6]), args[7],
                   *args[8:10])
    elif cmd == "summarize":
        summarize(args[0], args[1] if len(args) > 1 else "")
    elif cmd == "sent":
        sent(args[0], args[1])
    elif cmd == "progressing":
        progressing(args[0], args[1])
    elif cmd == "metric":
        metric(args[0], args[1] if len(args) > 1 else "")
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main(sys.argv)
