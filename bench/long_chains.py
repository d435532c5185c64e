"""Is the sample quality of a GEDI pretraining limited by the chains' length or by the energy model?

Run: .venv/bin/python bench/long_chains.py RUN_FOLDER... [--chains 1000] [--visits 0,10,30,100]
Takes the first chains of each finished run's replay buffer (its `checkpoint.pt`), advances them with the
run's own SGLD settings (K steps per visit, no restarts from noise), and after each number of visits lets
the run's sample judge say which share it recognises with confidence >= the run's threshold, and how many
concepts are among them. If the share rises with longer chains, the training budget's chains were too
short; if it stays, the energy model's low-energy regions are not the data's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nesy_gedi.analysis.sample_quality import judge_arch, judge_samples, train_judge
from nesy_gedi.assembly.config import PretrainConfig
from nesy_gedi.assembly.task import load_task
from nesy_gedi.commands.pretrain import build_objective, load_unlabelled
from nesy_gedi.data.mnist import cache_folder
from nesy_gedi.ssl.sgld import SGLDSampler
from nesy_gedi.training.rundir import CHECKPOINT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--chains", type=int, default=1000)
    parser.add_argument("--visits", default="0,10,30,100", help="cumulative visits of K steps each")
    options = parser.parse_args()
    visits = [int(v) for v in options.visits.split(",")]
    torch.set_num_threads(1)
    device = torch.device("cpu")
    print("| run | " + " | ".join(f"{v} visits" for v in visits) + " |")
    print("|---" * (len(visits) + 1) + "|")
    for folder in options.runs:
        config = load_task(folder / "config.yaml", {}, PretrainConfig)
        cache = cache_folder(config.data.cache)
        data = load_unlabelled(config, cache, device)
        objective = build_objective(config, data, device, config.seed)
        state = torch.load(folder / CHECKPOINT, map_location=device, weights_only=False)
        objective.network.load_state_dict(state["networks"]["net"])
        chains = state["learner"]["sampler"]["buffer"][: options.chains]
        spec = config.sgld.model_copy(update={"buffer_size": len(chains), "reinit": 0.0})
        sampler = SGLDSampler(spec, data.domain, torch.Generator(device).manual_seed(0))
        sampler.load_state_dict({"buffer": chains})
        arch = judge_arch(tuple(data.test.shape[1:]), config.eval.judge_arch)
        judge, _ = train_judge(data.train, data.train_labels, data.classes, arch, cache)
        cells, done = [], 0
        for target in visits:
            for _ in range(target - done):
                sampler.sample(objective.cluster_net, objective.network, len(chains))
            done = target
            verdict = judge_samples(judge, sampler.buffer, data.classes, config.eval.sample_confidence)
            cells.append(f"{verdict['confident']:.3f} ({verdict['classes_present']})")
        print(f"| {folder.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
