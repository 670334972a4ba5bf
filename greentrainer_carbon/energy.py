"""Energy: the model the planner and the simulator plan with (`EnergyModel`), and the energy of
full fine-tuning, the counterfactual every saving is measured against.

    E*_k = E_k F*_k / F_k          E_k  energy measured for epoch k (kWh)
                                   F_k  FLOPs it executed; F*_k  FLOPs full fine-tuning executes

NB: this assumes energy proportional to executed FLOPs within an epoch (same GPU, same batch
shapes). Fixed power (idle GPU, host, RAM) does not shrink with rho, so E* is an upper bound of
what full fine-tuning would have drawn. Used by the savings the API and dashboard show
(service/savings.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from greentrainer_carbon.errors import PolicyError

J_PER_KWH = 3.6e6


def full_ft_energy_kwh(energy_kwh: float | None, executed_flops: float,
                       full_ft_flops: float) -> float | None:
    """E* for one epoch; None without a measured energy. An epoch that executed no FLOPs keeps
    its measured energy (nothing to scale)."""
    if energy_kwh is None:
        return None
    if executed_flops <= 0:
        return energy_kwh
    return energy_kwh * full_ft_flops / executed_flops


@dataclass(frozen=True)
class EnergyModel:
    """Wall time and energy of one epoch on a worker (docs/scheduler.md, "Energy model").

    An epoch at rho lasts ``overhead_s + rho x full_epoch_s`` (measured: step time tracks the
    executed FLOPs, benchmarks/results/train_flops*.md) and draws ``host_w`` for all of it (the
    machine's idle and host power, which does not shrink with rho) plus ``compute_w`` for the
    ``rho x full_epoch_s`` of computing."""

    host_w: float = 150.0
    compute_w: float = 550.0
    overhead_s: float = 0.0
    resume_s: float = 120.0  # reloading model, data and checkpoint after a pause
    source: str = "assumed"  # or "fitted from N epochs ..." (greentrainer_carbon.energy_fit)

    def __post_init__(self) -> None:
        if self.host_w < 0 or self.compute_w < 0 or self.host_w + self.compute_w <= 0:
            raise PolicyError("the energy model needs host_w >= 0, compute_w >= 0, one of them > 0")
        if self.overhead_s < 0 or self.resume_s < 0:
            raise PolicyError("overhead_s and resume_s must be >= 0")

    def to_dict(self) -> dict[str, float | str]:
        """What a decision records of the model it planned with."""
        return {"host_w": self.host_w, "compute_w": self.compute_w,
                "overhead_s": self.overhead_s, "resume_s": self.resume_s, "source": self.source}

    def epoch_seconds(self, full_epoch_s: float, rho: float) -> float:
        return self.overhead_s + rho * full_epoch_s

    def epoch_kwh(self, full_epoch_s: float, rho: float) -> float:
        seconds = self.epoch_seconds(full_epoch_s, rho)
        return (self.host_w * seconds + self.compute_w * rho * full_epoch_s) / J_PER_KWH

    def resume_kwh(self) -> float:
        """The energy of resuming after a pause (loading at full power)."""
        return (self.host_w + self.compute_w) * self.resume_s / J_PER_KWH

    def fixed_kwh(self) -> float:
        """The part of an epoch's energy that does not scale with rho."""
        return self.host_w * self.overhead_s / J_PER_KWH

    def per_rho_kwh(self, full_epoch_s: float) -> float:
        """d(epoch kWh) / d(rho)."""
        return (self.host_w + self.compute_w) * full_epoch_s / J_PER_KWH
