"""The config file a node bootstraps a cluster with (SPEC 1, 4).

Only bootstrapping (``Init``, ``--init``) reads it: its schemas and tree
become the cluster's first log entries, which every other node — joining
learners, restarted members — gets from the log or a snapshot. So a node
whose data dir is initialised never reads it, and one that joins needs none.

Which file: ``--config-file`` if given (missing or invalid: a start-up
error); else ``schemas.yaml`` in the working directory, if there is one;
else the schema shipped inside the package (``qcore/default_schemas.yaml``),
so that ``pip install qcore`` works anywhere. The node logs which it used.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from qcore.store.commands import LoadConfig
from qcore.store.config import ConfigError, load_config, load_config_text

__all__ = ["LOCAL_FILE", "PACKAGED_FILE", "load_bootstrap_config", "packaged_config_text"]

#: Looked for in the working directory when no --config-file is given (the seed's default).
LOCAL_FILE = "schemas.yaml"
#: The schema shipped with qcore, as package data.
PACKAGED_FILE = "default_schemas.yaml"


def packaged_config_text() -> str:
    """The text of the schema shipped inside the qcore package."""
    return resources.files("qcore").joinpath(PACKAGED_FILE).read_text(encoding="utf-8")


def load_bootstrap_config(config_file: Path | None, cwd: Path | None = None) -> tuple[LoadConfig, str]:
    """The config to bootstrap with and a description of where it came from (for the log).

    Raises ConfigError, naming the file, if it is missing or invalid.
    """
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(str(config_file), "", "is a directory, not a config file" if config_file.is_dir()
                              else "config file not found")
        return load_config(config_file), str(config_file)
    local = (cwd if cwd is not None else Path.cwd()) / LOCAL_FILE
    if local.is_file():
        return load_config(local), f"{local} (no --config-file given; found in the working directory)"
    cfg = load_config_text(packaged_config_text(), f"qcore/{PACKAGED_FILE}")
    return cfg, (f"the schema shipped with qcore (qcore/{PACKAGED_FILE}): no --config-file given "
                 f"and no {LOCAL_FILE} in {local.parent}")
