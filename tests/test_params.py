import copy
import sys

import pytest
import yaml

from vaepipe.core.errors import ParamsError
from vaepipe.core.params import load_params, parse_params, valid_keys, with_overrides
from conftest import REPO_ROOT

sys.path[:0] = [str(REPO_ROOT / "studies" / study) for study in ("oneclass", "best")]
from best_params import BestStudyParams  # noqa: E402
from oneclass_params import OneClassParams  # noqa: E402


@pytest.fixture
def raw():
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def error_for(raw) -> str:
    with pytest.raises(ParamsError) as excinfo:
        parse_params(raw)
    return str(excinfo.value)


def test_repo_params_parse():
    params = load_params(REPO_ROOT / "params.yaml")
    assert params.dataset == "mnist"
    assert isinstance(params.train.hidden, tuple) and all(isinstance(h, int) for h in params.train.hidden)
    assert isinstance(params.train.lr, float)


def test_int_accepted_where_float_expected(raw):
    raw["train"]["lr"] = 1
    assert parse_params(raw).train.lr == 1.0


def test_missing_key_is_named(raw):
    del raw["train"]["epochs"]
    assert error_for(raw) == "params.yaml: `train.epochs` is missing"


def test_unknown_key_suggests_closest(raw):
    raw["latnet_dim"] = 32
    assert "`latnet_dim` is not a known parameter; did you mean `latent_dim`?" in error_for(raw)


def test_unknown_nested_key_suggests_dotted_name(raw):
    raw["train"]["epoch"] = 3
    assert "did you mean `train.epochs`?" in error_for(raw)


@pytest.mark.parametrize("key, value, fragment", [
    ("latent_dim", "abc", "`latent_dim` must be an int, got 'abc'"),
    ("latent_dim", 2.5, "`latent_dim` must be an int"),
    ("latent_dim", True, "`latent_dim` must be an int"),
    ("seed", None, "`seed` must be an int"),
])
def test_wrong_type(raw, key, value, fragment):
    raw[key] = value
    assert fragment in error_for(raw)


@pytest.mark.parametrize("section, key, value, rule", [
    (None, "latent_dim", 0, "must be > 0"),
    (None, "dataset", "cifar", "must be one of mnist, fashion-mnist"),
    (None, "device", "tpu", "must be one of auto, cpu, cuda"),
    ("train", "lr", 0.0, "must be > 0"),
    ("train", "lr", -1e-3, "must be > 0"),
    ("train", "epochs", 0, "must be > 0"),
    ("train", "batch_size", -5, "must be > 0"),
    ("train", "nproc", 0, "must be >= 1 and at most train.batch_size (a process computes at least one image of a batch)"),
    ("train", "nproc", 129, "must be >= 1 and at most train.batch_size (a process computes at least one image of a batch)"),
    ("train", "beta", -0.1, "must be >= 0"),
    ("train", "kl_warmup", 1.5, "must be between 0 and 1"),
    ("train", "kl_warmup", -0.1, "must be between 0 and 1"),
    ("train", "arch", "transformer", "must be one of mlp, conv"),
    ("train", "binarize", "static", "must be one of dynamic, none"),
    ("train", "hidden", [], "must be a non-empty list of positive layer widths"),
    ("train", "hidden", [400, 0], "must be a non-empty list of positive layer widths"),
    ("evaluate", "k", 0, "must be > 0"),
    ("evaluate", "proposal_scale", 0.9, "must be >= 1 (1: q itself)"),
    ("train", "precision", "fp16", "must be one of auto, fp32, bf16"),
    ("evaluate", "precision", "bfloat16", "must be one of auto, fp32, bf16"),
    ("judge", "precision", "half", "must be one of auto, fp32, bf16"),
])
def test_out_of_range(raw, section, key, value, rule):
    (raw[section] if section else raw)[key] = value
    dotted = f"{section}.{key}" if section else key
    assert error_for(raw) == f"params.yaml: `{dotted}` {rule}"


def test_list_item_type_is_checked(raw):
    raw["train"]["hidden"] = [400, "wide"]
    assert "`train.hidden[1]` must be an int" in error_for(raw)


def test_section_must_be_mapping(raw):
    raw["train"] = 5
    assert "`train` must be a mapping" in error_for(raw)


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError) as excinfo:
        load_params(path)
    assert "is not valid YAML" in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_valid_keys_cover_every_yaml_key(raw):
    def flatten(d, prefix=""):
        for k, v in d.items():
            yield f"{prefix}{k}"
            if isinstance(v, dict):
                yield from flatten(v, f"{prefix}{k}.")
    assert set(flatten(raw)) == set(valid_keys())


def test_parse_does_not_mutate_input(raw):
    before = copy.deepcopy(raw)
    parse_params(raw)
    assert raw == before


def test_the_one_class_study_s_settings_are_validated_the_same_way():
    path = REPO_ROOT / "studies/oneclass/params.yaml"
    assert load_params(path, OneClassParams).train.hidden == (256, 128)
    raw = yaml.safe_load(path.read_text())
    raw["train"]["epoch"] = 5
    with pytest.raises(ParamsError, match=r"`train\.epoch` is not a known parameter; did you mean `train\.epochs`\?"):
        parse_params(raw, OneClassParams)
    raw = yaml.safe_load(path.read_text())
    raw["k"] = 0
    with pytest.raises(ParamsError, match="`k` must be > 0"):
        parse_params(raw, OneClassParams)
    raw = yaml.safe_load(path.read_text())
    raw["datasets"] = ["mnist", "svhn"]
    with pytest.raises(ParamsError, match="`datasets\\[1\\]` must be one of mnist, fashion-mnist"):
        parse_params(raw, OneClassParams)
    raw = yaml.safe_load(path.read_text())
    raw["n_val_anomalies"] = 0
    with pytest.raises(ParamsError, match="`n_val_anomalies` must be > 0"):
        parse_params(raw, OneClassParams)


def test_overrides_apply_as_dvc_exp_run_s_does(raw):
    params = parse_params(with_overrides(raw, ["latent_dim=32", "train.prior=mog", "train.hidden=[256, 128]"]))
    assert (params.latent_dim, params.train.prior, params.train.hidden) == (32, "mog", (256, 128))
    assert raw["latent_dim"] == 24  # a copy is changed, not the input
    with pytest.raises(ParamsError, match=r"`trian` is not a section of params.yaml \(in 'trian.lr=1'\)"):
        with_overrides(raw, ["trian.lr=1"])
    with pytest.raises(ParamsError, match=r"`train.prio` is not a known parameter; did you mean `train.prior`\?"):
        parse_params(with_overrides(raw, ["train.prio=mog"]))


def test_the_best_study_s_candidates_are_validated():
    path = REPO_ROOT / "studies/best/params.yaml"
    study = load_params(path, BestStudyParams)
    assert study.test_k == 5000 and all(isinstance(o, tuple) for o in study.candidates.values())
    for candidate, problem in [({"Big One": []}, r"`candidates.Big One` is not a name of lowercase letters"),
                               ({"a": ["latent_dim"]}, r"`candidates.a` has 'latent_dim', not an override key=value"),
                               ({"a": "latent_dim=2"}, r"`candidates.a` must be a list")]:
        with pytest.raises(ParamsError, match=problem):
            parse_params({"val_k": 1, "test_k": 1, "candidates": candidate}, BestStudyParams)
    project = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for overrides in study.candidates.values():  # every candidate is valid params
        parse_params(with_overrides(project, overrides))
