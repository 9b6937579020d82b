"""The training CLI under torchrun: two CPU processes with gloo, DistributedDataParallel.

A small wrapper runs ``latentlab.train.train_main`` unchanged and only observes it: each
rank writes the batches it saw and its final weights, and rank 1 starts from different
weights, so identical final weights prove DDP's initial broadcast and gradient averaging.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from latentlab.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]

WRAPPER = '''
import hashlib, json, os, sys
import torch
from safetensors.torch import save_file
import latentlab.train as T

rank, out = int(os.environ["RANK"]), os.environ["RANK_OUT"]
seen = []
kind = sys.argv[sys.argv.index("--model") + 1]
step = T.STEPS[kind]

def watched_step(model, x, y, beta):  # fingerprints of the images this rank trains on
    if model.training:  # validation batches run in eval mode and are not training data
        seen.extend(hashlib.sha1(img.cpu().numpy().tobytes()).hexdigest() for img in x)
    return step(model, x, y, beta)

config_cls, model_cls = T.MODEL_KINDS[kind]

def build(cfg):  # rank 1 starts elsewhere: DDP must broadcast rank 0's weights
    model = model_cls(cfg)
    if rank == 1:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.5)
    return model

fit = T.fit

def observed_fit(model, *args, **kwargs):
    path = fit(model, *args, **kwargs)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, f"{out}/rank{rank}.safetensors")
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump(seen, fh)
    return path

T.STEPS[kind] = watched_step
T.MODEL_KINDS[kind] = (config_cls, build)
T.fit = observed_fit
T.train_main(sys.argv[1:])
'''

TINY = {
    "vae": ["--latent-dim", "2", "--channels", "8", "--hidden", "32"],
    "vqvae": ["--num-codes", "16", "--code-dim", "4", "--channels", "4", "--prior-dim", "16",
              "--prior-layers", "1", "--prior-heads", "2", "--prior-epochs", "1"],
}


@pytest.mark.parametrize("kind", ["vae", "vqvae"])
def test_torchrun_two_cpu_ranks_train_one_model(tmp_path, kind):
    wrapper, ranks, ckpts = tmp_path / "wrapper.py", tmp_path / "ranks", tmp_path / "ckpts"
    wrapper.write_text(WRAPPER)
    ranks.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "RANK_OUT": str(ranks), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(wrapper), "--model", kind, *TINY[kind], "--subset", "256", "--batch-size", "32",
           "--epochs", "1", "--threads", "1", "--no-progress", "--out", str(ckpts / "ddp")]
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]

    # each rank trained on its own half: disjoint shards that together cover 2 x 4 batches
    seen = [json.loads((ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 4 * 32
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0]) | set(seen[1])) == 256

    # same final weights on both ranks although rank 1 started elsewhere and saw other data
    w0, w1 = (load_file(ranks / f"rank{r}.safetensors") for r in (0, 1))
    for name, tensor in w0.items():
        assert torch.equal(tensor, w1[name]), name

    # exactly one checkpoint, written by rank 0, holding those weights
    assert sorted(p.name for p in ckpts.iterdir()) == ["ddp"]
    model, info = load_checkpoint(ckpts / "ddp")
    assert info.kind == kind and info.metrics["world_size"] == 2
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, w0[name]), name
