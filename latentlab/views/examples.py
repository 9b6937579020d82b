"""The input panels' behaviour: shipped examples, uploads and drawings as the 28x28 the models
see (shown upscaled), and what a data-set switch puts into a tab.

>>> load_example("mnist", 6).shape
(224, 224)
>>> [caption for _, caption in example_items("mnist")][:2]
['0', '0']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentlab.data import CLASS_NAMES
from latentlab.errors import InputError
from latentlab.inputs import check_int
from latentlab.preprocess import PreprocessError, prepare, upscale
from latentlab.registry import REPO, ModelRegistry
from latentlab.views.models import Picker, PickerSpec, picker

EXAMPLES = REPO / "assets" / "examples"


def example_files(dataset: str) -> list[Path]:
    folder = EXAMPLES / dataset
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def example_items(dataset: str) -> list[tuple[str, str]]:
    """Gallery items: (path, caption) for the shipped test-set examples."""
    names = CLASS_NAMES.get(dataset, [str(i) for i in range(10)])
    out = []
    for p in example_files(dataset):
        label = p.stem.rsplit("-", 1)[-1]
        out.append((str(p), names[int(label)] if label.isdigit() and int(label) < 10 else p.stem))
    return out


def load_example(dataset: str, index: Any) -> np.ndarray:
    """A shipped test example as the models see it (upscaled 28x28)."""
    files = example_files(dataset)
    if not files:
        raise InputError(f"no examples shipped for {dataset!r} in assets/examples")
    i = check_int("example index", index, 0, len(files) - 1)
    return upscale(prepare(str(files[i])))


def first_example(dataset: str, index: int) -> np.ndarray | None:
    """Example ``index`` upscaled, None when fewer are shipped (the panel starts empty)."""
    files = example_files(dataset)
    return upscale(prepare(str(files[index]))) if index < len(files) else None


def preview(image: Any) -> np.ndarray:
    """An upload (path, array, ...) as the models will see it, upscaled."""
    return upscale(prepare(image))


def preview_drawing(canvas: Any) -> np.ndarray | None:
    """A drawing as the models will see it; None for an empty or cleared canvas (keep the
    last picture instead of an error while the user starts a new stroke)."""
    try:
        return upscale(prepare(canvas))
    except PreprocessError:
        return None


@dataclass
class DatasetOutputs:
    """A tab after a data-set switch, in the UI's output order."""

    pickers: list[Picker]                          # each model picker's choices and default
    galleries: list[list[tuple[str, str]]]         # each input panel's examples
    seen: list[np.ndarray | None]                  # each panel's first example as input


def switch_dataset(registry: ModelRegistry, dataset: str, specs: Sequence[PickerSpec],
                   examples: Sequence[int]) -> DatasetOutputs:
    """New data set: its models in the pickers, its examples in the galleries, and example
    ``examples[i]`` as panel i's input (so a tab never mixes data sets)."""
    return DatasetOutputs([picker(registry, dataset, s) for s in specs],
                          [example_items(dataset) for _ in examples],
                          [first_example(dataset, i) for i in examples])
