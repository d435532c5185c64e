"""Task validation: every mistake names the file and line (or the --set option) and the key."""

from __future__ import annotations

import pytest

from nesy_gedi.assembly.config import PretrainConfig, TaskConfig, dump_config
from nesy_gedi.assembly.task import load_task
from nesy_gedi.errors import UserError

from .conftest import ROOT


def test_shipped_tasks_load():
    for path in sorted((ROOT / "tasks").glob("*.yaml")):
        if "program:" in path.read_text():
            assert load_task(path).program.endswith(".pl")
        else:
            assert load_task(path, kind=PretrainConfig).network.clusters >= 2


def test_a_task_given_to_the_wrong_command_says_which_command_to_use():
    with pytest.raises(UserError, match="pretraining task .* run it with nesy-gedi pretrain"):
        load_task(ROOT / "tasks" / "gedi_mnist.yaml", kind=TaskConfig)
    with pytest.raises(UserError, match="program task .* run it with nesy-gedi run"):
        load_task(ROOT / "tasks" / "mnist_add.yaml", kind=PretrainConfig)


def test_defaults_overrides_and_float_syntax(task_file):
    path = task_file()
    config = load_task(
        path, {"seed": "7", "method": "dpl", "data.train_size": "100", "train.iterations": "5", "train.lr": "1e-4"}
    )
    assert (config.seed, config.data.train_size, config.train.iterations, config.train.lr) == (7, 100, 5, 1e-4)
    assert config.program == str(path.parent / "prog.pl")


def test_resolved_config_loads_again(task_file, tmp_path):
    config = load_task(task_file(), {"train.iterations": "3"})
    again = tmp_path / "resolved.yaml"
    again.write_text(dump_config(config))
    assert load_task(again) == config


def test_unknown_key_names_line(task_file):
    path = task_file(
        "name: t\nprogram: prog.pl\nquery: {term: 'addition(A,B,S)', output: S, inputs: {A: image, B: image}}\n"
        "networks: {mnist_net: {arch: mnist_lenet}}\ntrain:\n  batch_size: 2\n  learning_rate: 0.1\n"
    )
    with pytest.raises(UserError, match=r"task.yaml:7: key 'train.learning_rate': no such key"):
        load_task(path)


def test_wrong_type_names_line(task_file):
    text = task_file().read_text().replace("batch_size: 2", "batch_size: two")
    path = task_file(text)
    line = text.splitlines().index(next(x for x in text.splitlines() if "batch_size: two" in x)) + 1
    with pytest.raises(UserError, match=rf"task.yaml:{line}: key 'train.batch_size': .*integer"):
        load_task(path)


def test_override_errors_name_the_option(task_file):
    with pytest.raises(UserError, match=r"--set train.iterations=many"):
        load_task(task_file(), {"train.iterations": "many"})
    with pytest.raises(UserError, match=r"--set train.itrations=5: no such key"):
        load_task(task_file(), {"train.itrations": "5"})


def test_missing_program(task_file):
    path = task_file(program="")
    (path.parent / "prog.pl").unlink()
    with pytest.raises(UserError, match=r"task.yaml:\d+: key 'program': program file .*prog.pl not found"):
        load_task(path)


def test_unknown_method_and_architecture(task_file):
    with pytest.raises(UserError, match="unknown method 'dlp'; known: dpl"):
        load_task(task_file(), {"method": "dlp"})
    with pytest.raises(UserError, match=r"key 'networks.mnist_net.arch': unknown architecture 'lenet'"):
        load_task(task_file(networks={"mnist_net": {"arch": "lenet"}}))


def test_invalid_yaml(task_file):
    with pytest.raises(UserError, match=r"task.yaml:2: not valid YAML"):
        load_task(task_file("name: x\n  bad: [unclosed\n"))
