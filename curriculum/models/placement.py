"""Where a model runs and in what precision: `model.device`, `model.dtype` and `model.quantize` of the graph,
turned into one `Placement` here and nowhere else, so the prober, a stage and the benchmark agree.

`auto` is CUDA in bf16 (fp16 on a card without bf16) when there is a GPU, else the CPU in fp32. What a user
asks for is taken as given: a request the machine cannot meet (CUDA on a laptop, 4-bit without bitsandbytes) is a
`ModelError` of one line when the model is about to load, not a silent fallback to something slower.
"""

from __future__ import annotations

import importlib.util
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from curriculum.models.bases import ModelError
from curriculum.graph.spec import DEVICE_PATTERN
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
GPU_EXTRA = "pip install 'curriculum-orchestrator[gpu]'"


@dataclass(frozen=True)
class Placement:
    """A resolved device and dtype (never 'auto'), and whether the base loads quantized to 4 bits."""

    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    quantize: str | None = None

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def autocast(self) -> AbstractContextManager:
        """Mixed precision for the forward pass when the weights are not fp32 (the LoRA layers stay fp32)."""
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=self.dtype)

    @property
    def needs_grad_scaler(self) -> bool:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 have the range not to."""
        return self.dtype == torch.float16 and self.device.startswith("cuda")

    def record(self) -> dict[str, str | None]:
        """What a stage.json says it ran on."""
        return {"device": self.device, "dtype": self.dtype_name, "quantize": self.quantize}


CPU = Placement()


def _cuda_ready(device: str) -> None:
    if not torch.cuda.is_available():
        raise ModelError(f"model.device is '{device}' but CUDA is not available on this machine")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ModelError(f"model.device is '{device}' but this machine has {torch.cuda.device_count()} CUDA device(s)")


def resolve(device: str = "auto", dtype: str = "auto", quantize: str | None = None) -> Placement:
    """The graph's model settings made concrete for this machine, or a one-line ModelError saying why not."""
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise ModelError(f"model.device '{device}' is not one of auto, cpu, cuda, cuda:N, mps")
    if dtype != "auto" and dtype not in DTYPES:
        raise ModelError(f"model.dtype '{dtype}' is not one of auto, {', '.join(DTYPES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        _cuda_ready(device)
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ModelError("model.device is 'mps' but MPS is not available on this machine")
    if quantize is not None:
        if not device.startswith("cuda"):
            raise ModelError(f"model.quantize: {quantize} needs a CUDA device (model.device is '{device}')")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ModelError(f"model.quantize: {quantize} needs bitsandbytes: {GPU_EXTRA}")
    if dtype != "auto":
        return Placement(device, DTYPES[dtype], quantize)
    if device.startswith("cuda"):  # 4-bit weights compute in half precision too
        return Placement(device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16, quantize)
    return Placement(device, torch.float32, quantize)


def of_model(model_config) -> Placement:
    """The placement a graph's `model:` section asks for (curriculum.graph.spec.ModelConfig)."""
    return resolve(model_config.device, model_config.dtype, model_config.quantize)
