"""Training: optimizer, jitted steps, the loop, checkpoints, logs and plots.

``train_and_evaluate(config, workdir)`` runs a whole experiment from an
``ml_collections`` config (see ``configs/``); the pieces it is made of are
public so that other loops can reuse them.
"""

from jlstm.train.checkpoint import Checkpointer
from jlstm.train.config_check import check_config
from jlstm.train.errors import ConfigError, NonFiniteError
from jlstm.train.logging import MetricsWriter, read_metrics
from jlstm.train.loop import evaluate, train_and_evaluate
from jlstm.train.optim import make_optimizer, make_schedule
from jlstm.train.plots import plot_curves
from jlstm.train.sharding import make_mesh
from jlstm.train.steps import TrainState, init_train_state, make_eval_step, make_train_step
from jlstm.train.tasks import Task, make_task

__all__ = [
    "Checkpointer",
    "ConfigError",
    "MetricsWriter",
    "NonFiniteError",
    "Task",
    "TrainState",
    "check_config",
    "evaluate",
    "init_train_state",
    "make_eval_step",
    "make_mesh",
    "make_optimizer",
    "make_schedule",
    "make_task",
    "make_train_step",
    "plot_curves",
    "read_metrics",
    "train_and_evaluate",
]
