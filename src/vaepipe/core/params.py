"""params.yaml, parsed and validated once into typed dataclasses.

Every stage calls `load_params()`; an error names the offending key (dotted, e.g. `train.lr`).
Unknown keys are errors too, because `dvc exp run -S latnet_dim=32` silently adds a new key.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from vaepipe.core.errors import ParamsError
from vaepipe.core.paths import CLASSES, DATASET_NAMES, TYPICALITY_COMPONENTS

ARCHS = ("mlp", "conv")
CONV_LAYERS = (1, 2)  # a conv model's strided layers each halve the side: 28 -> 14 -> 7
PRIORS = ("normal", "mog", "vamp")
OBJECTIVES = ("elbo", "iwae")
KEEP = ("best", "last")
BINARIZE_MODES = ("dynamic", "none")
DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("constant", "cosine")
# The matrix multiplies' precision in training (the VAE's, the judge's) and in the NLL estimate
# (vaepipe.core.runtime.compute_dtype); auto: bf16 where the device has fast bf16.
PRECISIONS = ("auto", "fp32", "bf16")
FIXED_PRECISIONS = PRECISIONS[1:]  # what `auto` resolves to
EMBEDDINGS = ("umap", "pca", "tsne")
# Where generate draws latent codes from (vaepipe.latent.samplers), and the kinds of the `learned` one.
SAMPLERS = ("prior", "gmm", "learned")
CODE_PRIORS = ("mixture", "diffusion", "flow")
STYLE_SAMPLERS = ("prior", "learned")  # the class-conditional samples' z (vaepipe.generation.style)
# Neighbours per code in the label-spreading probe's graph (vaepipe.latent.downstream).
SPREAD_NEIGHBORS = 10
# 2**16 bins a latent: far past where finer bins stop paying (README); compressed files are checked against it.
MAX_LATENT_PRECISION = 16
# Both datasets have 10 classes; a balanced label draw needs at least one label of each.
MIN_LABEL_BUDGET = CLASSES


def require(key: str, ok: bool, rule: str) -> None:
    if not ok:
        raise ParamsError(key, rule)


def require_one_of(key: str, value: str, choices: tuple[str, ...]) -> None:
    require(key, value in choices, f"must be one of {', '.join(choices)}")


def require_at_most(key: str, value: int, available: int, what: str) -> None:
    """A count in params checked against the data, once the stage has loaded it."""
    require(key, value <= available, f"is {value}, but {what} has only {available}")


@dataclass(frozen=True)
class TrainParams:
    arch: str
    hidden: tuple[int, ...]
    prior: str
    prior_components: int
    objective: str
    samples: int
    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    beta: float
    kl_warmup: float
    binarize: str
    val_size: int
    train_subset: int
    keep: str
    patience: int
    precision: str

    def validate(self, prefix: str) -> None:
        require_one_of(f"{prefix}.arch", self.arch, ARCHS)
        require(f"{prefix}.hidden", len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
                 "must be a non-empty list of positive layer widths")
        require(f"{prefix}.hidden", self.arch != "conv" or len(self.hidden) in CONV_LAYERS,
                 f"must list {' or '.join(map(str, CONV_LAYERS))} channel counts for arch conv (28 -> 14 -> 7)")
        require_one_of(f"{prefix}.prior", self.prior, PRIORS)
        require(f"{prefix}.prior_components", self.prior_components > 0, "must be > 0")
        require_one_of(f"{prefix}.objective", self.objective, OBJECTIVES)
        require(f"{prefix}.samples", self.samples >= (2 if self.objective == "iwae" else 1),
                 "must be >= 2 for objective iwae" if self.objective == "iwae" else "must be >= 1")
        require_one_of(f"{prefix}.keep", self.keep, KEEP)
        require(f"{prefix}.patience", self.patience >= 0, "must be >= 0 (0 = never stop early)")
        require(f"{prefix}.epochs", self.epochs > 0, "must be > 0")
        require(f"{prefix}.batch_size", self.batch_size > 0, "must be > 0")
        require(f"{prefix}.lr", self.lr > 0, "must be > 0")
        require_one_of(f"{prefix}.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        require(f"{prefix}.beta", self.beta >= 0, "must be >= 0")
        require(f"{prefix}.kl_warmup", 0 <= self.kl_warmup <= 1, "must be between 0 and 1")
        require_one_of(f"{prefix}.binarize", self.binarize, BINARIZE_MODES)
        require(f"{prefix}.val_size", self.val_size > 0, "must be > 0")
        require(f"{prefix}.train_subset", self.train_subset >= 0, "must be >= 0 (0 = all images)")
        require_one_of(f"{prefix}.precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class TrainStageParams(TrainParams):
    """params.yaml's `train`: the model's training settings, and how many processes the train stage runs on."""

    nproc: int  # torchrun processes (vaepipe.vae.launch, vaepipe.vae.distributed), each computing a share of every batch

    def validate(self, prefix: str) -> None:
        super().validate(prefix)
        require(f"{prefix}.nproc", 1 <= self.nproc <= self.batch_size,
                 f"must be >= 1 and at most {prefix}.batch_size (a process computes at least one image of a batch)")


@dataclass(frozen=True)
class EvaluateParams:
    k: int
    proposal_scale: float
    test_subset: int
    n_reconstructions: int
    precision: str

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.k", self.k > 0, "must be > 0")
        require(f"{prefix}.proposal_scale", self.proposal_scale >= 1, "must be >= 1 (1: q itself)")
        require_one_of(f"{prefix}.precision", self.precision, PRECISIONS)
        require(f"{prefix}.test_subset", self.test_subset >= 0, "must be >= 0 (0 = all images)")
        require(f"{prefix}.n_reconstructions", self.n_reconstructions > 0, "must be > 0")


@dataclass(frozen=True)
class JudgeParams:
    """The judge classifier (vaepipe.generation.judge): its own seed and split, so one judge serves every VAE experiment."""

    seed: int
    epochs: int
    batch_size: int
    lr: float
    val_size: int
    train_subset: int
    precision: str

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.seed", self.seed >= 0, "must be >= 0")
        require(f"{prefix}.epochs", self.epochs > 0, "must be > 0")
        require(f"{prefix}.batch_size", self.batch_size > 0, "must be > 0")
        require(f"{prefix}.lr", self.lr > 0, "must be > 0")
        require(f"{prefix}.val_size", self.val_size > 0, "must be > 0")
        require(f"{prefix}.train_subset", self.train_subset >= 0, "must be >= 0 (0 = all images)")
        require_one_of(f"{prefix}.precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class GenerateParams:
    n_samples: int
    n_interpolations: int
    interpolation_steps: int
    embedding: str
    manifold_size: int
    samplers: tuple[str, ...]
    gmm_components: int
    n_judged: int
    confidence: float

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.samplers", len(self.samplers) > 0 and len(set(self.samplers)) == len(self.samplers),
                 f"must be a non-empty list of distinct samplers from {', '.join(SAMPLERS)}")
        for i, sampler in enumerate(self.samplers):
            require_one_of(f"{prefix}.samplers[{i}]", sampler, SAMPLERS)
        require(f"{prefix}.gmm_components", self.gmm_components > 0, "must be > 0")
        require(f"{prefix}.n_judged", self.n_judged >= 2, "must be >= 2 (a covariance of the features needs two)")
        require(f"{prefix}.confidence", 0 < self.confidence < 1, "must be between 0 and 1")
        require(f"{prefix}.n_samples", 0 < self.n_samples <= self.n_judged,
                 f"must be > 0 and at most generate.n_judged ({self.n_judged}): the grid shows judged samples")
        require(f"{prefix}.n_interpolations", self.n_interpolations > 0, "must be > 0")
        require(f"{prefix}.interpolation_steps", self.interpolation_steps >= 2, "must be >= 2")
        require_one_of(f"{prefix}.embedding", self.embedding, EMBEDDINGS)
        require(f"{prefix}.manifold_size", self.manifold_size >= 2, "must be >= 2")


@dataclass(frozen=True)
class CodePriorParams:
    """The `learned` sampler: a density fitted to the training codes after the VAE (vaepipe.latent.samplers)."""

    kind: str
    components: int
    em_iterations: int
    temperature: float
    hidden: int
    blocks: int
    steps: int
    batch_size: int
    lr: float
    sample_steps: int
    round_trips: int

    def validate(self, prefix: str) -> None:
        require_one_of(f"{prefix}.kind", self.kind, CODE_PRIORS)
        for key in ("components", "em_iterations", "hidden", "blocks", "steps", "batch_size", "sample_steps"):
            require(f"{prefix}.{key}", getattr(self, key) > 0, "must be > 0")
        require(f"{prefix}.temperature", self.temperature > 0, "must be > 0")
        require(f"{prefix}.lr", self.lr > 0, "must be > 0")
        require(f"{prefix}.round_trips", self.round_trips >= 0, "must be >= 0")


@dataclass(frozen=True)
class StyleParams:
    """The style stage's conditional VAE (vaepipe.generation.style): its own size and length; it trains like the VAE
    (train.* optimiser, schedule, warm-up, binarisation, split), as an MLP with a normal prior."""

    latent_dim: int
    hidden: tuple[int, ...]
    epochs: int
    n_styles: int
    samples_per_class: int
    n_judged: int
    sampler: str

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.latent_dim", self.latent_dim > 0, "must be > 0")
        require_one_of(f"{prefix}.sampler", self.sampler, STYLE_SAMPLERS)
        require(f"{prefix}.hidden", len(self.hidden) > 0 and all(h > 0 for h in self.hidden),
                 "must be a non-empty list of positive layer widths")
        require(f"{prefix}.epochs", self.epochs > 0, "must be > 0")
        require(f"{prefix}.n_judged", self.n_judged >= CLASSES, f"must be >= {CLASSES} (a sample of every class)")
        # The figures show the first of the judged images: n_judged / classes samples a class and test styles.
        per_class = self.n_judged // CLASSES
        for key in ("n_styles", "samples_per_class"):
            require(f"{prefix}.{key}", 0 < getattr(self, key) <= per_class,
                     f"must be > 0 and at most style.n_judged / {CLASSES} ({per_class}): the figures show judged images")

    def train_params(self, train: TrainStageParams) -> TrainParams:
        """The conditional model's training settings: `train`'s, with this model's size and epochs."""
        # Only the keys not set here are read from `train` (the style stage's dvc.yaml params list them);
        # prior_components is unused by a normal prior.
        own = {"arch": "mlp", "hidden": self.hidden, "prior": "normal", "prior_components": 1, "objective": "elbo",
               "samples": 1, "epochs": self.epochs}
        # A TrainParams: the conditional model trains in one process, whatever `train.nproc` says.
        shared = {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainParams) if f.name not in own}
        return TrainParams(**shared, **own)


@dataclass(frozen=True)
class DownstreamParams:
    knn_neighbors: int
    label_budgets: tuple[int, ...]
    label_draws: int
    unlabelled: int

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.knn_neighbors", self.knn_neighbors > 0, "must be > 0")
        budgets = self.label_budgets
        require(f"{prefix}.label_budgets",
                 len(budgets) > 0 and min(budgets) >= MIN_LABEL_BUDGET and len(set(budgets)) == len(budgets),
                 f"must be a non-empty list of distinct label counts, each >= {MIN_LABEL_BUDGET} (a label per class)")
        require(f"{prefix}.label_draws", self.label_draws > 0, "must be > 0")
        require(f"{prefix}.unlabelled", self.unlabelled >= SPREAD_NEIGHBORS,
                 f"must be >= {SPREAD_NEIGHBORS} (the label-spreading graph's neighbours)")


@dataclass(frozen=True)
class ClusterParams:
    n_clusters: int
    umap_components: int
    umap_neighbors: int
    umap_epochs: int
    gmm_inits: int
    self_label_epochs: int
    self_label_subset: int
    overclusters: int
    merge_cap: float
    precision: str

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.n_clusters", self.n_clusters >= 2, "must be >= 2")
        require(f"{prefix}.umap_components", self.umap_components >= 2, "must be >= 2")
        require(f"{prefix}.umap_neighbors", self.umap_neighbors >= 2, "must be >= 2")
        require(f"{prefix}.umap_epochs", self.umap_epochs > 0, "must be > 0")
        require(f"{prefix}.gmm_inits", self.gmm_inits > 0, "must be > 0")
        require(f"{prefix}.self_label_epochs", self.self_label_epochs >= 0, "must be >= 0 (0 = no self-labelling)")
        require(f"{prefix}.self_label_subset", self.self_label_subset >= 0, "must be >= 0 (0 = all images)")
        require(f"{prefix}.overclusters", self.overclusters >= self.n_clusters,
                f"must be >= {prefix}.n_clusters ({self.n_clusters}), the clusters they are merged into")
        require(f"{prefix}.merge_cap", self.merge_cap >= 1, "must be >= 1 (times the mean cluster size)")
        require_one_of(f"{prefix}.precision", self.precision, PRECISIONS)


@dataclass(frozen=True)
class CompressParams:
    latent_precision: int
    batch_size: int
    test_subset: int

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.latent_precision", 1 <= self.latent_precision <= MAX_LATENT_PRECISION,
                 f"must be between 1 and {MAX_LATENT_PRECISION} (bits)")
        require(f"{prefix}.batch_size", self.batch_size > 0, "must be > 0")
        require(f"{prefix}.test_subset", self.test_subset >= 0, "must be >= 0 (0 = all images)")


# The lossy codec's settings (vaepipe.codecs.lossy): the range of its quantisation step, its entropy models.
MIN_STEP, MAX_STEP = 1e-3, 8.0
ENTROPY_MODELS = ("auto", "prior", "fitted")


def require_steps(key: str, steps: tuple[float, ...]) -> None:
    require(key, len(steps) > 0 and all(MIN_STEP <= step <= MAX_STEP for step in steps),
             f"must be a list of quantisation steps in [{MIN_STEP:g}, {MAX_STEP:g}]")


@dataclass(frozen=True)
class LossyParams:
    steps: tuple[float, ...]
    entropy_model: str
    test_subset: int

    def validate(self, prefix: str) -> None:
        require_steps(f"{prefix}.steps", self.steps)
        require_one_of(f"{prefix}.entropy_model", self.entropy_model, ENTROPY_MODELS)
        require(f"{prefix}.test_subset", self.test_subset >= 0, "must be >= 0 (0 = all images)")


# Frames of the explorer's walk between two codes, both ends included.
MIN_FRAMES, MAX_FRAMES = 2, 64


@dataclass(frozen=True)
class ExploreParams:
    directions: int
    frames: int

    def validate(self, prefix: str) -> None:
        require(f"{prefix}.directions", self.directions > 0, "must be > 0 (capped at the model's latent_dim)")
        require(f"{prefix}.frames", MIN_FRAMES <= self.frames <= MAX_FRAMES,
                 f"must be between {MIN_FRAMES} and {MAX_FRAMES} (both ends of the walk included)")


@dataclass(frozen=True)
class AnomalyParams:
    ood_dataset: str
    k: int
    false_positive_rate: float
    n_fit: int
    n_val: int
    test_subset: int

    def validate(self, prefix: str) -> None:
        require_one_of(f"{prefix}.ood_dataset", self.ood_dataset, ("other", *DATASET_NAMES))
        require(f"{prefix}.k", self.k > 0, "must be > 0")
        require(f"{prefix}.false_positive_rate", 0 < self.false_positive_rate < 1, "must be between 0 and 1")
        require(f"{prefix}.n_fit", self.n_fit >= 2 * TYPICALITY_COMPONENTS,
                 f"must be >= {2 * TYPICALITY_COMPONENTS} (twice the typicality mixture's components)")
        require(f"{prefix}.n_val", self.n_val > 0, "must be > 0")
        require(f"{prefix}.test_subset", self.test_subset >= 0, "must be >= 0 (0 = all images)")


@dataclass(frozen=True)
class Params:
    dataset: str
    seed: int
    latent_dim: int
    device: str
    train: TrainStageParams
    evaluate: EvaluateParams
    judge: JudgeParams
    generate: GenerateParams
    code_prior: CodePriorParams
    style: StyleParams
    downstream: DownstreamParams
    cluster: ClusterParams
    compress: CompressParams
    lossy: LossyParams
    anomaly: AnomalyParams
    explore: ExploreParams

    @property
    def ood_dataset(self) -> str:
        """The out-of-distribution dataset: `anomaly.ood_dataset`, where `other` is the one `dataset` is not."""
        if self.anomaly.ood_dataset == "other":
            return next(name for name in DATASET_NAMES if name != self.dataset)
        return self.anomaly.ood_dataset

    def validate(self) -> None:
        require_one_of("dataset", self.dataset, DATASET_NAMES)
        require("seed", self.seed >= 0, "must be >= 0")
        require("latent_dim", self.latent_dim > 0, "must be > 0")
        require_one_of("device", self.device, DEVICES)
        require("anomaly.ood_dataset", self.ood_dataset != self.dataset,
                 f"is {self.dataset}, the training dataset itself; use other or the other dataset")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if dataclasses.is_dataclass(value):
                value.validate(field.name)


def with_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """A copy of parsed params.yaml with `dvc exp run -S` style overrides applied (`train.lr=0.001`; values
    read as YAML). `parse_params` then checks the result, naming any unknown key."""
    raw = copy.deepcopy(raw)
    for override in overrides:
        dotted, _, text = override.partition("=")
        *sections, key = dotted.split(".")
        node = raw
        for depth, section in enumerate(sections, start=1):
            node = node.get(section) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ParamsError(".".join(sections[:depth]), f"is not a section of params.yaml (in {override!r})")
        node[key] = yaml.safe_load(text)
    return raw


def valid_keys(cls: type = Params, prefix: str = "") -> list[str]:
    """Every dotted key params.yaml may hold, e.g. `train.lr`."""
    keys = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        keys.append(key)
        field_type = typing.get_type_hints(cls)[field.name]
        if dataclasses.is_dataclass(field_type):
            keys.extend(valid_keys(field_type, f"{key}."))
    return keys


def _convert(key: str, value: object, expected: object, schema: type) -> object:
    """Check one YAML value against a field's annotation; ints are accepted where floats are expected."""
    if dataclasses.is_dataclass(expected):
        return _build(expected, value, f"{key}.", schema)
    if typing.get_origin(expected) is dict:
        if not isinstance(value, dict):
            raise ParamsError(key, f"must be a mapping, got {value!r}")
        (_, item_type) = typing.get_args(expected)
        return {str(name): _convert(f"{key}.{name}", item, item_type, schema) for name, item in value.items()}
    if typing.get_origin(expected) is tuple:
        if not isinstance(value, list):
            raise ParamsError(key, f"must be a list, got {value!r}")
        (item_type, _) = typing.get_args(expected)
        return tuple(_convert(f"{key}[{i}]", item, item_type, schema) for i, item in enumerate(value))
    # bool is a subclass of int in Python, but `epochs: true` is a typo, not 1 epoch.
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, expected) and not isinstance(value, bool):
        return value
    return _type_error(key, value, expected)


def _type_error(key: str, value: object, expected: object) -> typing.NoReturn:
    name = getattr(expected, "__name__", str(expected))
    raise ParamsError(key, f"must be {'an' if name == 'int' else 'a'} {name}, got {value!r}")


def _build(cls: type, raw: object, prefix: str, schema: type = Params) -> object:
    if not isinstance(raw, dict):
        raise ParamsError(prefix.rstrip(".") or "params.yaml", f"must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            dotted = f"{prefix}{key}"
            close = difflib.get_close_matches(dotted, valid_keys(schema), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else f"; valid keys here: {', '.join(names)}"
            raise ParamsError(dotted, f"is not a known parameter{hint}")
    for name in names:
        if name not in raw:
            raise ParamsError(f"{prefix}{name}", "is missing")
    return cls(**{name: _convert(f"{prefix}{name}", raw[name], hints[name], schema) for name in names})


def parse_params(raw: object, schema: type = Params):
    """`raw` (parsed YAML) as `schema`, the pipeline's Params or a study's settings, validated."""
    params = _build(schema, raw, "", schema)
    params.validate()
    return params


def read_yaml(path: str | Path) -> object:
    """A params file's parsed YAML, not yet validated."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParamsError(str(path), f"cannot be read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(str(path), f"is not valid YAML ({str(exc).splitlines()[0]})") from None


def load_params(path: str | Path = "params.yaml", schema: type = Params):
    return parse_params(read_yaml(path), schema)

