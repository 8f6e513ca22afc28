"""Per-run and per-stage figures of ``graphnet train`` runs, from their log.json files.

    python benchmarks/summarise_runs.py RUNS_DIR

RUNS_DIR holds one folder per stage (``RUNS_DIR/<stage>/log.json``, or ``<stage>/run<k>/log.json``
for several runs). Prints, per run: status, preprocessing time, train time (DAWNBench:
preprocessing + epochs), train + final-TTA time (airbench's published times include its TTA), mean
epoch time, final test accuracy (TTA where the run had it) and train images/s; then per stage the
mean, min and max of accuracy, train time, train + TTA time and images/s.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def runs(root: Path) -> dict[str, list[dict]]:
    """{stage: [log, ...]} in run order."""
    found: dict[str, list[dict]] = {}
    for stage in sorted(p for p in root.iterdir() if p.is_dir()):
        logs = [stage / "log.json"] if (stage / "log.json").is_file() else sorted(
            stage.glob("run*/log.json"), key=lambda p: int(p.parent.name[3:]))
        found[stage.name] = [json.loads(p.read_text()) for p in logs]
    return found


def with_tta(result: dict) -> float:
    """Train time plus the final evaluation's (with its TTA): what airbench's published times count."""
    return result["train_time"] + result["eval_time"]


def table(found: dict[str, list[dict]]) -> str:
    lines = [f"{'stage':<24} {'run':>3}  {'status':<11} {'prep s':>7} {'train s':>8} {'+TTA s':>7} {'epoch s':>8} "
             f"{'test acc':>8} {'TTA':>3} {'images/s':>9}"]
    for stage, logs in found.items():
        for k, log in enumerate(logs, 1):
            rows, result = log.get("rows", []), log.get("result")
            epoch = statistics.fmean(r["train_time"] for r in rows) if rows else float("nan")
            tta = "yes" if rows and "tta_acc" in rows[-1] else "no"
            if result:
                lines.append(f"{stage:<24} {k:>3}  {log['status']:<11} {result['prep_time']:>7.2f} "
                             f"{result['train_time']:>8.2f} {with_tta(result):>7.2f} {epoch:>8.2f} "
                             f"{result['test_acc']:>8.4f} {tta:>3} {result['images_per_s']:>9.0f}")
            else:
                lines.append(f"{stage:<24} {k:>3}  {log.get('status', '?'):<11} {'-':>7} {'-':>8} {'-':>7} "
                             f"{epoch:>8.2f} {'-':>8} {tta:>3} {'-':>9}  {log.get('reason', '')}")
    lines.append("")
    lines.append(f"{'stage':<24} {'runs':>4}  {'test acc mean / min / max':<27} {'train s mean / min / max':<26} "
                 f"{'+TTA s mean / min / max':<26} images/s mean / min / max")
    for stage, logs in found.items():
        results = [log["result"] for log in logs if log.get("result")]
        if not results:
            continue

        def three(values: list[float], fmt: str) -> str:
            return " / ".join(format(v, fmt) for v in (statistics.fmean(values), min(values), max(values)))

        def of(key: str) -> list[float]:
            return [r[key] for r in results]

        lines.append(f"{stage:<24} {len(results):>4}  {three(of('test_acc'), '.4f'):<27} "
                     f"{three(of('train_time'), '.2f'):<26} {three([with_tta(r) for r in results], '.2f'):<26} "
                     f"{three(of('images_per_s'), '.0f')}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(table(runs(Path(sys.argv[1]))))
