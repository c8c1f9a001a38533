"""``python -m bench``: one run, one table (bench/results.md) and plots, so ratios are comparable.

``--quick`` skips grading throughput and the book (for trying changes to the optimizers).
``--soak N`` runs only the soak (bench/soak.py: N submissions through ``course-autograde`` with
``--jobs 2`` and on a two-worker LocalCluster) and replaces the soak part of results.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import grading, steps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    torch_version = "not installed"
    try:
        import torch

        torch_version = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"torch {torch_version}; {datetime.date.today().isoformat()}; load average at start "
        f"{os.getloadavg()[0]:.2f}"
    )


def step_section(times: dict, bw1: float, bwn: float) -> list:
    impls = ["ours", "torch foreach", "torch single-tensor", "torch fused"]
    lines = [
        "## Step time (ms, median of paired runs)",
        "",
        f"Copy bandwidth measured in this run: {bw1 / 1e9:.1f} GB/s on one core, {bwn / 1e9:.1f} GB/s on "
        f"{os.cpu_count()} cores. Floor = bytes touched per parameter x n / bandwidth "
        f"(SGD+momentum {steps.BYTES_PER_PARAM['SGD+momentum']} B, Adam/AdamW {steps.BYTES_PER_PARAM['Adam']} B).",
        "",
        "| optimizer | n | " + " | ".join(impls) + " | floor 1 core | floor all cores | ours/floor(all) "
        "| ours/foreach | ours/fused |",
        "|" + "---|" * (len(impls) + 7),
    ]
    for name in steps.OURS:
        for n in steps.SIZES:
            row = {i: times.get((name, i, n)) for i in impls}
            floor1 = steps.BYTES_PER_PARAM[name] * n / bw1
            floorn = steps.BYTES_PER_PARAM[name] * n / bwn
            cells = [f"{row[i] * 1e3:.3f}" if row[i] else "-" for i in impls]
            ratio = lambda other, row=row: f"{row['ours'] / row[other]:.2f}" if row.get(other) else "-"  # noqa: E731
            lines.append(
                f"| {name} | {n:.0e} | " + " | ".join(cells) + f" | {floor1 * 1e3:.3f} | {floorn * 1e3:.3f} | "
                f"{row['ours'] / floorn:.2f} | {ratio('torch foreach')} | {ratio('torch fused')} |"
            )
    return lines


def targets(times: dict, bwn: float, peaks: dict) -> list:
    def t(name, impl, n):
        return times.get((name, impl, n))

    checks = []
    for name in ("Adam", "AdamW"):
        for n in (10**6, 10**7):
            ours, foreach = t(name, "ours", n), t(name, "torch foreach", n)
            if foreach:
                checks.append(
                    (
                        f"{name} faster than torch foreach at {n:.0e}",
                        ours < foreach,
                        f"{ours * 1e3:.2f} vs {foreach * 1e3:.2f} ms",
                    )
                )
        fused = t(name, "torch fused", 10**7)
        if fused:
            checks.append(
                (
                    f"{name} within 4x of torch fused at 1e7",
                    t(name, "ours", 10**7) <= 4 * fused,
                    f"{t(name, 'ours', 10**7) / fused:.2f}x",
                )
            )
    floor = steps.BYTES_PER_PARAM["SGD+momentum"] * 10**7 / bwn
    sgd = t("SGD+momentum", "ours", 10**7)
    checks.append(("SGD+momentum within 2x of its floor (all cores) at 1e7", sgd <= 2 * floor, f"{sgd / floor:.2f}x"))
    for label, multiple in peaks.items():
        if "exported" in label:
            checks.append((f"transient peak of {label} <= 1x", multiple <= 1.0, f"{multiple:.3f}x"))
    return ["## Targets", "", "| target | met | measured |", "|---|---|---|"] + [
        f"| {label} | {'yes' if ok else '**no**'} | {value} |" for label, ok, value in checks
    ]


def plot(times: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, name in zip(axes, steps.OURS):
        for impl in ("ours", "torch foreach", "torch single-tensor", "torch fused"):
            xs = [n for n in steps.SIZES if (name, impl, n) in times]
            if xs:
                ax.loglog(xs, [times[(name, impl, n)] * 1e3 for n in xs], marker="o", label=impl)
        ax.set(title=name, xlabel="parameters")
    axes[0].set_ylabel("ms per step")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--soak", type=int, metavar="N", help="only the soak, with N submissions (e.g. 1000)")
    args = parser.parse_args(argv)
    if args.soak:
        from . import soak

        lines = soak.soak(args.soak)
        soak.write(lines, HERE / "results.md")
        print("\n".join(lines))
        return 0
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine()}",
        "",
        "Regenerate with `make bench` (one run: every ratio below comes from the same run).",
        "",
    ]
    bw1, bwn = steps.copy_bandwidth(1), steps.copy_bandwidth(os.cpu_count() or 1)
    print("timing optimizer steps...", file=sys.stderr)
    times = steps.step_times()
    peaks = steps.peak_multiples()
    lines += step_section(times, bw1, bwn) + [""]
    lines += targets(times, bwn, peaks) + [""]
    lines += [
        "## Transient peak of one step (tracemalloc, 1e6 float32 parameters)",
        "",
        "| step | peak / parameter bytes |",
        "|---|---|",
    ]
    lines += [f"| {label} | {multiple:.3f} |" for label, multiple in peaks.items()] + [""]
    plot(times, HERE / "step_time.png")
    lines += ["![step time](step_time.png)", ""]
    if not args.quick:
        lines += grading_section()
        lines += build_section()
    (HERE / "results.md").write_text("\n".join(lines) + "\n" + kept_soak_section(HERE / "results.md"))
    print("\n".join(lines))
    return 0


def kept_soak_section(results_md: Path) -> str:
    """The soak's section of the last results (``--soak`` runs for hours, so ``make bench`` keeps it)."""
    text = results_md.read_text() if results_md.exists() else ""
    _, marker, rest = text.partition("## Soak (scale)")
    return "\n" + marker + rest.partition("\n## ")[0].rstrip("\n") + "\n" if marker else ""


def grading_section() -> list:
    print("grading the sample class (hardened serial, --jobs 2, stock nbgrader)...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        paths = grading.sample_class(Path(tmp))
        serial = grading.hardened(paths, 1)
        parallel = grading.hardened(paths, 2)
        stock = grading.stock(paths)
        parts = grading.breakdown(next(p for p in paths if p.parts[-3].startswith("correct-")))
    n = len(paths)
    lines = [
        "## Grading throughput",
        "",
        f"{n} notebooks of the sample class (the correct and catalogued-bug ones: stock nbgrader cannot "
        "grade the hostile and broken ones at all).",
        "",
        "| grader | total s | s per notebook | CPU s per notebook | peak RSS per grading worker | "
        "peak RSS per kernel/probe |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in (
        ("hardened, serial", serial),
        ("hardened, --jobs 2", parallel),
        ("stock nbgrader autograde", stock),
    ):
        lines.append(
            f"| {label} | {r['seconds']:.1f} | {r['per_notebook']:.2f} | {r['cpu_per_notebook']:.2f} | "
            f"{r['worker_rss'] / 2**20:.0f} MiB | "
            f"{r['sandboxed_rss'] / 2**20:.0f} MiB |"
        )
    ratio, speedup = serial["per_notebook"] / stock["per_notebook"], serial["seconds"] / parallel["seconds"]
    probes = parts["hidden checks (4 sandboxed probes)"]
    lines += [
        "",
        f"- hardened / stock per notebook: {ratio:.2f}x (target at most 0.5x: "
        f"{'met' if ratio <= 0.5 else '**not met**'})",
        f"- --jobs 2 speed-up over serial: {speedup:.2f}x (target at least 1.8x: "
        f"{'met' if speedup >= 1.8 else '**not met**'})",
        f"- hidden checks of one correct notebook (4 probes): {probes:.2f} s (target at most 1.5 s: "
        f"{'met' if probes <= 1.5 else '**not met**'})",
        f"- serial and parallel scores identical: {serial['scores'] == parallel['scores']}",
        f"- the two ratio targets together: on {os.cpu_count()} cores, 0.5x stock serially and 1.8x more with "
        f"--jobs 2 would need at most {0.5 * stock['per_notebook'] * os.cpu_count() / 1.8:.2f} CPU s per "
        f"notebook; hardened grading spends {serial['cpu_per_notebook']:.2f} (stock {stock['cpu_per_notebook']:.2f}, "
        "which runs the same kernel on the same cells)",
        "",
        "Where one hardened grading's time goes (measured separately):",
        "",
        "| part | seconds |",
        "|---|---|",
    ] + [f"| {k} | {v:.2f} |" for k, v in parts.items()]
    lines += [
        "",
        "At these rates a 10,000-submission course takes "
        f"{10_000 * parallel['per_notebook'] / 3600:.1f} machine-hours on one 2-core machine "
        f"(--jobs 2); see ARCHITECTURE.md for spreading it over machines.",
        "",
    ]
    return lines


def build_section() -> list:
    from tools.run_notebook import run

    _, notebook_seconds = run(ROOT / "source/07_optimizers/optimizers.ipynb")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "tools.book", out], cwd=ROOT, check=True, capture_output=True)
    book_seconds = time.perf_counter() - start
    return [
        "## Full runs",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| reference notebook, fresh kernel | {notebook_seconds:.1f} |",
        f"| book build (sphinx-build -W, page executed) | {book_seconds:.1f} |",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
