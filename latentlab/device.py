"""Which device to compute on, and how to describe it in metrics.json.

Shared by the training and the evaluation commands (and the app's Train tab), so neither
needs the other for it.

>>> pick_device("cpu")
device(type='cpu')
>>> device_description(torch.device("cpu")).startswith("cpu (")
True
"""

from __future__ import annotations

import os
import platform

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when present, else the CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """One line naming the hardware: the GPU's name, or the CPU's cores and torch threads."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}, {platform.machine()})"
