"""A refused setting in a student's words: "ρ must be between 0 and 1, both excluded (you asked for `2`)".

Not a page itself. The configuration refuses a value with a message in code terms ("rho must be in (0, 1),
got 2.0"), which the CLI shows as it is (its flags are those names). The page says the same rule with the
control's own name and plain words. What came from outside (the value asked for) stays a Markdown code
span, and the rule's text is escaped, so a link can never put a link or a formula into the message.
"""

from __future__ import annotations

import re

from pages.notices import literal

NAMES = {
    "rho": "ρ",
    "beta": "β",
    "weight_decay": "the weight decay λ",
    "lr": "the learning rate",
    "hidden": "the number of hidden units",
    "steps": "the training length",
    "epochs": "the number of epochs",
    "batch_size": "the batch size",
    "seed": "the seed",
    "data_seed": "the data seed",
    "n_bars": "the number of bar images",
    "n_patches": "the number of patches",
    "n_vectors": "the number of vectors",
    "n_features": "the number of true features",
    "n_dims": "the number of dimensions",
    "feature_prob": "the feature probability",
    "max_samples": "the number of samples",
    "layers": "the layer sizes",
    "kernels": "the number of kernels",
    "kernel_size": "the kernel size",
    "latent": "the latent size",
    "k": "k",
    "noise": "the noise level",
    "contraction": "the contraction weight λ_c",
    "momentum": "the momentum",
}
"""Config field -> what the page calls it (others: the field's name with spaces)."""

_MESSAGE = re.compile(r"^(?P<name>\w+) must be (?P<rule>.*), got (?P<got>.*)$", re.DOTALL)
_NUMBER = r"-?[\d.]+(?:e[-+]?\d+)?"
_INTERVAL = re.compile(rf"^in (?P<open>[(\[])(?P<a>{_NUMBER}), (?P<b>{_NUMBER})(?P<close>[)\]])(?P<rest>.*)$")
_BOUND = re.compile(rf"^(?P<op>>=|<=|>|<) (?P<a>{_NUMBER})(?P<rest>.*)$")
_ENDS = {
    ("(", ")"): "between {a} and {b}, both excluded",
    ("[", "]"): "between {a} and {b}",
    ("(", "]"): "above {a} and at most {b}",
    ("[", ")"): "at least {a} and below {b}",
}
_BOUNDS = {">=": "at least {a}", ">": "above {a}", "<=": "at most {a}", "<": "below {a}"}
_TYPES = {"of type float": "a number", "of type int": "a whole number", "of type bool": "true or false"}
_MARKDOWN = re.compile(r"([\\`*_\[\]()#+!|<>~${}])")


def name_of(field: str) -> str:
    return NAMES.get(field, field.replace("_", " "))


def sentence(text: str) -> str:
    """The text with its first letter a capital (ρ and β stay as they are: Ρ is not ρ)."""
    return text[:1].upper() + text[1:] if text[:1].isascii() else text


def _escaped(text: str) -> str:
    """Rule text from the code as plain Markdown: no character of it can start a link, emphasis or formula."""
    return _MARKDOWN.sub(r"\\\1", text)


def _rule(rule: str) -> str:
    rule = rule.replace(" (the size limit)", "")
    interval = _INTERVAL.match(rule)
    if interval:
        words = _ENDS[(interval["open"], interval["close"])].format(a=interval["a"], b=interval["b"])
        return words + _escaped(interval["rest"])
    bound = _BOUND.match(rule)
    if bound:
        return _BOUNDS[bound["op"]].format(a=bound["a"]) + _escaped(bound["rest"])
    if rule in _TYPES:
        return _TYPES[rule]
    return _escaped(rule)


def in_words(message: str) -> str:
    """A configuration's refusal ("rho must be in (0, 1), got 2.0") in the page's words, as Markdown:
    "ρ must be between 0 and 1, both excluded (you asked for `2.0`)". A message of another shape is
    shown as it is, in a code span."""
    found = _MESSAGE.match(" ".join(message.split()))
    if found is None:
        return literal(message)
    got = found["got"]
    return (
        f"{sentence(name_of(found['name']))} must be {_rule(found['rule'])} (you asked for {literal(got)})."
    )


def too_large(field: str, most: float, value: float, why: str = "") -> str:
    """A value over what the page's control allows: "β can be at most 10 for the KL penalty (you asked
    for 50)"."""
    return f"{sentence(name_of(field))} can be at most {most:g}{why} (you asked for {literal(f'{value:g}')})."
