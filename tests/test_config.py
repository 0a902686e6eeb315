"""Run configuration: validation messages, round trips through dict / JSON / flat strings, immutability."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from sae_core.config.run import FIELD_SECTION, LIVE_FIELDS, DataConfig, ModelConfig, RunConfig, TrainConfig
from sae_core.penalties.registry import DEFAULT_PENALTY, PENALTY_NAMES


def assert_rejected(klass: type, field: str, value: object, rule: str, **other: object) -> None:
    """Building klass(field=value) raises ValueError naming the field, the value and the allowed range."""
    with pytest.raises(ValueError) as info:
        klass(**{field: value}, **other)
    message = str(info.value)
    assert message.startswith(f"{field} must be"), message
    assert rule in message, message
    assert repr(value) in message, message


@pytest.mark.parametrize("rho", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_rho_outside_open_unit_interval_is_rejected(rho):
    assert_rejected(ModelConfig, "rho", rho, "in (0, 1)")


@pytest.mark.parametrize("rho", [1e-6, 0.05, 0.999])
def test_rho_inside_open_unit_interval_is_accepted(rho):
    assert ModelConfig(rho=rho).rho == rho


@pytest.mark.parametrize("beta", [-1e-9, -3.0, math.nan, math.inf])
def test_negative_or_non_finite_beta_is_rejected(beta):
    assert_rejected(ModelConfig, "beta", beta, ">= 0")


@pytest.mark.parametrize("lam", [-1e-4, math.nan, math.inf])
def test_negative_or_non_finite_weight_decay_is_rejected(lam):
    assert_rejected(ModelConfig, "weight_decay", lam, ">= 0")


def test_zero_beta_and_zero_weight_decay_are_allowed():
    cfg = ModelConfig(beta=0.0, weight_decay=0.0)
    assert (cfg.beta, cfg.weight_decay) == (0.0, 0.0)


@pytest.mark.parametrize("hidden", [0, -5])
def test_hidden_below_one_is_rejected(hidden):
    assert_rejected(ModelConfig, "hidden", hidden, ">= 1", k=1)


def test_k_larger_than_hidden_is_rejected_with_the_hidden_size_in_the_message():
    assert_rejected(ModelConfig, "k", 9, "in [1, hidden=8]", hidden=8, penalty="topk")
    assert_rejected(ModelConfig, "k", 0, "in [1, hidden=8]", hidden=8, penalty="topk")
    assert ModelConfig(hidden=8, k=8, penalty="topk").k == 8


def test_steps_zero_means_until_paused_and_negative_steps_are_rejected():
    assert TrainConfig(steps=0).steps == 0
    assert_rejected(TrainConfig, "steps", -1, ">= 0 (0 = until paused)")


@pytest.mark.parametrize("lr", [0.0, -0.01, math.nan, math.inf])
def test_non_positive_or_non_finite_learning_rate_is_rejected(lr):
    assert_rejected(TrainConfig, "lr", lr, "> 0")


@pytest.mark.parametrize(
    ("klass", "field", "value", "choice"),
    [
        (ModelConfig, "penalty", "kl2", "kl, l1, topk, none"),
        (ModelConfig, "activation", "tanh", "auto, sigmoid, relu, linear"),
        (ModelConfig, "output", "relu", "sigmoid, linear"),
        (ModelConfig, "variant", "transformer", "sparse"),
        (TrainConfig, "optimizer", "rmsprop", "adam, sgd, lbfgs"),
        (TrainConfig, "device", "tpu", "auto, cpu, cuda, mps"),
    ],
)
def test_literal_fields_reject_values_outside_their_choices(klass, field, value, choice):
    assert_rejected(klass, field, value, "one of " + choice if field != "variant" else choice)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_kl_penalty_needs_sigmoid_hidden_units(activation):
    assert_rejected(ModelConfig, "activation", activation, "sigmoid", penalty="kl")
    # The same activation is fine with a penalty that does not compare Bernoulli means.
    assert ModelConfig(penalty="l1", activation=activation).hidden_activation == activation


@pytest.mark.parametrize(
    ("penalty", "expected"),
    [("kl", "sigmoid"), ("none", "sigmoid"), ("l1", "relu"), ("topk", "sigmoid"), ("jumprelu", "jumprelu")],
)
def test_auto_activation_resolves_from_the_penalty(penalty, expected):
    assert ModelConfig(penalty=penalty).hidden_activation == expected


def test_top_k_codes_are_sigmoid_on_data_in_0_1_and_linear_on_signed_data():
    assert ModelConfig(penalty="topk", output="sigmoid").hidden_activation == "sigmoid"
    assert ModelConfig(penalty="topk", output="linear").hidden_activation == "linear"
    assert ModelConfig(penalty="topk", output="sigmoid", activation="linear").hidden_activation == "linear"


def test_the_default_penalty_is_ufldls_kl_the_first_in_the_menu():
    assert ModelConfig().penalty == DEFAULT_PENALTY == PENALTY_NAMES[0] == "kl"


def example_config() -> RunConfig:
    """A config that differs from the defaults in every section and in every kind of field."""
    return RunConfig(
        data=DataConfig(dataset="bars", bar_prob=0.2, max_samples=500, data_dir="/tmp/x"),
        model=ModelConfig(hidden=16, rho=0.1, beta=2.5, layers=(32, 8), tied=True, penalty="kl"),
        train=TrainConfig(optimizer="sgd", lr=0.5, epochs=2.5, seed=7, batch_size=0),
    )


def test_dict_round_trip_gives_an_equal_config():
    cfg = example_config()
    d = cfg.to_dict()
    assert set(d) == {"data", "model", "train"}
    assert d["model"]["layers"] == [32, 8]  # JSON-ready: tuples become lists
    assert RunConfig.from_dict(d) == cfg


def test_json_round_trip_gives_an_equal_config():
    cfg = example_config()
    again = RunConfig.from_dict(json.loads(cfg.to_json()))  # as a saved model's config.json is read
    assert again == cfg
    assert again.model.layers == (32, 8)


def test_flat_round_trip_and_partial_flat_mapping_uses_defaults():
    cfg = example_config()
    assert RunConfig.from_flat(cfg.flat()) == cfg
    partial = RunConfig.from_flat({"rho": 0.2})
    assert partial == RunConfig(model=ModelConfig(rho=0.2))
    assert set(cfg.flat()) == set(FIELD_SECTION)


def test_from_flat_coerces_strings_as_they_come_from_cli_flags_and_url_queries():
    cfg = RunConfig.from_flat(
        {
            "rho": "0.1",
            "hidden": "16",
            "layers": "32, 8",
            "tied": "true",
            "epochs": "None",
            "max_samples": "none",
            "lr": "1e-3",
            "batch_size": "0",
            "penalty": "l1",
            "dataset": "bars",
        }
    )
    assert cfg.model.rho == 0.1 and isinstance(cfg.model.rho, float)
    assert cfg.model.hidden == 16 and isinstance(cfg.model.hidden, int)
    assert cfg.model.layers == (32, 8)
    assert cfg.model.tied is True
    assert cfg.train.epochs is None and cfg.data.max_samples is None
    assert cfg.train.lr == 1e-3 and cfg.train.batch_size == 0
    assert cfg.model.penalty == "l1" and cfg.data.dataset == "bars"
    assert RunConfig.from_flat({"tied": "false"}).model.tied is False
    assert RunConfig.from_flat({"epochs": "2.5"}).train.epochs == 2.5


@pytest.mark.parametrize(
    ("field", "text"), [("hidden", "many"), ("hidden", "16.5"), ("tied", "maybe"), ("rho", "x")]
)
def test_from_flat_rejects_strings_of_the_wrong_type_naming_the_field(field, text):
    with pytest.raises(ValueError, match=f"^{field} must be") as info:
        RunConfig.from_flat({field: text})
    assert repr(text) in str(info.value)


def test_from_flat_still_validates_ranges_after_coercion():
    with pytest.raises(ValueError, match=r"rho must be in \(0, 1\), got 1\.0"):
        RunConfig.from_flat({"rho": "1"})


def test_unknown_fields_are_rejected_flat_and_nested():
    with pytest.raises(ValueError, match="unknown config field.*learning_rate"):
        RunConfig.from_flat({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown config field.*learning_rate"):
        RunConfig.from_dict({"learning_rate": 0.1})
    nested = RunConfig().to_dict()
    nested["model"]["sparsity"] = 3
    with pytest.raises(ValueError, match="unknown ModelConfig field.*sparsity"):
        RunConfig.from_dict(nested)


def test_configs_are_frozen():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.rho = 0.2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train = TrainConfig()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.data.dataset = "bars"  # type: ignore[misc]
    assert cfg.model.rho == ModelConfig().rho


def test_replace_returns_a_validated_copy_and_leaves_the_original_alone():
    cfg = RunConfig()
    changed = cfg.replace(rho=0.2, lr="0.5")
    assert (changed.model.rho, changed.train.lr) == (0.2, 0.5)
    assert (cfg.model.rho, cfg.train.lr) == (ModelConfig().rho, TrainConfig().lr)
    with pytest.raises(ValueError, match="rho must be"):
        cfg.replace(rho=2.0)


def test_live_fields_are_the_objective_weights_the_learning_rate_and_the_run_length():
    assert LIVE_FIELDS == {"rho", "beta", "weight_decay", "lr", "steps", "epochs", "contraction"}


@pytest.mark.parametrize(
    ("variant", "penalty", "effective"),
    [("sparse", "l1", "l1"), ("vae", "kl", "none"), ("ksparse", "kl", "topk"), ("conv", "kl", "kl")],
)
def test_effective_penalty_is_what_the_objective_contains(variant, penalty, effective):
    assert ModelConfig(variant=variant, penalty=penalty).effective_penalty == effective
