"""Training jobs started from the app: what to train, where its files go, the device side
and the one-job-at-a-time manager.

| module | concern |
|---|---|
| ``spec`` | ``JobSpec``: checks, translation to engine configs, the equivalent CLI command |
| ``files`` | safe folder names, fresh folders, stale temporaries, zips |
| ``preview`` | the per-epoch picture (test images, reconstructions, samples) |
| ``runner`` | the device side: chunks of epochs in a thread, finishing, ZeroGPU wrapping |
| ``estimate`` | the measured time left and whole-job estimates |
| ``manager`` | ``TrainingManager``, ``JobStatus``, ``get_manager`` |
"""

from latentlab.jobs.estimate import TimeEstimate, format_seconds
from latentlab.jobs.files import (
    default_name,
    remove_stale_temporaries,
    sanitize_name,
    unique_folder,
    zip_checkpoint,
)
from latentlab.jobs.manager import (
    ACTIVE,
    JobStatus,
    TrainingManager,
    cpu_cap,
    get_manager,
    training_enabled,
    user_checkpoint_dir,
)
from latentlab.jobs.preview import preview_grid
from latentlab.jobs.runner import (
    StepMeter,
    finish_job,
    on_zerogpu,
    server_device,
    train_chunk,
    trains_on_cpu,
)
from latentlab.jobs.spec import APP_KINDS, KIND_LABELS, JobSpec

__all__ = [
    "ACTIVE", "APP_KINDS", "KIND_LABELS", "JobSpec", "JobStatus", "StepMeter", "TimeEstimate",
    "TrainingManager", "cpu_cap", "default_name", "finish_job", "format_seconds", "get_manager",
    "on_zerogpu", "preview_grid", "remove_stale_temporaries", "sanitize_name", "server_device",
    "train_chunk", "training_enabled", "trains_on_cpu", "unique_folder", "user_checkpoint_dir",
    "zip_checkpoint",
]
