"""Regenerate the generated parts of README.md and docs/*.md from the files they describe.

    python docs/build.py           # rewrite the pages (`make docs`)
    python docs/build.py --check   # exit 1, naming the pages, when a committed page differs from what this writes

A generated part sits between `<!-- generated: NAME -->` and `<!-- end generated -->`; everything else on a
page is written by hand. The sources: dvc.yaml (stages, the DAG), params.yaml and vaepipe.core.params (the
parameters), the commands' `--help`, metrics/*.json and the studies' metrics.json (results), bench/results-*.json
(performance) and tests/test_bad_input.py's cases (errors). A number on a page comes from one of them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
COMMANDS = ("vaepipe-compress", "vaepipe-decompress", "vaepipe-anomaly", "vaepipe-verify")
HELP_WIDTH = "100"  # argparse wraps --help to $COLUMNS


def load(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- pipeline ---------------------------------------------------------------------------------------------------

def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def outs_of(stage: dict) -> list[str]:
    return [next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])]


def inputs_of(stage: dict) -> list[str]:
    return [dep for dep in stage.get("deps", []) if not dep.startswith(("src/", "stages/"))]


def edges() -> list[tuple[str, str]]:
    """(a, b) where stage b reads something stage a writes."""
    found = []
    for b, stage in stages().items():
        for a, other in stages().items():
            if a != b and any(dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")
                              for dep in inputs_of(stage) for out in outs_of(other)):
                found.append((a, b))
    return found


def gen_dag() -> str:
    lines = ["```mermaid", "flowchart LR"] + [f"  {a} --> {b}" for a, b in edges()]
    isolated = set(stages()) - {name for edge in edges() for name in edge}
    lines += [f"  {name}" for name in sorted(isolated)]
    return "\n".join(lines + ["```"]) + "\n"


def gen_stages() -> str:
    rows = []
    for name, stage in stages().items():
        params = stage.get("params", [])
        keys = "all of params.yaml" if params == [{"params.yaml": None}] else ", ".join(f"`{k}`" for k in params)
        rows.append([f"`{name}`", keys or "—", ", ".join(f"`{p}`" for p in inputs_of(stage)) or "—",
                     ", ".join(f"`{p}`" for p in outs_of(stage)) or "—"])
    return table(["stage", "params it reads", "reads", "writes"], rows)


# --- parameters --------------------------------------------------------------------------------------------------

def commented_params() -> dict[str, tuple[str, str]]:
    """Every key of params.yaml: (its value as written, the comment beside it or above its section)."""
    found, section = {}, None
    for line in (ROOT / "params.yaml").read_text().splitlines():
        match = re.match(r"^(?P<indent> *)(?P<key>[a-z_]+):(?P<value>[^#]*)(#\s*(?P<comment>.*))?$", line)
        if not match:
            continue
        key, value, comment = match["key"], match["value"].strip(), (match["comment"] or "").strip()
        if not match["indent"]:
            section = key if not value else None
            found[key] = (value, comment)
        else:
            found[f"{section}.{key}"] = (value, comment)
    return found


def gen_parameters() -> str:
    from vaepipe.core.params import valid_keys

    documented = commented_params()
    rows = []
    for key in valid_keys():
        value, comment = documented[key]
        if value:
            rows.append([f"`{key}`", f"`{value}`", comment.replace("|", "\\|")])
        else:
            rows.append([f"**`{key}`**", "", comment.replace("|", "\\|")])
    return table(["key", "default", "meaning"], rows)


# --- commands ----------------------------------------------------------------------------------------------------

def help_text(command: str) -> str:
    from vaepipe.anomaly.cli import main as anomaly
    from vaepipe.codecs.cli import compress, decompress
    from vaepipe.core.verify import main as verify

    main = {"vaepipe-compress": compress, "vaepipe-decompress": decompress, "vaepipe-anomaly": anomaly,
            "vaepipe-verify": verify}[command]
    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(["--help"])
    finally:
        os.environ.pop("COLUMNS") if columns is None else os.environ.__setitem__("COLUMNS", columns)
    return "```\n" + out.getvalue().rstrip() + "\n```\n"


# --- results -----------------------------------------------------------------------------------------------------

HEADLINE_FILES = ("evaluate", "generate", "style", "downstream", "cluster", "compress", "lossy", "anomaly")
FASHION = "studies/fashion/metrics.json"  # the default pipeline run on Fashion-MNIST (studies/fashion)


def headline_metrics(dataset: str) -> dict[str, dict]:
    """The headline metrics files of the default run on `dataset` (mnist: metrics/; fashion: studies/fashion)."""
    if dataset == "mnist":
        return {name: load(f"metrics/{name}.json") for name in HEADLINE_FILES}
    return {name: load(FASHION)["metrics"][f"metrics/{name}.json"] for name in HEADLINE_FILES}


def headline_rows(m: dict[str, dict]) -> list[tuple[str, str]]:
    e, g, s, d, c, z, lossy, a = (m[name] for name in HEADLINE_FILES)
    step = lossy["steps"][0]
    return [
        (f"likelihood: test NLL (k = {e['k']})", f"{e['test_nll']:.2f} nats ({e['test_bpd']:.4f} bits/pixel)"),
        ("random images: Fréchet distance, prior / learned sampler / reconstructions / real vs real",
         f"{g['prior']['frechet']:.1f} / {g['learned']['frechet']:.1f} / {g['reconstructions']['frechet']:.1f} / "
         f"{g['test_set']['frechet_between_halves']:.1f}"),
        ("style transfer read as the class asked for", f"{s['style_transfer']['read_as_intended']:.3f}"),
        ("classification from the codes: 100 labels / all labels",
         f"{d['accuracy_100_labels']:.4f} / {d['accuracy']:.4f}"),
        ("clustering accuracy, no labels", f"{c['accuracy']:.4f}"),
        ("lossless (bits-back) / gzip", f"{z['total_bpp']:.4f} / {z['baselines_bpp']['gzip']:.4f} bits/pixel"),
        (f"lossy, step {step['setting']:g}", f"{step['bytes_per_image']:.2f} bytes/image, read right "
                                            f"{step['accuracy']:.3f}"),
        ("anomaly AUROC: the other dataset / corrupted images (mean)",
         f"{a['ood']['best']['auroc']:.4f} / {a['corruption']['best']['auroc']:.4f}"),
    ]


def gen_headline() -> str:
    return table(["what", "default model, MNIST test set"], [list(row) for row in headline_rows(headline_metrics("mnist"))])


def gen_datasets() -> str:
    mnist, fashion = (headline_rows(headline_metrics(name)) for name in ("mnist", "fashion"))
    seconds = load(FASHION)["total_seconds"]
    return table(["what (test set)", "MNIST", "Fashion-MNIST"],
                 [[what, a, b] for (what, a), (_, b) in zip(mnist, fashion)]) + (
        f"\nThe same default params on each; the Fashion-MNIST run took {seconds / 60:.1f} min "
        f"(`dvc repro studies/fashion/dvc.yaml`).\n")


def gen_results_likelihood() -> str:
    e, t = load("metrics/evaluate.json"), load("metrics/train/metrics.json")
    return table(["metric", "value"], [
        ["test NLL, importance-sampled (nats)", f"{e['test_nll']:.3f}"],
        ["test −ELBO = reconstruction + KL", f"{e['test_neg_elbo']:.3f} = {e['test_recon']:.3f} + {e['test_kl']:.3f}"],
        ["bits per pixel", f"{e['test_bpd']:.4f}"],
        ["active latent units", f"{e['active_units']} of the latent dimensions"],
        ["importance samples, test images", f"{e['k']}, {e['n_test']}"],
        ["their proposal: q with its standard deviations times", f"{e['proposal_scale']:g}"],
        ["validation −ELBO at the kept epoch", f"{t['val']['neg_elbo']:.3f} (epoch {t['kept_epoch']})"],
    ])


def gen_nll_estimator() -> str:
    r = load("bench/results-cpu-nll-estimator.json")
    ks = sorted({c["k"] for c in r["cells"]})
    scales = sorted({c["proposal_scale"] for c in r["cells"]})
    cell = {(c["k"], c["proposal_scale"]): c for c in r["cells"]}
    rows = [[f"k = {k}", *(f"{cell[k, s]['nll']:.2f} ({cell[k, s]['seconds']:.1f} s)" for s in scales)] for k in ks]
    return table(["test NLL (nats), time", *(f"scale {s:g}" + (" (q itself)" if s == 1 else "") for s in scales)],
                 rows) + (f"\nThe first {r['images']:,} test images; {machine_line(r['machine'])}, "
                          f"{r['machine']['date']}.\n")


def gen_results_samples() -> str:
    both = {name: headline_metrics(name) for name in ("mnist", "fashion")}
    g = {name: m["generate"] for name, m in both.items()}
    s = {name: m["style"] for name, m in both.items()}

    def pair(scores: dict, key: str, digits: int) -> str:
        return " / ".join(f"{scores[name][key]:.{digits}f}" for name in both)

    rows = [[f"`{n}` sampler", pair({d: g[d][n] for d in g}, "frechet", 2), pair({d: g[d][n] for d in g}, "confident", 3),
             pair({d: g[d][n] for d in g}, "class_entropy_bits", 3)] for n in ("prior", "gmm", "learned")]
    for label, key in (("reconstructions of the test images (the ceiling)", "reconstructions"),):
        part = {d: g[d][key] for d in g}
        rows.append([label, pair(part, "frechet", 2), pair(part, "confident", 3), pair(part, "class_entropy_bits", 3)])
    real = {d: g[d]["test_set"] for d in g}
    rows.append(["test set (half against half)", pair(real, "frechet_between_halves", 2), pair(real, "confident", 3),
                 pair(real, "class_entropy_bits", 3)])
    conditional = {d: s[d]["class_conditional"] for d in s}
    rows.append(["class-conditional samples (style model)", pair(conditional, "frechet", 2),
                 "read as asked: " + pair(conditional, "read_as_intended", 3), ""])
    rows.append(["test images restyled as every class", "", "read as asked: " +
                 pair({d: s[d]["style_transfer"] for d in s}, "read_as_intended", 3), ""])
    j = load("metrics/judge.json")
    return table(["images (MNIST / Fashion-MNIST)", "Fréchet distance", "confident share", "class entropy (bits)"],
                 rows) + (f"\nThe MNIST judge: test accuracy {j['test_accuracy']:.4f}, validation {j['val_accuracy']:.4f}; "
                          f"the Fashion-MNIST one: {load(FASHION)['metrics']['metrics/judge.json']['test_accuracy']:.4f} "
                          "on its test set.\n")


def gen_code_priors() -> str:
    r = load("bench/results-cpu-code-priors.json")
    trips = sorted({c["round_trips"] for c in r["cells"]})
    groups: dict[tuple, dict[int, dict]] = {}
    for c in r["cells"]:
        size = f"{c['components']} Gaussians" if c["kind"] == "mixture" else f"{c['steps']} steps"
        groups.setdefault((c["kind"], size, c["temperature"]), {})[c["round_trips"]] = c
    rows = [[f"{kind}, {size}", f"{t:g}", *(f"{cells[n]['validation']['frechet']:.2f}" for n in trips),
             f"{cells[trips[-1]]['validation']['confident']:.3f}", f"{cells[trips[-1]]['seconds']:.1f}"]
            for (kind, size, t), cells in groups.items()]
    rows.append(["reconstructions of the validation images (the ceiling)", "", f"{r['reconstructions']['frechet']:.2f}",
                 *([""] * (len(trips) - 1)), f"{r['reconstructions']['confident']:.3f}", ""])
    return table(["density over the codes", "temperature",
                  *(f"Fréchet distance, {n} round trip{'' if n == 1 else 's'}" for n in trips),
                  f"confident share ({trips[-1]} trips)", f"seconds: fit, draw, {trips[-1]} trips"], rows) + (
        f"\n{r['samples']:,} samples each against the validation images; {machine_line(r['machine'])}, "
        f"{r['machine']['date']}.\n")


def gen_code_priors_fashion() -> str:
    r = load("bench/results-cpu-code-priors-fashion.json")
    t = r["code_prior"]["temperature"]
    cells = {c["round_trips"]: c["validation"]["frechet"] for c in r["cells"] if c["temperature"] == t}
    trips = r["code_prior"]["round_trips"]
    return (f"On the Fashion-MNIST validation images, the learned sampler ({r['code_prior']['components']} Gaussians, "
            f"temperature {t:g}) scores {cells[0]:.1f} without round trips and {cells[trips]:.1f} with the default "
            f"{trips}; the reconstructions of those images score {r['reconstructions']['frechet']:.1f} "
            f"(`bench/results-cpu-code-priors-fashion.json`).\n")


def gen_code_prior_test_reference() -> str:
    t = load("bench/results-cpu-code-priors.json")["test_reference"]
    distances = [d["frechet"] for d in t["learned_draws"]]
    return (f"Against the test set, the reconstructions of the validation images score "
            f"{t['validation_reconstructions_frechet']:.1f} and the validation images themselves "
            f"{t['validation_images_frechet']:.1f}; {len(distances)} draws of the learned sampler from one fitted "
            f"density score {min(distances):.1f} to {max(distances):.1f} (mean {sum(distances) / len(distances):.1f}).\n")


def gen_results_codes() -> str:
    d, c = load("metrics/downstream.json"), load("metrics/cluster.json")
    budgets = sorted(int(k.split("_")[1]) for k in d if re.fullmatch(r"accuracy_\d+_labels", k))
    rows = [["all 50,000 labels", d["probe"], f"{d['accuracy']:.4f}"]]
    rows += [[f"{b} labels", d[f"probe_{b}_labels"], f"{d[f'accuracy_{b}_labels']:.4f}"] for b in budgets]
    probes = table(["labels", "probe chosen on validation", "test accuracy"], rows)
    methods = table(["clustering (10 clusters, no labels)", "accuracy", "NMI", "ARI"],
                    [[f"`{m}`" + (" (headline)" if m == c["method"] else ""), f"{v['accuracy']:.4f}",
                      f"{v['nmi']:.4f}", f"{v['ari']:.4f}"] for m, v in c["test"].items()])
    return probes + "\n" + methods


def gen_results_codecs() -> str:
    z, lossy = load("metrics/compress.json"), load("metrics/lossy.json")
    rows = [["bits-back ANS (this model)", f"{z['total_bpp']:.4f}"], ["its −ELBO, the ideal", f"{z['neg_elbo_bpp']:.4f}"]]
    rows += [[name, f"{bpp:.4f}"] for name, bpp in sorted(z["baselines_bpp"].items(), key=lambda kv: kv[1])]
    lossless = table([f"lossless, {z['n_images']:,} binarised test digits", "bits/pixel"], rows)
    lossy_rows = [[f"{s['setting']:g}", f"{s['bytes_per_image']:.2f}", f"{s['psnr_db']:.2f}", f"{s['accuracy']:.4f}"]
                  for s in lossy["steps"]]
    return lossless + "\n" + table(["lossy: step", "bytes/image", "PSNR (dB)",
                                    f"judge accuracy (originals: {lossy['judge_accuracy_on_originals']:.4f})"],
                                   lossy_rows)


def gen_results_anomaly() -> str:
    a = load("metrics/anomaly.json")
    scores = [k for k in a["ood"] if k != "best"]
    rows = [[f"{a['ood_dataset']} (out of distribution)", *(f"{a['ood'][s]['auroc']:.4f}" for s in scores)]]
    rows += [[name, *(f"{a['corruption'][name][s]['auroc']:.4f}" for s in scores)]
             for name in a["corruption"] if name not in ("best",)]
    det = a["detector"]
    return table(["test AUROC against normal test digits", *(f"`{s}`" for s in scores)], rows) + (
        f"\nThe saved detector (`{det['score']}`, threshold at {det['false_positive_rate']:.0%} of held-out normal "
        f"images) flags {det['test_flagged_normal']:.1%} of normal test digits, {det['test_flagged_ood']:.1%} of "
        f"{a['ood_dataset']} and {det['test_flagged_corrupted']:.1%} of corrupted ones.\n")


def gen_results_studies() -> str:
    from vaepipe.data.datasets import DATASETS

    best, one = load("studies/best/metrics.json"), load("studies/oneclass/metrics.json")
    rows = [[f"`{name}`" + (" (chosen)" if name == best["chosen"] else ""), f"{r['val_nll']:.2f}",
             f"{r['test_nll']:.2f}", r["epochs"]] for name, r in best["candidates"].items()]
    best_table = table(["`studies/best` candidate", "validation NLL", "test NLL", "epochs"], rows)
    datasets = [name for name in DATASETS if name in one]
    scores = list(one[datasets[0]]["mean"])
    mean_rows = [[f"{name}, {kind}", *(f"{one[name][key][s]:.4f}" + (" (chosen)" if kind == "test" and
                                                                   s == one[name]["chosen"]["score"] else "")
                                       for s in scores)]
                 for name in datasets for kind, key in (("test", "mean"), ("validation", "val_mean"))]
    one_table = table(["`studies/oneclass`: mean AUROC over classes", *(f"`{s}`" for s in scores)], mean_rows)
    class_rows = [[str(c), *(f"{DATASETS[name].classes[c]}: {one[name][f'class_{c}'][one[name]['chosen']['score']]:.4f}"
                             for name in datasets)] for c in range(10)]
    one_table += "\n" + table(["normal class",
                               *(f"{name}, AUROC `{one[name]['chosen']['score']}`" for name in datasets)], class_rows)
    rd = load("studies/ratedistortion/metrics.json")
    rd_rows = [[level, f"{v['vae_bytes']:.2f}", f"{v['pca_bytes']:.2f}", f"{v['vae_to_pca']:.3f}",
                f"{v['jpeg_webp']['codec']} {v['jpeg_webp']['bytes_per_image']:.1f}"]
               for level, v in rd["accuracy_levels"].items()]
    rd_table = table(["`studies/ratedistortion`: judge accuracy", "VAE bytes/image", "PCA bytes/image",
                      "VAE / PCA", "cheapest JPEG/WebP as accurate"], rd_rows)
    return best_table + "\n" + one_table + "\n" + rd_table


def gen_results_few_labels() -> str:
    from vaepipe.data.datasets import DATASETS

    few = load("studies/fewlabels/metrics.json")
    probes = ["logreg", "knn", "spread", "cluster", "student"]
    rows = []
    for dataset, m in sorted(few.items(), key=lambda item: list(DATASETS).index(item[0])):
        budgets = sorted(int(k.split("_")[1]) for k in m if re.fullmatch(r"accuracy_\d+_labels", k))
        rows += [[f"{dataset}, {b} labels",
                  *(f"{m[f'{p}_val_accuracy_{b}_labels']:.4f} / {m[f'{p}_accuracy_{b}_labels']:.4f}" for p in probes),
                  f"`{m[f'probe_{b}_labels']}`: **{m[f'accuracy_{b}_labels']:.4f}**"] for b in budgets]
    return table(["validation / test accuracy", *(f"`{p}`" for p in probes), "chosen on validation: test"], rows)


def gen_tolerances() -> str:
    study = load("studies/variation/tolerances.json")
    precisions = study["precisions"]
    rows = [[f"{Path(file).stem}: `{key}`", *(f"{entry['mean'][p]:.5g} ± {entry['sd'][p]:.2g}" for p in precisions),
             f"{entry['precision_effect']:.2g}", f"{entry['tolerance']:.3g}"]
            for file, metrics in study["metrics"].items() for key, entry in metrics.items()]
    machine = study["machine"]
    return table(["metric", *(f"{p}: mean ± sd" for p in precisions), "precision effect", "tolerance"], rows) + (
        f"\n{len(study['seeds'])} seeds ({', '.join(map(str, study['seeds']))}) in each precision, on "
        f"{machine.get('device')} {machine.get('hardware')}, torch {machine.get('torch')}.\n")


# --- performance -------------------------------------------------------------------------------------------------

def machine_line(info: dict) -> str:
    cpu_class = info.get("cpu_class", "class not recorded")
    if info.get("isa_lowered_by"):  # the CPU's kernels lowered to approximate a smaller one (docs/performance.md)
        cpu_class += ", approximated"
    text = f"{info.get('cpu', '?')} ({cpu_class}), {info.get('cores')} cores"
    return text + (f", {info['gpu']}" if info.get("gpu") else "") + f", torch {info.get('torch', '?')}"


# `dvc repro --force` in a fresh clone (bench/pipeline_times.py): one file a machine class, the GPU's last.
PIPELINE_TIMES = ("bench/results-cpu-pipeline.json", "bench/results-cpu-pipeline-avx2.json",
                  "bench/results-cuda-pipeline.json")


def gen_pipeline_times() -> str:
    runs = [load(path) for path in PIPELINE_TIMES]
    names = list(dict.fromkeys(name for run in runs for name in run["stages_s"]))
    rows = [[f"`{n}`", *(f"{run['stages_s'][n]:.1f}" if n in run["stages_s"] else "" for run in runs)] for n in names]
    rows.append(["**total**", *(f"**{run['total_s']:.0f}**" + (" (stopped at its limit)" if run["dvc_repro_exit"] else "")
                                for run in runs)])
    return table(["stage", *(f"{'GPU' if run['machine'].get('gpu') else 'CPU'}: {machine_line(run['machine'])}, "
                             f"{run['machine']['date']}" + (f", {run['compile_caches']} caches" if "compile_caches" in run
                                                            else "") + " (s)" for run in runs)], rows)


def gen_variation_times() -> str:
    study = load("studies/variation/tolerances.json")
    seconds, precisions, machine = study["stage_seconds"], study["precisions"], study["machine"]
    stages = sorted(seconds[precisions[0]], key=lambda name: -seconds[precisions[0]][name])
    rows = [[f"`{name}`", *(f"{seconds[p][name]:.1f}" for p in precisions)] for name in stages]
    rows.append(["**total**", *(f"**{study['total_seconds'][p]:.0f}**" for p in precisions)])
    return table(["stage", *(f"{p} (s)" for p in precisions)], rows) + (
        f"\nMean of {len(study['seeds'])} runs each on {machine.get('device')} {machine.get('hardware')}, "
        f"torch {machine.get('torch')} (`studies/variation`).\n")


def gen_run_time() -> str:
    lines = []
    for path in PIPELINE_TIMES:
        run = load(path)
        where = "GPU" if run["machine"].get("gpu") else "CPU"
        if run.get("dvc_repro_exit"):
            lines.append(f"- {where}: not measured to the end yet (`{path}` holds a run stopped at its time limit)")
        else:
            caches = {"cold": ", compiles included", "warm": ", compiled code cached"}.get(run.get("compile_caches"), "")
            lines.append(f"- {where}: `dvc repro` from a fresh clone took {run['total_s'] / 60:.1f} min on "
                         f"{machine_line(run['machine'])}{caches} (`{path}`)")
    study = load("studies/variation/tolerances.json")
    machine, totals = study["machine"], study["total_seconds"]
    per_precision = " and ".join(f"{totals[p] / 60:.1f} min in {p}" for p in totals)
    lines.insert(-1, f"- CPU: the variation study's runs took {per_precision} on average on its "
                     f"{machine.get('hardware')} CPU, compiled code cached (`studies/variation`)")
    return "\n".join(lines) + "\n\nInstalling the environment the first time adds a few minutes.\n"


def gen_training_speed() -> str:
    r = load("bench/results-cpu.json")
    t, peak = r["train"], r["matmul_peak_gflops"]
    rows = [["canonical recipe (pytorch/examples)", f"{t['canonical_epoch_s']:.2f}", "1.00×", ""]]
    rows += [[f"ours, {p}", f"{t[p]['epoch_s']:.2f}", f"{t[p]['speedup']:.2f}×", f"{t[p]['fraction_of_bound']:.0%}"]
             for p in ("fp32", "bf16")]
    return table(["one epoch, canonical model, 60,000 images", "seconds", "speed-up", "of the matmul bound"], rows) + (
        f"\n{machine_line(r['machine'])}, {r['machine']['date']}; median of {r['repeats']} repetitions; matrix-multiply "
        f"peak {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} bf16.\n")


def gen_no_compiler() -> str:
    r = load("bench/results-cpu-no-compiler.json")
    rows = [[way, f"{r[key]['first_epoch_s']:.1f}", f"{r[key]['epoch_s']:.2f}"]
            for way, key in (("compiled (`torch.compile`)", "compiled"), ("eager (no C++ compiler)", "eager"))]
    return table([f"default params, {r['compiled']['images']:,} images", "first epoch (s)", "later epochs (s)"],
                 rows) + (f"\nEager is {r['eager_slowdown']:.2f}× slower an epoch; {machine_line(r['machine'])}, "
                          f"{r['machine']['date']}; median of the epochs after the first.\n")


# --- errors ------------------------------------------------------------------------------------------------------

def gen_params_errors() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_bad_input import BAD_PARAMS

    rows = [[", ".join(f"`{k}: {json.dumps(v)}`" for k, v in changes.items()), f"params.yaml: {message}"]
            for changes, message in BAD_PARAMS]
    return table(["in params.yaml", "what the stage says (after `error: `)"], rows)


GENERATORS = {"dag": gen_dag, "stages": gen_stages, "parameters": gen_parameters, "headline": gen_headline,
              "results-likelihood": gen_results_likelihood, "nll-estimator": gen_nll_estimator,
              "results-samples": gen_results_samples, "code-priors": gen_code_priors,
              "code-prior-test-reference": gen_code_prior_test_reference,
              "code-priors-fashion": gen_code_priors_fashion, "datasets": gen_datasets,
              "results-codes": gen_results_codes, "results-codecs": gen_results_codecs,
              "results-anomaly": gen_results_anomaly, "results-studies": gen_results_studies,
              "results-few-labels": gen_results_few_labels,
              "tolerances": gen_tolerances,
              "pipeline-times": gen_pipeline_times, "variation-times": gen_variation_times, "run-time": gen_run_time,
              "training-speed": gen_training_speed,
              "no-compiler": gen_no_compiler,
              "params-errors": gen_params_errors,
              **{f"help-{c}": (lambda c=c: help_text(c)) for c in COMMANDS}}


def render(text: str) -> str:
    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in GENERATORS:
            raise SystemExit(f"error: no generator for the block `{name}`")
        return match.group(1) + GENERATORS[name]() + match.group(4)
    return BLOCK.sub(fill, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a page is out of date")
    args = parser.parse_args()
    stale = []
    for page in PAGES:
        path = ROOT / page
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        sys.exit(f"error: out of date (run `make docs`): {', '.join(stale)}")
    print(f"{'stale' if args.check else 'rewritten'}: {', '.join(stale) or 'none'}")


if __name__ == "__main__":
    main()
