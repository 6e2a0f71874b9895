"""Metaflow `Config` in @sandbox steps, on whichever backend
METAFLOW_SANDBOX_BACKEND names: a config from its default file, one whose
file is replaced with `--config over FILE`, one set with `--config-value val
JSON`, two decorator arguments computed from configs (`config_expr`), and a
foreach over a config's list.  Every sandboxed task reads its configs from
the file Metaflow's runtime passes as `--local-config-file`, a file on the
launcher that mfsandbox ships into the sandbox.  The test writes the JSON
files next to this one."""
import os

from metaflow import Config, FlowSpec, config_expr, environment, sandbox, step


class MfsConfigFlow(FlowSpec):
    cfg = Config("cfg", default="cfg_default.json")
    over = Config("over", default="over_default.json")
    val = Config("val", default_value={"tag": "default value"})

    @environment(vars={"MFS_CFG_COLOUR": config_expr("over.colour")})
    @sandbox(timeout=config_expr("cfg.timeout"))
    @step
    def start(self):
        self.cfg_name = self.cfg.name
        self.over_name = self.over.name
        self.val_tag = self.val.tag
        self.env_colour = os.environ.get("MFS_CFG_COLOUR")
        self.backend = os.environ.get("METAFLOW_SANDBOX_BACKEND")
        self.items = list(self.cfg["items"])
        self.next(self.scale, foreach="items")

    @sandbox
    @step
    def scale(self):
        self.value = self.input * self.over.factor
        self.val_tag = self.val.tag
        self.next(self.join)

    @sandbox
    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.over_name = self.over.name
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    MfsConfigFlow()
