"""`python -m vaepipe.launch`, the launcher's name before it moved to `vaepipe.vae.launch`: kept so that commands
(and dvc.yaml files of experiments) written with it still run."""

import runpy

if __name__ == "__main__":
    runpy.run_module("vaepipe.vae.launch", run_name="__main__", alter_sys=True)
