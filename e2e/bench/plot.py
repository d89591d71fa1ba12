#!/usr/bin/python3
"""Plots of the benchmark scripts' measurements (matplotlib, PNG), made from the CSV files the
scripts write next to their report. Numbers only; nothing here decides pass or fail.

  plot.py throughput CSV PNG   CSV: sink,client,round,requests_per_second
  plot.py rate CSV PNG         CSV: limit,second,accepted  (the partner's per-second counts)
"""
import csv
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def throughput(src, out):
    rows = list(csv.DictReader(open(src)))
    sinks = list(dict.fromkeys(r["sink"] for r in rows))
    clients = list(dict.fromkeys(r["client"] for r in rows))
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    width = 0.8 / len(clients)
    for ci, client in enumerate(clients):
        for si, sink in enumerate(sinks):
            values = [float(r["requests_per_second"]) for r in rows if r["sink"] == sink and r["client"] == client]
            if not values:
                continue
            x = si + (ci - (len(clients) - 1) / 2) * width
            ax.bar(x, statistics.median(values), width * 0.9, color=f"C{ci}", label=client if si == 0 else None)
            ax.plot([x] * len(values), values, "k.", markersize=4)
    ax.set_xticks(range(len(sinks)), sinks)
    ax.set_ylabel("requests/s (bar: median of rounds; dots: rounds)")
    ax.set_title("One core: courier-worker next to wrk into the same sink")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


def rate(src, out):
    rows = list(csv.DictReader(open(src)))
    limits = sorted({int(r["limit"]) for r in rows})
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for i, limit in enumerate(limits):
        series = sorted((int(r["second"]), int(r["accepted"])) for r in rows if int(r["limit"]) == limit)
        xs = [s for s, _ in series]
        ys = [100.0 * a / limit for _, a in series]
        ax.plot(xs, ys, marker="o", markersize=3, color=f"C{i}", label=f"limit {limit:,}/s")
    ax.axhline(100, color="k", linewidth=0.8)
    ax.set_xlabel("second of the run (first and last, partial, seconds dropped)")
    ax.set_ylabel("accepted by the partner, % of the limit")
    ax.set_title("Per-second rate at a limit (courier-worker --rate-override)")
    ax.set_ylim(90, 110)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("throughput", "rate"):
        sys.stderr.write("usage: plot.py throughput|rate CSV PNG\n")
        return 2
    {"throughput": throughput, "rate": rate}[argv[1]](argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
