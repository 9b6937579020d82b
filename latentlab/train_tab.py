"""Transitional: the Train tab is now ``latentlab.ui.train.build_train`` (components, with the
tab's explanation) and ``latentlab.views.train`` (its plain functions). This module goes once
app.py imports ``build_train``; ``build_train_tab`` leaves the explanation to the caller, as
app.py's ``explanation(explain.TRAIN)`` still does.
"""

from __future__ import annotations

from typing import Any

from latentlab.jobs import TrainingManager, get_manager
from latentlab.ui import train as _ui


def build_train_tab(registry: Any = None, manager: TrainingManager | None = None) -> None:
    _ui._build_tab(registry, manager or get_manager())
