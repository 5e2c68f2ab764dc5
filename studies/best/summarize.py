"""Choose the candidate of lowest validation NLL and report its test NLL: metrics.json, and table.md (every
candidate, with its training time) with the `dvc exp run` command that trains the chosen one in the pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from vaepipe.core.artifacts import all_or_nothing, write_bytes, write_json  # noqa: E402
from vaepipe.core.params import load_params  # noqa: E402
from best_params import BestStudyParams  # noqa: E402

# The result fields metrics.json keeps for every candidate (the timings are not reproducible, so not metrics).
METRICS = ("val_nll", "val_neg_elbo", "test_nll", "test_neg_elbo", "active_units", "epochs", "kept_epoch")


def exp_run_command(overrides: list[str], test_k: int) -> str:
    """The pipeline run that trains this candidate's model (byte for byte) and evaluates it with test_k samples."""
    return "dvc exp run " + " ".join(f"-S {override}" for override in [*overrides, f"evaluate.k={test_k}"])


def main() -> None:
    study = load_params(HERE / "params.yaml", BestStudyParams)
    results = {name: json.loads((HERE / f"results/{name}.json").read_text()) for name in study.candidates}
    timings = {name: json.loads((HERE / f"timings/{name}.json").read_text()) for name in study.candidates}
    chosen = min(results, key=lambda name: results[name]["val_nll"])
    rows = [f"| candidate | `-S` overrides of params.yaml | epochs (kept) | training min | validation NLL "
            f"(k={study.val_k}) | test -ELBO | test NLL (k={study.test_k}) | active units |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        mark = "**" if name == chosen else ""
        rows.append(f"| {mark}{name}{mark} | `{' '.join(r['overrides'])}` | {r['epochs']} ({r['kept_epoch']}) "
                    f"| {timings[name]['train_seconds'] / 60:.1f} | {r['val_nll']:.2f} | {r['test_neg_elbo']:.2f} "
                    f"| {mark}{r['test_nll']:.2f}{mark} | {r['active_units']} |")
    command = exp_run_command(results[chosen]["overrides"], study.test_k)
    table = "\n".join(rows) + f"\n\nChosen on validation NLL: {chosen}. In the pipeline:\n\n    {command}\n"
    with all_or_nothing():
        write_json(HERE / "metrics.json", {"chosen": chosen, "chosen_test_nll": results[chosen]["test_nll"],
                                           "candidates": {name: {key: r[key] for key in METRICS}
                                                          for name, r in results.items()}})
        write_bytes(HERE / "table.md", table.encode())
    print(table)


if __name__ == "__main__":
    main()
