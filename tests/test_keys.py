"""The documented key tables are the code's: `docs/tasks.md` holds exactly what `nesy-gedi keys` prints."""

from __future__ import annotations

import re

from nesy_gedi.assembly.config import PretrainConfig, TaskConfig
from nesy_gedi.assembly.keys import key_rows, key_tables

from .conftest import ROOT

BEGIN, END = "<!-- begin generated: nesy-gedi keys -->", "<!-- end generated: nesy-gedi keys -->"


def documented() -> str:
    text = (ROOT / "docs" / "tasks.md").read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()


def test_docs_hold_the_generated_key_tables():
    assert documented() == key_tables().strip(), (
        "docs/tasks.md is out of date: regenerate its key reference with `nesy-gedi keys` (between the markers)"
    )


def test_every_model_field_is_a_documented_key():
    for model in (TaskConfig, PretrainConfig):
        rows = {key.strip("`") for key, _, _ in key_rows(model)}
        assert {"seed", "train.batch_size", "sgld.steps", "augment.stroke"} <= rows
        assert all(meaning for _, _, meaning in key_rows(model)), "every key needs a description"
    assert "networks.<name>.init" in {key.strip("`") for key, _, _ in key_rows(TaskConfig)}
    assert re.search(r"\| `train.batch_size` \| `256` \|", key_tables())  # pretraining's own default
