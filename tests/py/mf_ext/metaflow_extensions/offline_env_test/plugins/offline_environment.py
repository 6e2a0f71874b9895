"""`--environment offlinepip`: what @pypi's environment does in a sandbox
(bootstrap commands that install packages before the step, the step run by
the environment's interpreter), with pip and a wheel from the code package
instead of micromamba and conda channels, which this machine cannot reach."""
from metaflow.metaflow_environment import MetaflowEnvironment

TARGET = "offline-env"


class OfflinePipEnvironment(MetaflowEnvironment):
    TYPE = "offlinepip"

    def bootstrap_commands(self, step_name, datastore_type):
        return [
            "echo 'Bootstrapping offline environment...'",
            "flush_mflogs",
            "python -m pip install --quiet --no-index --no-deps --disable-pip-version-check "
            "--find-links . --target %s mfs_offline_probe" % TARGET,
            "export PYTHONPATH=$(pwd)/%s:$PYTHONPATH" % TARGET,
        ]

    def executable(self, step_name, default=None):
        return "python"
