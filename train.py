"""Train a jlstm model from a config file: the same as ``jlstm-train`` (see jlstm/train/cli.py).

python train.py --config configs/NAME.py --workdir runs/NAME [--config.section.field=value ...]
"""

from jlstm.train.cli import default_workdir, main  # noqa: F401 (default_workdir: for tests)

if __name__ == "__main__":
    main()
