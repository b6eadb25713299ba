"""Probing a run's stages with one loaded base model, swapping adapters instead of reloading."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from peft import PeftModel

from curriculum.models.load import Loaded, load_base
from curriculum.models.placement import Placement
from curriculum.loading.validate import LoadedCurriculum
from probes.results import ItemResult
from probes.sweep import Selection, probe_nodes


class Prober:
    """Holds the base model; each probe call activates one stage's adapter (or none)."""

    def __init__(self, base: str, tokens: dict[str, Any] | None = None, placement: Placement | None = None):
        self.base = base
        self.tokens = tokens  # hyperword token plan: every stage of the run shares the same vocabulary
        self.placement = placement  # the graph's model.device/dtype/quantize (None: auto)
        self._loaded: Loaded | None = None
        self._peft: PeftModel | None = None
        self._active: str | None = None

    def _base(self) -> Loaded:
        """The base model and tokenizer, loaded once (the first probe pays for it)."""
        if self._loaded is None:
            self._loaded = load_base(self.base, placement=self.placement, tokens=self.tokens)
            self._loaded.model.eval()
        return self._loaded

    def model_for(self, adapter: Path | None):
        base = self._base()
        if adapter is None:
            return base.model if self._peft is None else self._peft.get_base_model()
        name = Path(adapter).name.replace(".", "_")
        if self._peft is None:
            self._peft = PeftModel.from_pretrained(base.model, str(adapter), adapter_name=name)
        elif name != self._active:
            self._peft.load_adapter(str(adapter), adapter_name=name)
            self._peft.set_adapter(name)
            if self._active is not None:
                self._peft.delete_adapter(self._active)
        self._active = name
        return self._peft.eval()

    @property
    def tokenizer(self):
        """The run's tokenizer (the base model is loaded for it once, as for any probe)."""
        if self._loaded is None:
            self.model_for(None)
        return self._loaded.tokenizer

    def lend_base(self):
        """The loaded base with no adapter in it, for a stage to train on (one copy of the model in memory);
        the next probe loads its adapter again."""
        if self._loaded is None:
            self.model_for(None)
        if self._peft is not None:
            self._peft.unload()
            self._peft, self._active = None, None
        return self._loaded

    def probe(self, loaded: LoadedCurriculum, adapter: Path | None, selection: Selection,
              gates: dict[str, float] | None = None, exam: bool = False) -> dict[str, list[ItemResult]]:
        model = self.model_for(adapter)
        if adapter is None and self._peft is not None:
            with self._peft.disable_adapter():
                return probe_nodes(model, self._base().tokenizer, loaded, selection, gates, exam)
        return probe_nodes(model, self._base().tokenizer, loaded, selection, gates, exam)

    @contextmanager
    def using(self, adapter: Path | None) -> Iterator[tuple[Any, Any]]:
        """(model, tokenizer) with this stage's adapter active, or the bare base model (adapters disabled)."""
        model = self.model_for(adapter)
        with self._peft.disable_adapter() if adapter is None and self._peft is not None else nullcontext():
            yield model, self._base().tokenizer
