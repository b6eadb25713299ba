"""A stage trained by several processes at once (`model.processes`), through Hugging Face Accelerate.

`launch_stage` writes the StageSpec to a file and runs `accelerate launch -m curriculum.training.launch SPEC.json` in a
subprocess: Accelerate (torchrun underneath) starts the processes, one per GPU (gloo processes on the CPU), and each
trains its share of every optimizer step under an `accelerate.Accelerator` (curriculum.training.train). The flow, probing
and the warehouse stay in the calling process; what comes back is the saved adapter, read with `finished_stage`,
the same folder a one-process stage writes.

Why a subprocess and not the flow's own process: the processes of a distributed stage are started together by a
launcher and live as long as the stage; the flow keeps its models, database and Prefect state in one process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from curriculum.training.stagespec import StageSpec
from curriculum.training.stagefiles import finished_stage, StageResult
from curriculum.training.train import train_spec

RANK = re.compile(r"^\[rank(\d+)\]:\s?")  # torchrun's prefix of each worker's stderr line
ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b.*")


STOP_S = 10  # seconds the launcher has to stop its processes when the stage is stopped
SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # distributed types Accelerate has only for accelerators


class LaunchError(RuntimeError):
    """A multi-process stage that could not run or failed; one line: the setting, or the workers' own error."""


def launch_command(spec_file: Path, processes: int, config: Path | None = None) -> list[str]:
    """`accelerate launch` in this interpreter (the same environment), on a free port so stages never collide.

    Without a config file the processes are started by torchrun (`--multi_gpu`: Accelerate's `--cpu` alone starts
    one process unless under mpirun); on the CPU each worker's Accelerator is told so by ACCELERATE_USE_CPU (gloo).
    With one, the config says how (DDP, FSDP, DeepSpeed); the number of processes is always `processes`.
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
           "--main_process_port", "0"]
    if config is not None:
        cmd += ["--config_file", str(config)]
    else:
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", "curriculum.training.launch", str(spec_file)]


def _failure(stderr: str) -> str:
    """The workers' own error (the last exception line, naming its process), not the launcher's summary of it, or
    the last line of all."""
    errors, last = [], "no output"
    for raw in stderr.splitlines():
        rank = RANK.match(raw)
        line = raw[rank.end():].strip() if rank else raw.strip()
        if not line:
            continue
        last = line
        if ERROR_LINE.match(line) and "ChildFailedError" not in line:
            errors.append(f"process {rank.group(1)}: {line}" if rank else line)
    return (errors[-1] if errors else last)[:400]


def launch_stage(spec: StageSpec, processes: int, config: str | Path | None = None) -> StageResult:
    """Train the stage with `processes` processes (config: an Accelerate config YAML, e.g. for FSDP) and wait.

    Raises LaunchError (one line) for a bad setting, or when the processes fail: their last error line.
    """
    if processes < 1:
        raise LaunchError(f"model.processes must be at least 1, got {processes}")
    if config is not None and not Path(config).is_file():
        raise LaunchError(f"model.accelerate_config: no such file: {config}")
    device = str(spec.placement.get("device", "auto"))
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    _check_machine(processes, config, device, cpu)
    env = dict(os.environ)
    if cpu:
        env["ACCELERATE_USE_CPU"] = "true"
    with tempfile.TemporaryDirectory(prefix="stage-spec-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(spec.model_dump_json())
        code, stderr = _run(launch_command(spec_file, processes, Path(config) if config else None), env)
    if code != 0:
        raise LaunchError(f"stage of {processes} processes failed (exit {code}): {_failure(stderr)}")
    result = finished_stage(Path(spec.out_dir))
    if result is None:
        raise LaunchError(f"stage of {processes} processes ended but {spec.out_dir} holds no adapter")
    return result


def _run(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the launcher and wait; when the caller is stopped (Ctrl-C, SIGTERM of the flow), stop the launcher too.

    Not a plain kill: torchrun starts each process in a session of its own, so only the launcher's SIGTERM handler
    takes them down; SIGKILL follows when it has not within STOP_S seconds.
    """
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    return proc.returncode, stderr


def _check_machine(processes: int, config: str | Path | None, device: str, cpu: bool) -> None:
    """What this machine cannot do is refused in one line, not left to fail in N processes or, worse, done otherwise:
    more processes than GPUs, or a sharding config (FSDP, DeepSpeed) that Accelerate would run as plain DDP on the CPU."""
    if not cpu and device.startswith(("cuda", "auto")) and processes > torch.cuda.device_count():
        raise LaunchError(f"model.processes is {processes} but this machine has {torch.cuda.device_count()} CUDA "
                          "device(s): one process a GPU")
    if cpu and config is not None:
        import yaml

        kind = str((yaml.safe_load(Path(config).read_text()) or {}).get("distributed_type", "")).upper()
        if kind in SHARDED:
            raise LaunchError(f"model.accelerate_config asks for {kind}, which Accelerate runs on GPUs only "
                              f"(this stage's model.device is '{device}')")


def run_worker(spec_file: Path) -> StageResult:
    """One process of a launched stage: its Accelerator, and the placement's device made this process's own."""
    from accelerate import Accelerator

    spec = StageSpec.model_validate_json(Path(spec_file).read_text())
    accelerator = Accelerator()
    if accelerator.device.type == "cuda":  # 'cuda' or 'auto' in the graph: each process on its own GPU
        spec = spec.model_copy(update={"placement": {**spec.placement, "device": str(accelerator.device)}})
    return train_spec(spec, accelerator=accelerator)


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]))
